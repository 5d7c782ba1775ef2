"""What a `weights` argument names, resolved once: `resolve_weights(weights) -> Weights`.

A `Weights` knows its kind (`Weights.kind`, one name each: `NO_WEIGHTS`, `IMAGENET` for the
trained ImageNet weights, `CAFFE_FILE` for Caffe's bvlc_alexnet as a `.caffemodel` or `.onnx`
file, `KERAS_FILE` for a `.keras`/`.weights.h5` file of this package's AlexNet), what it
requires of the model (Caffe's LRN and initialisation, RGB input, the classes the file holds),
how it loads itself into a model it is given, and what it refuses and why. `AlexNet`, the
model card, training's settings and fine-tuning ask it; nothing else decides a kind from a
suffix. A Caffe or ONNX file is parsed at most once per `Weights`.

    spec = resolve_weights("bvlc_alexnet.caffemodel")   # checked: suffix, existence
    spec.kind, spec.lrn, spec.classes()                   # "caffe file", "caffe", 1000
    spec.load_into(model, include_top=True)

This side never builds a model (it imports nothing of `keras_alexnet.alexnet`): it loads into
the model it is given, as torchvision's weights enums never call the model builder.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable

import keras
import numpy as np

from keras_alexnet.imagenet import NUM_IMAGENET_CLASSES
from keras_alexnet.weights import cache, caffe, keras_file
from keras_alexnet.weights.caffe import bvlc_alexnet
from keras_alexnet.weights.imagenet_release import IMAGENET_WEIGHTS

# What a `weights` argument is (`weights_kind`): decided from its value and suffix alone.
NO_WEIGHTS = "none"
IMAGENET = "imagenet"  # the trained weights of `IMAGENET_WEIGHTS`, from the Keras cache
CAFFE_FILE = "caffe file"  # a .caffemodel or .onnx: Caffe's bvlc_alexnet, converted on load
KERAS_FILE = "keras file"  # a .weights.h5 or .keras of this package's AlexNet
CAFFE_KINDS = (IMAGENET, CAFFE_FILE)  # Caffe's bvlc_alexnet, from the cache or a file

_WEIGHTS_ARGUMENT = (
    "The `weights` argument should be either `None` (random initialization), `imagenet` "
    "(Caffe's bvlc_alexnet, trained on ImageNet), the path to a `.weights.h5` or `.keras` "
    "file, or Caffe's bvlc_alexnet as a `.caffemodel` or `.onnx` file."
)


def weights_kind(weights) -> str:
    """What a `weights` argument names, from its value alone: `NO_WEIGHTS`, `IMAGENET`,
    `CAFFE_FILE` (a `.caffemodel`/`.onnx`) or `KERAS_FILE` (anything else, which
    `resolve_weights` checks)."""
    if weights is None:
        return NO_WEIGHTS
    if isinstance(weights, str) and weights == IMAGENET:
        return IMAGENET
    if isinstance(weights, (str, os.PathLike)) and caffe.is_caffe_file(os.fspath(weights)):
        return CAFFE_FILE
    return KERAS_FILE


def weights_variant(weights) -> dict[str, str]:
    """The AlexNet arguments that shape the network (`init`, `lrn`) which a `weights`
    argument fixes: Caffe's bvlc_alexnet's, or those a Keras file was saved with (read once
    per file version); {} without weights or for a file that does not exist.

    Raises:
        ValueError: a Keras file that cannot be read as one.
    """
    kind = weights_kind(weights)
    if kind in CAFFE_KINDS:
        return dict(IMAGENET_WEIGHTS.variant)
    if kind != KERAS_FILE or not os.path.isfile(weights):
        return {}
    status = os.stat(weights)
    return dict(_saved_variant(os.path.abspath(weights), status.st_size, status.st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _saved_variant(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    """`keras_file.saved_variant`, kept for each version (size, time) of a file."""
    return tuple(keras_file.saved_variant(path).items())


def resolve_weights(weights) -> Weights:
    """The `Weights` that `weights` names (None, "imagenet" or a path).

    Raises:
        ValueError: `weights` is none of these, a file of a format not loaded (saying why),
            or a file that does not exist.
    """
    kind = weights_kind(weights)
    if kind in (NO_WEIGHTS, IMAGENET):
        return Weights(kind)
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"{_WEIGHTS_ARGUMENT} Received: weights={weights!r}")
    path = os.fspath(weights)
    if kind == KERAS_FILE and not path.endswith(keras_file.WEIGHTS_SUFFIXES):
        if path.lower().endswith(keras_file.WEIGHTS_SUFFIXES):
            raise ValueError(
                f"Keras reads weights files by their lowercase suffix (.weights.h5 or .keras); "
                f"rename the file. Received: weights={path!r}"
            )
        refusal = caffe.refusal(path)
        if refusal:
            raise ValueError(f"{refusal} See docs/weights.md for the formats loaded.")
        raise ValueError(f"{_WEIGHTS_ARGUMENT} Received: weights={path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"The weights file does not exist. Received: weights={path!r}")
    return Weights(kind, path)


@dataclasses.dataclass(frozen=True, eq=False)
class Weights:
    """Resolved weights: their `kind` and, for a file, its `path` (see `resolve_weights`)."""

    kind: str
    path: str | None = None

    @property
    def caffe(self) -> bool:
        """Caffe's bvlc_alexnet (the ImageNet weights, or a file of it): they need Caffe's LRN,
        the paper's initialisation (no input scaling) and RGB input."""
        return self.kind in CAFFE_KINDS

    @property
    def lrn(self) -> str | None:
        """The LRN the model must have for these weights; None when they do not decide it (a
        Keras file loads only into the LRN it was saved with, checked on load)."""
        return "caffe" if self.caffe else None

    @property
    def channels(self) -> int | None:
        """The input channels these weights were trained on, where known before loading."""
        return 3 if self.caffe else None

    @functools.cached_property
    def network(self) -> dict:
        """A Caffe or ONNX file read and matched to bvlc_alexnet (parsed on first use only)."""
        return caffe.read_network(self.path)

    def classes(self) -> int | None:
        """The classes of the classifier these weights hold; None without weights or for a
        file of the convolutional base only."""
        if self.kind == IMAGENET:
            return NUM_IMAGENET_CLASSES
        if self.kind == CAFFE_FILE:
            return caffe.classes_in(self.network)
        if self.kind == KERAS_FILE:
            return keras_file.saved_classes(self.path)
        return None

    def check_model(self, lrn: str | None, init: str) -> None:
        """Raises `ValueError` when an AlexNet of `lrn` and `init` cannot take these weights
        (the LRN's alpha convention is the model's own check, on the LRN these weights
        choose: `lrn`)."""
        if not self.caffe:
            return
        if lrn == "paper":
            raise ValueError(
                f"Caffe's bvlc_alexnet weights ({self.path or self.kind!r}) were trained with "
                "Caffe's LRN; they need lrn='caffe' (or lrn=None). Received: lrn='paper'"
            )
        if init == "he":
            raise ValueError(
                "init='he' adds an input_scaling layer that Caffe's bvlc_alexnet does not have; "
                "leave init='paper' to load its weights. Received: init='he'"
            )

    def load_into(
        self,
        model: keras.Model,
        include_top: bool,
        full_model: Callable[[], keras.Model] | None = None,
    ) -> None:
        """Sets `model`'s weights from these, after checking that they fit (a file that does
        not names the layer and both shapes). With `include_top=False` a full model's
        weights load their convolutional base.

        The ImageNet weights are converted into the Keras cache once, into a full model of
        their variant: `model` itself with `include_top`, else the one `full_model()` builds
        (the caller's: this side builds no model).
        """
        if self.kind == IMAGENET:
            into = (lambda: model) if include_top else full_model
            if into is None:
                raise ValueError("loading the ImageNet weights into a base needs full_model")
            cached = cache.imagenet_weights_file(into, IMAGENET_WEIGHTS)
            # (Its values were checked when it was made; its sha256 against the record here.)
            keras_file.load_weights(model, cached, allow_unused=not include_top, check_values=False)
        elif self.kind == CAFFE_FILE:
            caffe.load_matched(model, self.network, include_top, self.path)
        elif self.kind == KERAS_FILE:
            keras_file.load_weights(model, self.path, allow_unused=not include_top)

    def caffe_layers(self) -> dict[str, list[np.ndarray]]:
        """A Caffe or ONNX file's values by layer name, converted without a model of its
        classes (fine-tuning's starting point from such a file)."""
        if self.kind != CAFFE_FILE:
            raise ValueError(f"{self.kind} weights are not a Caffe or ONNX file")
        return bvlc_alexnet.keras_weights(self.network, self.classes() is not None)
