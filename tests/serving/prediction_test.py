"""Prediction with an exported SavedModel or a .keras file, and scripts/predict.py."""

import json
import os
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import AlexNet
from keras_alexnet.data import IMAGENET_STATS, pipeline
from keras_alexnet.serving.export import export_saved_model
from keras_alexnet.serving.prediction import classifier_of, load_classifier
from keras_alexnet.serving.trained_model import load_trained_model
from tests.conftest import REPO_ROOT, run_python

NAMES = ("circle", "ring", "star")
EXAMPLES = [os.path.join(REPO_ROOT, "examples", f"{n}.jpg") for n in ("circle", "ring", "star")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-class model saved both ways: an export base directory and a .keras file."""
    keras.utils.set_random_seed(5)
    model = AlexNet(classes=3, init="he")
    root = tmp_path_factory.mktemp("models")
    export_saved_model(model, str(root / "export"), NAMES)
    model.save(root / "model.keras")
    (root / "names.txt").write_text("\n".join(NAMES) + "\n")
    return model, root


# Each loaded AlexNet holds its 230 MB of weights for as long as the test process lives
# (TensorFlow keeps a loaded SavedModel's functions), so each model is loaded once per module.
@pytest.fixture(scope="module")
def loaded(trained):
    """The saved model loaded from each place `load_trained_model` takes it from."""
    root = trained[1]
    paths = {
        "export base dir": root / "export",
        "version dir": root / "export" / "1",
        ".keras": root / "model.keras",
    }
    return {
        kind: load_trained_model(str(path), class_names_file=str(root / "names.txt"))
        for kind, path in paths.items()
    }


@pytest.fixture(scope="module")
def old_export(trained, tmp_path_factory):
    """The model exported as keras_alexnet exported before the ten_crop signature, loaded."""
    archive_class = type(keras.export.ExportArchive())  # (the backend's class)
    real = archive_class.add_endpoint

    def all_but_ten_crop(archive, name, *args, **kwargs):
        if name != "ten_crop":
            real(archive, name, *args, **kwargs)

    root = tmp_path_factory.mktemp("old")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(archive_class, "add_endpoint", all_but_ten_crop)
        export_saved_model(trained[0], str(root / "export"), NAMES)
    return load_trained_model(str(root / "export"))


def _expected(model, path, crops="ten"):
    """The labels best first, and their scores: the centre view's softmax, or the mean of the
    ten views' (each view as `pipeline` cuts it; the export test checks those cuts)."""
    with open(path, "rb") as f:
        encoded = tf.constant(f.read())
    if crops == "ten":
        views = pipeline.ten_crop_view(encoded, IMAGENET_STATS)
    else:
        views = pipeline.eval_view(encoded, IMAGENET_STATS)[None]
    probabilities = model(views, training=False).numpy().mean(axis=0)
    order = np.argsort(-probabilities)
    return [NAMES[i] for i in order], probabilities[order]


def _assert_classifies_like(classify, model, crops):
    for example in EXAMPLES:
        labels, scores = zip(*classify(open(example, "rb").read()), strict=True)
        want_labels, want_scores = _expected(model, example, crops)
        assert list(labels) == want_labels
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)


@pytest.mark.parametrize("kind", ["export base dir", "version dir", ".keras"])
def test_classifiers_agree_with_the_model(trained, loaded, kind):
    for crops in ("ten", "center"):
        _assert_classifies_like(classifier_of(loaded[kind], crops), trained[0], crops)


def test_ten_crops_are_the_default_and_differ_from_the_centre(trained, loaded):
    model = trained[0]
    _assert_classifies_like(classifier_of(loaded["export base dir"]), model, "ten")
    ten, centre = _expected(model, EXAMPLES[0], "ten"), _expected(model, EXAMPLES[0], "center")
    assert not np.allclose(ten[1], centre[1], atol=1e-4)  # so the comparisons above can fail
    with pytest.raises(
        ValueError, match=r"crops must be one of \['center', 'ten'\]; received 'five'"
    ):
        classifier_of(loaded[".keras"], crops="five")


def test_an_export_without_ten_crop_says_to_use_the_centre_or_export_again(trained, old_export):
    with pytest.raises(ValueError, match=r"has no ten_crop signature.*--crops=center.*export"):
        classifier_of(old_export)
    _assert_classifies_like(classifier_of(old_export, crops="center"), trained[0], "center")


