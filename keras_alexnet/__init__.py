"""keras_alexnet: the AlexNet of Krizhevsky, Sutskever & Hinton (2012) for TensorFlow/Keras 3.

Importing the package touches no file descriptor and prints nothing of its own: keeping
TensorFlow's start-up lines off the screen is the commands' concern (`keras_alexnet_cli`).
"""

import warnings

from keras_alexnet import machine
from keras_alexnet.version import __version__

# Before TensorFlow loads: its oneDNN CPU kernels on every x86-64 Linux CPU (see `machine`).
_onednn_warning = machine.use_onednn_kernels()
if _onednn_warning:
    warnings.warn(_onednn_warning, stacklevel=2)

# (gradient_centralization: imported so that its optimizers, in the .keras files of runs that
# used them, load as the layers do)
from keras_alexnet import gradient_centralization, layers  # noqa: E402, F401
from keras_alexnet.alexnet import (  # noqa: E402
    AlexNet,
    decode_predictions,
    feature_extractor,
    preprocess_input,
)
from keras_alexnet.imagenet import imagenet_class_index, imagenet_class_names  # noqa: E402
from keras_alexnet.weights.imagenet_release import (  # noqa: E402
    IMAGENET_WEIGHTS,
    PretrainedWeights,
)

__all__ = [
    "AlexNet",
    "IMAGENET_WEIGHTS",
    "PretrainedWeights",
    "__version__",
    "decode_predictions",
    "feature_extractor",
    "imagenet_class_index",
    "imagenet_class_names",
    "layers",
    "preprocess_input",
]
