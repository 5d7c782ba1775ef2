"""The pictures: conv1 kernels, nearest neighbours by fc7 features, training curves."""

import os

import numpy as np
import pytest
from PIL import Image

from keras_alexnet import AlexNet
from keras_alexnet.visualize import (
    curves_image,
    filters_image,
    nearest_neighbours,
    neighbours_image,
    read_history,
)
from tests.conftest import run_python


def test_filters_image_puts_tower_a_above_tower_b():
    model = AlexNet(classes=3, include_top=True)
    image = np.asarray(filters_image(model, scale=2, per_row=16))
    cell = 11 * 2 + 2
    assert image.shape == (6 * cell + cell // 2 + 2, 16 * cell + 2, 3)
    for tower, top in (("a", 2), ("b", 2 + 3 * cell + cell // 2)):
        kernel = model.get_layer(f"conv1_{tower}").kernel.numpy()[..., 0]
        want = np.uint8(255 * (kernel - kernel.min()) / (kernel.max() - kernel.min() + 1e-12))
        np.testing.assert_array_equal(image[top : top + 22 : 2, 2 : 2 + 22 : 2], want)


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    features, queries = rng.normal(size=(50, 16)), rng.normal(size=(4, 16))
    want = np.argsort(
        np.linalg.norm(queries[:, None] - features[None], axis=-1), axis=1, kind="stable"
    )[:, :5]
    np.testing.assert_array_equal(nearest_neighbours(queries, features, 5), want)


def test_neighbours_image_has_a_row_per_query():
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 255, (20, 20, 3)) for _ in range(3)]
    image = neighbours_image(pictures[:2], [pictures, pictures], size=16)
    assert image.size == (4 * 20 + 4, 2 * 20)


def test_curves_from_a_training_log(tmp_path):
    log = tmp_path / "training_log.csv"
    log.write_text(
        "epoch,loss,top1_accuracy,top5_accuracy,val_loss,val_top1_accuracy,val_top5_accuracy\n"
        "1,2.3,0.1,0.5,2.2,0.12,0.55\n2,1.9,0.3,0.8,1.8,0.35,0.85\n3,1.2,0.6,0.95,1.3,0.55,0.9\n"
    )
    history = read_history(str(log))
    assert history["val_top1_accuracy"] == [0.12, 0.35, 0.55]
    image = np.asarray(curves_image(history))
    blue = np.all(image == (31, 119, 180), axis=-1)
    orange = np.all(image == (255, 127, 14), axis=-1)
    assert blue.sum() > 50 and orange.sum() > 50  # both series drawn in all three panels
    for panel in range(3):
        columns = slice(panel * 300, (panel + 1) * 300)
        assert blue[:, columns].any() and orange[:, columns].any()
    (tmp_path / "empty.csv").write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="no epochs"):
        read_history(str(tmp_path / "empty.csv"))


@pytest.mark.slow
def test_picture_scripts_write_pngs(image_folder, tmp_path):
    model = AlexNet(classes=3, init="he")
    model.save(tmp_path / "m.keras")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "training_log.csv").write_text(
        "epoch,loss,top1_accuracy,top5_accuracy,val_loss,val_top1_accuracy,val_top5_accuracy\n"
        "1,2.3,0.1,0.5,2.2,0.12,0.55\n2,1.9,0.3,0.8,1.8,0.35,0.85\n"
    )
    runs = {
        "filters.png": ["scripts/show_filters.py", f"--model={tmp_path / 'm.keras'}"],
        "curves.png": ["scripts/plot_history.py", f"--model_dir={tmp_path / 'run'}"],
        "similar.png": [
            "scripts/similar.py",
            f"--model={tmp_path / 'm.keras'}",
            "--dataset=image_folder",
            f"--image_dir={image_folder}",
            "--split=train",
            "--queries=3",
            "--neighbours=4",
        ],
    }
    for name, args in runs.items():
        result = run_python([*args, f"--output={tmp_path / name}"])
        assert result.returncode == 0, (name, result.stderr[-3000:])
        assert Image.open(tmp_path / name).size[0] > 100
    assert Image.open(tmp_path / "similar.png").size == (5 * 100 + 24, 3 * 100)


_HEADER = "epoch,loss,top1_accuracy,top5_accuracy,val_loss,val_top1_accuracy,val_top5_accuracy\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("loss,top1_accuracy\n2.3,0.1\n", r"has no epoch column: it is not the training_log"),
        ("epoch,top1_accuracy\n1,0.1\n", r"has no loss column"),
        (_HEADER + "1,2.3,0.1,0.5,2.2,0.12,0.55\n2,1.9\n", r"line 3: top1_accuracy is None"),
        (_HEADER + "1,2.3,x,0.5,2.2,0.12,0.55\n", r"line 2: top1_accuracy is 'x', not a number"),
    ],
    ids=["no-epoch", "no-loss", "short-row", "not-a-number"],
)
def test_a_training_log_that_is_not_one_is_one_line(tmp_path, text, message):
    log = tmp_path / "training_log.csv"
    log.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_history(str(log))


def test_non_finite_values_are_left_out_of_the_curves(tmp_path):
    log = tmp_path / "training_log.csv"
    log.write_text(_HEADER + "1,nan,0.1,0.5,nan,0.12,0.55\n2,nan,0.3,0.8,inf,0.35,0.85\n")
    image = np.asarray(curves_image(read_history(str(log))))  # ("min() arg is an empty ...")
    assert np.all(image == (31, 119, 180), axis=-1).sum() > 10  # the accuracy panels


def test_filters_of_another_model_and_a_huge_scale_are_one_line():
    import keras

    other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="conv")])
    with pytest.raises(ValueError, match=r"has no conv1_a and conv1_b layers"):
        filters_image(other)
    with pytest.raises(ValueError, match=r"scale must be 1 to 64 pixels; received 3000"):
        filters_image(AlexNet(classes=3), scale=3000)  # (allocated 6 GB, killed)


@pytest.mark.parametrize(
    "path, message",
    [
        ("pictures.jpg", r"--output=.*pictures.jpg: the picture is written as PNG"),
        ("a_file/x.png", r"--output's folder .*a_file is a file, not a directory"),
        ("full.png", r"full.png: .*full.png is not a regular file \(a device"),
    ],
)
def test_a_picture_path_that_cannot_be_written_is_refused_before_drawing(tmp_path, path, message):
    from keras_alexnet import visualize

    where = str(tmp_path / path)
    (tmp_path / "a_file").write_text("not a folder")
    if path == "full.png":
        os.symlink("/dev/full", where)  # (evaluate --output=/dev/full wrote into the device)
    with pytest.raises(ValueError, match=message):
        visualize.check_png_path(where)


def test_a_picture_goes_into_a_folder_made_for_it(tmp_path):
    from keras_alexnet import visualize

    path = visualize.save_png(Image.new("RGB", (4, 4)), str(tmp_path / "new" / "x.png"))
    assert Image.open(path).size == (4, 4) and os.listdir(tmp_path / "new") == ["x.png"]


def test_similar_needs_a_query():
    from keras_alexnet import visualize

    with pytest.raises(ValueError, match=r"queries must be at least 1 without query files"):
        visualize.similar_images(None, None, None, queries=0)
