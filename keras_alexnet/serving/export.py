"""Export for TF Serving: `<export_dir>/<integer version>/`, written atomically.

The SavedModel has three signatures (the contract docs/serving.md documents):

- `serving_default`: `image_bytes`, tf.string [None], encoded JPEG or PNG images, decoded,
  resized and centre-cropped inside the graph exactly as evaluation does it
  (`data.pipeline.eval_view`: central square -> 256x256 -> central 227x227 -> minus the mean);
- `ten_crop`: the same `image_bytes`, each classified as the paper does at test time (section
  4.1): the softmax averaged over ten views (`data.pipeline.ten_crop_view`: the four corner
  227x227 patches, the centre one, and their mirrors). Ten network passes per image, and
  at most `MAX_TEN_CROP_IMAGES` images per request; `alexnet-predict` uses it;
- `predict_images`: `images`, float32 [None, 227, 227, 3], RGB on the 0..255 scale.

All three return `probabilities` [None, classes] float32, `classes` [None, 5] int32 (the top
5, best first), `scores` [None, 5] float32 and `labels` [None, 5] string: the class names
travel inside the SavedModel. `serving_default` and `ten_crop` take JPEG and PNG only, of at
most `max_pixels` pixels (read from the header before decoding): anything else fails the
request with InvalidArgument naming the image's index, e.g. "image_bytes[2] must be an encoded JPEG
or PNG image; received 1000 bytes starting with [71 73 70 56 57 97 1 0]" (TF Serving answers
HTTP 400). A batch with one bad image fails whole: TensorFlow's decoders cannot fail for one
element and go on, so a per-image status could only cover what the header shows. `assets.extra/`
holds TF Serving warmup requests.

A version directory appears only complete: the SavedModel is written into a temporary
directory beside it and renamed into place, so TF Serving, which watches `export_dir`, never
loads a half-written version.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import re
import shutil
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet import files, machine, model_card
from keras_alexnet.alexnet import DEFAULT_SIZE
from keras_alexnet.data import augment, decode, pipeline
from keras_alexnet.data.stats import IMAGENET_STATS, ColorStats, check_stats
from keras_alexnet.serving import portable_export

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


def version_directories(export_dir: str) -> list[tuple[int, str]]:
    """The version directories in `export_dir` as (number, name), ascending: names of ASCII
    digits only, as TF Serving reads them (`010` is version 10; `²` is no version)."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(
        (int(name), name) for name in os.listdir(export_dir) if re.fullmatch(r"[0-9]+", name)
    )


def existing_versions(export_dir: str) -> list[int]:
    """The integer version directories in `export_dir`, ascending."""
    return [number for number, _ in version_directories(export_dir)]


def next_version(export_dir: str) -> int:
    """One more than the highest version in `export_dir`; 1 for a new one."""
    versions = existing_versions(export_dir)
    return versions[-1] + 1 if versions else 1


