"""keras_alexnet: the AlexNet of Krizhevsky, Sutskever & Hinton (2012) for TensorFlow/Keras 3."""

import warnings

from keras_alexnet import machine

# Before TensorFlow loads: its oneDNN CPU kernels on every x86-64 Linux CPU (see `machine`).
_onednn_warning = machine.use_onednn_kernels()
if _onednn_warning:
    warnings.warn(_onednn_warning, stacklevel=2)

from keras_alexnet import native_logs  # noqa: E402

# TensorFlow loads here. A script that asked for a quiet start (native_logs.QUIET_ENV) gets
# TensorFlow's start-up lines, and those of its first device probe, kept off the screen.
with native_logs.startup_lines_hidden(native_logs.quiet_requested()):
    # (gradient_centralization: imported so that its optimizers, in the .keras files of runs
    # that used them, load as the layers do)
    from keras_alexnet import gradient_centralization, layers  # noqa: E402, F401
    from keras_alexnet.alexnet import (  # noqa: E402
        AlexNet,
        decode_predictions,
        feature_extractor,
        preprocess_input,
    )
    from keras_alexnet.imagenet import imagenet_class_index, imagenet_class_names  # noqa: E402
    from keras_alexnet.pretrained.imagenet_weights import (  # noqa: E402
        IMAGENET_WEIGHTS,
        PretrainedWeights,
    )

    if native_logs.quiet_requested():
        import tensorflow as _tf

        _tf.config.list_physical_devices()  # the CUDA probe and its lines, now

__version__ = "0.1.0"

__all__ = [
    "AlexNet",
    "IMAGENET_WEIGHTS",
    "PretrainedWeights",
    "decode_predictions",
    "feature_extractor",
    "imagenet_class_index",
    "imagenet_class_names",
    "layers",
    "preprocess_input",
]
