"""Classifying encoded images with a trained model: an exported SavedModel or a `.keras` file.

`load_classifier(path)` returns a function from encoded JPEG/PNG bytes to the top 5
(label, score) pairs; `scripts/predict.py` is its command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from keras_alexnet.export import TOP_K, existing_versions

Classifier = Callable[[bytes], list[tuple[str, float]]]


def _not_an_image(error: tf.errors.InvalidArgumentError) -> ValueError:
    first_line = (error.message or str(error)).strip().splitlines()[0]
    return ValueError(f"not a JPEG or PNG image that can be decoded ({first_line[:200]})")


def _saved_model_classifier(path: str) -> Classifier:
    serve = tf.saved_model.load(path).signatures["serving_default"]

    def classify(encoded: bytes):
        try:
            out = serve(image_bytes=tf.constant([encoded]))
        except tf.errors.InvalidArgumentError as error:
            raise _not_an_image(error) from None
        labels = [label.decode() for label in out["labels"].numpy()[0]]
        return list(zip(labels, out["scores"].numpy()[0].tolist(), strict=True))

    return classify


def _read_class_names(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except OSError as error:
        raise ValueError(f"Cannot read the class names file {path!r}: {error}.") from None


def _keras_classifier(path: str, class_names: str | None, stats: str | None) -> Classifier:
    import keras

    import keras_alexnet  # noqa: F401  (registers the custom layers)
    from keras_alexnet.data import IMAGENET_STATS, load_stats, pipeline

    try:
        model = keras.saving.load_model(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot load the model {path!r}: {error}") from None
    classes = model.output_shape[-1]
    if class_names:
        names = _read_class_names(class_names)
    elif classes == 1000:
        names = keras_alexnet.imagenet_class_names()
    else:
        names = [f"class {i}" for i in range(classes)]
    if len(names) != classes:
        raise ValueError(
            f"The model has {classes} classes but {class_names!r} names {len(names)}; give the "
            "class names file of the dataset the model was trained on."
        )
    color_stats = load_stats(stats) if stats else IMAGENET_STATS
    k = min(TOP_K, classes)

    def classify(encoded: bytes):
        try:
            image = pipeline.eval_view(tf.constant(encoded), color_stats)
        except tf.errors.InvalidArgumentError as error:
            raise _not_an_image(error) from None
        probabilities = np.asarray(model(image[None], training=False))[0]
        top = np.argsort(-probabilities)[:k]
        return [(names[i], float(probabilities[i])) for i in top]

    return classify


def load_classifier(
    path: str, class_names: str | None = None, stats: str | None = None
) -> Classifier:
    """A function from encoded image bytes to the top 5 `(label, score)`, best first.

    Args:
        path: a SavedModel version directory, an export base directory (its highest version
            is used), or a `.keras` file.
        class_names: for a `.keras` model, a text file with one class name per line
            (default: ImageNet's names for 1000 classes, else "class <i>").
        stats: for a `.keras` model, the statistics JSON it was trained with (its mean is
            subtracted; default ImageNet's). A SavedModel carries both inside.
    """
    path = os.path.expanduser(path)
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise ValueError(f"The model file {path!r} does not exist.")
        return _keras_classifier(path, class_names, stats)
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "saved_model.pb")):
        versions = existing_versions(path)
        if versions:
            path = os.path.join(path, str(versions[-1]))
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise ValueError(
            f"{path!r} is neither a SavedModel (a directory with saved_model.pb), an export "
            "directory of numbered versions, nor a .keras file. Train and export one with "
            "`python scripts/train.py --flagfile=configs/quickstart.flags`."
        )
    return _saved_model_classifier(path)


def format_top(top: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{label} {score:.3f}" for label, score in top)
