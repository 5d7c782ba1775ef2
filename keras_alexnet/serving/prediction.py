"""Classifying encoded images with a trained model (any `trained_model.TrainedModel`), or
through TF Serving (REST or gRPC, the clients of `clients`).

`load_classifier(path)` returns a function from encoded JPEG/PNG bytes to the top 5
(label, score) pairs; `alexnet-predict` is its command line. By default a picture is
classified as the paper classifies at test time (section 4.1): the softmax averaged over ten
views, the export's `ten_crop` signature; `crops="center"` takes the centre view alone, the
export's `serving_default`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_alexnet.data import decode, pipeline
from keras_alexnet.serving.clients import (
    Classifier,
    UnusableModel,
    grpc_classifier,
    no_ten_crop,
    rest_classifier,
    signature_for,
)
from keras_alexnet.serving.signatures import SERVING_DEFAULT, TEN_CROP, TOP_K
from keras_alexnet.serving.trained_model import SAVED_MODEL, TrainedModel, load_trained_model


def _serving_signature(trained: TrainedModel, name: str):
    """The export's signature `name` (`SERVING_DEFAULT` or `TEN_CROP`), or a ValueError saying
    what the SavedModel is instead."""
    signatures = trained.saved_model.signatures
    serve = signatures.get(SERVING_DEFAULT)
    inputs = serve.structured_input_signature[1] if serve is not None else {}
    outputs = serve.structured_outputs if serve is not None else {}
    spec = inputs.get("image_bytes")
    if spec is None or spec.dtype != tf.string or not {"labels", "scores"} <= set(outputs):
        raise ValueError(
            f"{trained.path!r} is a SavedModel but not a keras_alexnet export: its "
            "serving_default signature must take image_bytes (string) and return labels and "
            f"scores; it takes {sorted(inputs)} and returns {sorted(outputs)}. Export a model "
            "with `alexnet-export`."
        )
    if name not in signatures:
        raise no_ten_crop(repr(trained.path))
    return signatures[name]


def _saved_model_classifier(trained: TrainedModel, signature: str) -> Classifier:
    serve = _serving_signature(trained, signature)

    def classify(encoded: bytes):
        try:
            out = serve(image_bytes=tf.constant([encoded]))
        except tf.errors.InvalidArgumentError as error:
            raise decode.refusal_of(error) from None
        labels = [label.decode() for label in out["labels"].numpy()[0]]
        return list(zip(labels, out["scores"].numpy()[0].tolist(), strict=True))

    return classify


def _keras_classifier(trained: TrainedModel, signature: str) -> Classifier:
    """The export's `signature` computed from a Keras model: the centre view, or the mean
    softmax of the ten views."""
    model, names, stats = trained.model, trained.labels(), trained.stats
    k = min(TOP_K, trained.classes)

    def classify(encoded: bytes):
        try:
            if signature == TEN_CROP:
                views = pipeline.ten_crop_view(tf.constant(encoded), stats)
            else:
                views = pipeline.eval_view(tf.constant(encoded), stats)[None]
        except tf.errors.InvalidArgumentError as error:
            raise decode.refusal_of(error) from None
        probabilities = np.asarray(model(views, training=False), np.float32).mean(axis=0)
        top = np.argsort(-probabilities)[:k]
        return [(names[i], float(probabilities[i])) for i in top]

    return classify


def classifier_of(trained: TrainedModel, crops: str = "ten") -> Classifier:
    """A function from encoded image bytes to `trained`'s top 5 `(label, score)`, best
    first, from the centre view (`crops="center"`) or, as the paper predicts (section 4.1),
    from the softmax averaged over ten views (`crops="ten"`). A model whose classes nothing
    names labels them "class <i>"."""
    signature = signature_for(crops)
    if trained.kind == SAVED_MODEL:
        return _saved_model_classifier(trained, signature)
    return _keras_classifier(trained, signature)


def load_classifier(
    path: str,
    class_names_file: str | None = None,
    stats_file: str | None = None,
    crops: str = "ten",
) -> Classifier:
    """`classifier_of` the model at `path` (see `trained_model.load_trained_model` for what
    `path` may be, and the files that go with it)."""
    return classifier_of(load_trained_model(path, class_names_file, stats_file), crops)


def make_classifier(
    server: str | None,
    protocol: str = "rest",
    model_name: str = "alexnet",
    model: str | None = None,
    class_names_file: str | None = None,
    stats_file: str | None = None,
    crops: str = "ten",
) -> Classifier:
    """The classifier `alexnet-predict` asks: TF Serving at `server` ("host:port", over
    `protocol` "rest" or "grpc", the model named `model_name` there), or without a server the
    trained model at `model` (`load_classifier`); with the centre view or the paper's ten
    (`crops`, see `classifier_of`)."""
    if server and protocol == "grpc":
        return grpc_classifier(server, model_name, crops=crops)
    if server:
        return rest_classifier(server, model_name, crops=crops)
    return load_classifier(model, class_names_file, stats_file, crops)


def unusable_image_files(paths: Sequence[str]) -> dict[str, str]:
    """The paths that cannot be image files, each with why (a folder, missing, not a file)."""
    unusable = {}
    for path in paths:
        if os.path.isdir(path):
            unusable[path] = "is a directory; give the image files in it (for example dir/*.jpg)"
        elif not os.path.exists(path):
            unusable[path] = "no such file"
        elif not os.path.isfile(path):
            unusable[path] = "not a regular file"
    return unusable


def classify_files(classify: Classifier, paths: Sequence[str], skip=()):
    """For each of `paths` but those in `skip`: `(path, top, None)`, or `(path, None, why)`
    for a file that cannot be read or classified.

    Raises:
        UnusableModel: no file can be classified (TF Serving cannot be reached, or the model
            lacks the signature for the crops asked for).
    """
    for path in paths:
        if path in skip:
            continue
        try:
            yield path, classify(decode.read_image_file(path)), None
        except UnusableModel:
            raise
        except ValueError as error:
            yield path, None, str(error)


def classify_paths(paths: Sequence[str], **classifier: str | None):
    """`alexnet-predict`'s job: `(path, top, None)` or `(path, None, why)` for each of
    `paths`, those that cannot be image files first (before the model loads: said at once),
    then each file through `make_classifier(**classifier)`.

    Raises:
        UnusableModel: no file can be classified (see `classify_files`).
    """
    unusable = unusable_image_files(paths)
    yield from ((path, None, problem) for path, problem in unusable.items())
    yield from classify_files(make_classifier(**classifier), paths, skip=unusable)
