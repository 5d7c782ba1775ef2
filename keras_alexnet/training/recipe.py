"""The paper's optimisation (section 5): SGD with momentum and weight decay, and the model
compiled with it; or, for short runs from scratch, Adam, a warm-up with cosine decay and
gradient centralisation (`TrainConfig.optimizer`, `TrainConfig.lr_schedule`,
`TrainConfig.gradient_centralization`).

The paper's update rule is

    v <- 0.9 v - 0.0005 * lr * w - lr * dL/dw
    w <- w + v

with the weight decay inside the momentum. Keras 3's `SGD(weight_decay=...)` decays the
weights outside the momentum (decoupled), which is a different rule. Adding
`0.5 * 0.0005 * sum(w^2)` to the loss makes the gradient `dL/dw + 0.0005 w`, and plain
`SGD(momentum=0.9)` then performs exactly the paper's update.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from keras_alexnet.alexnet import AlexNet
from keras_alexnet.gradient_centralization import CentralizedAdam, CentralizedSGD
from keras_alexnet.training import fine_tuning
from keras_alexnet.training.config import (
    PAPER_LEARNING_RATE,
    PAPER_MOMENTUM,
    PAPER_WEIGHT_DECAY,
    SettingsError,
    TrainConfig,
)
from keras_alexnet.training.setup import TrainingSetup, on_jax


def paper_optimizer(
    learning_rate: float = PAPER_LEARNING_RATE,
    momentum: float = PAPER_MOMENTUM,
    gradient_centralization: bool = False,
) -> keras.optimizers.SGD:
    """SGD with (non-Nesterov) momentum and no decoupled weight decay; pair it with
    `apply_weight_decay` for the paper's rule. With `gradient_centralization` (not the
    paper's), on centred gradients (`gradient_centralization.CentralizedSGD`)."""
    for name, value in (("learning_rate", learning_rate), ("momentum", momentum)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SettingsError(f"{name} must be a non-negative number; received {name}={value!r}.")
    sgd = CentralizedSGD if gradient_centralization else keras.optimizers.SGD
    return sgd(learning_rate=learning_rate, momentum=momentum, nesterov=False)


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """The run's optimizer: the paper's SGD, or Adam (Keras' beta_1 and epsilon, beta_2
    `config.adam_beta_2`), both at `config.learning_rate` (which a `lr_schedule="cosine"`
    run's `StepSchedule` then sets at every step), both without a weight decay of their own
    (see `apply_weight_decay`), and either on centred gradients with
    `config.gradient_centralization`."""
    if config.optimizer == "adam":
        adam = CentralizedAdam if config.gradient_centralization else keras.optimizers.Adam
        return adam(learning_rate=config.learning_rate, beta_2=config.adam_beta_2)
    return paper_optimizer(config.learning_rate, config.momentum, config.gradient_centralization)


def warmup_cosine(
    learning_rate: float, epochs: int, steps_per_epoch: int, warmup_steps: int | None = None
) -> keras.optimizers.schedules.LearningRateSchedule:
    """`lr_schedule="cosine"`: the rate at each step of a run of `epochs` epochs: from 0 up to
    `learning_rate` in a straight line over the first epoch (half of a one-epoch run; or over
    `warmup_steps`, which `benchmarks/quickstart_recipes.py` varies), then down along a half
    cosine, reaching 0 as the run ends."""
    total = epochs * steps_per_epoch
    warmup = min(steps_per_epoch, total // 2) if warmup_steps is None else warmup_steps
    return keras.optimizers.schedules.CosineDecay(
        0.0, total - warmup, warmup_target=learning_rate, warmup_steps=warmup
    )


def apply_weight_decay(model: keras.Model, weight_decay: float = PAPER_WEIGHT_DECAY) -> None:
    """Adds the paper's weight decay to `model`'s loss: `0.5 * weight_decay * sum(w^2)` over
    every kernel (the paper decays the weights; biases are left alone, as in Caffe).

    Call it after building the model and before `fit`; with `weight_decay=0` it removes the
    term. It sets each kernel's regularizer, so the term is part of `model.losses`.
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)):
        raise SettingsError(
            f"weight_decay must be a number; received weight_decay={weight_decay!r}."
        )
    if weight_decay < 0:
        raise SettingsError(f"weight_decay must be >= 0; received weight_decay={weight_decay!r}.")
    regularizer = keras.regularizers.L2(0.5 * weight_decay) if weight_decay else None
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.trainable:
            kernel.regularizer = regularizer


def compiled_model(
    setup: TrainingSetup,
    build_model: Callable[..., keras.Model] | None = None,
    start_from_weights: bool = True,
) -> keras.Model:
    """AlexNet for the run's classes with its optimizer and the weight decay, built and compiled
    in the run's strategy scope from its seed, with top-1 and top-5 accuracy as metrics.

    With `config.weights` (and `start_from_weights`: not for a run that restores a backup),
    the model starts from those weights, its classifier fresh if the classes differ; the
    blocks before `config.train_from` are frozen, and the weight decay covers the trained
    kernels only. Both are printed.

    `build_model(classes=, init=, dropout_rate=, tower_devices=, lrn=)` builds the network
    instead of `AlexNet` (the tests' small stand-in).
    """
    config, distribution = setup.config, setup.distribution
    classes = setup.source.num_classes
    keras.utils.set_random_seed(config.seed)
    with distribution.scope():
        model = (build_model or AlexNet)(
            classes=classes,
            init=config.network_init,
            dropout_rate=config.dropout_rate,
            tower_devices=setup.towers,
            lrn=config.network_lrn,
        )
    if config.weights and start_from_weights:
        _start_from_weights(model, config, distribution)
    with distribution.scope():
        _freeze(model, config)
        apply_weight_decay(model, config.weight_decay)  # (after freezing: trained kernels only)
        model.compile(
            optimizer=make_optimizer(config),
            loss="sparse_categorical_crossentropy",
            metrics=[
                keras.metrics.SparseCategoricalAccuracy(name="top1_accuracy"),
                keras.metrics.SparseTopKCategoricalAccuracy(
                    k=min(5, classes), name="top5_accuracy"
                ),
            ],
            # (JAX runs a step that is not compiled op by op: always compiled there.)
            jit_compile=True if on_jax() else config.jit_compile,
        )
    return model


def _start_from_weights(
    model: keras.Model, config: TrainConfig, distribution: tf.distribute.Strategy
) -> None:
    """Sets `model` from `config.weights` (a fresh classifier for other classes), printed."""
    try:
        values = fine_tuning.starting_weights(
            config.weights, config.network_lrn, config.network_init
        )
        with distribution.scope():
            fresh = fine_tuning.start_from(model, values)
    except ValueError as error:  # the file, not the code: a setting to change
        raise SettingsError(f"weights={config.weights}: {error}") from None
    blocks, first = fine_tuning.BLOCKS, fine_tuning.BLOCKS.index(config.train_from)
    untrained = [name for name in fresh if blocks.index(fine_tuning.block_of(name)) < first]
    if untrained:  # they would stay at their random start
        raise SettingsError(
            f"weights={config.weights} hold no values for {', '.join(untrained)}, which "
            f"start fresh; train_from={config.train_from} would freeze them at their random "
            f"start. Give --train_from={fine_tuning.block_of(untrained[0])} or an earlier block."
        )
    if config.verbose:
        loaded = sum(1 for layer in model.layers if layer.weights) - len(fresh)
        line = f"Starting from weights={config.weights}: {loaded} layers loaded"
        if fresh:
            classes = model.get_layer("predictions").units
            line += f"; starting fresh: {', '.join(fresh)} ({classes} classes)"
        print(line + ".")


def _freeze(model: keras.Model, config: TrainConfig) -> None:
    """Freezes the blocks before `config.train_from`, printed."""
    frozen = fine_tuning.freeze_before(model, config.train_from)
    if frozen and config.verbose:
        print(
            f"Training {config.train_from} onwards; frozen (kept as loaded, no weight decay): "
            f"{', '.join(frozen)}."
        )