def find_saved_model(path: str) -> str:
    """`path` if it is a SavedModel directory, else the highest numbered version in it (an
    export base directory, as TF Serving reads it)."""
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "saved_model.pb")):
        versions = version_directories(path)
        if versions:
            path = os.path.join(path, versions[-1][1])
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise ValueError(
            f"{path!r} is neither a SavedModel (a directory with saved_model.pb), an export "
            "directory of numbered versions, nor a .keras file. Train and export one with "
            "`alexnet-train --config=quickstart`."
        )
    return path


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
    names = tf.constant(list(class_names), tf.string)
    mean = tf.constant(stats.mean_rgb, tf.float32)
    k = min(TOP_K, classes)
    size = DEFAULT_SIZE

    # Not `archive.track(model)`: the endpoints' functions bring the variables they read, and
    # tracking the model as well saved every weight twice (as the Keras variables and as the
    # variables the functions capture: an export of 2x the weights' size, measured).
    archive = keras.export.ExportArchive()

    def outputs(probabilities):
        scores, indices = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "classes": tf.cast(indices, tf.int32),
            "scores": scores,
            "labels": tf.gather(names, indices),
        }

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    def predict_images(images):
        finite = tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(images)),
            ["images must be finite RGB values on the 0..255 scale; received a NaN or infinity"],
        )
        with tf.control_dependencies([finite]):
            images = tf.identity(images)
        probabilities = tf.cast(model(images - mean, training=False), tf.float32)
        return outputs(probabilities)

    def decoded(image_bytes, view, view_shape, limit):
        """`view` of each encoded image (at most `limit` of them), refusals naming its index."""
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

        return tf.map_fn(
            one_image, (indices, image_bytes), fn_output_signature=tf.TensorSpec(view_shape)
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serving_default(image_bytes):
        images = decoded(image_bytes, pipeline.eval_view, [size, size, 3], MAX_IMAGES_PER_REQUEST)
        probabilities = tf.cast(model(images, training=False), tf.float32)
        return outputs(probabilities)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def ten_crop(image_bytes):
        views_per_image = augment.TEN_CROP_VIEWS
        views = decoded(
            image_bytes,
            pipeline.ten_crop_view,
            [views_per_image, size, size, 3],
            MAX_TEN_CROP_IMAGES,
        )
        probabilities = model(tf.reshape(views, [-1, size, size, 3]), training=False)
        probabilities = tf.reshape(
            tf.cast(probabilities, tf.float32), [-1, views_per_image, classes]
        )
        return outputs(tf.reduce_mean(probabilities, axis=1))

    archive.add_endpoint(SERVING_DEFAULT, serving_default)
    archive.add_endpoint(TEN_CROP, ten_crop)
    archive.add_endpoint("predict_images", predict_images)
    return archive


def warmup_images(count: int) -> list[bytes]:
    """`count` synthetic JPEGs (smooth colour gradients, 320x256) for warmup requests."""
    y, x = tf.meshgrid(tf.linspace(0.0, 1.0, 256), tf.linspace(0.0, 1.0, 320), indexing="ij")
    images = []
    for i in range(count):
        rgb = tf.stack([x, y, tf.fill(tf.shape(x), (i % 8) / 8.0)], axis=-1)
        images.append(tf.io.encode_jpeg(tf.cast(rgb * 255, tf.uint8)).numpy())
    return images


# The warmup requests: (signature, images) of synthetic JPEGs.
WARMUP_REQUESTS = ((SERVING_DEFAULT, 1), (SERVING_DEFAULT, 8), (TEN_CROP, 1))


def write_warmup_requests(saved_model_dir: str) -> str:
    """Writes `assets.extra/tf_serving_warmup_requests`: a `PredictionLog` per request of
    `WARMUP_REQUESTS`, which TF Serving runs before it serves the version (so the first real
    request does not pay for tracing and allocation)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    directory = os.path.join(saved_model_dir, "assets.extra")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "tf_serving_warmup_requests")
    with tf.io.TFRecordWriter(path) as writer:
        for signature, batch_size in WARMUP_REQUESTS:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=signature)
            )
            request.inputs["image_bytes"].CopyFrom(
                tf.make_tensor_proto(warmup_images(batch_size), dtype=tf.string)
            )
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


# An export is written to `.tmp-<version>-<pid>` and renamed; TF Serving ignores the name.
_TEMPORARY_PREFIX = ".tmp-"


def remove_abandoned_exports(export_dir: str) -> list[str]:
    """Removes the temporary directories of exports whose process is gone (killed while it
    wrote); returns their paths. A temporary directory of a live process on this machine is
    left alone (the pid is checked on this machine only: an export directory shared by several
    machines may hold a live export of another machine's process with a pid that is free here,
    which is then removed, and that export fails)."""
    removed = []
    for name in os.listdir(export_dir):
        match = re.fullmatch(re.escape(_TEMPORARY_PREFIX) + r"\d+-(\d+)", name)
        if match and not machine.process_alive(int(match.group(1))):
            path = os.path.join(export_dir, name)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def export_trained_model(
    path: str,
    export_dir: str,
    class_names_file: str | None = None,
    stats_file: str | None = None,
    version: int | None = None,
    also: Sequence[str] = (),
) -> str:
    """`export_saved_model` of the trained model at `path` (a run directory or a `.keras`
    file, with the class names, stats and card that go with it: see
    `trained_model.load_trained_model`); returns the version directory written.

    Raises:
        ValueError: one line: the model cannot be loaded, is already an export, or nothing
            names its classes (give a class names file); or a bad `also` or `version`.
    """
    from keras_alexnet.serving import trained_model

    try:
        also = portable_export.check_formats(also)
    except ValueError as error:
        raise ValueError(f"--also: {error}") from None
    if "onnx" in also and importlib.util.find_spec("onnx") is None:
        raise ValueError("--also=onnx needs the onnx package: pip install -e '.[onnx]'.")
    trained = trained_model.load_trained_model(path, class_names_file, stats_file)
    if trained.kind == trained_model.SAVED_MODEL:
        raise ValueError(
            f"{trained.path} is already a SavedModel export; give the run directory or the "
            ".keras file it was exported from."
        )
    if trained.class_names is None:
        raise ValueError(
            f"the model has {trained.classes} classes: give their names with --class_names."
        )
    return export_saved_model(
        trained.model,
        os.path.expanduser(export_dir),
        trained.class_names,
        trained.stats,
        version,
        card=trained.card or None,
        also=also,
    )


def export_saved_model(
    model: keras.Model,
    export_dir: str,
    class_names: Sequence[str],
    stats: ColorStats = IMAGENET_STATS,
    version: int | None = None,
    max_pixels: int = decode.DEFAULT_MAX_PIXELS,
    card: dict | None = None,
    also: Sequence[str] = (),
) -> str:
    """Exports `model` for TF Serving into `<export_dir>/<version>/` and returns that path.

    Args:
        model: a trained AlexNet (any number of classes).
        export_dir: the model's base path, as TF Serving's `--model_base_path` takes it.
        class_names: the names of the model's classes, in label order.
        stats: the pixel statistics the model was trained with (its mean is subtracted).
        version: the version number; the next free one when None. An existing version is
            never overwritten.
        max_pixels: `serving_default` refuses larger images (from their header, before
            decoding them).
        card: where the model came from (`model_card`), written with the class names to
            `assets.extra/model_card.json`.
        also: formats of `portable_export` to write into the same version directory, beside
            the SavedModel: "onnx" (`model.onnx`), "litert" (`model.tflite`). TF Serving
            ignores them.

    Example:
        export_saved_model(model, "saved_models/alexnet", source.class_names)
    """
    also = portable_export.check_exportable(model, also)
    chosen = version is None
    if chosen:
        version = next_version(export_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer; received version={version!r}.")
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(
            f"{final} already exists; TF Serving versions are never overwritten. Leave version "
            "unset to write the next one."
        )
    archive = serving_archive(model, class_names, stats, max_pixels)
    os.makedirs(export_dir, exist_ok=True)
    remove_abandoned_exports(export_dir)
    # From shapes and dtypes: copying the variables to count them would hold 244 MB more.
    weights_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    files.check_free_space(export_dir, weights_bytes * (1 + len(also)), "the export")
    temporary = os.path.join(export_dir, f"{_TEMPORARY_PREFIX}{version}-{os.getpid()}")
    try:
        archive.write_out(temporary, verbose=False)
        write_warmup_requests(temporary)
        model_card.write_export_card(
            temporary,
            {**(card or {}), "classes": len(class_names), "class_names": list(class_names)},
        )
        for fmt in also:
            portable_export.export_portable(model, temporary, fmt, stats, class_names, card)
        final = _rename_into_version(temporary, export_dir, version, chosen)
    except (OSError, tf.errors.ResourceExhaustedError) as error:
        if not _disk_full(error):
            raise
        raise files.DiskFull(
            f"The disk filled up while writing the export into {export_dir}: free space and "
            "export again (no version was written; TF Serving saw nothing)."
        ) from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


def _disk_full(error: Exception) -> bool:
    """Whether a write failed for want of space: Python's ENOSPC, or TensorFlow's SaveV2
    (ResourceExhaustedError, which also means out of memory: told apart by its message)."""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    return "No space left on device" in str(error)


def _rename_into_version(temporary: str, export_dir: str, version: int, chosen: bool) -> str:
    """Renames the finished export to `<export_dir>/<version>`. Another export that took the
    same free version first (two exports at once) wins it: a chosen version then moves on to
    the next free one, so both exports land; a version asked for is an error."""
    while True:
        final = os.path.join(export_dir, str(version))
        try:
            os.rename(temporary, final)  # fails onto an existing, non-empty version
            return final
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if not chosen:
                raise FileExistsError(
                    f"{final} already exists; TF Serving versions are never overwritten. "
                    "Leave version unset to write the next one."
                ) from None
            version = max(version + 1, next_version(export_dir))
