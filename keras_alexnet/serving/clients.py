"""Clients of TF Serving for the export's signatures, over REST (`rest_classifier`) or gRPC
(`grpc_classifier`): each a `Classifier`, a function from encoded JPEG/PNG bytes to the top
5 (label, score) pairs, as the local ones of `prediction` are. An answer is bounded in size
and time before it is read (`MAX_REPLY_BYTES`, `timeout`).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import tensorflow as tf

from keras_alexnet.serving.signatures import SERVING_DEFAULT, TEN_CROP

Classifier = Callable[[bytes], list[tuple[str, float]]]
# What `crops` may be, and the export signature that classifies so.
CROPS = {"center": SERVING_DEFAULT, "ten": TEN_CROP}


class UnusableModel(ValueError):
    """No image can be classified: TF Serving cannot be reached, or the model lacks the
    signature asked for. (Every other image would fail the same way.)"""


def no_ten_crop(model: str) -> UnusableModel:
    return UnusableModel(
        f"{model} has no {TEN_CROP} signature: it was exported by a keras_alexnet without the "
        "paper's ten-crop prediction. Classify with --crops=center (its serving_default), or "
        "export the model again with alexnet-export."
    )


def signature_for(crops: str) -> str:
    """The export signature that classifies with `crops` ("center" or "ten")."""
    if crops not in CROPS:
        raise ValueError(f"crops must be one of {sorted(CROPS)}; received {crops!r}.")
    return CROPS[crops]


def _unreachable(address: str, error) -> UnusableModel:
    return UnusableModel(f"cannot reach TF Serving at {address} ({error}); is the server running?")


# TF Serving's words for a request naming a signature the model does not have.
_UNKNOWN_SIGNATURE = "not found in signature def"


# A REST answer for one image holds its probabilities and top 5: 20 KB at 1000 classes. A
# larger answer, or one slower than the timeout in all, is not read to its end.
MAX_REPLY_BYTES = 16 << 20


def _read_reply(response, address: str, deadline: float) -> bytes:
    """The body of `response`, read in chunks: at most MAX_REPLY_BYTES, before `deadline`."""
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
    url = f"http://{address}/v1/models/{model_name}:predict"
    signature = signature_for(crops)

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
                raise no_ten_crop(f"The model {model_name!r} at {address}") from None
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
    # deferred, optional: grpc and tensorflow_serving, for --protocol=grpc only
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    # The same bound on an answer as the REST client's (gRPC's own default is 4 MiB).
    channel = grpc.insecure_channel(
        address, options=[("grpc.max_receive_message_length", MAX_REPLY_BYTES)]
    )
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    signature = signature_for(crops)

    def classify(encoded: bytes):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([encoded], dtype=tf.string))
        try:
            reply = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            if _UNKNOWN_SIGNATURE in (error.details() or ""):
                raise no_ten_crop(f"The model {model_name!r} at {address}") from None
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
