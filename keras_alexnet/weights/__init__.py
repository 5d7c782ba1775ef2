"""The weights wing: everything a model can start from, and nothing that builds a model.

- `resolve`: what a `weights` argument names (`resolve_weights` -> `Weights`, its `kind`), what
  it requires of the model, how it loads into the model it is given, what it refuses;
- `imagenet_release`: the trained ImageNet weights as released (`IMAGENET_WEIGHTS`);
- `cache`: those weights in the Keras cache: found, or downloaded, checked, converted once;
- `keras_file`: this package's own `.keras`/`.weights.h5` files, checked against a model;
- `caffe`: Caffe's bvlc_alexnet in its Caffe and ONNX file forms, read and matched.

The rule of the wing: it never imports the model builder (`keras_alexnet.alexnet`). A model is
built by its caller (`AlexNet`, fine-tuning, `alexnet-convert-weights`) and handed in.
"""

from keras_alexnet.weights.resolve import (
    CAFFE_FILE,
    CAFFE_KINDS,
    IMAGENET,
    KERAS_FILE,
    NO_WEIGHTS,
    Weights,
    resolve_weights,
    weights_kind,
    weights_variant,
)

__all__ = [
    "CAFFE_FILE",
    "CAFFE_KINDS",
    "IMAGENET",
    "KERAS_FILE",
    "NO_WEIGHTS",
    "Weights",
    "resolve_weights",
    "weights_kind",
    "weights_variant",
]