def test_not_an_image_is_a_value_error(loaded):
    for kind in ("export base dir", ".keras"):
        classify = classifier_of(loaded[kind])
        with pytest.raises(ValueError, match="^image must be an encoded JPEG or PNG image"):
            classify(b"GIF89a? no, plain text")


def test_a_path_that_is_no_model_says_how_to_make_one(tmp_path):
    with pytest.raises(ValueError, match="neither a SavedModel"):
        load_classifier(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        load_classifier(str(tmp_path / "missing.keras"))


def test_predict_script_prints_top_labels_and_one_line_errors(trained, tmp_path):
    model, root = trained
    garbage = tmp_path / "notes.jpg"
    garbage.write_bytes(b"these are not pixels")
    result = run_python(
        [
            "scripts/predict.py",
            f"--model={root / 'export'}",
            *EXAMPLES,
            str(tmp_path / "missing.jpg"),
            str(garbage),
        ]
    )
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == EXAMPLES
    for line, example in zip(lines, EXAMPLES, strict=True):  # the ten crops', by default
        labels, scores = _expected(model, example, "ten")
        shown = ", ".join(f"{name} {score:.3f}" for name, score in zip(labels, scores, strict=True))
        assert line == f"{example}: {shown}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == [
        f"ERROR: {tmp_path / 'missing.jpg'}: no such file",
        errors[1],
    ]
    assert errors[1].startswith(f"ERROR: {garbage}: image must be an encoded JPEG or PNG image")
    assert "Traceback" not in result.stderr


# --- TF Serving: stand-ins speaking its REST and gRPC protocols, and the real server ----------


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unknown_signature(name):
    """TF Serving's answer to a request for a signature the model lacks (InvalidArgument)."""
    return f'Serving signature name: "{name}" not found in signature def'


@pytest.fixture(scope="module")
def signatures(trained):
    """The export's signatures, as TF Serving loads them."""
    return tf.saved_model.load(str(trained[1] / "export" / "1")).signatures


def _serve_rest(signatures):
    """TF Serving's REST predict API (row format, HTTP 400 on a bad image or an unknown
    signature) over an export's `signatures`; returns the server."""
    import base64
    import http.server
    import json
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            assert self.path == "/v1/models/alexnet:predict"
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            images = [base64.b64decode(row["image_bytes"]["b64"]) for row in body["instances"]]
            name = body.get("signature_name", "serving_default")
            try:
                if name not in signatures:
                    raise tf.errors.InvalidArgumentError(None, None, _unknown_signature(name))
                out = signatures[name](image_bytes=tf.constant(images))
                rows = [
                    {
                        "labels": [v.decode() for v in out["labels"].numpy()[i]],
                        "scores": out["scores"].numpy()[i].tolist(),
                    }
                    for i in range(len(images))
                ]
                code, reply = 200, {"predictions": rows}
            except tf.errors.InvalidArgumentError as error:
                code, reply = 400, {"error": error.message}
            data = json.dumps(reply).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def rest_server(signatures):
    server = _serve_rest(signatures)
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _serve_grpc(signatures):
    """TF Serving's gRPC PredictionService over an export's `signatures`; returns the server
    and its port."""
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            images = tf.make_ndarray(request.inputs["image_bytes"])
            name = request.model_spec.signature_name or "serving_default"
            if name not in signatures:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, _unknown_signature(name))
            try:
                out = signatures[name](image_bytes=tf.constant(images))
            except tf.errors.InvalidArgumentError as error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
            reply = predict_pb2.PredictResponse()
            for name, value in out.items():
                reply.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return reply

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def grpc_server(signatures):
    server, port = _serve_grpc(signatures)
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_server_classifiers_agree_with_the_model(trained, rest_server, grpc_server, protocol):
    from keras_alexnet.serving.prediction import grpc_classifier, rest_classifier

    for crops in ("ten", "center"):
        if protocol == "rest":
            classify = rest_classifier(rest_server, crops=crops)
        else:
            classify = grpc_classifier(grpc_server, crops=crops)
        _assert_classifies_like(classify, trained[0], crops)
        with pytest.raises(ValueError, match="not a JPEG or PNG image"):
            classify(b"plain text")


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_a_served_export_without_ten_crop_is_one_line_for_all_files(old_export, protocol):
    old = old_export.saved_model.signatures
    if protocol == "rest":
        server = _serve_rest(old)
        address, stop = f"127.0.0.1:{server.server_address[1]}", server.shutdown
    else:
        server, port = _serve_grpc(old)
        address, stop = f"127.0.0.1:{port}", lambda: server.stop(None)
    try:
        command = ["scripts/predict.py", f"--server={address}", f"--protocol={protocol}"]
        result = run_python([*command, *EXAMPLES])
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
        assert errors == [
            f"ERROR: The model 'alexnet' at {address} has no ten_crop signature: it was "
            "exported by a keras_alexnet without the paper's ten-crop prediction. Classify "
            "with --crops=center (its serving_default), or export the model again with "
            "alexnet-export."
        ]
        assert result.stdout == "" and "Traceback" not in result.stderr
        result = run_python([*command, "--crops=center", *EXAMPLES])
        assert result.returncode == 0, result.stderr[-2000:]
        assert [line.split(": ")[0] for line in result.stdout.splitlines()] == EXAMPLES
    finally:
        stop()


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_predict_script_with_an_unreachable_server_is_one_line(protocol):
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    result = run_python(
        ["scripts/predict.py", f"--server={address}", f"--protocol={protocol}", *EXAMPLES]
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and f"cannot reach TF Serving at {address}" in errors[0]
    assert "Traceback" not in result.stderr


def test_predict_script_through_rest(rest_server):
    result = run_python(["scripts/predict.py", f"--server={rest_server}", EXAMPLES[0]])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"{EXAMPLES[0]}: ")


