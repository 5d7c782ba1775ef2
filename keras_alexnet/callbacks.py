"""The callbacks that keep a training run safe: resumable after SIGKILL (`Backup`), saving on
SIGTERM (`stop_on_sigterm`), stopping on a NaN loss (`StopOnNonFiniteLoss`), the paper's
learning-rate plateaus (`PlateauSchedule`), the best model (`KeepBest`) and the history
(`CsvHistory`). Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import threading
from collections.abc import Callable

import keras
import numpy as np

from keras_alexnet import compat, run_directory


class NonFiniteLoss(FloatingPointError):
    """Training stopped on a NaN or infinite loss; the last backup is intact."""


class TrainingInterrupted(Exception):
    """Training stopped on SIGTERM after saving a backup; the same command resumes."""


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
        self.finished = False
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
            self.finished = True
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
            "finished": self.finished,
        }

    def set_state(self, state: dict) -> None:
        self.wait = state["wait"]
        self.best = state["best"]
        self.cooldown_counter = state["cooldown_counter"]
        self.reductions = state["reductions"]
        self.finished = state["finished"]


def _atomic_save(save: Callable[[str], None], path: str) -> None:
    """Calls `save(temporary path)` next to `path`, then renames it into place."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".tmp-{os.getpid()}-{name}")
    try:
        save(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


class KeepBest(keras.callbacks.Callback):
    """Saves the model (`.keras`) whenever `monitor` improves, atomically: a kill never leaves
    a half-written file in place of the best model."""

    def __init__(self, path: str, monitor: str = "val_top1_accuracy"):
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.best = None
        self.best_logs: dict = {}

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            return
        if self.best is None or _float(current) > self.best:
            self.best = _float(current)
            self.best_logs = {"epoch": epoch + 1, **{k: _float(v) for k, v in logs.items()}}
            _atomic_save(self.model.save, self.path)

    def get_state(self) -> dict:
        return {"best": self.best, "best_logs": self.best_logs}

    def set_state(self, state: dict) -> None:
        self.best = state["best"]
        self.best_logs = state["best_logs"]


class Backup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that keeps everything a resumed run needs, and writes it atomically.

    A backup is one weights file (model and optimizer: weights, momentum, learning rate,
    iteration count) plus `state.json`: the epoch and step reached, the history so far, the
    dropout seed generators, the running metrics of an interrupted epoch, and the state of the
    plateau schedule and best-model callbacks (the stock callback forgets those, so a resumed
    run would reduce the learning rate at other epochs). The weights file is written under a
    temporary name and renamed; `state.json`, renamed last, names it: a SIGKILL at any moment
    leaves the previous complete backup or the new one. The backup is kept when training ends.

    On SIGTERM (`request_stop`) it saves at the end of the current step and raises
    `TrainingInterrupted`.
    """

    STATE_FILE = run_directory.STATE_FILE

    def __init__(
        self,
        backup_dir: str,
        stateful: dict,
        settings: dict,
        write_dir: str | None = None,
        learning_rate: float | None = None,
        precision: str | None = None,
        adjustable: dict | None = None,
    ):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=False)
        self.stateful = stateful
        self.settings = settings  # recorded; `run_directory.check_resume` compares them
        self.adjustable = adjustable or {}
        self.learning_rate = learning_rate  # the run's --learning_rate
        self.precision = precision  # the dtype policy it trains under now
        self.write_dir = write_dir or backup_dir  # non-chief workers write elsewhere
        self.history: list[dict] = []
        self.epoch = 0
        self.step_offset = 0  # steps already done in the first epoch of this fit call
        self.stop_requested = False
        self.finished = None
        self.export_path = None
        self.metric_state = None

    # -- restoring --

    def restore(self, state: dict | None = None) -> tuple[int, int]:
        """Loads the backup (`state`, or read from `backup_dir` when None) into the model and
        the stateful callbacks. Returns the (epoch, step) to resume at; (0, 0) for a new run.
        The caller has checked the settings (`run_directory.check_resume`)."""
        if state is None:
            state = run_directory.read_state(self.backup_dir)
        if state is None:
            return 0, 0
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        if self.learning_rate is not None and state["learning_rate"] != self.learning_rate:
            # A new --learning_rate on resume (say after a NaN) replaces the current rate.
            optimizer.learning_rate = self.learning_rate
            compat.print_msg(
                f"learning_rate changed from {state['learning_rate']} to {self.learning_rate}: "
                "training goes on at the new rate."
            )
        before = state.get("precision")
        if before and self.precision and before != self.precision:
            # The variables are float32 under every policy: the run goes on, in the new one.
            compat.print_msg(
                f"precision changed from {before} to {self.precision} (this machine's choice): "
                "training goes on in the new precision."
            )
        for variable, value in zip(_seed_states(self.model), state["seed_states"], strict=True):
            variable.assign(np.asarray(value, variable.dtype))
        for name, callback in self.stateful.items():
            callback.set_state(state["callbacks"][name])
        self.history = state["history"]
        self.finished = state.get("finished")
        self.export_path = state.get("export_path")
        self.metric_state = state.get("metric_state")
        return state["epoch"], state["step"]

    def on_train_begin(self, logs=None):
        pass  # `restore` runs before fit, which needs the epoch to build its data

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.metric_state is not None:
            # Resuming mid-epoch: the epoch's running metrics continue where they were.
            variables = _metric_variables(self.model)
            for variable, value in zip(variables, self.metric_state, strict=True):
                variable.assign(np.asarray(value, variable.dtype))
            self.metric_state = None

    # -- saving --

    def request_stop(self) -> None:
        self.stop_requested = True

    def on_train_batch_end(self, batch, logs=None):
        steps = (self.params or {}).get("steps") or math.inf  # this fit call's epoch
        last_of_epoch = batch + 1 >= steps
        if self.stop_requested and not last_of_epoch:
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
        if self.stop_requested:
            raise TrainingInterrupted(
                f"Stopped by SIGTERM after epoch {epoch + 1}; saved a backup in "
                f"{self.write_dir}. Run the same command to resume."
            )

    def on_train_end(self, logs=None):
        pass  # the backup is kept: it records that the run finished

    def save(self, epoch: int, step: int, metric_state: bool = False, **extra) -> None:
        os.makedirs(self.write_dir, exist_ok=True)
        name = f"epoch{epoch:04d}-step{step:08d}.weights.h5"
        _atomic_save(self.model.save_weights, os.path.join(self.write_dir, name))
        state = {
            "epoch": epoch,
            "step": step,
            "weights": name,
            "settings": self.settings,
            "adjustable": self.adjustable,
            "learning_rate": self.learning_rate,
            "precision": self.precision,
            "history": self.history,
            "seed_states": [np.asarray(v).tolist() for v in _seed_states(self.model)],
            "callbacks": {n: callback.get_state() for n, callback in self.stateful.items()},
            "metric_state": (
                [_float(v) for v in _metric_variables(self.model)] if metric_state else None
            ),
            "finished": self.finished,
            "export_path": self.export_path,
            **extra,
        }

        def write(path):
            with open(path, "w") as f:
                json.dump(state, f, indent=1)

        _atomic_save(write, os.path.join(self.write_dir, self.STATE_FILE))
        for old in os.listdir(self.write_dir):
            if old.endswith(".weights.h5") and old != name and not old.startswith(".tmp"):
                os.remove(os.path.join(self.write_dir, old))

    def mark_finished(self, reason: str, export_path: str | None = None) -> None:
        """Records that training ended (so that running the command again does not train)."""
        self.finished = reason
        self.export_path = export_path
        path = os.path.join(self.write_dir, self.STATE_FILE)
        with open(path) as f:
            state = json.load(f)
        state.update(finished=reason, export_path=export_path)

        def write(p):
            with open(p, "w") as f:
                json.dump(state, f, indent=1)

        _atomic_save(write, path)


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

    _atomic_save(write, path)


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
