"""Training: the paper's optimisation (section 5).

So far this module holds the optimizer and the weight decay; the strategy, callbacks and the
fit loop arrive with `scripts/train.py`.

The paper's update rule is

    v <- 0.9 v - 0.0005 * lr * w - lr * dL/dw
    w <- w + v

with the weight decay inside the momentum. Keras 3's `SGD(weight_decay=...)` decays the
weights outside the momentum (decoupled), which is a different rule. Adding
`0.5 * 0.0005 * sum(w^2)` to the loss makes the gradient `dL/dw + 0.0005 w`, and plain
`SGD(momentum=0.9)` then performs exactly the paper's update.
"""

from __future__ import annotations

import keras

# Paper 5: "stochastic gradient descent with a batch size of 128 examples, momentum of 0.9,
# and weight decay of 0.0005", learning rate initialised at 0.01.
PAPER_BATCH_SIZE = 128
PAPER_MOMENTUM = 0.9
PAPER_WEIGHT_DECAY = 0.0005
PAPER_LEARNING_RATE = 0.01


def paper_optimizer(
    learning_rate: float = PAPER_LEARNING_RATE, momentum: float = PAPER_MOMENTUM
) -> keras.optimizers.SGD:
    """SGD with (non-Nesterov) momentum and no decoupled weight decay; pair it with
    `apply_weight_decay` for the paper's rule."""
    for name, value in (("learning_rate", learning_rate), ("momentum", momentum)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a non-negative number; received {name}={value!r}.")
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=False)


def apply_weight_decay(model: keras.Model, weight_decay: float = PAPER_WEIGHT_DECAY) -> None:
    """Adds the paper's weight decay to `model`'s loss: `0.5 * weight_decay * sum(w^2)` over
    every kernel (the paper decays the weights; biases are left alone, as in Caffe).

    Call it after building the model and before `fit`; with `weight_decay=0` it removes the
    term. It sets each kernel's regularizer, so the term is part of `model.losses`.
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)):
        raise ValueError(f"weight_decay must be a number; received weight_decay={weight_decay!r}.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0; received weight_decay={weight_decay!r}.")
    regularizer = keras.regularizers.L2(0.5 * weight_decay) if weight_decay else None
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.trainable:
            kernel.regularizer = regularizer
