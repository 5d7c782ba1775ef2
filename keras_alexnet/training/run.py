"""`train`: a training run of AlexNet, which `alexnet-train` calls. It reads top to bottom:

    config -> what the run works with (`setup.set_up`: strategy, precision, data, steps)
    -> run directory, checked and locked (`directory.prepare`) -> what to do
    (`backup.next_action`) -> model in the strategy's scope (`recipe.compiled_model`)
    -> callbacks and resume (`callbacks`) -> fit -> export (`serving.export`; from a JAX
    run, in a TensorFlow process: `jax_export`)

Each step is a function in the module named beside it; what is left here is the order, the
fit and the export of the best model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Callable

import keras
import numpy as np
from absl import logging

from keras_alexnet import compat
from keras_alexnet.serving import export
from keras_alexnet.serving.trained_model import BEST_MODEL_FILE
from keras_alexnet.training import backup, jax_export
from keras_alexnet.training.backup import DONE, EXPORT, TRAIN, Action, BackupState, next_action
from keras_alexnet.training.callbacks import (
    TrainingCallbacks,
    make_callbacks,
    restore,
    stop_on_sigterm,
    write_csv,
)
from keras_alexnet.training.config import TrainConfig
from keras_alexnet.training.directory import HISTORY_FILE, Workspace, prepare
from keras_alexnet.training.inputs import TrainingInputs
from keras_alexnet.training.recipe import compiled_model
from keras_alexnet.training.setup import TrainingSetup, on_jax, set_up


@dataclasses.dataclass
class TrainResult:
    """What `train` did: the history per epoch, the best epoch's logs, the export path."""

    history: list[dict]
    best_logs: dict
    export_path: str | None
    ended: str  # what ended training: one of `backup.ENDINGS`
    precision: str  # the Keras dtype policy it trained under (the last part, if resumed)


def train(
    config: TrainConfig, *, build_model: Callable[..., keras.Model] | None = None
) -> TrainResult:
    """Trains with `config` (see `TrainConfig` for each setting), then exports the best model
    as `<export_dir>/<next version>/`.

    Everything lives in `config.model_dir`: `backup/` (resumable state, see `backup`),
    `best.keras` (the best model by validation top-1 error), `class_names.txt`, `stats.json`
    (the pixel statistics used), `training_log.csv`, `logs/` (TensorBoard). Running it again
    with the same config resumes a killed run where it stopped; a finished run is not trained
    again (`backup.next_action` decides). Nothing is written before every check has passed
    (`setup.set_up`, `directory.prepare`).

    The learning rate is multiplied by `lr_reduce_factor` after `lr_reduce_patience` epochs
    without a lower validation top-1 error; after `max_lr_reductions` reductions the next such
    plateau ends training. With `lr_schedule="cosine"` it follows `recipe.warmup_cosine`
    instead, and training ends after `epochs`. `mixed_precision="auto"` chooses for the
    devices the run uses (see `precision.choose_precision`); the choice and its reason are
    printed and kept in the backup.

    On Keras' JAX backend the same run uses `keras.distribution` (`jax_distribution`: one
    process or many) and ends with the same export, written by a TensorFlow process
    (`jax_export`).

    `build_model(classes=, init=, dropout_rate=, tower_devices=, lrn=)` builds the network
    (default `AlexNet`); the tests pass a small stand-in with the same input and layer names.

    Example:
        train(TrainConfig(dataset="alexnet_shapes", epochs=5, init="he"))
    """
    started = time.monotonic()
    setup = set_up(config)
    with prepare(setup) as workspace:
        action = next_action(workspace.resumed, config.epochs)
        _announce(config, action, setup.steps)
        final = workspace.resumed
        if action.kind != DONE:
            with _dtype_policy(setup.precision.policy):
                with _jax_scope(setup):
                    model = compiled_model(
                        setup, build_model, start_from_weights=workspace.resumed is None
                    )
                    callbacks = make_callbacks(
                        config,
                        model,
                        workspace,
                        setup.steps,
                        action.step,
                        setup.distribution.any_process if on_jax() else bool,
                    )
                    inputs = TrainingInputs(setup)
                    ended = action.ended
                    if action.kind == TRAIN:
                        ended = _fit(config, model, callbacks, inputs, workspace, action)
                final = _export_best(model, callbacks, workspace, setup, ended)
    result = TrainResult(
        final.history,
        final.callbacks["best"]["best_logs"],
        final.export_path if setup.chief else None,
        final.ended,
        setup.precision.policy,
    )
    if config.verbose:
        _print_summary(config, result, time.monotonic() - started)
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


