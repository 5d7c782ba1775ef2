"""Loading a weights file into a model, with an error that says what does not fit.

Keras 3 matches a `.weights.h5` file (or the weights inside a `.keras` file) to a model by
position: each layer's weights sit under `layers/<snake_case class name>[_N]/vars/<i>`. A file
from another class count or another architecture then fails deep inside `variable.assign`
with a message that does not name the layer, or, worse, loads in part. This module checks the
file against the model first and names the first layer that does not fit and both shapes.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile

import h5py
import keras
import numpy as np

from keras_alexnet import compat, untrusted

WEIGHTS_SUFFIXES = (".weights.h5", ".keras")


# Layers without weights that still change the numbers: a file saved with one must not load
# silently into a model without it, or the other way round. For each, the AlexNet argument
# that makes the difference: `init="he"` adds a fixed Rescaling layer, `lrn="caffe"` normalises
# across both towers with its own layer class.
_WEIGHTLESS_BUT_SIGNIFICANT = {
    "rescaling": "a fixed input_scaling layer (AlexNet's init='he' against init='paper')",
    "cross_tower_local_response_normalization": (
        "Caffe's cross-tower LRN (AlexNet's lrn='caffe' against lrn='paper')"
    ),
}


def _saved_shapes(h5_file: h5py.File) -> dict[str, list[tuple[int, ...]]]:
    """Maps each layer key in a Keras weights file to the shapes of its variables, in order
    (an empty list for a layer without variables)."""
    layers = h5_file.get("layers")
    if layers is None:
        return {}
    shapes = {}
    for key, group in layers.items():
        variables = group.get("vars")
        count = 0 if variables is None else len(variables)
        shapes[key] = [tuple(variables[str(i)].shape) for i in range(count)]
    return shapes


def _expected_shapes(model: keras.Model) -> list[tuple[str, keras.layers.Layer, list]]:
    """The key Keras saves each layer under, the layer, and its variables' shapes."""
    used: dict[str, int] = {}
    expected = []
    for layer in model.layers:
        base = compat.weights_file_key(layer.__class__.__name__)
        count = used.get(base, 0)
        used[base] = count + 1
        key = base if count == 0 else f"{base}_{count}"
        expected.append((key, layer, [tuple(v.shape) for v in layer.weights]))
    return expected


def _open_weights(path: str) -> h5py.File:
    """The HDF5 weights of a `.weights.h5` or `.keras` file, each bounded before it is read
    (`untrusted`: a regular file, members of sizes an AlexNet can have)."""
    if path.endswith(".keras"):
        untrusted.check_keras_archive(path)
        with zipfile.ZipFile(path) as archive:
            data = archive.read("model.weights.h5")
        return h5py.File(io.BytesIO(data), "r")
    fd, _ = untrusted.open_regular(path, untrusted.MAX_INFLATED_BYTES, "The weights file")
    os.close(fd)
    return h5py.File(path, "r")


def _read_saved_shapes(path: str) -> dict[str, list[tuple[int, ...]]]:
    try:
        with _open_weights(path) as h5_file:
            return _saved_shapes(h5_file)
    except (
        OSError,
        KeyError,
        ValueError,
        AttributeError,  # a dataset where a group belongs
        NotImplementedError,  # a zip compression Python does not read
        zipfile.BadZipFile,
    ) as error:
        raise ValueError(
            f"weights={path!r} could not be read as a Keras weights file ({error}). Pass a "
            "file written by `model.save_weights('x.weights.h5')` or `model.save('x.keras')`."
        ) from None


def saved_classes(path: str | os.PathLike) -> int | None:
    """The class count of the classifier (`predictions`, the model's only plain `Dense`) in a
    `.weights.h5` or `.keras` file of an AlexNet, or None for a file without the top."""
    shapes = _read_saved_shapes(os.fspath(path)).get("dense")
    return shapes[1][0] if shapes and len(shapes) == 2 and len(shapes[1]) == 1 else None


