"""Classifying encoded images with a trained model (any `trained_model.TrainedModel`), or
through TF Serving (REST or gRPC).

`load_classifier(path)` returns a function from encoded JPEG/PNG bytes to the top 5
(label, score) pairs; `alexnet-predict` is its command line. By default a picture is
classified as the paper classifies at test time (section 4.1): the softmax averaged over ten
views, the export's `ten_crop` signature; `crops="center"` takes the centre view alone, the
export's `serving_default`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from keras_alexnet.data import decode
from keras_alexnet.serving.export import SERVING_DEFAULT, TEN_CROP, TOP_K
from keras_alexnet.serving.trained_model import SAVED_MODEL, TrainedModel, load_trained_model

Classifier = Callable[[bytes], list[tuple[str, float]]]
# What `crops` may be, and the export signature that classifies so.
CROPS = {"center": SERVING_DEFAULT, "ten": TEN_CROP}


class UnusableModel(ValueError):
    """No image can be classified: TF Serving cannot be reached, or the model lacks the
    signature asked for. (Every other image would fail the same way.)"""


def _no_ten_crop(model: str) -> UnusableModel:
    return UnusableModel(
        f"{model} has no {TEN_CROP} signature: it was exported by a keras_alexnet without the "
        "paper's ten-crop prediction. Classify with --crops=center (its serving_default), or "
        "export the model again with alexnet-export."
    )


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
        raise _no_ten_crop(repr(trained.path))
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
    from keras_alexnet.data import pipeline

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


def _signature(crops: str) -> str:
    """The export signature that classifies with `crops` ("center" or "ten")."""
    if crops not in CROPS:
        raise ValueError(f"crops must be one of {sorted(CROPS)}; received {crops!r}.")
    return CROPS[crops]


def classifier_of(trained: TrainedModel, crops: str = "ten") -> Classifier:
    """A function from encoded image bytes to `trained`'s top 5 `(label, score)`, best
    first, from the centre view (`crops="center"`) or, as the paper predicts (section 4.1),
    from the softmax averaged over ten views (`crops="ten"`). A model whose classes nothing
    names labels them "class <i>"."""
    signature = _signature(crops)
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


def _unreachable(address: str, error) -> UnusableModel:
    return UnusableModel(f"cannot reach TF Serving at {address} ({error}); is the server running?")


# TF Serving's words for a request naming a signature the model does not have.
_UNKNOWN_SIGNATURE = "not found in signature def"


# A REST answer for one image holds its probabilities and top 5: 20 KB at 1000 classes. A
# larger answer, or one slower than the timeout in all, is not read to its end.
MAX_REPLY_BYTES = 16 << 20


def _read_reply(response, address: str, deadline: float) -> bytes:
    """The body of `response`, read in chunks: at most MAX_REPLY_BYTES, before `deadline`."""
    import time

    chunks, size = [], 0
    while block := response.read(1 << 16):
        size += len(block)
        if size > MAX_REPLY_BYTES:
            raise ValueError(
                f"TF Serving at {address} sent an answer of more than {MAX_REPLY_BYTES:,} "
                "bytes for one image; it is not a keras_alexnet export's answer."
            )
        if time.monotonic() > deadline:
            raise ValueError(
                f"TF Serving at {address} is sending its answer too slowly (still unfinished "
                "at the timeout); is it overloaded?"
            )
        chunks.append(block)
    return b"".join(chunks)


def _top_of_reply(reply, address: str) -> list[tuple[str, float]]:
    """The (label, score) pairs of a REST answer, checked to be an export's answer."""
    try:
        prediction = reply["predictions"][0]
        labels, scores = prediction["labels"], prediction["scores"]
        if len(labels) != len(scores) or not labels:
            raise ValueError("labels and scores differ in length")
        return [(str(label), float(score)) for label, score in zip(labels, scores, strict=True)]
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ValueError(
            f"TF Serving at {address} answered, but not with a keras_alexnet export's labels "
            f"and scores ({type(error).__name__}: {error}); is --model_name right?"
        ) from None


