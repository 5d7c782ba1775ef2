"""The pictures: conv1 kernels, nearest neighbours by fc7 features, training curves."""

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
