"""What a `weights` argument names, resolved once: `resolve_weights(weights) -> Weights`.

A `Weights` knows its kind (none, the trained ImageNet weights, Caffe's bvlc_alexnet as a
`.caffemodel` or `.onnx` file, or a `.keras`/`.weights.h5` file of this package's AlexNet),
what it requires of the model (Caffe's LRN and initialisation, RGB input, the classes the
file holds), how it loads itself into a model, and what it refuses and why. `AlexNet` asks it
once; fine-tuning asks it for the starting values by layer. A Caffe or ONNX file is parsed at
most once per `Weights`.

    spec = resolve_weights("bvlc_alexnet.caffemodel")   # checked: suffix, existence
    spec.kind, spec.lrn, spec.classes()                   # "foreign", "caffe", 1000
    spec.load_into(model, include_top=True)
"""

from __future__ import annotations

import dataclasses
import functools
import os

import keras
import numpy as np

from keras_alexnet import pretrained
from keras_alexnet.imagenet import NUM_IMAGENET_CLASSES
from keras_alexnet.pretrained import bvlc_alexnet, keras_file
from keras_alexnet.pretrained.imagenet_weights import IMAGENET_WEIGHTS

# What a `weights` argument is (`weights_kind`): decided from its value and suffix alone.
NO_WEIGHTS = "none"
IMAGENET = "imagenet"  # the trained weights of `IMAGENET_WEIGHTS`, from the Keras cache
FOREIGN_FILE = "foreign"  # a .caffemodel or .onnx: Caffe's bvlc_alexnet, converted on load
KERAS_FILE = "keras"  # a .weights.h5 or .keras of this package's AlexNet
CAFFE_KINDS = (IMAGENET, FOREIGN_FILE)  # Caffe's bvlc_alexnet, from the cache or a file

_WEIGHTS_ARGUMENT = (
    "The `weights` argument should be either `None` (random initialization), `imagenet` "
    "(Caffe's bvlc_alexnet, trained on ImageNet), the path to a `.weights.h5` or `.keras` "
    "file, or Caffe's bvlc_alexnet as a `.caffemodel` or `.onnx` file."
)


def weights_kind(weights) -> str:
    """What a `weights` argument names, from its value alone: `NO_WEIGHTS`, `IMAGENET`,
    `FOREIGN_FILE` (a `.caffemodel`/`.onnx`) or `KERAS_FILE` (anything else, which
    `resolve_weights` checks)."""
    if weights is None:
        return NO_WEIGHTS
    if isinstance(weights, str) and weights == IMAGENET:
        return IMAGENET
    if isinstance(weights, (str, os.PathLike)) and pretrained.is_pretrained_file(
        os.fspath(weights)
    ):
        return FOREIGN_FILE
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
        refusal = pretrained.refusal(path)
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
        return pretrained.read_network(self.path)

    def classes(self) -> int | None:
        """The classes of the classifier these weights hold; None without weights or for a
        file of the convolutional base only."""
        if self.kind == IMAGENET:
            return NUM_IMAGENET_CLASSES
        if self.kind == FOREIGN_FILE:
            return pretrained.classes_in(self.network)
        if self.kind == KERAS_FILE:
            return keras_file.saved_classes(self.path)
        return None

    def check_model(self, lrn: str | None, lrn_alpha_convention: str | None, init: str) -> None:
        """Raises `ValueError` when an AlexNet of these settings cannot take these weights."""
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
        if lrn_alpha_convention == "paper":
            raise ValueError(
                "lrn='caffe' always divides alpha by the window size (Caffe's convention); "
                "lrn_alpha_convention applies to lrn='paper' only. Received: "
                "lrn_alpha_convention='paper'"
            )

    def load_into(self, model: keras.Model, include_top: bool) -> None:
        """Sets `model`'s weights from these, after checking that they fit (a file that does
        not names the layer and both shapes). With `include_top=False` a full model's
        weights load their convolutional base."""
        if self.kind == IMAGENET:
            from keras_alexnet.pretrained import weights_cache

            cached = weights_cache.imagenet_weights_file(IMAGENET_WEIGHTS)
            # (Its values were checked when it was made; its sha256 against the record here.)
            keras_file.load_weights(model, cached, allow_unused=not include_top, check_values=False)
        elif self.kind == FOREIGN_FILE:
            pretrained.load_matched(model, self.network, include_top, self.path)
        elif self.kind == KERAS_FILE:
            keras_file.load_weights(model, self.path, allow_unused=not include_top)

    def by_layer(self, lrn: str, init: str) -> dict[str, list[np.ndarray]]:
        """The values of every layer with weights, by layer name, for a model of any class
        count (fine-tuning's starting point). A Keras file's are those of an AlexNet of `lrn`
        and `init` and the file's classes.

        Raises:
            ValueError: the file cannot be read or does not fit an AlexNet of `lrn` and `init`.
        """
        from keras_alexnet.alexnet import AlexNet

        if self.kind == FOREIGN_FILE:  # converted directly, without a model of its classes
            return bvlc_alexnet.keras_weights(self.network, self.classes() is not None)
        classes = self.classes()
        donor = AlexNet(
            include_top=classes is not None,
            weights=self.path or self.kind,
            classes=classes or NUM_IMAGENET_CLASSES,
            lrn=lrn,
            init=init,
        )
        return {layer.name: layer.get_weights() for layer in donor.layers if layer.weights}