def _jax_scope(setup: TrainingSetup):
    """On JAX, the run's keras.distribution for the model and its fit (not the export,
    which process 0 computes alone); TensorFlow's strategy is entered where it is needed."""
    return setup.distribution.scope() if on_jax() else contextlib.nullcontext()


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
    callbacks: TrainingCallbacks,
    inputs: TrainingInputs,
    workspace: Workspace,
    action: Action,
) -> str:
    """Restores the backup (if any) and trains from `action`'s (epoch, step) to the end;
    returns what ended training (one of `backup.ENDINGS`)."""
    if workspace.resumed is not None:
        with inputs.distribution.scope():
            restore(model, workspace.backup_dir, workspace.resumed, config.learning_rate)
    _build_metrics_before_fit(model, inputs)
    epoch, step, epochs = action.epoch, action.step, config.epochs
    with stop_on_sigterm(callbacks.backup):
        fit = functools.partial(
            model.fit,
            validation_data=inputs.validation(),
            validation_steps=inputs.validation_steps,
            callbacks=callbacks.all,
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
        if epoch < epochs and not callbacks.plateau_ended:
            fit(
                inputs.train(epoch, 0),
                initial_epoch=epoch,
                epochs=epochs,
                steps_per_epoch=inputs.steps,
            )
    return backup.PLATEAU if callbacks.plateau_ended else backup.EPOCHS


def _build_metrics_before_fit(model: keras.Model, inputs: TrainingInputs) -> None:
    """Builds the metrics from an example's shapes, so that `fit` does not build them from
    a first batch of the training data, which it then reads again from a new iterator.

    That second read is a second iteration of the stream, in another order with other random
    views: a run resumed at epoch k would train epoch k on the second iteration of epoch k's
    stream where an uninterrupted run trains on the first (docs/training.md, "A run is safe to
    stop").
    Multi-worker runs need it too (see `compat.build_metrics_from_shapes`), and their scalar
    logs averaged over the workers.
    """
    size = model.input_shape[1]
    example = (np.zeros((1, size, size, 3), np.float32), np.zeros((1,), np.int32))
    with inputs.distribution.scope():
        compat.build_metrics_from_shapes(model, example)
    if inputs.multi_worker and not on_jax():
        compat.average_scalar_logs_over_workers()


def _export_best(
    model: keras.Model,
    callbacks: TrainingCallbacks,
    workspace: Workspace,
    setup: TrainingSetup,
    ended: str,
) -> BackupState:
    """Exports the best model and records the export in the backup (the chief's run
    directory). Returns that state."""
    if on_jax():
        export_path = _export_from_jax(workspace, setup)
    else:
        export_path = _export_on_tensorflow(model, callbacks, workspace, setup)
    final = backup.exported_state(callbacks.backup.last or workspace.resumed, ended, export_path)
    if workspace.chief:
        backup.write_state(workspace.backup_dir, final)
        # (Complete also when the last epoch's CSV row was not written: SIGTERM after it.)
        write_csv(final.history, workspace.path(HISTORY_FILE))
    return final


def _export_on_tensorflow(
    model: keras.Model, callbacks: TrainingCallbacks, workspace: Workspace, setup: TrainingSetup
) -> str:
    """The best model's export; other workers export into their scratch directory
    (MultiWorkerMirroredStrategy's collectives need every worker in the save)."""
    with setup.distribution.scope():
        if not model.optimizer.built:  # (not restored: a run that only exports)
            model.optimizer.build(model.trainable_variables)
        model.load_weights(callbacks.best.path)
    export_dir = setup.config.export_dir if workspace.chief else workspace.path("export")
    return export.export_saved_model(
        model,
        export_dir,
        class_names=setup.source.class_names,
        stats=setup.stats,
        card=callbacks.best.card,
    )


def _export_from_jax(workspace: Workspace, setup: TrainingSetup) -> str | None:
    """Process 0 exports the run's best.keras from a TensorFlow process (`jax_export`); the
    other processes wait for it, so that none leaves the run before the export is done."""
    config = setup.config
    try:
        if not workspace.chief:
            return None
        return jax_export.export_run(
            config.model_dir,
            config.export_dir,
            setup.stats.mean_rgb,
            setup.precision.policy,
            config.verbose,
        )
    finally:
        setup.distribution.wait_for_all("export")


def _print_summary(config: TrainConfig, result: TrainResult, seconds: float) -> None:
    """The run in a few lines: the best epoch, where everything is, the time, what next."""
    best = result.best_logs
    top1, top5 = best.get("val_top1_accuracy"), best.get("val_top5_accuracy")
    print(
        f"Best epoch {best.get('epoch')}: validation top-1 accuracy {top1:.4f} "
        f"(error {1 - top1:.4f}), top-5 accuracy {top5:.4f} (error {1 - top5:.4f})."
    )
    best_model = os.path.join(config.model_dir, BEST_MODEL_FILE)
    print(f"Run directory {config.model_dir} (best model {best_model}); {seconds / 60:.1f} min.")
    if result.export_path:
        print(f"Exported to {result.export_path}")
        print(
            f"Classify pictures: alexnet-predict --model={config.export_dir} "
            "PICTURES...; serve it: tensorflow_model_server --rest_api_port=8501 "
            f"--model_name=alexnet --model_base_path={os.path.abspath(config.export_dir)}"
        )
