"""Training: the paper's optimisation (section 5) and `train`/`run`, which `scripts/train.py`
calls. The settings are a `config.TrainConfig`; the strategies are in `strategies`, the
callbacks that keep a run safe in `callbacks`, the run directory's lock and checks in
`run_directory`. `run` reads top to bottom: config -> strategy -> data -> run directory ->
model in the strategy's scope -> callbacks and resume -> fit -> export.

The paper's update rule is

    v <- 0.9 v - 0.0005 * lr * w - lr * dL/dw
    w <- w + v

with the weight decay inside the momentum. Keras 3's `SGD(weight_decay=...)` decays the
weights outside the momentum (decoupled), which is a different rule. Adding
`0.5 * 0.0005 * sum(w^2)` to the loss makes the gradient `dL/dw + 0.0005 w`, and plain
`SGD(momentum=0.9)` then performs exactly the paper's update.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet import compat, precision, run_directory
from keras_alexnet.callbacks import (  # noqa: F401  (training.X names them for callers)
    Backup,
    CsvHistory,
    KeepBest,
    NonFiniteLoss,
    PlateauSchedule,
    ResumeEpochMetrics,
    StopOnNonFiniteLoss,
    TrainingInterrupted,
    restore,
    stop_on_sigterm,
    write_csv,
)
from keras_alexnet.config import (  # noqa: F401  (training.X names them for the scripts)
    DEFAULT_LR_REDUCE_PATIENCE,
    PAPER_BATCH_SIZE,
    PAPER_LEARNING_RATE,
    PAPER_LR_REDUCE_FACTOR,
    PAPER_LR_REDUCTIONS,
    PAPER_MOMENTUM,
    PAPER_WEIGHT_DECAY,
    STRATEGIES,
    SettingsError,
    TrainConfig,
)
from keras_alexnet.run_directory import write_class_names  # noqa: F401  (for callers)
from keras_alexnet.run_state import DONE, EXPORT, TRAIN, Action, RunState, next_action
from keras_alexnet.strategies import (  # noqa: F401  (training.X names them for callers)
    _cluster_size,
    _is_chief,
    make_strategy,
    use_logical_cpus,
)


def paper_optimizer(
    learning_rate: float = PAPER_LEARNING_RATE, momentum: float = PAPER_MOMENTUM
) -> keras.optimizers.SGD:
    """SGD with (non-Nesterov) momentum and no decoupled weight decay; pair it with
    `apply_weight_decay` for the paper's rule."""
    for name, value in (("learning_rate", learning_rate), ("momentum", momentum)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SettingsError(f"{name} must be a non-negative number; received {name}={value!r}.")
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=False)


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


# --- train -----------------------------------------------------------------------------------

BEST_MODEL_FILE = run_directory.BEST_MODEL_FILE
CLASS_NAMES_FILE = run_directory.CLASS_NAMES_FILE
STATS_FILE = run_directory.STATS_FILE


@dataclasses.dataclass
class TrainResult:
    """What `train` did: the history per epoch, the best epoch's logs, the export path."""

    history: list[dict]
    best_logs: dict
    export_path: str | None
    finished: str  # "epochs" or "plateau": what ended training
    precision: str  # the Keras dtype policy it trained under (the last part, if resumed)


