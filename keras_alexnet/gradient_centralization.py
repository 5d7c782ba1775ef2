"""Gradient centralisation (`TrainConfig.gradient_centralization`, not in the paper): before
each update, every kernel's gradient loses its mean over the kernel's inputs, per output unit.

For a Dense kernel `(inputs, units)` the gradient of unit `j` becomes
`g[:, j] - mean_i g[i, j]`; for a Conv2D kernel `(height, width, channels, filters)` the mean
is over height, width and channels, per filter. Biases (and any variable of rank below 2)
are left as they are. The rest of the optimizer's rule is unchanged, on the centred gradient.

Why AlexNet needs it in a short run from scratch (docs/notes/quickstart-history.md): the inputs of
conv2 to fc8 are ReLU outputs, all positive, so each filter's gradient carries a component
shared by all its weights; Adam turns even a small shared component into a full step, every
kernel drifts negative together, and most units switch off within the first 25 steps.
Removing the shared component keeps them on; the network itself is unchanged.
"""

from __future__ import annotations

import keras


def centralize(gradient, variable):
    """`gradient` less its mean over every axis of `variable` but the last (the output
    units), for a variable of rank 2 or more; `gradient` itself otherwise."""
    rank = len(variable.shape)
    if rank < 2:
        return gradient
    return gradient - keras.ops.mean(gradient, axis=tuple(range(rank - 1)), keepdims=True)


class _Centralized:
    """Mixed in before a Keras optimizer: its `update_step` sees centred gradients."""

    def update_step(self, gradient, variable, learning_rate):
        return super().update_step(centralize(gradient, variable), variable, learning_rate)


@keras.saving.register_keras_serializable(package="keras_alexnet")
class CentralizedSGD(_Centralized, keras.optimizers.SGD):
    """Keras' `SGD`, on centred gradients."""


@keras.saving.register_keras_serializable(package="keras_alexnet")
class CentralizedAdam(_Centralized, keras.optimizers.Adam):
    """Keras' `Adam`, on centred gradients."""
