"""Exports for runtimes other than TF Serving: ONNX (onnxruntime, TensorRT, OpenVINO, ...) and
LiteRT (TensorFlow Lite: phones and small devices).

Each holds the model with its mean subtraction, so it takes what `predict_images` of the
SavedModel takes: `images`, float32 [batch, 227, 227, 3], RGB on the 0..255 scale, centre-
cropped as evaluation does (docs/inputs.md); and it gives `probabilities` [batch, classes].
ONNX is written operator by operator (`onnx_export`: Keras' tf2onnx route held 11.7 GB of
memory for it); LiteRT is Keras' own exporter (`model.export(format="litert")`, TensorFlow's
converter). LRN stays one operator (ONNX `LRN`, LiteRT `LOCAL_RESPONSE_NORMALIZATION`) and
the towers stay ten convolutions; the Caffe variant's cross-tower LRN becomes a
concatenation of the other tower's two edge channels, an LRN and a slice. An ONNX file also
carries its class names, the mean and the model card in its metadata (`metadata_props`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import keras
import numpy as np

from keras_alexnet import files
from keras_alexnet.alexnet import DEFAULT_SIZE
from keras_alexnet.data.stats import ColorStats
from keras_alexnet.serving import onnx_export

# What `export_portable` writes, by format, and where in an export's version directory.
FILE_NAMES = {"onnx": "model.onnx", "litert": "model.tflite"}
FORMATS = tuple(FILE_NAMES)


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The formats asked for, each known and named once, or a ValueError naming the others."""
    unknown = [f for f in formats if f not in FILE_NAMES]
    if unknown:
        raise ValueError(
            f"unknown export format(s) {', '.join(map(repr, unknown))}; the formats are "
            f"{', '.join(FORMATS)} (the SavedModel is always written)."
        )
    return tuple(dict.fromkeys(formats))


def check_exportable(model: keras.Model, formats: Sequence[str]) -> tuple[str, ...]:
    """`check_formats`, and a ValueError if `model` cannot be written in one of them."""
    formats = check_formats(formats)
    if "onnx" in formats:
        onnx_export.check_model(model)
    quantized = [layer.name for layer in model.layers if getattr(layer, "quantization_mode", None)]
    if "litert" in formats and quantized:
        raise ValueError(
            f"LiteRT's converter cannot convert Keras' int8 dense layers ({', '.join(quantized)}: "
            "an int8 BatchMatMulV3). Export the float32 model to LiteRT (and quantize there if "
            "needed), or export this one as a SavedModel, which keeps int8."
        )
    return formats


def with_preprocessing(model: keras.Model, stats: ColorStats) -> keras.Model:
    """`model` behind its mean subtraction: 0..255 RGB images in, `probabilities` out."""
    images = keras.Input((DEFAULT_SIZE, DEFAULT_SIZE, 3), name="images")
    centred = keras.layers.Rescaling(
        1.0, offset=[-float(m) for m in stats.mean_rgb], name="subtract_mean"
    )(images)
    probabilities = keras.layers.Identity(name="probabilities")(model(centred))
    portable = keras.Model(images, probabilities, name=f"{model.name}_portable")
    portable(np.zeros((1, DEFAULT_SIZE, DEFAULT_SIZE, 3), "float32"))  # exporters need a call
    return portable


def export_portable(
    model: keras.Model,
    directory: str,
    fmt: str,
    stats: ColorStats,
    class_names: Sequence[str],
    card: dict | None = None,
) -> str:
    """Writes `model` (with its mean subtraction) in format `fmt` to `directory/FILE_NAMES[fmt]`
    and returns the path. The file lands whole (`files.atomic_save`)."""
    (fmt,) = check_exportable(model, [fmt])
    path = os.path.join(directory, FILE_NAMES[fmt])

    def write(temporary: str) -> None:
        if fmt == "onnx":
            _write_onnx(model, temporary, stats, class_names, card)
        else:
            with_preprocessing(model, stats).export(temporary, format="litert", verbose=False)

    files.atomic_save(write, path)
    return path


def _write_onnx(model, path: str, stats: ColorStats, class_names, card) -> None:
    import onnx  # deferred, optional: the [onnx] extra

    metadata = {
        "class_names": json.dumps(list(class_names)),
        "mean_rgb": json.dumps([float(m) for m in stats.mean_rgb]),
        "input": "images: float32 [batch, 227, 227, 3], RGB 0..255, centre-cropped",
        "model_card": json.dumps(card or {}),
    }
    proto = onnx_export.onnx_model(model, stats.mean_rgb, metadata)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