def _epoch_seed(seed: int, epoch: int) -> int:
    """Each epoch's data stream depends only on (seed, epoch): a resumed run sees the same
    batches as an uninterrupted one."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _epoch_batches(
    source, batch_size, batches, skip, stats, seed, num_shards=1, shard_index=0
) -> tf.data.Dataset:
    """Batches `skip` ... `batches - 1` of one epoch's stream of one input pipeline.

    The stream is the seeded pass over the train split (`data.train_dataset`), then, when one
    pass holds fewer than `batches` batches (a small dataset, or images that do not decode),
    a second seeded stream repeated, each repetition in a new order with new random views.
    Resuming inside the first pass skips its batches without decoding them; resuming in a
    later pass decodes what it skips (small datasets only). Images that do not decode make a
    pass shorter than counted, so a resume after one is close to, not exactly, where it was.
    """
    from keras_alexnet import data

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
    more = stream(_epoch_seed(seed, 1)).repeat().skip(max(0, skip - per_pass))
    return first.concatenate(more).take(batches - skip)


def train(dataset: str = "alexnet_shapes", **settings) -> TrainResult:
    """Trains AlexNet on a dataset with the paper's recipe (section 5), then exports the best
    model: `run(TrainConfig(dataset=dataset, **settings))`.

    The settings are `TrainConfig`'s fields (and `scripts/train.py`'s flags): the data
    (`dataset`, `data_dir`, `manual_dir`, `image_dir`, `stats`), where the run lives
    (`model_dir`, `export_dir`), the recipe (`epochs`, `steps_per_epoch`, `batch_size`,
    `learning_rate`, `momentum`, `weight_decay`, `lr_reduce_factor`, `lr_reduce_patience`,
    `max_lr_reductions`, `init`, `dropout_rate`, `seed`), where and how it computes
    (`strategy`, `devices`, `tower_devices`, `mixed_precision`, `jit_compile`) and `verbose`.
    """
    return run(TrainConfig(dataset=dataset, **settings))


def run(config: TrainConfig, *, build_model=None) -> TrainResult:
    """Trains with `config`, then exports the best model as `<export_dir>/<next version>/`.

    Everything lives in `config.model_dir`: `backup/` (resumable state, see `Backup`),
    `best.keras` (the best model by validation top-1 error), `class_names.txt`, `stats.json`
    (the pixel statistics used), `training_log.csv`, `logs/` (TensorBoard). Running it again
    with the same config resumes a killed run where it stopped; a finished run is not trained
    again (`run_state.next_action` decides). Nothing is written before every check has
    passed (see `run_directory`).

    The learning rate is multiplied by `lr_reduce_factor` after `lr_reduce_patience` epochs
    without a lower validation top-1 error; after `max_lr_reductions` reductions the next such
    plateau ends training. `mixed_precision="auto"` chooses for the devices the run uses (see
    `precision.choose_precision`); the choice and its reason are printed and kept in the
    backup.

    `build_model(classes=, init=, dropout_rate=, tower_devices=)` builds the network (default
    `AlexNet`); the tests pass a small stand-in with the same input and layer names.
    """
    config.validate()
    distribution, towers = make_strategy(config.strategy, config.devices, config.tower_devices)
    choice = _choose_precision(config.mixed_precision, distribution, towers, config.verbose)
    _check_batch_divides(config.batch_size, distribution.num_replicas_in_sync)
    source, stats = _open_data(config)
    steps = _steps_per_epoch(config, source)
    chief = _is_chief(distribution)
    with _prepared_run_directory(config, source, stats, steps, choice, chief) as place:
        action = next_action(place.state, config.epochs)
        _announce(config, action, steps)
        final = place.state
        if action.kind != DONE:
            with _dtype_policy(choice.policy):
                model = _compiled_model(config, source, distribution, towers, build_model)
                parts = _callbacks(config, model, place, action)
                data = _Inputs(config, source, stats, steps, distribution)
                ended = action.ended
                if action.kind == TRAIN:
                    ended = _fit(config, model, parts, data, place, action)
                final = _export_best(model, parts, place, data, ended, config.export_dir)
    result = TrainResult(
        final.history,
        final.callbacks["best"]["best_logs"],
        final.export_path if chief else None,
        final.finished,
        choice.policy,
    )
    if config.verbose:
        _print_best(result.best_logs, result.export_path)
    return result


def _announce(config: TrainConfig, action: Action, steps: int) -> None:
    """Says what the run is about to do, when it is not a new run's training."""
    where = config.model_dir
    if action.kind == DONE:
        print(f"{where} holds a finished run ({action.ended}); not training again.")
    elif action.kind == EXPORT:
        print(f"{where} finished training ({action.ended}); exporting its best model.")
    elif action.epoch or action.step:
        logging.info("Resuming %s at epoch %d, step %d.", where, action.epoch + 1, action.step)
        print(f"Resuming {where} at epoch {action.epoch + 1}, step {action.step} of {steps}.")


def _check_batch_divides(batch_size: int, replicas: int) -> None:
    if batch_size % replicas:
        raise SettingsError(
            f"batch_size (the global batch) must divide evenly over the {replicas} replicas; "
            f"received batch_size={batch_size}. Use a multiple of {replicas}."
        )


