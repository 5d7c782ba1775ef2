"""The callbacks of a training run: stopping on a NaN loss (`StopOnNonFiniteLoss`), the
paper's learning-rate plateaus (`PlateauSchedule`) or a rate set at every step
(`StepSchedule`), the best model (`KeepBest`), the
history (`CsvHistory`), and the Keras side of the backup (`Backup`, `restore`,
`ResumeEpochMetrics`, `stop_on_sigterm`; what a backup holds and when a run may resume is
`backup`'s). Every file is written under a temporary name and renamed (`files.atomic_save`).
`make_callbacks` makes a run's set, in the order they run at each epoch's end, with the
counters of the backup it resumes.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import os
import signal
import threading
from collections.abc import Callable

import keras
import numpy as np

from keras_alexnet import compat, model_card
from keras_alexnet.files import atomic_save, check_free_space
from keras_alexnet.serving.trained_model import BEST_MODEL_FILE
from keras_alexnet.training import backup as backup_lib
from keras_alexnet.training import recipe
from keras_alexnet.training.config import TrainConfig
from keras_alexnet.training.directory import HISTORY_FILE, LOGS_DIR, Workspace


class NonFiniteLoss(FloatingPointError):
    """Training stopped on a NaN or infinite loss; the last backup is intact."""


class TrainingInterrupted(Exception):
    """Training stopped on SIGTERM after saving a backup; the same command resumes."""

    exit_status = 143  # 128 + SIGTERM, as a process killed by it would end


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan", "inf": JSON has no such numbers
    return value


def _float(value) -> float:
    return float(np.asarray(value))


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `NonFiniteLoss` as soon as the loss is NaN or infinite, before any callback can
    save the broken weights or delete the backup (which `TerminateOnNaN`, by ending training
    normally, lets `BackupAndRestore` do)."""

    def __init__(self, backup_dir: str):
        super().__init__()
        self.backup_dir = backup_dir
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def _check(self, logs, where):
        for key in ("loss", "val_loss"):
            if key in (logs or {}) and not math.isfinite(_float(logs[key])):
                raise NonFiniteLoss(
                    f"The {key.replace('_', ' ')} became {_float(logs[key])} {where}. Training "
                    f"stopped; the last good backup in {self.backup_dir} is intact. Lower "
                    "--learning_rate (or use --init=he), then run the same command again to "
                    "resume from that backup."
                )

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"at step {batch + 1} of epoch {self.epoch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, f"at the end of epoch {epoch + 1}")


class PlateauSchedule(keras.callbacks.ReduceLROnPlateau):
    """`ReduceLROnPlateau` that counts its reductions: after `max_reductions` of them the next
    plateau ends training (paper 5: the rate was "reduced three times prior to termination").
    Its counters are part of the backup (`get_state`/`set_state`), so a resumed run plateaus
    exactly when an uninterrupted one would."""

    def __init__(self, max_reductions: int, **kwargs):
        super().__init__(**kwargs)
        self.max_reductions = max_reductions
        self.reductions = 0
        self.ended_training = False
        self._reset()

    def on_train_begin(self, logs=None):
        pass  # keep the (restored) counters; the stock callback resets them here

    def on_epoch_end(self, epoch, logs=None):
        if self.reductions >= self.max_reductions:
            # No reduction left: the same bookkeeping, and a plateau now ends training.
            self.min_lr = _float(self.model.optimizer.learning_rate)
        before = _float(self.model.optimizer.learning_rate)
        super().on_epoch_end(epoch, logs)
        if _float(self.model.optimizer.learning_rate) < before:
            self.reductions += 1
        elif self.reductions >= self.max_reductions and self.wait >= self.patience:
            self.ended_training = True
            self.model.stop_training = True
            compat.print_msg(
                f"\nEpoch {epoch + 1}: the validation error stopped improving after "
                f"{self.reductions} learning-rate reductions: training ends."
            )

    def get_state(self) -> dict:
        return {
            "wait": self.wait,
            "best": None if self.best is None else _float(self.best),
            "cooldown_counter": self.cooldown_counter,
            "reductions": self.reductions,
            "finished": self.ended_training,  # (the backup's name for it)
        }

    def set_state(self, state: dict) -> None:
        self.wait = state["wait"]
        self.best = state["best"]
        self.cooldown_counter = state["cooldown_counter"]
        self.reductions = state["reductions"]
        self.ended_training = state["finished"]


