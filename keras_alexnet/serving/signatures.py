"""The SavedModel's three signatures (the contract docs/serving.md documents), each built by a
module-level function from the model and the statistics it trained with:

- `serving_default` (`encoded_images_signature`): `image_bytes`, tf.string [None], encoded
  JPEG or PNG images, decoded, resized and centre-cropped inside the graph exactly as
  evaluation does it (`data.pipeline.eval_view`: central square -> 256x256 -> central
  227x227 -> minus the mean);
- `ten_crop` (`encoded_images_signature(..., ten_crop=True)`): the same `image_bytes`, each
  classified as the paper does at test time (section 4.1): the softmax averaged over ten
  views (`data.pipeline.ten_crop_view`: the four corner 227x227 patches, the centre one, and
  their mirrors). Ten network passes per image, and at most `MAX_TEN_CROP_IMAGES` images per
  request; `alexnet-predict` uses it;
- `predict_images` (`pixels_signature`): `images`, float32 [None, 227, 227, 3], RGB on the
  0..255 scale.

All three return `probabilities` [None, classes] float32, `classes` [None, 5] int32 (the top
5, best first), `scores` [None, 5] float32 and `labels` [None, 5] string: the class names
travel inside the SavedModel. `serving_default` and `ten_crop` take JPEG and PNG only, of at
most `max_pixels` pixels (read from the header before decoding): anything else fails the
request with InvalidArgument naming the image's index, e.g. "image_bytes[2] must be an encoded
JPEG or PNG image; received 1000 bytes starting with [71 73 70 56 57 97 1 0]" (TF Serving
answers HTTP 400). A batch with one bad image fails whole: TensorFlow's decoders cannot fail
for one element and go on, so a per-image status could only cover what the header shows. An
empty request returns empty outputs. The encoded images of a request are decoded one at a
time, so a request's memory is bounded by one image of `max_pixels` whatever the server's
thread settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from keras_alexnet.alexnet import DEFAULT_SIZE
from keras_alexnet.data import augment, decode, pipeline
from keras_alexnet.data.stats import IMAGENET_STATS, ColorStats, check_stats

TOP_K = 5
# `serving_default` decodes every image of a request to 227x227x3 float32 (618 KB) and more
# while resizing, whatever its size on the wire: 1,000 tiny JPEGs in a 350 KB request took
# 4.45 GB. 128 (the paper's batch size) bounds a request to about 0.3 GB. (`predict_images`
# is not bounded: its memory is what the client sent, and evaluation's ten-crop sends 320.)
MAX_IMAGES_PER_REQUEST = 128
# `ten_crop` runs the network on ten views of each image: the same bound on the views.
MAX_TEN_CROP_IMAGES = MAX_IMAGES_PER_REQUEST // augment.TEN_CROP_VIEWS
# The signatures that take encoded images: the centre crop, and the paper's ten views.
SERVING_DEFAULT = "serving_default"
TEN_CROP = "ten_crop"
PREDICT_IMAGES = "predict_images"


def serving_archive(
    model: keras.Model,
    class_names: Sequence[str],
    stats: ColorStats = IMAGENET_STATS,
    max_pixels: int = decode.DEFAULT_MAX_PIXELS,
) -> keras.export.ExportArchive:
    """The `ExportArchive` with the three signatures, for a model trained on inputs from the
    pipeline with `stats` (its mean is subtracted inside the graph); `serving_default` and
    `ten_crop` refuse images of more than `max_pixels` pixels."""
    check_stats(stats, "The stats given to the export")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer; received {max_pixels!r}.")
    classes = model.output_shape[-1]
    if len(class_names) != classes:
        raise ValueError(
            f"class_names must name the model's {classes} classes; received "
            f"{len(class_names)} names."
        )
    outputs = top_k_outputs(class_names)
    # Not `archive.track(model)`: the endpoints' functions bring the variables they read, and
    # tracking the model as well saved every weight twice (as the Keras variables and as the
    # variables the functions capture: an export of 2x the weights' size, measured).
    archive = keras.export.ExportArchive()
    archive.add_endpoint(
        SERVING_DEFAULT, encoded_images_signature(model, stats, max_pixels, outputs)
    )
    archive.add_endpoint(
        TEN_CROP, encoded_images_signature(model, stats, max_pixels, outputs, ten_crop=True)
    )
    archive.add_endpoint(PREDICT_IMAGES, pixels_signature(model, stats, outputs))
    return archive


def top_k_outputs(class_names: Sequence[str]) -> Callable[[tf.Tensor], dict]:
    """The function from probabilities to every signature's outputs (the top `TOP_K`)."""
    names = tf.constant(list(class_names), tf.string)
    k = min(TOP_K, len(class_names))

    def outputs(probabilities):
        scores, indices = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "classes": tf.cast(indices, tf.int32),
            "scores": scores,
            "labels": tf.gather(names, indices),
        }

    return outputs


