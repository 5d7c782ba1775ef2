"""Caffe's `bvlc_alexnet` in its two file forms, Caffe's (`.caffemodel`) and ONNX's (`.onnx`):
read (`caffemodel`, `onnx_graph`, both on `protobuf_wire`), matched to bvlc_alexnet
(`bvlc_alexnet`) and loaded exactly into `AlexNet(lrn="caffe")`.

    model = keras_alexnet.AlexNet(weights="bvlc_alexnet.caffemodel")

`weights.cache` fetches the known releases of these files (`imagenet_weights.IMAGENET_WEIGHTS`)
for `AlexNet(weights="imagenet")`; any other file is the user's to bring. A file that holds
another network is refused with a message naming the layer that differs; a file is read and
checked in full, and converted, before any weight of the model is set, so a refused file leaves
the model as it was.
"""

from __future__ import annotations

import os

import keras

from keras_alexnet.weights.caffe import bvlc_alexnet
from keras_alexnet.weights.caffe.caffemodel import read_caffemodel
from keras_alexnet.weights.caffe.onnx_graph import read_onnx

CAFFE_SUFFIX = ".caffemodel"
ONNX_SUFFIX = ".onnx"
CAFFE_SUFFIXES = (CAFFE_SUFFIX, ONNX_SUFFIX)


# Weights files of other AlexNets, by suffix: what they are and why they are not loaded.
REFUSED_SUFFIXES = {
    (".npy", ".pkl", ".pickle"): (
        "a NumPy/pickle file (such as caffe-tensorflow's bvlc_alexnet.npy). Loading a pickle "
        "can run any code it holds, so keras_alexnet does not read them: convert the original "
        "bvlc_alexnet.caffemodel instead"
    ),
    (".pth", ".pt"): (
        "a PyTorch file. torchvision's alexnet is a different network (64-192-384-256-256 "
        "filters in one tower, no LRN, adaptive pooling): its weights do not fit this "
        "architecture"
    ),
    (".ckpt", ".index", ".meta"): (
        "a TensorFlow checkpoint. TF-Slim's alexnet_v2 is a different network (64 conv1 "
        "filters, no LRN, fully connected layers as convolutions): its weights do not fit this "
        "architecture; a checkpoint of this package's own training is a .keras file"
    ),
}


def is_caffe_file(path: str) -> bool:
    """Whether `path` names Caffe's bvlc_alexnet in one of its forms, by its suffix."""
    return path.lower().endswith(CAFFE_SUFFIXES)


def refusal(path: str) -> str | None:
    """Why a weights file of another framework's AlexNet is not loaded, or None."""
    lower = path.lower()
    for suffixes, reason in REFUSED_SUFFIXES.items():
        if lower.endswith(suffixes) or (".ckpt" in suffixes and ".ckpt" in lower):
            return f"weights={path!r} is {reason}."
    return None


def read_network(path: str) -> dict:
    """Reads a `.caffemodel` or `.onnx` file and matches it to bvlc_alexnet (see
    `bvlc_alexnet.check_network`)."""
    if path.lower().endswith(ONNX_SUFFIX):
        layers = read_onnx(path)
    else:
        layers = read_caffemodel(path)
    return bvlc_alexnet.check_network(layers, path)


def classes_in(matched: dict) -> int | None:
    """The number of classes of fc8, or None for a file with the convolutional base only."""
    fc8 = matched.get("fc8")
    return None if fc8 is None else fc8.weights.shape[0]


def load_pretrained(model: keras.Model, path: str | os.PathLike, include_top: bool) -> None:
    """Loads a `.caffemodel` or `.onnx` bvlc_alexnet into `model`, an `AlexNet(lrn="caffe")`.

    Raises:
        ValueError: the file cannot be read, holds another network, or does not fit `model`
            (classes, input channels, include_top); the model is left unchanged.
    """
    path = os.fspath(path)
    load_matched(model, read_network(path), include_top, path)


def load_matched(model: keras.Model, matched: dict, include_top: bool, path: str) -> None:
    """`load_pretrained` for a file already read by `read_network` (the file is parsed once)."""
    classes = classes_in(matched)
    if include_top:
        if classes is None:
            raise ValueError(
                f"{path} holds the convolutional base only (it ends at pool5): build the model "
                "with include_top=False to load it."
            )
        model_classes = model.get_layer("predictions").units
        if classes != model_classes:
            raise ValueError(
                f"{path} has {classes} classes (fc8) but the model has {model_classes}: build "
                f"it with classes={classes}, or use include_top=False and train a new top."
            )
    channels = model.get_layer("conv1_a").kernel.shape[2]
    if channels != 3:
        raise ValueError(
            f"{path} was trained on 3-channel (colour) images; the model takes {channels} "
            "channels. Build it with input_shape=(..., ..., 3)."
        )
    weights = bvlc_alexnet.keras_weights(matched, include_top)
    for name, values in weights.items():
        layer = model.get_layer(name)
        shapes = [tuple(v.shape) for v in layer.weights]
        if shapes != [v.shape for v in values]:
            raise ValueError(
                f"{path}: layer {name} of the model has weight shapes {shapes}, the file gives "
                f"{[v.shape for v in values]}. Build the model with AlexNet's defaults."
            )
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