def saved_variant(path: str | os.PathLike) -> dict[str, str]:
    """The AlexNet arguments that shape the network a `.weights.h5` or `.keras` file of an
    AlexNet was saved from, read from its weightless layers: {"init": "he" or "paper",
    "lrn": "caffe" or "paper"}.

    Raises:
        ValueError: the file cannot be read as a Keras weights file.
    """
    path = os.fspath(path)
    shapes = _read_saved_shapes(path)
    first = shapes.get("placed_conv2d") or [()]
    if len(first[0]) != 4 or first[0][:2] != (11, 11):  # conv1_a: 11x11 kernels (section 3.5)
        raise ValueError(
            f"weights={path!r} was not saved from this package's AlexNet (it has no conv1 of "
            f"11x11 kernels; its layers: {', '.join(list(shapes)[:6]) or 'none'}...). Give "
            "the .keras or .weights.h5 of an AlexNet, or train from scratch."
        )
    return _variant_of(shapes)


def model_variant(model: keras.Model) -> dict[str, str]:
    """`saved_variant` of a built model: what its file would say."""
    return _variant_of({key for key, _, _ in _expected_shapes(model)})


def _variant_of(layer_keys) -> dict[str, str]:
    return {
        "init": "he" if "rescaling" in layer_keys else "paper",
        "lrn": "caffe" if "cross_tower_local_response_normalization" in layer_keys else "paper",
    }


def check_weights_fit(model: keras.Model, path: str, allow_unused: bool = False) -> None:
    """Raises `ValueError` when the weights in `path` do not fit `model`.

    Args:
        model: a built Keras model.
        path: a `.weights.h5` or `.keras` file.
        allow_unused: accept a file that holds more layers than the model, as when the
            convolutional base of a full model is loaded into `AlexNet(include_top=False)`.
    """
    saved = _read_saved_shapes(path)
    matched = set()
    expected = _expected_shapes(model)
    for name, what in _WEIGHTLESS_BUT_SIGNIFICANT.items():
        in_model = any(key == name for key, _, _ in expected)
        if in_model != (name in saved):
            where = "the model has" if in_model else "the file was saved from a model with"
            raise ValueError(
                f"The weights file {path!r} does not fit this model: {where} {what}, and the "
                "other has not. Build the model with the arguments the file was saved with."
            )
    for key, layer, shapes in expected:
        if not shapes:
            continue
        if key not in saved:
            raise ValueError(
                f"The weights file {path!r} does not fit this model: it has no weights for "
                f"layer '{layer.name}' ({layer.__class__.__name__}, weight shapes {shapes}). "
                "It was written by a different architecture; build the model it came from."
            )
        matched.add(key)
        if saved[key] != shapes:
            raise ValueError(
                f"The weights file {path!r} does not fit this model: layer '{layer.name}' has "
                f"weight shapes {shapes} in the model but {saved[key]} in the file. A different "
                "`classes` or input shape? Build the model with the arguments the file was "
                "saved with."
            )
    unused = sorted(key for key, shapes in saved.items() if shapes and key not in matched)
    if unused and not allow_unused:
        raise ValueError(
            f"The weights file {path!r} does not fit this model: it holds weights for layers "
            f"the model does not have (saved as {unused}). It was written by a larger model; "
            "build the model it came from."
        )


def load_weights(
    model: keras.Model,
    path: str | os.PathLike,
    allow_unused: bool = False,
    check_values: bool = True,
):
    """Checks that the weights file fits `model` (see `check_weights_fit`), then loads it and,
    with `check_values`, checks that every value is finite (`check_finite`; the weights cache
    skips it: its files match a record made from checked values).

    Raises:
        ValueError: the file does not fit, or it holds NaN or infinite values (naming the
            layer); the model then holds part of the file, so build it again.
    """
    path = os.fspath(path)
    check_weights_fit(model, path, allow_unused=allow_unused)
    with warnings.catch_warnings():
        # The file has been checked layer by layer; Keras still warns about the
        # bookkeeping containers of functional models that hold no weights.
        warnings.filterwarnings("ignore", message="Skipping nested container")
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)
    if check_values:
        check_finite(model, path)


def check_finite(model: keras.Model, source: str) -> None:
    """Raises `ValueError` naming the first layer of `model` with a NaN or infinite weight:
    a model that computes NaN for every image is refused, not loaded silently."""
    for layer in model.layers:
        for variable in layer.weights:
            values = keras.ops.convert_to_numpy(variable)
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            if bad:
                raise ValueError(
                    f"The weights file {source!r} holds {bad:,} NaN or infinite values in layer "
                    f"'{layer.name}' ({variable.path}). It was saved from a run that diverged "
                    "or is damaged: use an earlier checkpoint or another copy."
                )