def _open_data(config: TrainConfig):
    """The dataset's source and the pixel statistics to train with, checked."""
    from keras_alexnet import data

    try:
        source = data.make_source(
            config.dataset,
            data_dir=config.data_dir,
            manual_dir=config.manual_dir,
            image_dir=config.image_dir,
            seed=config.seed,
        )
        stats = data.load_stats(config.stats) if config.stats else source.default_stats
    except ValueError as error:
        raise SettingsError(str(error)) from None
    if source.num_classes < 2:
        raise SettingsError(
            f"{source.name} has {source.num_classes} class ({list(source.class_names)}): a "
            "classifier needs at least 2 (with one, every prediction is right). Add a folder "
            "per class."
        )
    return source, stats


def _steps_per_epoch(config: TrainConfig, source) -> int:
    num_train = source.num_examples["train"]
    if num_train < config.batch_size:
        raise SettingsError(
            f"batch_size={config.batch_size} is larger than the {num_train} training images of "
            f"{source.name}; use a smaller batch_size."
        )
    steps = num_train // config.batch_size
    return min(steps, config.steps_per_epoch) if config.steps_per_epoch else steps


@dataclasses.dataclass
class _Place:
    """Where a process of the run writes (`write_dir`: the run directory, or a worker's
    scratch directory), the run's backup directory, and the backup's state (None if new)."""

    chief: bool
    write_dir: str
    backup_dir: str
    state: dict | None
    settings: dict
    adjustable: dict


@contextlib.contextmanager
def _prepared_run_directory(config: TrainConfig, source, stats, steps: int, choice, chief: bool):
    """Checks the run directory (writable, locked by this process, its backup readable, the
    settings those of the run it resumes) and only then writes the class names and stats.

    Non-chief workers of a multi-worker run write into a scratch directory (the saving code
    still runs on every worker, as collective ops require) and read the chief's backup.
    """
    from keras_alexnet import data

    settings, adjustable = _resume_settings(config, source, stats, steps, choice.policy)
    backup_dir = os.path.join(config.model_dir, run_directory.BACKUP_DIR)
    if chief:
        run_directory.check_writable(config.model_dir)
        run_directory.check_writable(config.export_dir, "--export_dir", create=False)
        write_dir, lock = config.model_dir, run_directory.RunLock(config.model_dir).acquire()
    else:
        write_dir, lock = tempfile.mkdtemp(prefix="keras_alexnet_worker_"), None
    try:
        state = run_directory.read_state(backup_dir)
        for change in run_directory.check_resume(state, settings, adjustable, config.model_dir):
            print(change)
        # What scripts/export.py, predict.py and evaluate.py need besides best.keras.
        run_directory.write_class_names(
            source.class_names, os.path.join(write_dir, CLASS_NAMES_FILE)
        )
        data.save_stats(stats, os.path.join(write_dir, STATS_FILE))
        yield _Place(chief, write_dir, backup_dir, state, settings, adjustable)
    finally:
        if lock:
            lock.release()
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def _resume_settings(
    config: TrainConfig, source, stats, steps: int, policy: str
) -> tuple[dict, dict]:
    """What a resumed run must share with the run it resumes, and what it may change
    (`run_directory.REQUIRED_SETTINGS`, `ADJUSTABLE_SETTINGS`), as the backup holds them.
    The precision is the policy chosen for this machine, not the `auto` asked for."""
    settings = {
        "dataset": source.name,
        "classes": source.num_classes,
        "class_names": list(source.class_names),
        "stats": dataclasses.asdict(stats),
        "init": config.init,
        "batch_size": config.batch_size,
        "steps_per_epoch": steps,
        "seed": config.seed,
        "dropout_rate": config.dropout_rate,
        "momentum": config.momentum,
        "weight_decay": config.weight_decay,
    }
    adjustable = {
        key: policy if key == "precision" else getattr(config, key)
        for key in run_directory.ADJUSTABLE_SETTINGS
    }
    return json.loads(json.dumps(settings)), json.loads(json.dumps(adjustable))


