"""The composed pipelines: shapes, determinism, eval views against the pure ops."""

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.data import augment, decode, eval_dataset, image_folder_source, train_dataset
from keras_alexnet.data.pipeline import eval_view, ten_crop_view, train_view
from keras_alexnet.data.stats import IMAGENET_STATS
from tests.conftest import encode, random_image

MEAN = np.asarray(IMAGENET_STATS.mean_rgb, np.float32)


@pytest.fixture
def folder_source(image_folder):
    return image_folder_source(image_folder, validation_fraction=0.25)


def _first_batches(ds, count=2):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(count)]


def test_train_batches(folder_source):
    batches = _first_batches(train_dataset(folder_source, 4, seed=0), 3)
    for x, y in batches:
        assert x.shape == (4, 227, 227, 3) and x.dtype == np.float32
        assert y.shape == (4,) and y.dtype == np.int32
    # Mean subtracted: values centred near zero, well inside -255..255 (+ colour jitter).
    assert -160 < np.concatenate([x for x, _ in batches]).mean() < 160


def test_same_seed_same_stream_new_augmentations_each_epoch(folder_source):
    first = _first_batches(train_dataset(folder_source, 4, seed=11))
    again = _first_batches(train_dataset(folder_source, 4, seed=11))
    other = _first_batches(train_dataset(folder_source, 4, seed=12))
    for (xa, ya), (xb, yb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(first[0][0], other[0][0])
    ds = train_dataset(folder_source, 12, seed=11)
    epoch1 = next(iter(ds))[0].numpy()
    epoch2 = next(iter(ds))[0].numpy()
    assert not np.array_equal(epoch1, epoch2)


def test_train_view_eager_equals_inside_tf_data():
    encoded = tf.constant(encode(random_image(np.random.default_rng(0), 60, 90), "JPEG"))
    seed = tf.constant([4, 2], tf.int64)
    eager = train_view(encoded, seed, IMAGENET_STATS).numpy()
    mapped = next(
        iter(
            tf.data.Dataset.from_tensors((encoded, seed)).map(
                lambda e, s: train_view(e, s, IMAGENET_STATS)
            )
        )
    ).numpy()
    np.testing.assert_array_equal(mapped, eager)


def test_eval_view_is_the_pure_ops_composed():
    image = random_image(np.random.default_rng(1), 70, 50)
    encoded = tf.constant(encode(image, "PNG"))
    view = eval_view(encoded, IMAGENET_STATS).numpy()
    expected = augment.center_crop(augment.rescale_and_center(image)).numpy() - MEAN
    np.testing.assert_allclose(view, expected, atol=1e-3)
    crops = ten_crop_view(encoded, IMAGENET_STATS).numpy()
    assert crops.shape == (10, 227, 227, 3)
    np.testing.assert_allclose(crops[4], view, atol=1e-3)  # the centre crop
    np.testing.assert_allclose(crops[9], view[:, ::-1], atol=1e-3)  # and its mirror
    # The train view without jitter would be one of the 227 crops of the same 256 image.
    resized = augment.resize_square(decode.decode_central_square(encoded)).numpy()
    assert resized.shape == (256, 256, 3)


def test_eval_dataset_is_ordered_and_complete(folder_source):
    a = [y.numpy().tolist() for _, y in eval_dataset(folder_source, 4)]
    b = [y.numpy().tolist() for _, y in eval_dataset(folder_source, 4)]
    assert a == b
    assert sum(len(y) for y in a) == folder_source.num_examples["validation"]
    x, _ = next(iter(eval_dataset(folder_source, 2, ten_crop=True)))
    assert x.shape == (2, 10, 227, 227, 3)


def test_bad_batch_size(folder_source):
    with pytest.raises(ValueError, match="received 0"):
        train_dataset(folder_source, 0)
    with pytest.raises(ValueError, match="split must be one of"):
        eval_dataset(folder_source, 2, split="test")


def test_pipelines_run_without_an_autotuning_thread(folder_source):
    """Deleting an autotuned iterator waits for its tuning thread (up to a minute, TensorFlow
    2.21), and Keras deletes one at every validation: every pipeline turns autotuning off,
    deterministic order kept."""
    from keras_alexnet.data.pipeline import stats_images

    for ds in (
        train_dataset(folder_source, 4, seed=0),
        eval_dataset(folder_source, 4),
        eval_dataset(folder_source, 2, ten_crop=True),
        stats_images(folder_source),
    ):
        assert ds.options().autotune.enabled is False
        assert ds.options().deterministic is True
