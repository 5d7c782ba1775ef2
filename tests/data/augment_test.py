"""The pure augmentation ops, each eagerly and inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.data import augment
from keras_alexnet.imagenet import IMAGENET_EIGENVALUES, IMAGENET_EIGENVECTORS


def both_ways(fn, *args):
    """Runs fn eagerly and inside a tf.data map; checks they agree; returns the result."""
    eager = fn(*args)
    mapped = next(iter(tf.data.Dataset.from_tensors(tuple(args)).map(fn)))
    np.testing.assert_array_equal(np.asarray(mapped), np.asarray(eager))
    return np.asarray(eager)


def coordinate_image(height, width):
    """float32 image whose pixel (r, c) holds (r, c, r * 1000 + c): positions are readable."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([rows, cols, rows * 1000 + cols], axis=-1)


SEEDS = [tf.constant([s, 7], tf.int64) for s in range(200)]
EIGENVALUES = np.asarray(IMAGENET_EIGENVALUES, np.float32) * 255
EIGENVECTORS = np.asarray(IMAGENET_EIGENVECTORS, np.float32)


def test_central_square_and_rescale():
    image = coordinate_image(300, 200)
    square = both_ways(augment.central_square, image)
    assert square.shape == (200, 200, 3)
    assert square[0, 0, 0] == 50 and square[0, 0, 1] == 0  # rows 50..249 kept
    wide = both_ways(augment.central_square, coordinate_image(40, 100))
    assert wide.shape == (40, 40, 3) and wide[0, 0, 1] == 30
    resized = both_ways(augment.rescale_and_center, image)
    assert resized.shape == (256, 256, 3) and resized.dtype == np.float32
    # Shorter side to 256 then the central 256 patch == central square then 256x256.
    np.testing.assert_allclose(
        resized, augment.resize_square(augment.central_square(image)).numpy(), rtol=1e-6
    )


def test_random_crop_stays_in_bounds_and_covers_every_position():
    image = coordinate_image(230, 229)  # 4 x 3 possible 227x227 positions
    seen = set()
    for seed in SEEDS:
        crop = both_ways(augment.random_crop, image, seed)
        assert crop.shape == (227, 227, 3)
        top, left = int(crop[0, 0, 0]), int(crop[0, 0, 1])
        assert 0 <= top <= 3 and 0 <= left <= 2
        np.testing.assert_array_equal(crop, image[top : top + 227, left : left + 227])
        seen.add((top, left))
    assert seen == {(t, s) for t in range(4) for s in range(3)}


def test_random_crop_of_a_too_small_image_fails():
    with pytest.raises(tf.errors.InvalidArgumentError, match="smaller than 227"):
        augment.random_crop(coordinate_image(200, 300), SEEDS[0])


def test_random_crop_is_a_function_of_the_seed():
    image = coordinate_image(256, 256)
    a = augment.random_crop(image, SEEDS[3]).numpy()
    np.testing.assert_array_equal(augment.random_crop(image, SEEDS[3]).numpy(), a)


def test_flip_is_the_input_or_its_mirror_and_both_happen():
    image = coordinate_image(5, 7)
    outcomes = []
    for seed in SEEDS[:64]:
        out = both_ways(augment.random_flip, image, seed)
        if np.array_equal(out, image):
            outcomes.append("same")
        else:
            np.testing.assert_array_equal(out, image[:, ::-1])
            outcomes.append("mirror")
    assert 16 < outcomes.count("mirror") < 48


def test_center_crop():
    image = coordinate_image(256, 256)
    crop = both_ways(augment.center_crop, image)
    np.testing.assert_array_equal(crop, image[14:241, 14:241])


def test_ten_crop_matches_numpy_reference():
    image = coordinate_image(256, 258)
    crops = both_ways(augment.ten_crop, image)
    s = 227
    reference = [
        image[:s, :s],
        image[:s, -s:],
        image[-s:, :s],
        image[-s:, -s:],
        image[14 : 14 + s, 15 : 15 + s],
    ]
    reference += [crop[:, ::-1] for crop in reference]
    np.testing.assert_array_equal(crops, np.stack(reference))


def test_pca_zero_alpha_is_identity():
    image = np.random.default_rng(0).uniform(0, 255, (8, 9, 3)).astype(np.float32)
    out = both_ways(
        augment.add_pca_offset, image, np.zeros(3, np.float32), EIGENVALUES, EIGENVECTORS
    )
    np.testing.assert_array_equal(out, image)


def test_pca_fixed_alpha_adds_the_hand_computed_offset_to_every_pixel():
    image = np.random.default_rng(1).uniform(0, 255, (8, 9, 3)).astype(np.float32)
    alpha = np.array([0.1, -0.2, 0.05], np.float32)
    out = both_ways(augment.add_pca_offset, image, alpha, EIGENVALUES, EIGENVECTORS)
    # Paper 4.1 by hand: offset = sum_i a_i * l_i * p_i, p_i the i-th column.
    # l = (0.2175, 0.0188, 0.0045) * 255 = (55.4625, 4.794, 1.1475);
    # a_i * l_i = (5.54625, -0.9588, 0.057375).
    expected = np.array(
        [
            5.54625 * -0.5675 + -0.9588 * 0.7192 + 0.057375 * 0.4009,
            5.54625 * -0.5808 + -0.9588 * -0.0045 + 0.057375 * -0.8140,
            5.54625 * -0.5836 + -0.9588 * -0.6948 + 0.057375 * 0.4203,
        ]
    )
    np.testing.assert_allclose(out - image, np.broadcast_to(expected, image.shape), atol=1e-4)
    assert np.abs(expected).max() > 2.5  # a visible shift on the 0..255 scale


def test_pca_offsets_have_the_papers_covariance():
    zero = np.zeros((1, 1, 3), np.float32)
    offsets = np.stack(
        [
            augment.random_pca_jitter(zero, tf.constant([s, 11]), EIGENVALUES, EIGENVECTORS)[0, 0]
            for s in range(4000)
        ]
    )
    expected = EIGENVECTORS @ np.diag((0.1 * EIGENVALUES) ** 2) @ EIGENVECTORS.T
    np.testing.assert_allclose(np.cov(offsets.T), expected, rtol=0.1, atol=0.05 * expected.max())
    np.testing.assert_allclose(offsets.mean(axis=0), 0, atol=0.05 * np.sqrt(expected.max()))
    # Inside tf.data too, one draw per image.
    ds = tf.data.Dataset.from_tensor_slices(tf.constant([[s, 11] for s in range(5)], tf.int64))
    mapped = [
        x.numpy()
        for x in ds.map(
            lambda seed: augment.random_pca_jitter(zero, seed, EIGENVALUES, EIGENVECTORS)
        )
    ]
    np.testing.assert_allclose(np.stack(mapped)[:, 0, 0], offsets[:5], rtol=1e-6)


def test_subtract_mean():
    image = np.full((2, 2, 3), 200, np.uint8)
    out = both_ways(augment.subtract_mean, image, np.array([123.68, 116.78, 103.94], np.float32))
    np.testing.assert_allclose(out[1, 1], [76.32, 83.22, 96.06], rtol=1e-5)
