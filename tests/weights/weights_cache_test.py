"""`AlexNet(weights="imagenet")` and the Keras cache it reads, against a loopback HTTP server
(127.0.0.1, started here) that serves a generated bvlc_alexnet file of the real size and
layout (1000 classes, Caffe's V1 form). Never the internet: the weights object's sources are
replaced by the server's URLs and the generated file's hash."""

import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import socket
import threading

import numpy as np
import pytest

import keras_alexnet
from keras_alexnet.weights import cache as weights_cache
from keras_alexnet.weights import resolve as weights_module
from keras_alexnet.weights.imagenet_release import IMAGENET_WEIGHTS, WeightsSource
from tests.weights import caffe_files


def _full_model():
    """The model the cache converts into: the ImageNet release's variant, 1000 classes."""
    return keras_alexnet.AlexNet(**IMAGENET_WEIGHTS.variant)


class _Server:
    """Serves one file under several misbehaviours, by path, and counts the requests."""

    def __init__(self, path):
        self.body = open(path, "rb").read()
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                body = server.body
                if self.path == "/error":
                    self.send_error(503, "Service Unavailable")
                    return
                self.send_response(200)
                if self.path != "/drop":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in ("/truncated", "/drop"):
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading (an announced size it refused)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A generated bvlc_alexnet.caffemodel (1000 classes) and its sha1."""
    path = tmp_path_factory.mktemp("release") / "bvlc_alexnet.caffemodel"
    caffe_files.write_caffemodel(path, caffe_files.random_weights(seed=3, classes=1000))
    return str(path), hashlib.sha1(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def server(release):
    served = _Server(release[0])
    yield served
    served.httpd.shutdown()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """An empty Keras home for the test; returns its models folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models"


def _weights(release, *urls, size=None, digest=None):
    path, sha1 = release
    sources = tuple(
        WeightsSource(
            url=url,
            filename="bvlc_alexnet.caffemodel",
            size=size or os.path.getsize(path),
            algorithm="sha1",
            digest=digest or sha1,
            form="caffemodel",
            published_by="the test",
        )
        for url in urls
    )
    return dataclasses.replace(IMAGENET_WEIGHTS, sources=sources)


def _cache_files(cache):
    return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def test_first_call_downloads_converts_and_caches_then_reads_only_the_cache(
    release, server, cache, monkeypatch
):
    weights = _weights(release, server.url("bvlc_alexnet.caffemodel"))
    monkeypatch.setattr(weights_module, "IMAGENET_WEIGHTS", weights)
    before = len(server.requests)
    model = keras_alexnet.AlexNet(weights="imagenet")
    assert len(server.requests) == before + 1
    # Only the converted file, its record and the lock remain: the download is gone.
    assert _cache_files(cache) == [
        ".bvlc_alexnet.lock",
        "bvlc_alexnet_imagenet.json",
        "bvlc_alexnet_imagenet.weights.h5",
    ]
    record = json.loads((cache / "bvlc_alexnet_imagenet.json").read_text())
    assert record["made_from"]["digest"] == release[1]
    assert record["url"] == server.url("bvlc_alexnet.caffemodel")

    again = keras_alexnet.AlexNet(weights="imagenet")
    assert len(server.requests) == before + 1  # the cache, not the server
    direct = keras_alexnet.AlexNet(weights=release[0])  # the file itself, converted on load
    images = keras_alexnet.preprocess_input(
        np.random.default_rng(0).uniform(0, 255, (1, 227, 227, 3))
    )
    expected = direct.predict(images, verbose=0)
    np.testing.assert_array_equal(model.predict(images, verbose=0), expected)
    np.testing.assert_array_equal(again.predict(images, verbose=0), expected)
    assert model.get_layer("norm1_a").__class__.__name__ == "CrossTowerLocalResponseNormalization"

    base = keras_alexnet.AlexNet(weights="imagenet", include_top=False, input_shape=(99, 99, 3))
    np.testing.assert_array_equal(
        base.get_layer("conv5_b").kernel.numpy(), direct.get_layer("conv5_b").kernel.numpy()
    )
    assert len(server.requests) == before + 1


def test_a_copy_put_in_the_cache_by_hand_is_checked_and_converted(release, cache):
    weights = _weights(release, "http://127.0.0.1:9/never-asked")
    os.makedirs(cache)
    shutil.copy(release[0], cache / "bvlc_alexnet.caffemodel")
    path = weights_cache.imagenet_weights_file(_full_model, weights, progress=False)
    assert os.path.basename(path) == "bvlc_alexnet_imagenet.weights.h5"
    assert "bvlc_alexnet.caffemodel" in _cache_files(cache)  # the user's copy stays


def test_install_checks_a_named_copy(release, cache, tmp_path):
    weights = _weights(release, "http://127.0.0.1:9/never-asked")
    path = weights_cache.install(release[0], _full_model, weights)
    assert os.path.isfile(path)
    other = tmp_path / "other.caffemodel"
    other.write_bytes(b"not bvlc_alexnet")
    with pytest.raises(weights_cache.WeightsUnavailable, match="none of the known files"):
        weights_cache.install(other, _full_model, weights)


