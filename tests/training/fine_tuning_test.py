"""Fine-tuning: starting weights by layer name, a fresh classifier for other classes, frozen
blocks, the settings that go with them, and `scripts/train.py --weights --train_from` end to
end (frozen layers bit-identical after training, the new head, class names in the export)."""

import json
import os

import keras
import numpy as np
import pytest

from keras_alexnet import AlexNet
from keras_alexnet.training import fine_tuning
from keras_alexnet.training.config import SettingsError, TrainConfig
from tests.conftest import run_python

CONV_BASE = [f"conv{b}_{t}" for b in range(1, 6) for t in "ab"]


@pytest.fixture(scope="module")
def five_class_file(tmp_path_factory):
    """A `.weights.h5` of AlexNet(classes=5, init="he") and that model's weights by layer."""
    keras.utils.set_random_seed(11)
    model = AlexNet(classes=5, init="he")
    path = str(tmp_path_factory.mktemp("source") / "five.weights.h5")
    model.save_weights(path)
    return path, {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def test_starting_weights_of_another_class_count_leave_only_the_classifier_fresh(
    five_class_file,
):
    path, source = five_class_file
    values = fine_tuning.starting_weights(path, lrn="paper", init="he")
    assert values["predictions"][0].shape == (4096, 5)
    model = AlexNet(classes=3, init="he")
    fresh = fine_tuning.start_from(model, values)
    assert fresh == ["predictions"]
    for name in CONV_BASE + ["fc6_a", "fc7_b"]:
        for got, want in zip(model.get_layer(name).get_weights(), source[name], strict=True):
            np.testing.assert_array_equal(got, want)


def test_a_base_only_file_leaves_the_top_fresh(tmp_path):
    base = AlexNet(include_top=False, init="he")
    path = str(tmp_path / "base.weights.h5")
    base.save_weights(path)
    values = fine_tuning.starting_weights(path, lrn="paper", init="he")
    fresh = fine_tuning.start_from(AlexNet(classes=3, init="he"), values)
    assert fresh == ["fc6_a", "fc6_b", "fc7_a", "fc7_b", "predictions"]


def test_weights_that_do_not_fit_the_base_are_refused_before_any_is_set(five_class_file):
    path, source = five_class_file
    values = dict(source)
    values["conv3_a"] = [np.zeros((3, 3, 256, 8), "float32"), np.zeros(8, "float32")]
    model = AlexNet(classes=3, init="he")
    before = model.get_layer("conv1_a").kernel.numpy()
    with pytest.raises(ValueError, match=r"layer conv3_a has weight shapes \[\(3, 3, 256, 192\)"):
        fine_tuning.start_from(model, values)
    np.testing.assert_array_equal(model.get_layer("conv1_a").kernel.numpy(), before)
    with pytest.raises(ValueError, match="input_scaling"):  # saved with init="he"
        fine_tuning.starting_weights(path, lrn="paper", init="paper")


def test_freeze_before_makes_earlier_blocks_untrainable():
    model = AlexNet(classes=3)
    frozen = fine_tuning.freeze_before(model, "fc6")
    assert frozen == CONV_BASE[:2] + CONV_BASE[2:] and len(frozen) == 10
    trainable = {v.path.split("/")[0] for v in model.trainable_variables}
    assert trainable == {"fc6_a", "fc6_b", "fc7_a", "fc7_b", "predictions"}
    assert fine_tuning.freeze_before(AlexNet(classes=3), "conv1") == []
    with pytest.raises(ValueError, match="train_from must be one of"):
        fine_tuning.freeze_before(model, "fc9")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"train_from": "fc6"}, "only makes sense with trained weights"),
        ({"weights": "model.txt"}, "The `weights` argument should be either"),
        ({"weights": "/nonexistent/m.keras"}, "The weights file does not exist"),
        ({"weights": "/tmp/X.WEIGHTS.H5"}, "by their lowercase suffix"),
        ({"weights": "imagenet", "lrn": "paper"}, "needs lrn=caffe and init=paper"),
        ({"weights": "imagenet", "init": "he"}, "needs lrn=caffe and init=paper"),
        ({"train_from": "conv9"}, "train_from must be one of"),
    ],
)
def test_fine_tuning_settings_are_checked(settings, message):
    with pytest.raises(SettingsError, match=message):
        TrainConfig(**settings).validate()


