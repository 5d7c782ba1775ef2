"""Layers that run on a chosen device: how AlexNet's two towers are split over two devices.

The paper (section 3.2) put half of the kernels on each of two GPUs. In Keras 3 a `tf.device`
scope around the construction of a functional model is not recorded in the graph, so the
scope has to be opened each time a layer runs. `DevicePlacement` does that around the whole of
`Layer.__call__` (variable creation in `build`, the dtype casts and `call`), so the layer's
forward ops and its variables land on `device`.

The backward pass needs more: `tf.GradientTape` creates gradient ops under whatever device
scope is open when `tape.gradient` is called, not where the forward op ran, so without help
all of tower b's gradients would run on the first device. A placed layer therefore records
its forward pass on a tape of its own and, through `tf.custom_gradient`, computes its part of
the backward pass from that tape inside its device scope. Nothing is recomputed.

With `device=None` nothing is scoped and the layer runs wherever its caller runs (one replica
of a distribution strategy, say), with no custom gradient.

The placed layers are ordinary Keras layers in every other respect:
`isinstance(model.get_layer("conv1_a"), keras.layers.Conv2D)` holds.

Placement is TensorFlow's (`tf.device`, `tf.custom_gradient`): a device needs Keras'
TensorFlow backend, and TensorFlow is imported only when a layer has one. With `device=None`
the layers run on every Keras 3 backend.
"""

from __future__ import annotations

import contextlib
import functools

import keras


def _validate_device(device) -> None:
    if device is None:
        return
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Placing layers on devices (device=..., or AlexNet's tower_devices) uses tf.device "
            "and needs Keras' TensorFlow backend; the backend is "
            f"{keras.backend.backend()!r}. Received device={device!r}. Leave it None (the "
            "model then runs where the backend puts it; under JAX, keras.distribution spreads "
            "it over devices), or set KERAS_BACKEND=tensorflow."
        )
    import tensorflow as tf

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


def _is_symbolic(inputs) -> bool:
    return any(keras.backend.is_keras_tensor(x) for x in keras.tree.flatten(inputs))


def _scope(device):
    if not device:
        return contextlib.nullcontext()
    import tensorflow as tf

    return tf.device(device)


def _with_placed_gradient(device, call, inputs, kwargs):
    """Runs `call(inputs, **kwargs)`; its gradients are computed on `device` too."""
    import tensorflow as tf

    flat_inputs = tf.nest.flatten(inputs)

    @tf.custom_gradient
    def forward(*tensors):
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            outputs = call(tf.nest.pack_sequence_as(inputs, list(tensors)), **kwargs)

        def backward(*output_grads, variables=None):
            sources = list(tensors) + list(variables or [])
            with tf.device(device):
                grads = tape.gradient(
                    outputs,
                    sources,
                    output_gradients=list(output_grads),
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
            input_grads = grads[: len(tensors)]
            if variables is None:
                return input_grads
            return input_grads, grads[len(tensors) :]

        return outputs, backward

    return forward(*flat_inputs)


def _executing_eagerly() -> bool:
    import tensorflow as tf

    return tf.executing_eagerly()


class DevicePlacement:
    """Mixin for a Keras layer: runs the layer's ops and creates its variables on `device`.

    Put it first among the bases: `class PlacedConv2D(DevicePlacement, keras.layers.Conv2D)`.
    The subclass's `call` (its own or the Keras layer's) is wrapped so that, with a device
    set, its backward pass runs on that device as well; `functools.wraps` keeps the original
    signature, from which Keras learns whether to pass `training`.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        layer_call = cls.call

        @functools.wraps(layer_call)
        def call(self, inputs, *args, **call_kwargs):
            if not self.device or args or _is_symbolic(inputs) and not _executing_eagerly():
                return layer_call(self, inputs, *args, **call_kwargs)
            return _with_placed_gradient(
                self.device, functools.partial(layer_call, self), inputs, call_kwargs
            )

        cls.call = call

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

    def quantize(self, mode=None, type_check=True, config=None):
        # Keras quantizes only exact Dense layers by default, since a subclass's own `call`
        # would ignore the quantized weights. This class has Dense's `call` (only placed),
        # and a quantized layer runs Dense's quantized call instead.
        super().quantize(mode, type_check=False, config=config)


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