def test_a_hand_placed_file_of_another_hash_is_refused(release, cache):
    weights = _weights(release, "http://127.0.0.1:9/never-asked", digest="0" * 40)
    os.makedirs(cache)
    shutil.copy(release[0], cache / "bvlc_alexnet.caffemodel")
    with pytest.raises(weights_cache.WeightsUnavailable, match="it is not that file. Delete it"):
        weights_cache.imagenet_weights_file(_full_model, weights, progress=False)
    assert "bvlc_alexnet_imagenet.weights.h5" not in _cache_files(cache)


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "path, changes, reason",
    [
        ("bvlc_alexnet.caffemodel", {"digest": "f" * 40}, "not the published"),
        ("bvlc_alexnet.caffemodel", {"size": 243_862_414}, "the server announced"),
        ("error", {}, "HTTP 503"),
        ("truncated", {}, "the download ended after"),
        ("drop", {}, "the download ended after"),
        (None, {}, "the download failed after 0 bytes"),
    ],
    ids=["wrong-hash", "wrong-size", "server-error", "truncated", "dropped", "no-server"],
)
def test_a_failed_download_is_a_clear_error_and_leaves_the_cache_clean(
    release, server, cache, path, changes, reason
):
    url = server.url(path) if path else f"http://127.0.0.1:{_closed_port()}/x.caffemodel"
    weights = _weights(release, url, **changes)
    with pytest.raises(weights_cache.WeightsUnavailable) as raised:
        weights_cache.imagenet_weights_file(_full_model, weights, progress=False)
    message = str(raised.value)
    assert reason in message
    # The offline message: each URL with its size and hash, and where a copy goes.
    assert url in message and weights.sources[0].digest in message
    assert str(cache / "bvlc_alexnet.caffemodel") in message
    assert _cache_files(cache) == [".bvlc_alexnet.lock"]


def test_the_next_source_is_tried_when_one_fails(release, server, cache):
    weights = _weights(release, server.url("error"), server.url("bvlc_alexnet.caffemodel"))
    path = weights_cache.imagenet_weights_file(_full_model, weights, progress=False)
    assert os.path.isfile(path)


def test_a_tampered_cache_is_refused(release, server, cache):
    weights = _weights(release, server.url("bvlc_alexnet.caffemodel"))
    path = weights_cache.imagenet_weights_file(_full_model, weights, progress=False)
    asked = len(server.requests)
    with open(path, "r+b") as file:
        file.seek(-100, os.SEEK_END)
        file.write(b"\x00" * 8)
    with pytest.raises(weights_cache.WeightsUnavailable, match="were changed after they were"):
        weights_cache.imagenet_weights_file(_full_model, weights, progress=False)
    record = cache / "bvlc_alexnet_imagenet.json"
    facts = json.loads(record.read_text())
    facts["made_from"]["digest"] = "0" * 40
    record.write_text(json.dumps(facts))
    with pytest.raises(weights_cache.WeightsUnavailable, match="another file, source or format"):
        weights_cache.imagenet_weights_file(_full_model, weights, progress=False)
    record.unlink()
    with pytest.raises(weights_cache.WeightsUnavailable, match="no usable record"):
        weights_cache.imagenet_weights_file(_full_model, weights, progress=False)
    assert len(server.requests) == asked  # refused: not fetched again over it


def test_two_fetching_at_once_download_once(release, server, cache):
    weights = _weights(release, server.url("bvlc_alexnet.caffemodel"))
    asked = len(server.requests)
    results, errors = [], []

    def fetch():
        try:
            results.append(
                weights_cache.imagenet_weights_file(_full_model, weights, progress=False)
            )
        except Exception as error:  # noqa: BLE001  (reported below)
            errors.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 2 and results[0] == results[1]
    assert len(server.requests) == asked + 1
    weights_cache.imagenet_weights_file(
        _full_model, weights, progress=False
    )  # checks against the record


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"classes": 10}, r'weights="imagenet"` with `include_top=True`, `classes` should be 1000'),
        ({"lrn": "paper"}, r"they need lrn='caffe'"),
        ({"init": "he"}, r"init='he' adds an input_scaling layer"),
        ({"input_shape": (227, 227, 1)}, r"must have 3 channels"),
    ],
)
def test_imagenet_arguments_are_checked_before_any_download(cache, kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_alexnet.AlexNet(weights="imagenet", **kwargs)
    assert _cache_files(cache) == []


def test_the_weights_object_holds_every_fact():
    meta = keras_alexnet.IMAGENET_WEIGHTS.meta
    assert meta["variant"] == {"lrn": "caffe", "init": "paper"}
    assert meta["num_params"] == keras_alexnet.AlexNet(**meta["variant"]).count_params()
    assert [s["filename"] for s in meta["sources"]] == [
        "bvlc_alexnet.caffemodel",
        "bvlcalexnet-12.onnx",
        "bvlcalexnet-9.onnx",
        "bvlcalexnet-8.onnx",
    ]
    assert meta["accuracy"][0]["top1"] == 0.571 and meta["accuracy"][0]["top5"] == 0.802
    assert len(keras_alexnet.IMAGENET_WEIGHTS.categories) == 1000
    json.dumps(meta)  # a model card can hold it
