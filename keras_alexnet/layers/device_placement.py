"""Layers that run on a chosen device: how AlexNet's two towers are split over two devices.

The paper (section 3.2) put half of the kernels on each of two GPUs. In Keras 3 a `tf.device`
scope around the construction of a functional model is not recorded in the graph, so the
scope has to be opened each time a layer runs. `DevicePlacement` does that around the whole of
`Layer.__call__` (variable creation in `build`, the dtype casts and `call`), so every op of the
layer, and its variables, land on `device`. With `device=None` nothing is scoped and the layer
runs wherever its caller runs (one replica of a distribution strategy, say).

The placed layers are ordinary Keras layers in every other respect:
`isinstance(model.get_layer("conv1_a"), keras.layers.Conv2D)` holds.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf


def _validate_device(device) -> None:
    if device is None:
        return
    if not isinstance(device, str) or not device:
        raise ValueError(
            "device must be None or a TensorFlow device string such as '/GPU:0' or "
            f"'/job:localhost/replica:0/task:0/device:CPU:1'; received device={device!r}."
        )
    try:
        tf.DeviceSpec.from_string(device)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"device must be a TensorFlow device string such as '/GPU:0'; received "
            f"device={device!r} ({error})."
        ) from None


def _scope(device):
    return tf.device(device) if device else contextlib.nullcontext()


class DevicePlacement:
    """Mixin for a Keras layer: runs the layer's ops and creates its variables on `device`.

    Put it first among the bases: `class PlacedConv2D(DevicePlacement, keras.layers.Conv2D)`.
    """

    def __init__(self, *args, device: str | None = None, **kwargs):
        _validate_device(device)
        # Some layers make state in __init__ already (Dropout's seed generator variable).
        with _scope(device):
            super().__init__(*args, **kwargs)
        self.device = device

    def __call__(self, *args, **kwargs):
        with _scope(self.device):
            return super().__call__(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["device"] = self.device
        return config


@keras.saving.register_keras_serializable(package="keras_alexnet")
class PlacedConv2D(DevicePlacement, keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose ops run on `device`."""


@keras.saving.register_keras_serializable(package="keras_alexnet")
class PlacedDense(DevicePlacement, keras.layers.Dense):
    """`keras.layers.Dense` whose ops run on `device`."""


@keras.saving.register_keras_serializable(package="keras_alexnet")
class PlacedMaxPooling2D(DevicePlacement, keras.layers.MaxPooling2D):
    """`keras.layers.MaxPooling2D` whose ops run on `device`."""


@keras.saving.register_keras_serializable(package="keras_alexnet")
class PlacedDropout(DevicePlacement, keras.layers.Dropout):
    """`keras.layers.Dropout` whose ops run on `device`."""


@keras.saving.register_keras_serializable(package="keras_alexnet")
class PlacedConcatenate(DevicePlacement, keras.layers.Concatenate):
    """`keras.layers.Concatenate` whose ops run on `device`: how a tower reads the other's
    activations, at conv3, fc6 and fc7 (paper, figure 2)."""


@keras.saving.register_keras_serializable(package="keras_alexnet")
class PlacedFlatten(DevicePlacement, keras.layers.Flatten):
    """`keras.layers.Flatten` whose ops run on `device`."""
