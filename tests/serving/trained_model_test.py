"""The trained model as the package keeps it: the class names file and the one loader."""

import dataclasses

import pytest

from keras_alexnet.files import PathError
from keras_alexnet.serving.trained_model import read_class_names, write_class_names


def test_class_names_that_would_not_read_back_are_refused(tmp_path):

    path = str(tmp_path / "class_names.txt")
    write_class_names(["cat", "dog house", "ü"], path)
    assert read_class_names(path) == ["cat", "dog house", "ü"]
    for bad in ("two\nlines", " padded", ""):
        with pytest.raises(PathError, match="cannot be kept one per line"):
            write_class_names(["cat", bad], path)
    assert read_class_names(path) == ["cat", "dog house", "ü"]  # the file is untouched


def _tiny_model(path, classes):
    """A stand-in for a trained AlexNet: the loader only reads its output size."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(classes)])
    model.save(path)
    return model


def test_a_run_directory_gives_its_best_model_class_names_and_stats(tmp_path):
    from keras_alexnet.data import save_stats
    from keras_alexnet.data.stats import IMAGENET_STATS
    from keras_alexnet.serving import trained_model

    run = tmp_path / "run"
    run.mkdir()
    _tiny_model(run / "best.keras", 2)
    write_class_names(["cat", "dog"], str(run / "class_names.txt"))
    stats = dataclasses.replace(IMAGENET_STATS, mean_rgb=(10.0, 20.0, 30.0))
    save_stats(stats, run / "stats.json")
    trained = trained_model.load_trained_model(str(run))
    assert trained.kind == trained_model.RUN_DIRECTORY
    assert trained.path == str(run / "best.keras")
    assert (trained.classes, trained.class_names) == (2, ["cat", "dog"])
    assert trained.names_from == trained_model.NAMES_FROM_FILE
    assert trained.stats.mean_rgb == (10.0, 20.0, 30.0)
    # The same files beside a .keras file; a class names file given overrides them.
    (tmp_path / "names.txt").write_text("ant\nbee\n")
    again = trained_model.load_trained_model(
        str(run / "best.keras"), class_names_file=str(tmp_path / "names.txt")
    )
    assert again.kind == trained_model.KERAS_FILE and again.class_names == ["ant", "bee"]
    assert again.stats.mean_rgb == (10.0, 20.0, 30.0)


def test_class_names_come_from_the_card_then_imagenet_else_none(tmp_path):
    from keras_alexnet import imagenet_class_names, model_card
    from keras_alexnet.serving import trained_model

    _tiny_model(tmp_path / "carded.keras", 2)
    model_card.write_card(str(tmp_path / "carded.keras"), {"class_names": ["x", "y"]})
    carded = trained_model.load_trained_model(str(tmp_path / "carded.keras"))
    assert (carded.class_names, carded.names_from) == (["x", "y"], trained_model.NAMES_FROM_CARD)
    _tiny_model(tmp_path / "imagenet.keras", 1000)
    imagenet = trained_model.load_trained_model(str(tmp_path / "imagenet.keras"))
    assert imagenet.class_names == imagenet_class_names()
    assert imagenet.names_from == trained_model.NAMES_FROM_IMAGENET
    _tiny_model(tmp_path / "unnamed.keras", 3)
    unnamed = trained_model.load_trained_model(str(tmp_path / "unnamed.keras"))
    assert (unnamed.class_names, unnamed.names_from) == (None, None)
    assert unnamed.labels() == ["class 0", "class 1", "class 2"]
    assert unnamed.stats.mean_rgb == pytest.approx((123.68, 116.78, 103.94))  # ImageNet's


def test_what_cannot_be_loaded_is_one_line_naming_it(tmp_path):
    from keras_alexnet.serving import trained_model

    _tiny_model(tmp_path / "m.keras", 3)
    (tmp_path / "two.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match=r"has 3 classes but .*two.txt names 2"):
        trained_model.load_trained_model(
            str(tmp_path / "m.keras"), class_names_file=str(tmp_path / "two.txt")
        )
    with pytest.raises(ValueError, match=r"class names file .*missing.txt does not exist"):
        trained_model.load_trained_model(
            str(tmp_path / "m.keras"), class_names_file=str(tmp_path / "missing.txt")
        )
    with pytest.raises(ValueError, match=r"model file .*gone.keras' does not exist"):
        trained_model.load_trained_model(str(tmp_path / "gone.keras"))
    run = tmp_path / "run"  # a run whose first epoch has not ended: no best model yet
    run.mkdir()
    write_class_names(["a", "b"], str(run / "class_names.txt"))
    with pytest.raises(ValueError, match=r"best.keras does not exist; train with"):
        trained_model.load_trained_model(str(run))
    with pytest.raises(ValueError, match="neither a SavedModel"):
        trained_model.load_trained_model(str(tmp_path / "empty"))


def test_the_export_needs_names_and_a_keras_model(tmp_path):
    from keras_alexnet.serving import export

    _tiny_model(tmp_path / "unnamed.keras", 3)
    with pytest.raises(ValueError, match="the model has 3 classes: give their names"):
        export.export_trained_model(str(tmp_path / "unnamed.keras"), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="--also: unknown export format"):
        export.export_trained_model(
            str(tmp_path / "unnamed.keras"), str(tmp_path / "out"), also=["x"]
        )
    assert not (tmp_path / "out").exists()


def test_a_base_without_classifier_or_a_card_of_no_list_is_refused(tmp_path):
    """A base's features were printed as scores of classes f0..f4095; a card naming its
    classes with the string "xyz" gave classes x, y, z."""
    from keras_alexnet import AlexNet, model_card
    from keras_alexnet.serving import trained_model

    AlexNet(include_top=False, pooling="avg").save(tmp_path / "base.keras")
    with pytest.raises(ValueError, match=r"base.keras is AlexNet's convolutional base without"):
        trained_model.load_trained_model(str(tmp_path / "base.keras"))
    _tiny_model(tmp_path / "carded.keras", 3)
    model_card.write_card(str(tmp_path / "carded.keras"), {"class_names": "xyz"})
    with pytest.raises(ValueError, match=r"names its classes with str 'xyz', not a list"):
        trained_model.load_trained_model(str(tmp_path / "carded.keras"))


def test_a_card_that_is_a_zip_bomb_is_refused_on_every_path(tmp_path):
    """Fine-tuning read the card whole (7.3 GB inflated, killed); predict refused it."""
    import resource
    import zipfile

    from keras_alexnet import model_card
    from keras_alexnet.training.config import SettingsError, TrainConfig

    _tiny_model(tmp_path / "bomb.keras", 3)
    with zipfile.ZipFile(tmp_path / "bomb.keras", "a", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(model_card.CARD_MEMBER, "w", force_zip64=True) as member:
            block = b" " * (1 << 20)
            for _ in range(64):  # 64 MiB of spaces: a 64 KB member, well past the card's bound
                member.write(block)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=r"keras_alexnet_card.json inflates to 67,108,864"):
        model_card.origin_of(str(tmp_path / "bomb.keras"))
    with pytest.raises((ValueError, SettingsError), match=r"inflates to 67,108,864 bytes"):
        TrainConfig(weights=str(tmp_path / "bomb.keras")).validate()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 << 10