def rest_classifier(
    address: str, model_name: str = "alexnet", timeout: float = 30.0, crops: str = "ten"
):
    """Classifies through TF Serving's REST API (`POST /v1/models/<name>:predict`, the image
    as base64 JSON) at `address` ("host:port", the server's --rest_api_port), with the
    export's signature for `crops` (see `classifier_of`). `timeout` bounds each request in
    all, its answer included."""
    import base64
    import json
    import time
    import urllib.error
    import urllib.request

    url = f"http://{address}/v1/models/{model_name}:predict"
    signature = _signature(crops)

    def classify(encoded: bytes):
        body = {
            "signature_name": signature,
            "instances": [{"image_bytes": {"b64": base64.b64encode(encoded).decode("ascii")}}],
        }
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        deadline = time.monotonic() + timeout
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = _read_reply(response, address, deadline)
        except urllib.error.HTTPError as error:
            message = error.read().decode("utf-8", "replace")
            if error.code == 400 and _UNKNOWN_SIGNATURE in message:
                raise _no_ten_crop(f"The model {model_name!r} at {address}") from None
            if error.code == 400:
                raise ValueError(
                    f"not a JPEG or PNG image the server can decode ({message[:200]})"
                ) from None
            raise ValueError(
                f"TF Serving at {address} answered HTTP {error.code}: {message[:200]}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise _unreachable(address, getattr(error, "reason", error)) from None
        try:
            reply = json.loads(body)
        except ValueError as error:  # not JSON, or not text at all
            raise ValueError(f"TF Serving at {address} answered with no JSON ({error}).") from None
        return _top_of_reply(reply, address)

    return classify


def _top_of_grpc_reply(reply, address: str) -> list[tuple[str, float]]:
    """The (label, score) pairs of a gRPC answer, checked as `_top_of_reply` checks REST's."""
    try:
        missing = [name for name in ("labels", "scores") if name not in reply.outputs]
        if missing:  # (a protobuf map gives an empty tensor for a missing key)
            raise KeyError(", ".join(missing))
        labels = tf.make_ndarray(reply.outputs["labels"])[0]
        scores = tf.make_ndarray(reply.outputs["scores"])[0]
        if len(labels) != len(scores) or not len(labels):
            raise ValueError("labels and scores differ in length")
        return [(label.decode(), float(score)) for label, score in zip(labels, scores, strict=True)]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(
            f"TF Serving at {address} answered, but not with a keras_alexnet export's labels "
            f"and scores ({type(error).__name__}: {error}); is --model_name right?"
        ) from None


def grpc_classifier(
    address: str, model_name: str = "alexnet", timeout: float = 30.0, crops: str = "ten"
):
    """Classifies through TF Serving's gRPC API (`PredictionService/Predict`) at `address`
    ("host:port", the server's --port), with the export's signature for `crops`."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    # The same bound on an answer as the REST client's (gRPC's own default is 4 MiB).
    channel = grpc.insecure_channel(
        address, options=[("grpc.max_receive_message_length", MAX_REPLY_BYTES)]
    )
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    signature = _signature(crops)

    def classify(encoded: bytes):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([encoded], dtype=tf.string))
        try:
            reply = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            if _UNKNOWN_SIGNATURE in (error.details() or ""):
                raise _no_ten_crop(f"The model {model_name!r} at {address}") from None
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise ValueError(
                    f"not a JPEG or PNG image the server can decode ({error.details()[:200]})"
                ) from None
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise ValueError(
                    f"TF Serving at {address} sent an answer of more than {MAX_REPLY_BYTES:,} "
                    "bytes, which no keras_alexnet export sends; is --model_name right?"
                ) from None
            raise _unreachable(address, f"{error.code().name}: {error.details()}") from None
        return _top_of_grpc_reply(reply, address)

    return classify


def format_top(top: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{label} {score:.3f}" for label, score in top)


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
