"""int8 weights for the dense layers, where AlexNet's parameters are.

fc6, fc7 and the classifier hold 58.6M of the 61.0M parameters at 1000 classes (96%; paper
3.5's layer sizes). Keras' `model.quantize("int8")` stores each of their kernels as int8 with
one float32 scale per output unit (absmax), and quantizes the layer's input per row at run
time; the convolutions, LRN and pooling stay float32. docs/results.md ("int8") has the
measured size, speed and accuracy against float32.
"""

from __future__ import annotations

import keras

# The dense layers of both towers and the classifier (alexnet.py's names).
DENSE_LAYERS = r"^(fc6_a|fc6_b|fc7_a|fc7_b|predictions)$"
MODES = ("int8",)


def quantize_dense_layers(model: keras.Model, mode: str = "int8") -> keras.Model:
    """Quantizes fc6, fc7 and `predictions` of an AlexNet in place and returns it.

    The model is for inference afterwards (Keras trains int8 layers only through their
    float32 gradients, which this package does not do). A `.keras` file of it keeps the int8
    weights, and so does its SavedModel export. The ONNX export writes float32 weights and
    TensorFlow's LiteRT converter cannot convert them (an int8 `BatchMatMulV3`), so
    `portable_export` refuses both for a quantized model.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; received mode={mode!r}.")
    names = {layer.name for layer in model.layers}
    missing = {"fc6_a", "fc6_b", "fc7_a", "fc7_b", "predictions"} - names
    if missing:
        raise ValueError(
            f"quantize_dense_layers needs an AlexNet with its top (include_top=True); model "
            f"{model.name!r} has no layer {', '.join(sorted(missing))}."
        )
    already = [layer.name for layer in model.layers if getattr(layer, "quantization_mode", None)]
    if already:
        raise ValueError(f"model {model.name!r} is already quantized ({', '.join(already)}).")
    model.quantize(mode, filters=DENSE_LAYERS)
    return model