def test_real_tensorflow_model_server(trained):
    """Serves the export with TF Serving itself and calls its REST API."""
    import shutil

    binary = shutil.which("tensorflow_model_server")
    if binary is None:
        pytest.skip(
            "tensorflow_model_server is not on PATH: TF Serving ships as a Debian package from "
            "Google's apt repository or a Docker image, neither reachable from here"
        )
    import subprocess
    import time

    from keras_alexnet.serving.prediction import rest_classifier

    port = _free_port()
    server = subprocess.Popen(
        [
            binary,
            f"--rest_api_port={port}",
            f"--port={_free_port()}",
            "--model_name=alexnet",
            f"--model_base_path={trained[1] / 'export'}",
        ]
    )
    try:
        classify = rest_classifier(f"127.0.0.1:{port}")
        for _ in range(60):
            try:
                top = classify(open(EXAMPLES[0], "rb").read())
                break
            except ValueError:
                time.sleep(1)
        assert [label for label, _ in top] == _expected(trained[0], EXAMPLES[0])[0]
    finally:
        server.terminate()


# What the hostile REST server sends for each model name: raw bytes (before any status
# line) or a 200 answer's body. Each is a defect of round 4 or an earlier one.
_DEEP = b"[" * 200_000 + b"]" * 200_000
_RAW_ANSWERS = {
    "garbled_status": b"HTTP/1.1 two hundred OK\r\n\r\n{}",
    "many_headers": b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 150 + b"\r\n{}",
}


@pytest.fixture(scope="module")
def hostile_server():
    """A loopback server answering REST predictions badly, by model name."""
    import http.server
    import threading
    import time

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            mode = self.path.split("/")[3].split(":")[0]
            try:
                self._answer(mode)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _answer(self, mode):
            if mode in _RAW_ANSWERS:
                self.wfile.write(_RAW_ANSWERS[mode])
                return
            if mode == "status_drip":
                for byte in b"HTTP/1.1 200 OK\r\n"[:20]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.3)
                return
            chunked = mode == "chunked_drip"
            self.send_response(500 if mode == "error_endless" else 200)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if mode in ("endless", "error_endless"):
                while True:
                    self.wfile.write(b" " * 65536)
            elif mode in ("trickle", "chunked_drip"):
                for _ in range(100):
                    self.wfile.write(b"1\r\n \r\n" if chunked else b" ")
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                self.wfile.write(_BODIES[mode])

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _answer(labels, scores) -> bytes:
    return json.dumps({"predictions": [{"labels": labels, "scores": scores}]}).encode()


_BODIES = {
    "empty": b"{}",
    "short": _answer(["a", "b"], [0.5]),
    "garbage": b"\x00\xff not json",
    "deep": _DEEP,
    "nan": b'{"predictions": [{"labels": ["a", "b"], "scores": [NaN, 0.5]}]}',
    "infinite": b'{"predictions": [{"labels": ["a"], "scores": [Infinity]}]}',
    "number_labels": _answer([1, 2], [0.5, 0.25]),
    "bool_scores": _answer(["a"], [True]),
}


