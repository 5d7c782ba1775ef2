"""`train` and `run`: a training run of AlexNet with the paper's recipe, which
`scripts/train.py` calls. `run` reads top to bottom:

    config -> strategy (`strategies`) -> precision (`precision`) -> data (`run_inputs`)
    -> run directory, checked and locked (`run_directory.prepare`) -> what to do
    (`run_state.next_action`) -> model in the strategy's scope (`recipe.compiled_model`)
    -> callbacks and resume (`callbacks`) -> fit -> export (`export`)

Each step is a function in the module named beside it; what is left here is the order, the
fit and the export of the best model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable

import keras
import tensorflow as tf
from absl import logging

from keras_alexnet import compat, export, precision, run_directory
from keras_alexnet.callbacks import (
    RunCallbacks,
    restore,
    run_callbacks,
    stop_on_sigterm,
    write_csv,
)
from keras_alexnet.config import TrainConfig
from keras_alexnet.recipe import compiled_model
from keras_alexnet.run_inputs import (
    RunInputs,
    check_batch_divides,
    open_data,
    steps_per_epoch,
)
from keras_alexnet.run_state import DONE, EXPORT, TRAIN, Action, RunState, next_action
from keras_alexnet.strategies import is_chief, make_strategy


@dataclasses.dataclass
class TrainResult:
    """What `train` did: the history per epoch, the best epoch's logs, the export path."""

    history: list[dict]
    best_logs: dict
    export_path: str | None
    finished: str  # "epochs" or "plateau": what ended training
    precision: str  # the Keras dtype policy it trained under (the last part, if resumed)


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


def run(
    config: TrainConfig, *, build_model: Callable[..., keras.Model] | None = None
) -> TrainResult:
    """Trains with `config`, then exports the best model as `<export_dir>/<next version>/`.

    Everything lives in `config.model_dir`: `backup/` (resumable state, see
    `callbacks.Backup`), `best.keras` (the best model by validation top-1 error),
    `class_names.txt`, `stats.json` (the pixel statistics used), `training_log.csv`, `logs/`
    (TensorBoard). Running it again with the same config resumes a killed run where it
    stopped; a finished run is not trained again (`run_state.next_action` decides). Nothing
    is written before every check has passed (`run_directory.prepare`).

    The learning rate is multiplied by `lr_reduce_factor` after `lr_reduce_patience` epochs
    without a lower validation top-1 error; after `max_lr_reductions` reductions the next such
    plateau ends training. `mixed_precision="auto"` chooses for the devices the run uses (see
    `precision.choose_precision`); the choice and its reason are printed and kept in the
    backup.

    `build_model(classes=, init=, dropout_rate=, tower_devices=)` builds the network (default
    `AlexNet`); the tests pass a small stand-in with the same input and layer names.
    """
    config.validate()
    started = time.monotonic()
    distribution, towers = make_strategy(config.strategy, config.devices, config.tower_devices)
    choice = _choose_precision(config.mixed_precision, distribution, towers, config.verbose)
    check_batch_divides(config.batch_size, distribution.num_replicas_in_sync)
    source, stats = open_data(config)
    steps = steps_per_epoch(config, source)
    chief = is_chief(distribution)
    with run_directory.prepare(config, source, stats, steps, choice.policy, chief) as place:
        action = next_action(place.state, config.epochs)
        _announce(config, action, steps)
        final = place.state
        if action.kind != DONE:
            with _dtype_policy(choice.policy):
                model = compiled_model(
                    config,
                    source.num_classes,
                    distribution,
                    towers,
                    build_model,
                    start_from_weights=place.state is None,
                )
                parts = run_callbacks(config, model, place, action.step)
                inputs = RunInputs(config, source, stats, steps, distribution)
                ended = action.ended
                if action.kind == TRAIN:
                    ended = _fit(config, model, parts, inputs, place, action)
                final = _export_best(model, parts, place, inputs, ended, config.export_dir)
    result = TrainResult(
        final.history,
        final.callbacks["best"]["best_logs"],
        final.export_path if chief else None,
        final.finished,
        choice.policy,
    )
    if config.verbose:
        _print_summary(config, result, time.monotonic() - started)
    return result


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


