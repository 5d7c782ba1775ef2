"""Clients of TF Serving for the export's signatures, over REST (`rest_classifier`) or gRPC
(`grpc_classifier`): each a `Classifier`, a function from encoded JPEG/PNG bytes to the top
5 (label, score) pairs, as the local ones of `prediction` are. An answer, an error answer
too, is bounded in size and in time as a whole (`MAX_REPLY_BYTES`, `timeout`, watched by
`http_deadline`) and its JSON in depth; labels must be text and scores finite.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import urllib.error
import urllib.request
from collections.abc import Callable

import tensorflow as tf

from keras_alexnet import http_deadline, untrusted
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


def check_address(address: str, flag: str = "--server") -> str:
    """`address` when it is "host:port" (as TF Serving's ports are given), else one line."""
    host, _, port = address.rpartition(":")
    if "/" in address or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UnusableModel(
            f"{flag}={address!r} is not host:port: give the server's host and port, as in "
            f"{flag}=localhost:8501 (no http:// and no path)."
        )
    return address


def _unreachable(address: str, error) -> UnusableModel:
    return UnusableModel(f"cannot reach TF Serving at {address} ({error}); is the server running?")


# TF Serving's words for a request naming a signature the model does not have.
_UNKNOWN_SIGNATURE = "not found in signature def"


# A REST answer for one image holds its probabilities and top 5: 20 KB at 1000 classes. A
# larger answer, or one slower than the timeout in all, is not read to its end.
MAX_REPLY_BYTES = 16 << 20


def _read_reply(response, address: str) -> bytes:
    """The body of `response`, read as it comes: at most MAX_REPLY_BYTES (the deadline of
    the exchange is the watchdog's, `http_deadline`)."""
    chunks, size = [], 0
    while block := http_deadline.read_some(response, 1 << 16):
        size += len(block)
        if size > MAX_REPLY_BYTES:
            raise ValueError(
                f"TF Serving at {address} sent an answer of more than {MAX_REPLY_BYTES:,} "
                "bytes for one image; it is not a keras_alexnet export's answer."
            )
        chunks.append(block)
    return b"".join(chunks)


def _top_of_reply(reply, address: str) -> list[tuple[str, float]]:
    """The (label, score) pairs of a REST answer, checked to be an export's answer."""
    try:
        prediction = reply["predictions"][0]
        return _checked_pairs(prediction["labels"], prediction["scores"])
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ValueError(
            f"TF Serving at {address} answered, but not with a keras_alexnet export's labels "
            f"and scores ({type(error).__name__}: {error}); is --model_name right?"
        ) from None


def _too_slow(address: str, timeout: float) -> ValueError:
    return ValueError(
        f"TF Serving at {address} did not finish its answer within the timeout of "
        f"{timeout:g} s; is it overloaded?"
    )


def _error_text(error: urllib.error.HTTPError, address: str) -> str:
    try:
        return _read_reply(error, address).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return "(its text could not be read)"


def _refusal(code: int, message: str, address: str, model_name: str) -> ValueError:
    """What an HTTP error answer of TF Serving means, as the exception to raise."""
    if code == 400 and _UNKNOWN_SIGNATURE in message:
        return no_ten_crop(f"The model {model_name!r} at {address}")
    if code == 400:
        return ValueError(f"not a JPEG or PNG image the server can decode ({message[:200]})")
    return ValueError(f"TF Serving at {address} answered HTTP {code}: {message[:200]}")


def _checked_pairs(labels, scores) -> list[tuple[str, float]]:
    """(label, score) pairs, when the labels are text and the scores finite numbers."""
    if not isinstance(labels, list) or not isinstance(scores, list):
        raise TypeError("labels and scores are not lists")
    if len(labels) != len(scores) or not labels:
        raise ValueError("labels and scores differ in length")
    if not all(isinstance(label, str) for label in labels):
        raise TypeError(f"labels that are not text: {str(labels)[:80]}")
    numbers = [isinstance(x, (int, float)) and not isinstance(x, bool) for x in scores]
    if not all(numbers) or not all(math.isfinite(score) for score in scores):
        raise ValueError(f"scores that are not finite numbers: {str(scores)[:80]}")
    return list(zip(labels, map(float, scores), strict=True))


def rest_classifier(
    address: str, model_name: str = "alexnet", timeout: float = 30.0, crops: str = "ten"
):
    """Classifies through TF Serving's REST API (`POST /v1/models/<name>:predict`, the image
    as base64 JSON) at `address` ("host:port", the server's --rest_api_port), with the
    export's signature for `crops` (see `classifier_of`). `timeout` bounds each request in
    all, its answer included."""
    url = f"http://{check_address(address)}/v1/models/{model_name}:predict"
    signature = signature_for(crops)

    def classify(encoded: bytes):
        body = {
            "signature_name": signature,
            "instances": [{"image_bytes": {"b64": base64.b64encode(encoded).decode("ascii")}}],
        }
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with http_deadline.Deadline(timeout) as deadline:
            try:
                with http_deadline.open_url(request, deadline, timeout) as response:
                    body = _read_reply(response, address)
            except urllib.error.HTTPError as error:
                # (an error answer is bounded as a successful one is)
                message = _error_text(error, address)
                raise _refusal(error.code, message, address, model_name) from None
            except (http.client.HTTPException, urllib.error.URLError, OSError) as error:
                if deadline.expired:
                    raise _too_slow(address, timeout) from None
                if isinstance(error, http.client.HTTPException):  # broken status, headers
                    raise ValueError(
                        f"TF Serving at {address} sent no well-formed HTTP answer "
                        f"({type(error).__name__}: {str(error)[:100]}); is --server a TF "
                        "Serving REST port?"
                    ) from None
                raise _unreachable(address, getattr(error, "reason", error)) from None
        if deadline.expired:  # the watchdog shut the socket: the body read ends short
            raise _too_slow(address, timeout)
        try:
            reply = untrusted.parse_json(body, f"The answer of TF Serving at {address}")
        except untrusted.UntrustedInput as error:
            raise ValueError(str(error)) from None
        return _top_of_reply(reply, address)

    return classify


def _top_of_grpc_reply(reply, address: str) -> list[tuple[str, float]]:
    """The (label, score) pairs of a gRPC answer, checked as `_top_of_reply` checks REST's."""
    try:
        missing = [name for name in ("labels", "scores") if name not in reply.outputs]
        if missing:  # (a protobuf map gives an empty tensor for a missing key)
            raise KeyError(", ".join(missing))
        labels = [label.decode() for label in tf.make_ndarray(reply.outputs["labels"])[0]]
        scores = [float(score) for score in tf.make_ndarray(reply.outputs["scores"])[0]]
        return _checked_pairs(labels, scores)
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

    check_address(address)
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
