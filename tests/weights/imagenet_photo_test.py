"""A photo classified by the trained ImageNet weights: `IMAGENET_WEIGHTS.transforms()` against
a crop computed by hand in NumPy, and `alexnet-predict --model=imagenet` (README's five lines:
tests/docs_test.py). Never the internet: the Keras cache is prepared here, as a download would
leave it, from a generated model (the real weights are not reachable from the tests)."""

import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_alexnet
from keras_alexnet import data
from keras_alexnet.data import pipeline
from keras_alexnet.imagenet import IMAGENET_MEAN_RGB
from tests.conftest import REPO_ROOT
from tests.weights.prepared_cache import prepare_imagenet_cache

WEIGHTS = keras_alexnet.IMAGENET_WEIGHTS


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    """A Keras home whose cache holds the (generated) ImageNet weights; returns (home, model)."""
    home = tmp_path_factory.mktemp("keras_home")
    return home, prepare_imagenet_cache(str(home))


def _photo(height=300, width=420, seed=0):
    """A smooth RGB picture (PNG bytes, lossless: the hand computation sees its pixels)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (height // 30 + 1, width // 30 + 1, 3)).astype(np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue(), pixels


def _bilinear(image, size):
    """Bilinear resize with half-pixel centres (what tf.image.resize does), in NumPy."""
    side = image.shape[0]
    scale = side / size
    centres = (np.arange(size) + 0.5) * scale - 0.5
    low = np.clip(np.floor(centres).astype(int), 0, side - 1)
    high = np.clip(low + 1, 0, side - 1)
    weight = np.clip(centres - np.floor(centres), 0, 1)
    rows = image[low] * (1 - weight)[:, None, None] + image[high] * weight[:, None, None]
    return rows[:, low] * (1 - weight)[None, :, None] + rows[:, high] * weight[None, :, None]


def test_transforms_is_the_papers_evaluation_view_computed_by_hand(tmp_path):
    encoded, pixels = _photo()
    path = tmp_path / "photo.png"
    path.write_bytes(encoded)
    # By hand: the central square (the shorter side, 300, kept whole), 300 -> 256, the
    # central 227 (offset (256 - 227) // 2 = 14), less the weights' mean.
    left = (420 - 300) // 2
    square = pixels[:, left : left + 300].astype(np.float64)
    expected = _bilinear(square, 256)[14 : 14 + 227, 14 : 14 + 227] - np.array(WEIGHTS.mean_rgb)

    transform = WEIGHTS.transforms()
    view = transform(str(path))
    assert view.shape == (227, 227, 3) and view.dtype == np.float32
    np.testing.assert_allclose(view, expected, atol=2e-3)
    np.testing.assert_array_equal(transform(encoded), view)  # bytes as the file
    np.testing.assert_array_equal(transform(path), view)  # a PathLike as its str
    # The mean given is the one subtracted.
    other = pipeline.evaluation_input(encoded, mean_rgb=(0, 0, 0))
    np.testing.assert_allclose(other - view, np.broadcast_to(WEIGHTS.mean_rgb, view.shape), 1e-4)
    assert WEIGHTS.mean_rgb == IMAGENET_MEAN_RGB


def test_transforms_refuses_what_is_not_an_image_in_one_line(tmp_path):
    transform = WEIGHTS.transforms()
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    with pytest.raises(ValueError, match="notes.txt.*must be an encoded JPEG or PNG"):
        transform(str(text))
    with pytest.raises(ValueError, match="does-not-exist.jpg.*cannot read it"):
        transform(str(tmp_path / "does-not-exist.jpg"))
    with pytest.raises(ValueError, match="the bytes given.*must be an encoded JPEG or PNG"):
        transform(b"GIF89a....")
    with pytest.raises(ValueError, match="give an image file's path or its encoded bytes"):
        transform(np.zeros((227, 227, 3)))


def test_predict_command_classifies_with_the_papers_ten_views(keras_home, tmp_path):
    home, model = keras_home
    shutil.copy(os.path.join(REPO_ROOT, "examples", "star.jpg"), tmp_path / "photo.jpg")
    # The cache is read, never the network: a proxy that answers nothing stops any download.
    env = dict(os.environ, KERAS_HOME=str(home), PYTHONPATH=REPO_ROOT)
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    predicted = subprocess.run(
        [sys.executable, "-m", "keras_alexnet_cli", "predict", "--model=imagenet", "photo.jpg"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    encoded = tf.constant((tmp_path / "photo.jpg").read_bytes())
    ten = pipeline.ten_crop_view(encoded, data.IMAGENET_STATS).numpy()
    mean = np.asarray(model(ten, training=False)).mean(axis=0)
    best = keras_alexnet.imagenet_class_names()[int(np.argmax(mean))]
    assert predicted.stdout.startswith(f"photo.jpg: {best} {mean.max():.3f}"), predicted.stdout
    assert "Traceback" not in predicted.stderr and "ERROR" not in predicted.stderr


@pytest.mark.slow
def test_predict_imagenet_refuses_a_stats_file_in_one_line(keras_home, tmp_path):
    home, _ = keras_home
    shutil.copy(os.path.join(REPO_ROOT, "examples", "star.jpg"), tmp_path / "photo.jpg")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_alexnet_cli",
            "predict",
            "--model=imagenet",
            "--stats=stats.json",
            "photo.jpg",
        ],
        cwd=tmp_path,
        env=dict(os.environ, KERAS_HOME=str(home), PYTHONPATH=REPO_ROOT),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ERROR: The trained ImageNet weights subtract the mean they were trained with; a "
        "statistics file (stats.json) is for a .keras model trained on other data. Leave out "
        "--stats."
    ]


def test_imagenet_by_name_loads_the_cached_weights_for_predict_evaluate_export(
    keras_home, monkeypatch
):
    from keras_alexnet.serving import evaluation, trained_model

    home, model = keras_home
    monkeypatch.setenv("KERAS_HOME", str(home))
    trained = trained_model.load_trained_model("imagenet")
    assert (trained.kind, trained.classes, trained.names_from) == ("imagenet", 1000, "imagenet")
    assert trained.class_names == keras_alexnet.imagenet_class_names()
    assert trained.stats.mean_rgb == WEIGHTS.mean_rgb
    assert trained.card["pretrained"]["name"] == "bvlc_alexnet"
    views = np.random.default_rng(1).uniform(-120, 130, (2, 227, 227, 3)).astype(np.float32)
    expected = np.asarray(model(views, training=False))
    np.testing.assert_allclose(np.asarray(trained.model(views, training=False)), expected)
    # Views made with another dataset's mean are moved to the weights' own.
    zero_mean = data.ColorStats((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), ((1, 0, 0), (0, 1, 0), (0, 0, 1)))
    predict = evaluation.predictor_of(trained, zero_mean)
    shifted = views + np.asarray(WEIGHTS.mean_rgb, np.float32)
    np.testing.assert_allclose(predict(shifted), expected, atol=1e-5)