@contextlib.contextmanager
def _dtype_policy(policy: str):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _compiled_model(config: TrainConfig, source, distribution, towers, build_model):
    """AlexNet for the dataset's classes, with the paper's SGD and weight decay, built and
    compiled in the strategy's scope from the run's seed."""
    from keras_alexnet.alexnet import AlexNet

    keras.utils.set_random_seed(config.seed)
    with distribution.scope():
        model = (build_model or AlexNet)(
            classes=source.num_classes,
            init=config.init,
            dropout_rate=config.dropout_rate,
            tower_devices=towers,
        )
        apply_weight_decay(model, config.weight_decay)
        model.compile(
            optimizer=paper_optimizer(config.learning_rate, config.momentum),
            loss="sparse_categorical_crossentropy",
            metrics=[
                keras.metrics.SparseCategoricalAccuracy(name="top1_accuracy"),
                keras.metrics.SparseTopKCategoricalAccuracy(
                    k=min(5, source.num_classes), name="top5_accuracy"
                ),
            ],
            jit_compile=config.jit_compile,
        )
    return model


@dataclasses.dataclass
class _Callbacks:
    plateau: PlateauSchedule
    best: KeepBest
    backup: Backup
    all: list

    @property
    def stateful(self) -> dict:
        """The callbacks whose counters the backup keeps, by the name it keeps them under."""
        return {"plateau": self.plateau, "best": self.best}


def _callbacks(config: TrainConfig, model, place: _Place, action: Action) -> _Callbacks:
    """The run's callbacks, attached to `model`, with the counters of the backup it resumes."""
    plateau = PlateauSchedule(
        config.max_lr_reductions,
        monitor="val_top1_accuracy",  # the same as "validation error stops improving"
        mode="max",
        factor=config.lr_reduce_factor,
        patience=config.lr_reduce_patience,
        min_delta=0.0,
        verbose=1,
    )
    best = KeepBest(os.path.join(place.write_dir, BEST_MODEL_FILE))
    start = place.state or RunState(0, 0, "", place.settings)
    start = dataclasses.replace(start, settings=place.settings, adjustable=place.adjustable)
    backup_dir = os.path.join(place.write_dir, run_directory.BACKUP_DIR)
    backup = Backup(backup_dir, {"plateau": plateau, "best": best}, start, action.step)
    for callback in (plateau, best, backup):
        callback.set_model(model)
    for name, callback in backup.stateful.items():
        if place.state:
            callback.set_state(place.state.callbacks[name])
    everything = [
        StopOnNonFiniteLoss(backup_dir),
        ResumeEpochMetrics(place.state.metric_state if place.state else None),
        plateau,
        best,
        backup,
        CsvHistory(os.path.join(place.write_dir, run_directory.HISTORY_FILE), backup),
        keras.callbacks.TensorBoard(os.path.join(place.write_dir, "logs"), profile_batch=0),
    ]
    return _Callbacks(plateau, best, backup, everything)


class _Inputs:
    """The run's training and validation datasets, distributed over the strategy."""

    def __init__(self, config: TrainConfig, source, stats, steps: int, distribution):
        self.config, self.source, self.stats, self.steps = config, source, stats, steps
        self.distribution = distribution
        self.replicas = distribution.num_replicas_in_sync
        self.workers = _cluster_size() if config.strategy == "multi_worker" else 1
        self.validation_steps = self._validation_steps()

    @property
    def multi_worker(self) -> bool:
        return self.workers > 1

    def _validation_steps(self) -> int:
        batch_size, workers = self.config.batch_size, self.workers
        num_validation = self.source.num_examples["validation"]
        if workers > 1:
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
            per_pipeline = self.replicas // context.num_input_pipelines  # replicas it feeds
            shards = dict(
                num_shards=context.num_input_pipelines, shard_index=context.input_pipeline_id
            )
            parts = [
                _epoch_batches(
                    self.source,
                    per_replica,
                    batches=self.steps * per_pipeline,
                    skip=skip * per_pipeline if e == first_epoch else 0,
                    stats=self.stats,
                    seed=_epoch_seed(config.seed, e),
                    **shards,
                )
                for e in range(first_epoch, config.epochs)
            ]
            return functools.reduce(lambda a, b: a.concatenate(b), parts)

        return self.distribution.distribute_datasets_from_function(dataset_fn)

    def validation(self):
        """Keras keeps one validation iterator for the whole fit: each epoch takes exactly
        one pass of `validation_steps` global batches from a repeated dataset."""
        from keras_alexnet import data

        batch_size = self.config.batch_size
        if not self.multi_worker:  # global batches, which the strategy splits over replicas
            # A pass is exactly `validation_steps` batches (the last one partial).
            return data.eval_dataset(self.source, batch_size, self.stats).repeat()

        def dataset_fn(context):
            per_replica = context.get_per_replica_batch_size(batch_size)
            per_pipeline = self.replicas // context.num_input_pipelines
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