def test_the_network_lrn_follows_the_weights():
    assert TrainConfig(weights="imagenet").network_lrn == "caffe"
    assert TrainConfig().network_lrn == "paper"
    assert TrainConfig(lrn="caffe").network_lrn == "caffe"


def test_a_keras_file_gives_its_own_init_and_lrn_and_refuses_contradicting_ones(
    five_class_file, tmp_path
):
    path, _ = five_class_file  # AlexNet(init="he", lrn="paper")
    config = TrainConfig(weights=path).validate()
    assert (config.network_init, config.network_lrn) == ("he", "paper")
    with pytest.raises(SettingsError, match=r"init='paper' contradicts .*init='he'"):
        TrainConfig(weights=path, init="paper").validate()
    with pytest.raises(SettingsError, match=r"lrn='caffe' contradicts .*lrn='paper'"):
        TrainConfig(weights=path, lrn="caffe").validate()
    assert TrainConfig(weights=path, init="he", lrn="paper").validate().network_init == "he"
    caffe_lrn = str(tmp_path / "caffe.weights.h5")
    AlexNet(classes=2, lrn="caffe").save_weights(caffe_lrn)
    config = TrainConfig(weights=caffe_lrn).validate()
    assert (config.network_init, config.network_lrn) == ("paper", "caffe")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(SettingsError, match="could not be read as a Keras weights file"):
        TrainConfig(weights=str(broken)).validate()


@pytest.mark.slow
def test_train_script_fine_tunes_with_frozen_blocks_and_exports_the_new_classes(
    folder, tmp_path, five_class_file
):
    path, source = five_class_file
    args = [
        "scripts/train.py",
        "--dataset=image_folder",
        f"--image_dir={folder}",
        f"--model_dir={tmp_path / 'run'}",
        f"--export_dir={tmp_path / 'export'}",
        "--epochs=1",
        "--steps_per_epoch=2",
        "--batch_size=4",
        "--init=he",
        "--learning_rate=0.01",
        "--mixed_precision=none",
        f"--weights={path}",
        "--train_from=fc7",
    ]
    result = run_python(args, env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "starting fresh: predictions (3 classes)" in result.stdout
    assert "Training fc7 onwards; frozen (kept as loaded, no weight decay): conv1_a" in (
        result.stdout
    )

    best = keras.saving.load_model(tmp_path / "run" / "best.keras")
    for name in CONV_BASE + ["fc6_a", "fc6_b"]:
        for got, want in zip(best.get_layer(name).get_weights(), source[name], strict=True):
            np.testing.assert_array_equal(got, want)  # bit-identical: frozen
    assert not np.array_equal(best.get_layer("fc7_a").kernel.numpy(), source["fc7_a"][0])
    assert best.get_layer("predictions").kernel.shape == (4096, 3)

    card_path = tmp_path / "export" / "1" / "assets.extra" / "model_card.json"
    card = json.loads(card_path.read_text())
    assert card["class_names"] == ["blue", "green", "red"]
    assert card["started_from"]["weights"] == os.path.basename(path)
    assert card["train_from"] == "fc7"

    # Resumed with one more epoch: from the backup, not from --weights again; still frozen.
    more = run_python([*args, "--epochs=2"], env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert more.returncode == 0, more.stderr[-3000:]
    assert "Starting from weights" not in more.stdout
    assert "Training fc7 onwards; frozen" in more.stdout
    state = json.loads((tmp_path / "run" / "backup" / "state.json").read_text())
    assert state["epoch"] == 2 and state["settings"]["train_from"] == "fc7"
    best = keras.saving.load_model(tmp_path / "run" / "best.keras")
    for name in CONV_BASE + ["fc6_a", "fc6_b"]:
        for got, want in zip(best.get_layer(name).get_weights(), source[name], strict=True):
            np.testing.assert_array_equal(got, want)

    # The same directory with another train_from is another run: refused, naming it.
    again = run_python(args[:-1] + ["--train_from=fc6"], env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert again.returncode == 1
    assert "train_from: 'fc7' then, 'fc6' now" in again.stderr


def test_a_file_of_another_architecture_says_so(tmp_path):
    """It was reported as an init mismatch ("init='he' contradicts ... init='paper'")."""
    other = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3), keras.layers.Flatten()]
    )
    path = str(tmp_path / "resnet.weights.h5")
    other.save_weights(path)
    with pytest.raises(SettingsError, match=r"was not saved from this package's AlexNet"):
        TrainConfig(weights=path, init="he").validate()
