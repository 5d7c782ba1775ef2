"""`resolve_weights`: what a weights argument names, decided once, with what it requires of
the model and what it refuses; a Caffe or ONNX file parsed at most once."""

import types

import numpy as np
import pytest

import keras_alexnet
from keras_alexnet import weights
from keras_alexnet.weights import (
    CAFFE_FILE,
    IMAGENET,
    KERAS_FILE,
    NO_WEIGHTS,
    caffe,
    resolve_weights,
    weights_kind,
)


@pytest.mark.parametrize(
    "value, kind",
    [
        (None, NO_WEIGHTS),
        ("imagenet", IMAGENET),
        ("bvlc_alexnet.caffemodel", CAFFE_FILE),
        ("BVLC.ONNX", CAFFE_FILE),
        ("run/best.keras", KERAS_FILE),
        ("m.weights.h5", KERAS_FILE),
        ("anything.else", KERAS_FILE),
    ],
)
def test_the_kind_comes_from_the_value_alone(value, kind):
    assert weights_kind(value) == kind


def test_what_the_weights_require_of_the_model(tmp_path):
    none, imagenet = resolve_weights(None), resolve_weights("imagenet")
    assert (none.lrn, none.channels, none.classes()) == (None, None, None)
    assert (imagenet.lrn, imagenet.channels, imagenet.classes()) == ("caffe", 3, 1000)
    imagenet.check_model(None, "paper")
    with pytest.raises(ValueError, match="need lrn='caffe'"):
        imagenet.check_model("paper", "paper")
    with pytest.raises(ValueError, match="init='he' adds an input_scaling layer"):
        imagenet.check_model("caffe", "he")
    with pytest.raises(ValueError, match="lrn_alpha_convention applies to lrn='paper' only"):
        keras_alexnet.AlexNet(weights="imagenet", lrn_alpha_convention="paper")  # no download
    none.check_model("paper", "he")  # no weights: nothing required


@pytest.mark.parametrize(
    "value, message",
    [
        (3, r"should be either `None`.*Received: weights=3"),
        ("alexnet.pth", r"is a PyTorch file"),
        ("notes.txt", r"should be either `None`.*notes.txt"),
        ("missing.keras", r"The weights file does not exist"),
        ("missing.caffemodel", r"The weights file does not exist"),
    ],
)
def test_what_is_refused_says_why(value, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        resolve_weights(value)


def test_a_caffe_file_is_parsed_once(tmp_path, monkeypatch):
    path = tmp_path / "bvlc_alexnet.caffemodel"
    path.write_bytes(b"stand-in")
    reads, loads = [], []
    fc8 = types.SimpleNamespace(weights=np.zeros((7, 4096), np.float32))

    def read_network(given):
        reads.append(given)
        return {"fc8": fc8}

    monkeypatch.setattr(caffe, "read_network", read_network)
    monkeypatch.setattr(caffe, "load_matched", lambda *args: loads.append(args))
    spec = resolve_weights(str(path))
    assert (spec.kind, spec.lrn, spec.channels) == (CAFFE_FILE, "caffe", 3)
    assert spec.classes() == 7 and spec.classes() == 7
    spec.load_into("model", include_top=True)
    assert reads == [str(path)] and len(loads) == 1
    assert loads[0][1] == {"fc8": fc8}  # the network read once, handed to the loader
    assert isinstance(spec, weights.Weights)
