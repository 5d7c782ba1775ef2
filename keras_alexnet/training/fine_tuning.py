"""Fine-tuning: a model that starts from trained weights, with a new classifier where the
classes differ, and only the layers from a chosen block on trained.

    start = starting_weights("imagenet", lrn="caffe", init="paper")  # by layer name
    fresh = start_from(model, start)        # ["predictions"] when the classes differ
    frozen = freeze_before(model, "fc6")    # conv1_a ... conv5_b: not trained

`alexnet-train --weights=... --train_from=...` does this before compiling (`recipe`).
Frozen layers keep their loaded values exactly: they are not trainable variables, so neither
the gradient nor the weight decay (a loss term on trainable kernels only) touches them.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_alexnet.alexnet import AlexNet
from keras_alexnet.imagenet import NUM_IMAGENET_CLASSES
from keras_alexnet.weights import CAFFE_FILE, resolve_weights

# The blocks of weights, input to output; `train_from` names the first that trains.
BLOCKS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "predictions")
# Layers that may start fresh when the weights have none for them (a base-only file) or, for
# the classifier, another class count.
TOP_LAYERS = ("fc6", "fc7", "predictions")


def block_of(layer_name: str) -> str | None:
    """`conv3_b` -> `conv3`; `predictions` -> `predictions`; None for layers of no block."""
    block = layer_name.split("_")[0]
    return block if block in BLOCKS else None


def starting_weights(weights: str, lrn: str, init: str) -> dict[str, list[np.ndarray]]:
    """The values of every layer with weights in `weights` (`"imagenet"`, a `.caffemodel` or
    `.onnx` of bvlc_alexnet, or a `.keras`/`.weights.h5` of an AlexNet built with `lrn` and
    `init`), by layer name, for a model of any class count. A Caffe or ONNX file is converted
    directly; other weights load into an AlexNet of `lrn`, `init` and their own classes.

    Raises:
        ValueError: the file cannot be read or does not fit an AlexNet of `lrn` and `init`.
    """
    resolved = resolve_weights(weights)
    if resolved.kind == CAFFE_FILE:  # without a model of its classes
        return resolved.caffe_layers()
    classes = resolved.classes()
    donor = AlexNet(
        include_top=classes is not None,
        weights=weights,
        classes=classes or NUM_IMAGENET_CLASSES,
        lrn=lrn,
        init=init,
    )
    return {layer.name: layer.get_weights() for layer in donor.layers if layer.weights}


def start_from(model: keras.Model, values: dict[str, list[np.ndarray]]) -> list[str]:
    """Sets each layer of `model` from `values`; returns the layers left as initialised: the
    classifier when the class counts differ, fc6 to the classifier for a base-only file.

    Raises:
        ValueError: naming a layer of the convolutional base that `values` lacks or shapes
            otherwise, before any weight is set.
    """
    plan, fresh = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        shapes = [tuple(v.shape) for v in layer.weights]
        given = values.get(layer.name)
        if given is not None and [tuple(v.shape) for v in given] == shapes:
            plan.append((layer, given))
        elif block_of(layer.name) == "predictions" or (
            given is None and block_of(layer.name) in TOP_LAYERS
        ):
            fresh.append(layer.name)
        else:
            found = "none" if given is None else [tuple(v.shape) for v in given]
            raise ValueError(
                f"The starting weights do not fit this model: layer {layer.name} has weight "
                f"shapes {shapes}, the weights give {found}. Start from weights of an AlexNet "
                "with the same settings (input size, lrn, init)."
            )
    for layer, given in plan:
        layer.set_weights(given)
    return fresh


def freeze_before(model: keras.Model, train_from: str) -> list[str]:
    """Makes every layer of a block before `train_from` not trainable; returns their names."""
    if train_from not in BLOCKS:
        raise ValueError(f"train_from must be one of {BLOCKS}; received {train_from!r}.")
    first = BLOCKS.index(train_from)
    frozen = []
    for layer in model.layers:
        block = block_of(layer.name)
        if layer.weights and block is not None and BLOCKS.index(block) < first:
            layer.trainable = False
            frozen.append(layer.name)
    return frozen
