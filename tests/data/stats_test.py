"""Pixel statistics: streamed mean and PCA against NumPy over the same pixels."""

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.data import stats as stats_lib


def test_compute_stats_matches_numpy():
    rng = np.random.default_rng(0)
    mixing = np.array([[0.8, 0.1, 0.0], [0.5, 0.4, 0.1], [0.3, 0.1, 0.5]])
    images = []
    for _ in range(6):
        noise = rng.normal(0, 50, (20, 30, 3)) @ mixing.T + [120, 110, 100]
        images.append(np.clip(noise, 0, 255).astype(np.uint8))
    ds = tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=tf.TensorSpec((None, None, 3), tf.uint8)
    )
    result = stats_lib.compute_stats(ds)
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64)
    np.testing.assert_allclose(result.mean_rgb, pixels.mean(axis=0), rtol=1e-9)
    covariance = np.cov((pixels / 255).T, bias=True)
    values, vectors = np.linalg.eigh(covariance)
    np.testing.assert_allclose(result.eigenvalues, values[::-1], rtol=1e-7)
    for i in range(3):
        p = np.asarray(result.eigenvectors)[:, i]
        np.testing.assert_allclose(covariance @ p, values[::-1][i] * p, atol=1e-9)
        assert p[0] <= 0
    assert result.num_images == 6 and result.num_pixels == 6 * 20 * 30


def test_imagenet_default_and_scale():
    np.testing.assert_allclose(
        stats_lib.IMAGENET_STATS.eigenvalues_for_scale(255.0), [55.4625, 4.794, 1.1475], rtol=1e-6
    )
    vectors = np.asarray(stats_lib.IMAGENET_STATS.eigenvectors)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(3), atol=2e-3)  # orthonormal columns


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "sub" / "stats.json"
    stats_lib.save_stats(stats_lib.IMAGENET_STATS, path)
    assert stats_lib.load_stats(path) == stats_lib.IMAGENET_STATS
    assert json.loads(path.read_text())["mean_rgb"] == [123.68, 116.78, 103.94]


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        stats_lib.load_stats(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid statistics JSON"):
        stats_lib.load_stats(bad)
    bad.write_text(json.dumps({"mean_rgb": [1, 2], "eigenvalues": [1, 2, 3], "eigenvectors": []}))
    with pytest.raises(ValueError, match=r"received mean_rgb=\[1.0, 2.0\]"):
        stats_lib.load_stats(bad)


def test_empty_dataset_is_an_error():
    empty = tf.data.Dataset.from_tensor_slices(tf.zeros((0, 4, 4, 3), tf.uint8))
    with pytest.raises(ValueError, match="empty dataset"):
        stats_lib.compute_stats(empty)


GOOD = {
    "mean_rgb": [123.68, 116.78, 103.94],
    "eigenvalues": [0.2175, 0.0188, 0.0045],
    "eigenvectors": [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.814],
        [-0.5836, -0.6948, 0.4203],
    ],
}


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("mean_rgb", [float("nan"), 116.78, 103.94], "mean_rgb must be 3 finite values in 0..255"),
        ("mean_rgb", [1e30, 116.78, 103.94], "mean_rgb must be 3 finite values in 0..255"),
        ("mean_rgb", [-1, 116.78, 103.94], "mean_rgb"),
        ("eigenvalues", [0.2175, -0.0188, 0.0045], "eigenvalues .* must be 3 finite values"),
        ("eigenvalues", [float("inf"), 0.0188, 0.0045], "eigenvalues"),
        ("eigenvalues", [55.46, 4.79, 1.15], "eigenvalues"),  # the 0..255 scale: not ours
        ("eigenvectors", [[1, 0, 0], [0, 1, 0], [0, 0, float("nan")]], "eigenvectors"),
        ("eigenvectors", [[2, 0, 0], [0, 1, 0], [0, 0, 1]], "orthonormal columns"),
        ("num_images", -3, "num_images must be a non-negative integer"),
        ("num_pixels", 1.5, "num_pixels"),
    ],
)
def test_implausible_statistics_are_refused_naming_the_file_and_field(
    tmp_path, field, value, message
):
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({**GOOD, field: value}))  # json writes NaN and Infinity
    with pytest.raises(ValueError, match=f"{path}.*{message}"):
        stats_lib.load_stats(path)


def test_plausible_statistics_load(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({**GOOD, "num_images": 3, "num_pixels": 12}))
    assert stats_lib.load_stats(path).num_images == 3


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "a folder"])
def test_a_stats_path_that_is_not_a_regular_file_is_refused_at_once(tmp_path, special):
    path = str(tmp_path) if special == "a folder" else special
    with pytest.raises(ValueError, match=r"is not a regular file"):
        stats_lib.load_stats(path)


def test_a_huge_stats_file_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as file:
        file.truncate(1 << 30)  # 1 GiB, sparse
    with pytest.raises(ValueError, match=r"1,073,741,824 bytes, more than the 65,536"):
        stats_lib.load_stats(path)
