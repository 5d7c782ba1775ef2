"""The input pipelines: where the paper's preprocessing is composed, for training and for
evaluation, in exactly one place.

    train:    decode central square -> 256x256 -> random 227 crop -> random flip
              -> PCA colour jitter -> mean subtraction            (paper 2 and 4.1)
    eval:     decode central square -> 256x256 -> central 227 crop -> mean subtraction
    ten-crop: decode central square -> 256x256 -> 4 corners + centre, and mirrors
              -> mean subtraction                                 (paper 4.1, test time)

All of it runs in TensorFlow graph ops inside parallel `tf.data` maps; JPEGs are decoded only
over the central square. Training randomness comes from stateless ops seeded by a seeded
`tf.data.Dataset.random` stream: the same `seed` gives the same augmented stream, and each
epoch draws new augmentations.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from keras_alexnet.data import augment, decode
from keras_alexnet.data.sources import Source
from keras_alexnet.data.stats import IMAGENET_STATS, ColorStats, compute_stats

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SHUFFLE_BUFFER = 2048


def _tensors(stats: ColorStats):
    return (
        tf.constant(stats.mean_rgb, tf.float32),
        tf.constant(stats.eigenvalues_for_scale(255.0), tf.float32),
        tf.constant(stats.eigenvectors, tf.float32),
    )


def _square_256(
    encoded: tf.Tensor, max_pixels: int = decode.DEFAULT_MAX_PIXELS, what="image"
) -> tf.Tensor:
    """Paper 2, shared by every view: the central square, decoded and resized to 256x256."""
    return augment.resize_square(decode.decode_central_square(encoded, max_pixels, what))


def train_view(encoded: tf.Tensor, seed: tf.Tensor, stats: ColorStats) -> tf.Tensor:
    """One augmented training view of an encoded image: float32 (227, 227, 3)."""
    mean, eigenvalues, eigenvectors = _tensors(stats)
    crop_seed, flip_seed, colour_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=3)
    )
    image = _square_256(encoded)
    image = augment.random_crop(image, crop_seed)
    image = augment.random_flip(image, flip_seed)
    # PCA jitter and mean subtraction are both per-channel shifts: one pass over the pixels.
    offset = augment.random_pca_offset(colour_seed, eigenvalues, eigenvectors)
    return tf.ensure_shape(augment.subtract_mean(image, mean - offset), (227, 227, 3))


def eval_view(
    encoded: tf.Tensor,
    stats: ColorStats,
    max_pixels: int = decode.DEFAULT_MAX_PIXELS,
    what: str | tf.Tensor = "image",
) -> tf.Tensor:
    """The central 227x227 view of an encoded JPEG or PNG of at most `max_pixels` pixels,
    mean subtracted: float32 (227, 227, 3). A refusal names the input `what`."""
    image = _square_256(encoded, max_pixels, what)
    image = augment.center_crop(image)
    return tf.ensure_shape(augment.subtract_mean(image, _tensors(stats)[0]), (227, 227, 3))


def evaluation_input(
    image: str | os.PathLike | bytes, mean_rgb: tuple[float, float, float] | None = None
) -> np.ndarray:
    """An image file (its path) or its encoded bytes as the network sees it at evaluation:
    `eval_view`, the view `predict`, `evaluate` and the export's `serving_default` take (the
    central square, resized to 256x256, its central 227x227 crop, RGB), less `mean_rgb`
    (default ImageNet's). float32 (227, 227, 3); stack views for a batch.

    `IMAGENET_WEIGHTS.transforms()` is this function with the trained weights' mean.

    Raises:
        ValueError: the file cannot be read, or is not a JPEG or PNG within the pixel limit.
    """
    encoded = image if isinstance(image, bytes) else None
    if encoded is None:
        try:
            encoded = decode.read_image_file(os.fspath(image))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{image!r}: {error}; give an image file's path or its encoded bytes."
            ) from None
    stats = (
        IMAGENET_STATS
        if mean_rgb is None
        else dataclasses.replace(IMAGENET_STATS, mean_rgb=tuple(float(m) for m in mean_rgb))
    )
    try:
        return eval_view(tf.constant(encoded), stats).numpy()
    except tf.errors.InvalidArgumentError as error:
        what = "the bytes given" if isinstance(image, bytes) else repr(image)
        raise ValueError(f"{what}: {decode.refusal_of(error)}") from None


def ten_crop_view(
    encoded: tf.Tensor,
    stats: ColorStats,
    max_pixels: int = decode.DEFAULT_MAX_PIXELS,
    what: str | tf.Tensor = "image",
) -> tf.Tensor:
    """The paper's ten test views of an encoded JPEG or PNG of at most `max_pixels` pixels,
    mean subtracted: float32 (10, 227, 227, 3). A refusal names the input `what`."""
    image = _square_256(encoded, max_pixels, what)
    crops = augment.ten_crop(image)
    views = augment.subtract_mean(crops, _tensors(stats)[0])
    return tf.ensure_shape(views, (augment.TEN_CROP_VIEWS, 227, 227, 3))


def _options() -> tf.data.Options:
    """Every pipeline's options: deterministic order, and no autotuning thread.

    With autotuning on, each iterator runs a background thread that re-tunes the pipeline
    at growing intervals (up to about a minute), and deleting the iterator can wait for that
    thread's next wake-up: Keras deletes the validation iterator at every validation after
    the first, and training stopped there for seconds to a minute at a time (TensorFlow 2.21;
    docs/performance.md). Without it, `AUTOTUNE` means one parallel call per
    CPU core and prefetch buffers that grow as needed: the same images/s on 2 cores
    (benchmarks/input_pipeline.py).
    """
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False
    return options


def _finish(ds: tf.data.Dataset, batch_size: int, drop_remainder: bool, strict: bool):
    if not strict:
        # Backstop for files whose header and trailer look right but whose data does not
        # decode: TensorFlow logs the error and the example is skipped.
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    return ds.with_options(_options()).prefetch(AUTOTUNE)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}.")


def train_dataset(
    source: Source,
    batch_size: int,
    stats: ColorStats | None = None,
    seed: int = 0,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    strict: bool = False,
    num_shards: int = 1,
    shard_index: int = 0,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """Shuffled, augmented training batches: (float32 (B, 227, 227, 3), int32 (B,)).

    One pass over the train split per iteration (wrap in `.repeat()` for more); the last
    partial batch is dropped so every replica gets equal batches.

    Args:
        source: where the images come from.
        batch_size: global batch size.
        stats: pixel mean and PCA; `source.default_stats` when None.
        seed: the same seed gives the same stream of examples and augmentations.
        shuffle_buffer: examples shuffled in memory, as encoded bytes, after the file-level
            shuffle; not used for sources that already shuffle every example (image folders).
        strict: fail on an image that does not decode instead of skipping it.
        num_shards, shard_index: read only every `num_shards`-th example, starting at
            `shard_index` (one input pipeline of several workers). Every shard sees the same
            seeded order, so the shards are disjoint.
        skip_batches: start this many batches into the stream, without decoding the skipped
            images (resuming in the middle of an epoch).
    """
    _check_batch_size(batch_size)
    if not 0 <= shard_index < num_shards:
        raise ValueError(
            f"shard_index must be in [0, num_shards); received shard_index={shard_index}, "
            f"num_shards={num_shards}."
        )
    stats = stats or source.default_stats
    ds = source.encoded("train", shuffle_seed=seed)
    if num_shards > 1:
        ds = ds.shard(num_shards, shard_index)
    if shuffle_buffer > 1 and not source.fully_shuffled:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds))
    if skip_batches:
        ds = ds.skip(skip_batches * batch_size)
    ds = ds.map(
        lambda example, view_seed: (train_view(example[0], view_seed, stats), example[1]),
        num_parallel_calls=AUTOTUNE,
    )
    return _finish(ds, batch_size, drop_remainder=True, strict=strict)


def eval_dataset(
    source: Source,
    batch_size: int,
    stats: ColorStats | None = None,
    split: str = "validation",
    ten_crop: bool = False,
    strict: bool = False,
    num_shards: int = 1,
    shard_index: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Evaluation batches in a fixed order: (float32 (B, 227, 227, 3), int32 (B,)), or with
    `ten_crop=True` (float32 (B, 10, 227, 227, 3), int32 (B,)).

    `num_shards`/`shard_index` read every `num_shards`-th example (one worker's part);
    `drop_remainder` keeps only full batches (workers that must run equal step counts).
    """
    _check_batch_size(batch_size)
    stats = stats or source.default_stats
    view = ten_crop_view if ten_crop else eval_view
    ds = source.encoded(split)
    if num_shards > 1:
        ds = ds.shard(num_shards, shard_index)
    ds = ds.map(lambda encoded, label: (view(encoded, stats), label), num_parallel_calls=AUTOTUNE)
    return _finish(ds, batch_size, drop_remainder=drop_remainder, strict=strict)


def stats_images(source: Source, split: str = "train", strict: bool = False) -> tf.data.Dataset:
    """The 256x256 central patches of a split, as `compute_stats` should see them; images
    that do not decode are skipped (an error with `strict=True`), as in training."""
    ds = (
        source.encoded(split)
        .map(
            lambda encoded, label: _square_256(encoded),
            num_parallel_calls=AUTOTUNE,
        )
        .with_options(_options())
    )
    return ds if strict else ds.ignore_errors(log_warning=True)


def dataset_stats(source: Source, max_images: int | None = None) -> ColorStats:
    """The pixel statistics of `source`'s train split (`stats.compute_stats` over
    `stats_images`), of its first `max_images` images if given: one pass over them."""
    images = stats_images(source)
    if max_images:
        images = images.take(max_images)
    return compute_stats(images)