class StepSchedule(keras.callbacks.Callback):
    """Sets the optimizer's learning rate before every step to `schedule` at the optimizer's
    step count. That count is part of the backup, so a resumed run goes on with the rates of
    an uninterrupted one; the rate stays a plain variable (which `restore` may set) rather
    than a schedule inside the optimizer."""

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule):
        super().__init__()
        self.schedule = schedule

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        step = keras.ops.convert_to_numpy(optimizer.iterations)
        optimizer.learning_rate = float(self.schedule(step))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # (the history's column, as the plateau schedule logs it)
            logs["learning_rate"] = _float(self.model.optimizer.learning_rate)


def _state_bytes(model: keras.Model) -> int:
    """The bytes of the model's and its optimizer's variables: what a save writes."""
    variables = list(model.weights)
    if model.optimizer is not None and model.optimizer.built:
        variables += list(model.optimizer.variables)
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def training_card(config: TrainConfig) -> dict:
    """The model card of a run's models: what they started from and what trained."""
    return {
        "dataset": config.dataset,
        "started_from": model_card.origin_of(config.weights),
        "train_from": config.train_from,
        "lrn": config.network_lrn,
    }


class KeepBest(keras.callbacks.Callback):
    """Saves the model (`.keras`, with `card`: see `model_card`) whenever `monitor` improves,
    atomically: a kill never leaves a half-written file in place of the best model."""

    def __init__(self, path: str, monitor: str = "val_top1_accuracy", card: dict | None = None):
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.card = card
        self.best = None
        self.best_logs: dict = {}

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            return
        if self.best is None or _float(current) > self.best:
            self.best = _float(current)
            self.best_logs = {"epoch": epoch + 1, **{k: _float(v) for k, v in logs.items()}}
            atomic_save(self._save, self.path)

    def _save(self, path: str) -> None:
        check_free_space(path, _state_bytes(self.model), "the best model")
        self.model.save(path)
        if self.card:
            model_card.write_card(path, self.card)

    def get_state(self) -> dict:
        return {"best": self.best, "best_logs": self.best_logs}

    def set_state(self, state: dict) -> None:
        self.best = state["best"]
        self.best_logs = state["best_logs"]


# The backup's Keras side: saving and restoring the weights, the optimizer and the seeds.


