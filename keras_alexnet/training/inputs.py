"""A training run's input: each epoch's seeded stream (`epoch_batches`), and `TrainingInputs`,
the training and validation datasets distributed over the run's strategy.

Each epoch's stream depends only on (seed, epoch), so a resumed run sees the batches an
uninterrupted one would (docs/training.md, "A run is safe to stop").
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from keras_alexnet import data
from keras_alexnet.training.config import SettingsError
from keras_alexnet.training.setup import TrainingSetup, on_jax


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch`'s stream: a function of (seed, epoch) only."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def epoch_batches(
    source, batch_size, batches, skip, stats, seed, num_shards=1, shard_index=0
) -> tf.data.Dataset:
    """Batches `skip` ... `batches - 1` of one epoch's stream of one input pipeline.

    The stream is the seeded pass over the train split (`data.train_dataset`), then, when one
    pass holds fewer than `batches` batches (a small dataset), a second seeded stream
    repeated, each repetition in a new order with new random views. Resuming inside the first
    pass skips its batches without decoding them; resuming in a later pass decodes what it
    skips (small datasets only). Images that do not decode make a pass shorter than counted:
    the epoch is then topped up from the first pass's own repetitions (so that it still has
    `batches` batches), and a resume after one is close to, not exactly, where it was.

    Where one pass is enough (the usual case), no second stream is built: each stream is a
    pipeline traced when it is built, about half a second on a 2-core CPU, and a run builds
    one per epoch before its first step.
    """

    def stream(stream_seed, skip_batches=0):
        return data.train_dataset(
            source,
            batch_size,
            stats=stats,
            seed=stream_seed,
            num_shards=num_shards,
            shard_index=shard_index,
            skip_batches=skip_batches,
        )

    examples = len(range(shard_index, source.num_examples["train"], num_shards))
    per_pass = examples // batch_size
    first = stream(seed, skip_batches=min(skip, per_pass))
    if per_pass >= batches:
        more = first.repeat()  # (reached only when images did not decode)
    else:
        more = stream(epoch_seed(seed, 1)).repeat().skip(max(0, skip - per_pass))
    return first.concatenate(more).take(batches - skip)


class TrainingInputs:
    """The run's training and validation datasets, distributed over its strategy.

    Validation batches are full batches where a partial one cannot run: several workers must
    run the same step count, and JAX splits a batch over its devices in equal parts only.
    """

    def __init__(self, setup: TrainingSetup):
        self.config, self.source, self.stats = setup.config, setup.source, setup.stats
        self.steps, self.distribution = setup.steps, setup.distribution
        self.workers = setup.workers
        self.multi_worker = setup.multi_worker
        self.full_batches = setup.multi_worker or (
            on_jax() and setup.distribution.num_replicas_in_sync > 1
        )
        self.validation_steps = self._validation_steps()

    def _validation_steps(self) -> int:
        batch_size, workers = self.config.batch_size, self.workers
        num_validation = self.source.num_examples["validation"]
        if num_validation == 0:
            raise SettingsError(
                f"{self.source.name} has no validation images: the run validates after each "
                "epoch (the learning-rate schedule and the best model follow it). Give a "
                "dataset with a validation split, or more images per class to an image folder "
                "(it holds some out for validation)."
            )
        if self.full_batches:
            # Every worker must run the same number of steps: full batches of its shard only.
            steps = (num_validation // workers) // (batch_size // workers)
        else:
            steps = math.ceil(num_validation / batch_size)
        if steps < 1:
            raise SettingsError(
                f"batch_size={batch_size} is larger than the {num_validation} validation images "
                f"of {self.source.name} can fill{' on every worker' if workers > 1 else ''}; "
                "use a smaller batch_size."
            )
        return steps

    def train(self, first_epoch: int, skip: int):
        """Epochs `first_epoch` ... `epochs - 1`, the first without its `skip` batches."""
        config = self.config

        def dataset_fn(context):
            per_replica = context.get_per_replica_batch_size(config.batch_size)
            # (The replicas it feeds; on JAX one, a process's batch, split by Keras.)
            per_pipeline = context.num_replicas_in_sync // context.num_input_pipelines
            shards = dict(
                num_shards=context.num_input_pipelines, shard_index=context.input_pipeline_id
            )
            parts = [
                epoch_batches(
                    self.source,
                    per_replica,
                    batches=self.steps * per_pipeline,
                    skip=skip * per_pipeline if e == first_epoch else 0,
                    stats=self.stats,
                    seed=epoch_seed(config.seed, e),
                    **shards,
                )
                for e in range(first_epoch, config.epochs)
            ]
            return functools.reduce(lambda a, b: a.concatenate(b), parts)

        return self.distribution.distribute_datasets_from_function(dataset_fn)

    def validation(self):
        """Keras keeps one validation iterator for the whole fit: each epoch takes exactly
        one pass of `validation_steps` global batches from a repeated dataset."""
        batch_size = self.config.batch_size
        if not self.full_batches:  # global batches, which the strategy splits over replicas
            # A pass is exactly `validation_steps` batches (the last one partial).
            return data.eval_dataset(self.source, batch_size, self.stats).repeat()

        def dataset_fn(context):
            per_replica = context.get_per_replica_batch_size(batch_size)
            per_pipeline = context.num_replicas_in_sync // context.num_input_pipelines
            ds = data.eval_dataset(
                self.source,
                per_replica,
                self.stats,
                num_shards=context.num_input_pipelines,
                shard_index=context.input_pipeline_id,
                drop_remainder=True,  # workers must run equal step counts
            )
            return ds.take(self.validation_steps * per_pipeline).repeat()

        return self.distribution.distribute_datasets_from_function(dataset_fn)