def pixels_signature(
    model: keras.Model, stats: ColorStats, outputs
) -> tf.types.experimental.GenericFunction:
    """`predict_images`: float32 RGB 0..255 images of 227x227, finite, less the mean."""
    mean = tf.constant(stats.mean_rgb, tf.float32)
    size = DEFAULT_SIZE

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    def predict_images(images):
        finite = tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(images)),
            ["images must be finite RGB values on the 0..255 scale; received a NaN or infinity"],
        )
        with tf.control_dependencies([finite]):
            images = tf.identity(images)
        return outputs(_classify(model, images - mean))

    return predict_images


def encoded_images_signature(
    model: keras.Model,
    stats: ColorStats,
    max_pixels: int,
    outputs,
    ten_crop: bool = False,
) -> tf.types.experimental.GenericFunction:
    """`serving_default` (the evaluation view of each image) or, with `ten_crop`, the paper's
    ten views averaged: encoded JPEG/PNG images, each checked before any decoder runs."""
    size = DEFAULT_SIZE
    views = augment.TEN_CROP_VIEWS if ten_crop else 1
    view = pipeline.ten_crop_view if ten_crop else pipeline.eval_view
    view_shape = [views, size, size, 3] if ten_crop else [size, size, 3]
    limit = MAX_TEN_CROP_IMAGES if ten_crop else MAX_IMAGES_PER_REQUEST
    classes = model.output_shape[-1]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encoded_images(image_bytes):
        count = tf.shape(image_bytes)[0]
        bounded = tf.debugging.Assert(
            count <= limit,
            [
                tf.strings.format(
                    "image_bytes holds {} images, more than the limit of {} per request: send "
                    "them in several requests.",
                    (count, limit),
                )
            ],
        )
        with tf.control_dependencies([bounded]):
            indices = tf.range(count)

        def one_image(index_and_encoded):
            index, encoded = index_and_encoded
            what = tf.strings.format("image_bytes[{}]", index)  # checked before any decoder
            return view(encoded, stats, max_pixels, what)

        # One image decoded at a time, whatever the server's inter-op threads: a request's
        # memory is one image of `max_pixels` being decoded plus the views kept so far.
        images = tf.map_fn(
            one_image,
            (indices, image_bytes),
            fn_output_signature=tf.TensorSpec(view_shape),
            parallel_iterations=1,
        )
        probabilities = _classify(model, tf.reshape(images, [-1, size, size, 3]))
        probabilities = tf.reshape(probabilities, [count, views, classes])
        return outputs(tf.reduce_mean(probabilities, axis=1))

    return encoded_images


def _classify(model: keras.Model, images: tf.Tensor) -> tf.Tensor:
    """The model's float32 probabilities for a batch of views; [0, classes] for an empty
    request (the network's grouped convolutions cannot run on an empty batch)."""
    classes = model.output_shape[-1]
    return tf.cond(
        tf.shape(images)[0] > 0,
        lambda: tf.cast(model(images, training=False), tf.float32),
        lambda: tf.zeros([0, classes], tf.float32),
    )