class Backup(keras.callbacks.Callback):
    """Saves everything a resumed run needs at every epoch end, and on request mid-epoch.

    A backup is one weights file (model and optimizer: weights, momentum, learning rate,
    iteration count) plus `state.json`, a `backup.BackupState`: the epoch and step reached,
    the history so far, the dropout seed generators, the running metrics of an interrupted
    epoch, and the state of the `stateful` callbacks (the plateau schedule's counters, the
    best model's score; Keras' `BackupAndRestore` forgets those, so a resumed run would
    reduce the learning rate at other epochs). The weights file is written first, under a
    temporary name, then renamed; `state.json`, renamed last, names it: a SIGKILL at any
    moment leaves the previous complete backup or the new one. `restore` reads it back.

    `start` is the state this run starts from (its settings and history; None for a new
    run), `first_step` the steps already done in the epoch the run starts in. On SIGTERM
    (`request_stop`) it saves at the end of the current step and raises
    `TrainingInterrupted`. `any_process(flag)` says whether any process of the run asked
    to stop; every process calls it at every step's and epoch's end (a JAX multi-process
    run: all of them stop after the same step, whichever got the signal).
    """

    def __init__(
        self,
        write_dir: str,
        stateful: dict,
        start: backup_lib.BackupState,
        first_step: int = 0,
        any_process: Callable[[bool], bool] = bool,
    ):
        super().__init__()
        self.any_process = any_process
        self.write_dir = write_dir  # the backup directory (a scratch one on other workers)
        self.stateful = stateful
        self.start = start
        self.history: list[dict] = list(start.history)
        self.epoch = 0
        self.step_offset = first_step  # steps done in the current epoch before this fit
        self.stop_requested = False
        self.last: backup_lib.BackupState | None = None  # the last state saved

    def request_stop(self) -> None:
        self.stop_requested = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        steps = (self.params or {}).get("steps") or math.inf  # this fit call's epoch
        last_of_epoch = batch + 1 >= steps
        if self.any_process(self.stop_requested) and not last_of_epoch:
            # (After the epoch's last step, `on_epoch_end` validates, saves and stops: a
            # backup "at step <last>" would resume into an epoch with no steps left.)
            step = self.step_offset + batch + 1
            self.save(self.epoch, step, metric_state=True)
            raise TrainingInterrupted(
                f"Stopped by SIGTERM at step {step} of epoch {self.epoch + 1}; saved a backup "
                f"in {self.write_dir}. Run the same command to resume there."
            )

    def on_epoch_end(self, epoch, logs=None):
        self.history.append(
            {"epoch": epoch + 1, **{k: _jsonable(_float(v)) for k, v in (logs or {}).items()}}
        )
        self.step_offset = 0
        self.save(epoch + 1, 0)
        if self.any_process(self.stop_requested):
            raise TrainingInterrupted(
                f"Stopped by SIGTERM after epoch {epoch + 1}; saved a backup in "
                f"{self.write_dir}. Run the same command to resume."
            )

    def save(self, epoch: int, step: int, metric_state: bool = False) -> None:
        """Writes the weights file, then the state naming it, then removes older weights."""
        os.makedirs(self.write_dir, exist_ok=True)
        check_free_space(self.write_dir, _state_bytes(self.model), "the backup")
        name = f"epoch{epoch:04d}-step{step:08d}.weights.h5"
        atomic_save(self.model.save_weights, os.path.join(self.write_dir, name))
        self.last = backup_lib.saved_state(
            self.start,
            epoch=epoch,
            step=step,
            weights=name,
            history=list(self.history),
            seed_states=[np.asarray(v).tolist() for v in _seed_states(self.model)],
            callbacks={n: callback.get_state() for n, callback in self.stateful.items()},
            metric_state=(
                [_float(v) for v in _metric_variables(self.model)] if metric_state else None
            ),
        )
        backup_lib.write_state(self.write_dir, self.last)
        for old in os.listdir(self.write_dir):
            if old.endswith(".weights.h5") and old != name and not old.startswith(".tmp"):
                os.remove(os.path.join(self.write_dir, old))


def restore(
    model: keras.Model, backup_dir: str, state: backup_lib.BackupState, learning_rate: float
) -> None:
    """Loads the backup `state` (in `backup_dir`) into `model` and its optimizer, with the
    dropout layers' seeds (the callbacks take their counters from `state.callbacks` through
    `set_state`). A `learning_rate` other than the one the backed-up run was given
    replaces the backup's (which the plateau schedule may have reduced): a new rate on resume,
    say after a NaN, is what the run goes on with. Call it in the strategy's scope, after
    `backup.check_resume` (which announces the change)."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(backup_dir, state.weights))
    if state.adjustable.get("learning_rate", learning_rate) != learning_rate:
        optimizer.learning_rate = learning_rate
    for variable, value in zip(_seed_states(model), state.seed_states, strict=True):
        variable.assign(np.asarray(value, variable.dtype))


class ResumeEpochMetrics(keras.callbacks.Callback):
    """Sets the model's running metrics to `values` at the first epoch's start (after Keras
    resets them), so that an epoch resumed mid-way reports what an uninterrupted one would."""

    def __init__(self, values: list | None):
        super().__init__()
        self.values = values

    def on_epoch_begin(self, epoch, logs=None):
        if self.values is not None:
            variables = _metric_variables(self.model)
            for variable, value in zip(variables, self.values, strict=True):
                variable.assign(np.asarray(value, variable.dtype))
            self.values = None


def _seed_states(model: keras.Model) -> list:
    """The dropout layers' random seed states, which `save_weights` does not keep."""
    return [v for v in model.variables if "seed_generator_state" in v.path]