def _fit(config: TrainConfig, model, parts: _Callbacks, data: _Inputs, place, action) -> str:
    """Restores the backup (if any) and trains from `action`'s (epoch, step) to the end;
    returns what ended training ("epochs" or "plateau")."""
    if place.state is not None:
        with data.distribution.scope():
            restore(model, place.backup_dir, place.state, config.learning_rate)
    _build_metrics_before_fit(model, data)
    epoch, step, epochs = action.epoch, action.step, config.epochs
    with stop_on_sigterm(parts.backup):
        fit = functools.partial(
            model.fit,
            validation_data=data.validation(),
            validation_steps=data.validation_steps,
            callbacks=parts.all,
            verbose=config.verbose,
            shuffle=False,  # the datasets shuffle themselves
        )
        if step:  # finish the interrupted epoch first
            fit(
                data.train(epoch, step),
                initial_epoch=epoch,
                epochs=epoch + 1,
                steps_per_epoch=data.steps - step,
            )
            epoch += 1
        if epoch < epochs and not parts.plateau.finished:
            fit(
                data.train(epoch, 0),
                initial_epoch=epoch,
                epochs=epochs,
                steps_per_epoch=data.steps,
            )
    return "plateau" if parts.plateau.finished else "epochs"


def _build_metrics_before_fit(model, data: _Inputs) -> None:
    """Builds the metrics from an example's shapes, so that `fit` does not build them from
    a first batch of the training data, which it then reads again from a new iterator.

    That second read is a second iteration of the stream, in another order with other random
    views: a run resumed at epoch k would train epoch k on the second iteration of epoch k's
    stream where an uninterrupted run trains on the first (README, "A run is safe to stop").
    Multi-worker runs need it too (see `compat.build_metrics_from_shapes`), and their scalar
    logs averaged over the workers.
    """
    size = model.input_shape[1]
    example = (tf.zeros((1, size, size, 3)), tf.zeros((1,), tf.int32))
    with data.distribution.scope():
        compat.build_metrics_from_shapes(model, example)
    if data.multi_worker:
        compat.average_scalar_logs_over_workers()


def _export_best(model, parts: _Callbacks, place: _Place, data: _Inputs, ended, export_dir):
    """Exports the best model and records the export in the backup (the chief's run
    directory; other workers export into their scratch directory). Returns that state."""
    from keras_alexnet import export

    with data.distribution.scope():
        if not model.optimizer.built:  # (not restored: a run that only exports)
            model.optimizer.build(model.trainable_variables)
        model.load_weights(parts.best.path)
    export_path = export.export_saved_model(
        model,
        export_dir if place.chief else os.path.join(place.write_dir, "export"),
        class_names=data.source.class_names,
        stats=data.stats,
    )
    final = dataclasses.replace(
        parts.backup.last or place.state, finished=ended, export_path=export_path
    )
    if place.chief:
        run_directory.write_state(place.backup_dir, final)
        # (Complete also when the last epoch's CSV row was not written: SIGTERM after it.)
        write_csv(final.history, os.path.join(place.write_dir, run_directory.HISTORY_FILE))
    return final


def _print_best(best_logs: dict, export_path: str | None) -> None:
    top1, top5 = best_logs.get("val_top1_accuracy"), best_logs.get("val_top5_accuracy")
    print(
        f"Best epoch {best_logs.get('epoch')}: validation top-1 accuracy {top1:.4f} "
        f"(error {1 - top1:.4f}), top-5 accuracy {top5:.4f} (error {1 - top5:.4f})."
    )
    if export_path:
        print(f"Exported to {export_path}")


def _choose_precision(
    requested: str, distribution: tf.distribute.Strategy, towers, verbose: int
) -> precision.PrecisionChoice:
    """The run's precision for the devices its replicas (or towers) run on, printed."""
    devices = list(towers or distribution.extended.worker_devices)
    choice = precision.choose_precision(requested, devices)
    if verbose:
        print(f"Training in {choice.describe()}.")
    if choice.warning:
        logging.warning(choice.warning)
        print(f"WARNING: {choice.warning}", file=sys.stderr)
    return choice
