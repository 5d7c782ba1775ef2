"""What a training run works with, settled once before anything is written: `set_up(config)`
checks the config, makes the strategy (`strategies` on TensorFlow, `jax_distribution` on
JAX), chooses the precision (`precision`, printed), opens the dataset and its pixel
statistics, and counts an epoch's steps. The result, a `TrainingSetup`, is what every later
step of the run takes.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

import keras
import tensorflow as tf
from absl import logging

from keras_alexnet import data
from keras_alexnet.training import precision
from keras_alexnet.training.config import SettingsError, TrainConfig
from keras_alexnet.training.strategies import (
    cluster_size,
    is_chief,
    make_strategy,
    replica_devices,
)

# Kept, behind this warning (docs/design.md, "Several machines").
MULTI_WORKER_WARNING = (
    "strategy=multi_worker on TensorFlow is MultiWorkerMirroredStrategy, which Keras 3 does not "
    "support: it works here through two patches of private Keras APIs (compat.py), checked "
    "with the Keras versions setup.py allows. For several machines prefer KERAS_BACKEND=jax "
    "(keras.distribution; docs/training.md)."
)


@dataclasses.dataclass(frozen=True)
class TrainingSetup:
    """A run's config and what it settled: where it computes (`distribution`, and `towers`
    for strategy=towers), in which precision, on which data (`source`, `stats`), how many
    steps an epoch has, whether this process is the chief, and how many workers there are."""

    config: TrainConfig
    distribution: tf.distribute.Strategy  # or, on JAX, a `jax_distribution.JaxDistribution`
    towers: Sequence[str] | None
    precision: precision.PrecisionChoice
    source: data.Source
    stats: data.ColorStats
    steps: int
    chief: bool
    workers: int

    @property
    def multi_worker(self) -> bool:
        return self.workers > 1


def set_up(config: TrainConfig) -> TrainingSetup:
    """Checks `config` and settles what the run works with (see the module's docstring).

    Raises:
        SettingsError: a setting, or the data it names, cannot be used.
    """
    config.validate()
    distribution, towers = _make_distribution(config)
    choice = _choose_precision(config.mixed_precision, distribution, towers, config.verbose)
    check_batch_divides(config.batch_size, distribution.num_replicas_in_sync)
    source, stats = open_data(config)
    if on_jax():
        chief, workers = distribution.chief, distribution.process_count
    else:
        chief = is_chief(distribution)
        workers = cluster_size() if config.strategy == "multi_worker" else 1
    return TrainingSetup(
        config=config,
        distribution=distribution,
        towers=towers,
        precision=choice,
        source=source,
        stats=stats,
        steps=steps_per_epoch(config, source),
        chief=chief,
        workers=workers,
    )


def on_jax() -> bool:
    """Whether Keras runs on JAX (else TensorFlow: `_make_distribution` refuses the rest)."""
    return keras.backend.backend() == "jax"


def _make_distribution(config: TrainConfig):
    """The strategy of `--strategy` for the backend Keras runs on, and the tower devices."""
    if on_jax():
        from keras_alexnet.training import jax_distribution  # (jax: optional, on its backend only)

        return jax_distribution.make_distribution(
            config.strategy, config.devices, config.tower_devices
        ), None
    if keras.backend.backend() != "tensorflow":
        raise SettingsError(
            f"training runs on Keras' TensorFlow and JAX backends; KERAS_BACKEND is "
            f"{keras.backend.backend()!r}. Run with KERAS_BACKEND=jax or tensorflow."
        )
    if config.strategy == "multi_worker":
        logging.warning(MULTI_WORKER_WARNING)
        print(f"WARNING: {MULTI_WORKER_WARNING}", file=sys.stderr)
    return make_strategy(config.strategy, config.devices, config.tower_devices)


def _choose_precision(
    requested: str, distribution, towers, verbose: int
) -> precision.PrecisionChoice:
    """The run's precision for the devices its replicas (or towers) run on, printed."""
    if on_jax():
        choice = precision.choose_precision(
            requested,
            distribution.device_names(),
            gpu_capabilities=distribution.gpu_capabilities(),
            backend="jax",
        )
    else:
        devices = list(towers or replica_devices(distribution))
        choice = precision.choose_precision(requested, devices)
    if verbose:
        print(f"Training in {choice.describe()}.")
    if choice.warning:
        logging.warning(choice.warning)
        print(f"WARNING: {choice.warning}", file=sys.stderr)
    return choice


def open_data(config: TrainConfig) -> tuple[data.Source, data.ColorStats]:
    """The dataset's source and the pixel statistics to train with, checked."""
    try:
        source, stats = data.open_dataset(
            config.dataset,
            data_dir=config.data_dir,
            manual_dir=config.manual_dir,
            image_dir=config.image_dir,
            stats_file=config.stats,
            seed=config.seed,
        )
    except ValueError as error:
        raise SettingsError(str(error)) from None
    if source.num_classes < 2:
        raise SettingsError(
            f"{source.name} has {source.num_classes} class ({list(source.class_names)}): a "
            "classifier needs at least 2 (with one, every prediction is right). Add a folder "
            "per class."
        )
    return source, stats


def steps_per_epoch(config: TrainConfig, source: data.Source) -> int:
    """Full global batches in the train split, at most `config.steps_per_epoch`."""
    num_train = source.num_examples["train"]
    if num_train < config.batch_size:
        raise SettingsError(
            f"batch_size={config.batch_size} is larger than the {num_train} training images of "
            f"{source.name}; use a smaller batch_size."
        )
    steps = num_train // config.batch_size
    return min(steps, config.steps_per_epoch) if config.steps_per_epoch else steps


def check_batch_divides(batch_size: int, replicas: int) -> None:
    if batch_size % replicas:
        raise SettingsError(
            f"batch_size (the global batch) must divide evenly over the {replicas} replicas; "
            f"received batch_size={batch_size}. Use a multiple of {replicas}."
        )