@contextlib.contextmanager
def _dtype_policy(policy: str):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _fit(
    config: TrainConfig,
    model: keras.Model,
    parts: RunCallbacks,
    inputs: RunInputs,
    place: run_directory.RunPlace,
    action: Action,
) -> str:
    """Restores the backup (if any) and trains from `action`'s (epoch, step) to the end;
    returns what ended training ("epochs" or "plateau")."""
    if place.state is not None:
        with inputs.distribution.scope():
            restore(model, place.backup_dir, place.state, config.learning_rate)
    _build_metrics_before_fit(model, inputs)
    epoch, step, epochs = action.epoch, action.step, config.epochs
    with stop_on_sigterm(parts.backup):
        fit = functools.partial(
            model.fit,
            validation_data=inputs.validation(),
            validation_steps=inputs.validation_steps,
            callbacks=parts.all,
            verbose=config.verbose,
            shuffle=False,  # the datasets shuffle themselves
        )
        if step:  # finish the interrupted epoch first
            fit(
                inputs.train(epoch, step),
                initial_epoch=epoch,
                epochs=epoch + 1,
                steps_per_epoch=inputs.steps - step,
            )
            epoch += 1
        if epoch < epochs and not parts.plateau.finished:
            fit(
                inputs.train(epoch, 0),
                initial_epoch=epoch,
                epochs=epochs,
                steps_per_epoch=inputs.steps,
            )
    return "plateau" if parts.plateau.finished else "epochs"


def _build_metrics_before_fit(model: keras.Model, inputs: RunInputs) -> None:
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
    with inputs.distribution.scope():
        compat.build_metrics_from_shapes(model, example)
    if inputs.multi_worker:
        compat.average_scalar_logs_over_workers()


def _export_best(
    model: keras.Model,
    parts: RunCallbacks,
    place: run_directory.RunPlace,
    inputs: RunInputs,
    ended: str,
    export_dir: str,
) -> RunState:
    """Exports the best model and records the export in the backup (the chief's run
    directory; other workers export into their scratch directory). Returns that state."""
    with inputs.distribution.scope():
        if not model.optimizer.built:  # (not restored: a run that only exports)
            model.optimizer.build(model.trainable_variables)
        model.load_weights(parts.best.path)
    export_path = export.export_saved_model(
        model,
        export_dir if place.chief else os.path.join(place.write_dir, "export"),
        class_names=inputs.source.class_names,
        stats=inputs.stats,
        card=parts.best.card,
    )
    final = dataclasses.replace(
        parts.backup.last or place.state, finished=ended, export_path=export_path
    )
    if place.chief:
        run_directory.write_state(place.backup_dir, final)
        # (Complete also when the last epoch's CSV row was not written: SIGTERM after it.)
        write_csv(final.history, os.path.join(place.write_dir, run_directory.HISTORY_FILE))
    return final


def _print_summary(config: TrainConfig, result: TrainResult, seconds: float) -> None:
    """The run in a few lines: the best epoch, where everything is, the time, what next."""
    best = result.best_logs
    top1, top5 = best.get("val_top1_accuracy"), best.get("val_top5_accuracy")
    print(
        f"Best epoch {best.get('epoch')}: validation top-1 accuracy {top1:.4f} "
        f"(error {1 - top1:.4f}), top-5 accuracy {top5:.4f} (error {1 - top5:.4f})."
    )
    best_model = os.path.join(config.model_dir, run_directory.BEST_MODEL_FILE)
    print(f"Run directory {config.model_dir} (best model {best_model}); {seconds / 60:.1f} min.")
    if result.export_path:
        print(f"Exported to {result.export_path}")
        print(
            f"Classify pictures: python scripts/predict.py --model={config.export_dir} "
            "PICTURES...; serve it: tensorflow_model_server --rest_api_port=8501 "
            f"--model_name=alexnet --model_base_path={os.path.abspath(config.export_dir)}"
        )