@pytest.mark.parametrize(
    "mode, message",
    [
        ("endless", r"an answer of more than 16,777,216 bytes"),
        ("error_endless", r"an answer of more than 16,777,216 bytes"),
        ("trickle", r"did not finish its answer within the timeout of 1 s"),
        ("chunked_drip", r"did not finish its answer within the timeout of 1 s"),
        ("status_drip", r"did not finish its answer within the timeout of 1 s"),
        ("garbled_status", r"no well-formed HTTP answer \(BadStatusLine"),
        ("many_headers", r"no well-formed HTTP answer \(HTTPException: got more than 100"),
        ("empty", r"not with a keras_alexnet export's labels and scores \(KeyError"),
        ("short", r"not with a keras_alexnet export's labels.*differ in length"),
        ("garbage", r"is not JSON"),
        ("deep", r"nests deeper than"),
        ("nan", r"scores that are not finite numbers: \[nan, 0.5\]"),
        ("infinite", r"scores that are not finite numbers"),
        ("number_labels", r"labels that are not text: \[1, 2\]"),
        ("bool_scores", r"scores that are not finite numbers"),
    ],
)
def test_the_rest_client_bounds_and_checks_what_it_is_sent(hostile_server, mode, message):
    import resource

    from keras_alexnet.serving.prediction import rest_classifier

    classify = rest_classifier(hostile_server, model_name=mode, timeout=1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ValueError, match=message) as raised:
        classify(b"\xff\xd8 an image")
    assert hostile_server in str(raised.value) or mode in ("short", "empty")
    assert time.monotonic() - started < 10
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 << 10  # at most 200 MiB more at the peak (the bound is 16 MiB)


@pytest.mark.parametrize("address", ["http://127.0.0.1:8501", "127.0.0.1", "host:port", "a/b:1"])
def test_a_server_address_that_is_not_host_port_is_one_line(address):
    from keras_alexnet.serving.prediction import rest_classifier

    with pytest.raises(ValueError, match=r"is not host:port: give the server's host and port"):
        rest_classifier(address)


@pytest.fixture
def hostile_grpc_server():
    """A loopback gRPC PredictionService answering badly, by model name."""
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            reply = predict_pb2.PredictResponse()
            mode = request.model_spec.name
            if mode == "huge":
                huge = np.array([[b"x" * (20 << 20)]], dtype=object)
                reply.outputs["labels"].CopyFrom(tf.make_tensor_proto(huge))
            elif mode == "short":
                reply.outputs["labels"].CopyFrom(tf.make_tensor_proto([[b"a", b"b"]]))
                reply.outputs["scores"].CopyFrom(tf.make_tensor_proto([[0.5]]))
            return reply  # "empty": no outputs at all

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        options=[("grpc.max_send_message_length", 64 << 20)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.mark.parametrize(
    "mode, message",
    [
        ("huge", r"an answer of more than 16,777,216 bytes"),
        ("empty", r"not with a keras_alexnet export's labels and scores \(KeyError"),
        ("short", r"not with a keras_alexnet export's labels.*differ in length"),
    ],
)
def test_the_grpc_client_bounds_and_checks_what_it_is_sent(hostile_grpc_server, mode, message):
    from keras_alexnet.serving.prediction import grpc_classifier

    classify = grpc_classifier(hostile_grpc_server, model_name=mode, timeout=5.0)
    with pytest.raises(ValueError, match=message):
        classify(b"\xff\xd8 an image")


def test_image_files_are_read_only_when_regular_and_of_a_bounded_size(tmp_path):
    from keras_alexnet.data.decode import read_image_file

    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as file:
        file.write(b"\xff\xd8\xff\xe0")
        file.truncate(6 << 30)  # 6 GiB that starts like a JPEG, sparse
    with pytest.raises(ValueError, match=r"6,442,450,944 bytes, more than the 268,435,456"):
        read_image_file(str(huge))
    with pytest.raises(ValueError, match=r"not a regular file"):
        read_image_file("/dev/zero")
    small = tmp_path / "small.jpg"
    small.write_bytes(b"\xff\xd8 bytes")
    assert read_image_file(str(small)) == b"\xff\xd8 bytes"