def _metric_variables(model: keras.Model) -> list:
    return [v for metric in model.metrics for v in metric.variables]


class CsvHistory(keras.callbacks.Callback):
    """Writes the whole history (from the backup, so resumed runs included) to a CSV file at
    every epoch end, atomically: one row per epoch, never a duplicate or a gap."""

    def __init__(self, path: str, backup: Backup):
        super().__init__()
        self.path = path
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        write_csv(self.backup.history, self.path)


def write_csv(history: list[dict], path: str) -> None:
    columns = ["epoch"] + sorted({key for row in history for key in row} - {"epoch"})

    def write(temporary):
        with open(temporary, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(history)

    atomic_save(write, path)


@contextlib.contextmanager
def stop_on_sigterm(backup: Backup):
    """While training, SIGTERM asks `backup` to save and stop at the end of the current step."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        del signum, frame
        backup.request_stop()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclasses.dataclass
class TrainingCallbacks:
    """A run's callbacks: the three it consults by name (`plateau` is None with
    `lr_schedule="cosine"`), and all of them in `fit`'s order."""

    plateau: PlateauSchedule | None
    best: KeepBest
    backup: Backup
    all: list

    @property
    def plateau_ended(self) -> bool:
        """A plateau with no learning-rate reduction left ended training (paper 5)."""
        return self.plateau is not None and self.plateau.ended_training


def make_callbacks(
    config: TrainConfig,
    model: keras.Model,
    workspace: Workspace,
    steps_per_epoch: int,
    first_step: int,
    any_process: Callable[[bool], bool] = bool,
) -> TrainingCallbacks:
    """The run's callbacks, attached to `model`, with the counters of the backup it resumes
    (`workspace.resumed`); `first_step` is the steps already done in the epoch it starts in;
    `any_process` is `Backup`'s."""
    resumed = workspace.resumed
    if config.lr_schedule == "plateau":
        plateau = PlateauSchedule(
            config.max_lr_reductions,
            monitor="val_top1_accuracy",  # the same as "validation error stops improving"
            mode="max",
            factor=config.lr_reduce_factor,
            patience=config.lr_reduce_patience,
            min_delta=0.0,
            verbose=1,
        )
        learning_rate, stateful = plateau, {"plateau": plateau}
    else:
        plateau, stateful = None, {}
        learning_rate = StepSchedule(
            recipe.warmup_cosine(config.learning_rate, config.epochs, steps_per_epoch)
        )
    card = {**training_card(config), "class_names": workspace.settings["class_names"]}
    best = KeepBest(workspace.path(BEST_MODEL_FILE), card=card)
    stateful["best"] = best
    start = backup_lib.first_state(resumed, workspace.settings, workspace.adjustable)
    backup_dir = workspace.path(backup_lib.BACKUP_DIR)
    backup = Backup(backup_dir, stateful, start, first_step, any_process)
    for callback in (learning_rate, best, backup):
        callback.set_model(model)
    if resumed:
        for name, callback in backup.stateful.items():
            callback.set_state(resumed.callbacks[name])
    # The order Keras calls them in at each step's and each epoch's end, which matters:
    everything = [
        # 1. a NaN loss stops training before anything saves the broken weights;
        StopOnNonFiniteLoss(backup_dir),
        # 2. (at the first epoch's start) the running metrics of an interrupted epoch;
        ResumeEpochMetrics(resumed.metric_state if resumed else None),
        # 3. the learning rate: reduced (or training ended) on this epoch's validation error,
        #    so that the backup below holds the counters after this epoch; or, with
        #    lr_schedule=cosine, set before every step;
        learning_rate,
        # 4. the best model is saved, and its score kept for the backup;
        best,
        # 5. the backup: weights, optimizer, seeds and the counters of 3 and 4, all at once;
        backup,
        # 6. the history, from the backup's (resumed runs included);
        CsvHistory(workspace.path(HISTORY_FILE), backup),
        # 7. TensorBoard's logs, which nothing reads back.
        keras.callbacks.TensorBoard(workspace.path(LOGS_DIR), profile_batch=0),
    ]
    return TrainingCallbacks(plateau, best, backup, everything)
