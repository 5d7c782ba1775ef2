"""TrainConfig: the paper's defaults, one check per field, JSON round trip."""

import dataclasses
import os

import pytest

from keras_alexnet.cli import config_files
from keras_alexnet.training.config import SettingsError, TrainConfig


def test_defaults_are_the_papers_recipe():
    config = TrainConfig().validate()
    assert (config.batch_size, config.momentum, config.weight_decay) == (128, 0.9, 0.0005)
    assert (config.learning_rate, config.lr_reduce_factor, config.max_lr_reductions) == (
        0.01,
        0.1,
        3,
    )
    assert (config.epochs, config.dropout_rate, config.network_init) == (90, 0.5, "paper")
    assert (config.optimizer, config.lr_schedule) == ("sgd", "plateau")


def test_every_field_has_help_and_a_flag_kind():
    for field in dataclasses.fields(TrainConfig):
        assert field.metadata["help"], field.name
        assert field.metadata["kind"] in ("string", "integer", "float", "bool", "list", "enum")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"batch_size": 0}, r"batch_size must be >= 1; received batch_size=0"),
        ({"batch_size": 2.5}, r"batch_size must be an integer"),
        ({"epochs": True}, r"epochs must be an integer; received epochs=True"),
        ({"learning_rate": 0}, r"learning_rate must be > 0"),
        ({"learning_rate": float("nan")}, r"learning_rate must be a finite number"),
        ({"momentum": 1.5}, r"momentum must be <= 1"),
        ({"lr_reduce_factor": 1}, r"lr_reduce_factor must be < 1.*paper: 0.1"),
        ({"dropout_rate": 1.0}, r"dropout_rate must be < 1"),
        ({"strategy": "pipeline"}, r"strategy must be one of \('mirrored'"),
        ({"mixed_precision": "fp8"}, r"mixed_precision must be one of"),
        ({"init": "xavier"}, r"init must be one of \('paper', 'he'\)"),
        ({"model_dir": ""}, r"model_dir must be a non-empty string"),
        ({"devices": "/gpu:0"}, r"devices must be a list of device names"),
        ({"verbose": 3}, r"verbose must be <= 2"),
        ({"jit_compile": "yes"}, r"jit_compile must be True or False"),
        ({"optimizer": "rmsprop"}, r"optimizer must be one of \('sgd', 'adam'\)"),
        ({"lr_schedule": "step"}, r"lr_schedule must be one of \('plateau', 'cosine'\)"),
        (
            {"optimizer": "adam", "momentum": 0.5},
            r"momentum is SGD's.*optimizer='adam'.*received momentum=0.5.*optimizer='sgd'",
        ),
        ({"optimizer": "adam", "adam_beta_2": 1.0}, r"adam_beta_2 must be < 1"),
        (
            {"adam_beta_2": 0.99},
            r"adam_beta_2 is Adam's.*optimizer='sgd'.*received adam_beta_2=0.99.*optimizer='adam'",
        ),
    ],
)
def test_each_bad_setting_is_named(change, message):
    with pytest.raises(SettingsError, match=message):
        TrainConfig(**change).validate()


def test_json_round_trip_and_unknown_settings():
    config = TrainConfig(dataset="image_folder", image_dir="/x", devices=("/cpu:0",), epochs=3)
    assert TrainConfig.from_json(config.to_json()) == config
    with pytest.raises(SettingsError, match=r"Unknown training settings \['epoch'\]"):
        TrainConfig.from_json('{"epoch": 3}')
    with pytest.raises(TypeError, match="epoch"):
        TrainConfig(epoch=3)


def _parsed(*argv):
    from absl import flags

    from keras_alexnet.training.config import config_from_flags, define_flags

    flag_values = flags.FlagValues()
    define_flags(flag_values)
    flag_values(["train.py", *argv])
    return config_from_flags(flag_values)


def test_flags_give_the_config_they_name():
    config = _parsed("--batch_size=8", "--tower_devices=/cpu:0,/cpu:1", "--model_dir=~/r")
    assert config == TrainConfig(
        batch_size=8,
        tower_devices=("/cpu:0", "/cpu:1"),
        model_dir=os.path.expanduser("~/r"),
    )
    assert _parsed() == TrainConfig()  # the flags' defaults are the config's


@pytest.mark.parametrize(
    "flag, message",
    [
        # absl's own checks: the flag's kind, bounds and choices.
        ("--batch_size=0", "batch_size"),
        ("--strategy=pipeline", "strategy"),
        ("--mixed_precision=fp8", "mixed_precision"),
        ("--momentum=1.5", "momentum"),
        ("--adam_beta_2=-0.5", "adam_beta_2"),
        ("--epochs=zero", "epochs"),
        # TrainConfig.validate's: limits absl has no words for.
        ("--lr_reduce_factor=10", "lr_reduce_factor"),
    ],
)
def test_each_bad_flag_is_named(flag, message):
    from absl import flags

    with pytest.raises((flags.Error, SettingsError), match=message):
        _parsed(flag).validate()


@pytest.mark.parametrize("name", ["paper", "quickstart", "finetune"])
def test_each_recipe_file_parses_into_a_valid_config(name):
    from absl import flags

    from keras_alexnet.training.config import config_from_flags, define_flags

    values = flags.FlagValues()
    define_flags(values)
    values(["train.py", f"--flagfile={config_files.path_of(name)}"])
    config = config_from_flags(values).validate()
    if name == "finetune":
        assert (config.weights, config.train_from, config.network_lrn) == (
            "imagenet",
            "fc6",
            "caffe",
        )
