"""Training: the paper's optimisation (section 5), the `tf.distribute` strategies, callbacks
that keep a run safe (resumable after SIGKILL, saving on SIGTERM, stopping on NaN), and
`train`, which `scripts/train.py` calls.

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
import csv
import dataclasses
import functools
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet import compat, precision, run_directory
from keras_alexnet.alexnet import DROPOUT_RATE

# Paper 5: "stochastic gradient descent with a batch size of 128 examples, momentum of 0.9,
# and weight decay of 0.0005", learning rate initialised at 0.01.
PAPER_BATCH_SIZE = 128
PAPER_MOMENTUM = 0.9
PAPER_WEIGHT_DECAY = 0.0005
PAPER_LEARNING_RATE = 0.01
# Paper 5: "divide the learning rate by 10 when the validation error rate stopped improving
# with the current learning rate ... reduced three times prior to termination".
PAPER_LR_REDUCE_FACTOR = 0.1
PAPER_LR_REDUCTIONS = 3
# Not in the paper (it does not say how long it waited): epochs without a lower validation
# error before the rate is divided.
DEFAULT_LR_REDUCE_PATIENCE = 5


class SettingsError(ValueError):
    """A training argument (a `scripts/train.py` flag), or the data or backup it points to,
    is not usable; the message names it and says what to do."""


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


# --- strategies ------------------------------------------------------------------------------

STRATEGIES = ("mirrored", "multi_worker", "one_device", "towers")


def use_logical_cpus(count: int) -> None:
    """Splits the CPU into `count` logical devices, so that `mirrored` and `towers` can run on
    a machine without GPUs (for trying and testing them). Call it before TensorFlow touches a
    device."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SettingsError(f"logical_cpus must be a positive integer; received {count!r}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError as error:
        raise RuntimeError(
            "logical_cpus must be set before TensorFlow initialises its devices; call "
            f"use_logical_cpus first ({error})."
        ) from None


def _local_devices() -> list[str]:
    """The local accelerators, or else every logical CPU device."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def _cluster_size() -> int:
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return sum(len(tasks) for kind, tasks in cluster.items() if kind in ("chief", "worker"))


def make_strategy(
    strategy: str = "mirrored",
    devices: Sequence[str] | None = None,
    tower_devices: Sequence[str] | None = None,
) -> tuple[tf.distribute.Strategy, tuple[str, str] | None]:
    """The `tf.distribute` strategy for a `--strategy` name, and the tower devices to build with.

    Args:
        strategy: `"mirrored"`: data parallel over `devices` (default: every local GPU, or the
            CPU's logical devices when there is no GPU). `"multi_worker"`:
            MultiWorkerMirroredStrategy from `TF_CONFIG`. `"one_device"`: the first of
            `devices`. `"towers"`: the paper's model parallelism in one replica, tower a on
            `tower_devices[0]` and tower b on `tower_devices[1]` (default: the first two
            local devices).
        devices: the devices of a single-machine strategy.
        tower_devices: two devices; only with `"towers"`.

    Returns:
        `(strategy, tower_devices)`; `tower_devices` is None unless `strategy == "towers"`.
    """
    if strategy not in STRATEGIES:
        raise SettingsError(
            f"strategy must be one of {STRATEGIES}; received strategy={strategy!r}."
        )
    if tower_devices is not None and strategy != "towers":
        raise SettingsError(
            f"tower_devices only applies to strategy='towers'; received strategy={strategy!r} "
            f"with tower_devices={list(tower_devices)}. Towers split one replica over two "
            "devices; with several replicas use 'mirrored' without tower_devices."
        )
    if devices is not None and strategy in ("multi_worker", "towers"):
        raise SettingsError(
            f"devices does not apply to strategy={strategy!r}; received devices={list(devices)}."
            + (" Use tower_devices." if strategy == "towers" else "")
        )
    if strategy == "multi_worker":
        # Before anything lists devices: collective ops must be configured at startup.
        return tf.distribute.MultiWorkerMirroredStrategy(), None
    _check_devices_exist("devices", devices)
    _check_devices_exist("tower_devices", tower_devices)
    devices = list(devices) if devices else _local_devices()
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy(devices), None
    if strategy == "one_device":
        return tf.distribute.OneDeviceStrategy(devices[0]), None
    # towers: one replica, model parallel.
    if _cluster_size() > 1:
        raise SettingsError(
            f"strategy='towers' is one replica split over two devices, but TF_CONFIG describes "
            f"{_cluster_size()} workers. Use strategy='multi_worker' for several machines."
        )
    if tower_devices is None:
        if len(devices) < 2:
            raise SettingsError(
                "strategy='towers' needs two devices; this machine has only "
                f"{devices}. Pass tower_devices=(a, b) (for example the same GPU twice), or "
                "split the CPU with logical_cpus=2."
            )
        tower_devices = devices[:2]
    if len(tower_devices) != 2:
        raise SettingsError(
            f"tower_devices must name two devices; received tower_devices={list(tower_devices)}."
        )
    return tf.distribute.OneDeviceStrategy(tower_devices[0]), tuple(tower_devices)


def _check_devices_exist(argument: str, names: Sequence[str] | None) -> None:
    """Every device in `names` is one this process has (a placement on a missing device would
    otherwise fall back silently, with soft placement, to wherever TensorFlow likes)."""
    available = [d.name for d in tf.config.list_logical_devices()]
    have = set()
    for name in available:
        spec = tf.DeviceSpec.from_string(name)
        have.add((spec.device_type.upper(), spec.device_index))
    for name in names or ():
        try:
            spec = tf.DeviceSpec.from_string(name)
        except (ValueError, TypeError):
            spec = None
        if spec is None or not spec.device_type:
            key = None
        else:
            key = (spec.device_type.upper(), spec.device_index or 0)
        if key not in have:
            raise SettingsError(
                f"{argument} names {name!r}, a device this machine does not have; it has "
                f"{available}. Name one of those (e.g. /gpu:0 or /cpu:0), or split the CPU "
                "with logical_cpus."
            )


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


# --- callbacks -------------------------------------------------------------------------------


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


# --- train -----------------------------------------------------------------------------------

BEST_MODEL_FILE = run_directory.BEST_MODEL_FILE
CLASS_NAMES_FILE = run_directory.CLASS_NAMES_FILE
STATS_FILE = run_directory.STATS_FILE


def write_class_names(class_names: Sequence[str], path: str) -> None:
    """One class name per line, in label order (atomically). A name that would not read back
    as itself (empty, a line break inside, spaces around it) is refused."""
    for name in class_names:
        if not name or name != name.strip() or "\n" in name or "\r" in name:
            raise SettingsError(
                f"The class name {name!r} cannot be kept one per line in {path}: rename the "
                "class (no line breaks, no spaces around it)."
            )

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in class_names))

    _atomic_save(write, path)


@dataclasses.dataclass
class TrainResult:
    """What `train` did: the history per epoch, the best epoch's logs, the export path."""

    history: list[dict]
    best_logs: dict
    export_path: str | None
    finished: str  # "epochs" or "plateau": what ended training
    precision: str  # the Keras dtype policy it trained under (the last part, if resumed)


def _check_number(name, value, minimum=None, maximum=None, integer=False, strict_min=False):
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "an integer" if integer else "a number"
        raise SettingsError(f"{name} must be {what}; received {name}={value!r}.")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        bound = f"> {minimum}" if strict_min else f">= {minimum}"
        raise SettingsError(f"{name} must be {bound}; received {name}={value!r}.")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be <= {maximum}; received {name}={value!r}.")


def _check_choice(name, value, choices):
    if value not in choices:
        raise SettingsError(f"{name} must be one of {choices}; received {name}={value!r}.")


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


def train(
    dataset: str = "alexnet_shapes",
    *,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    image_dir: str | None = None,
    stats: str | None = None,
    model_dir: str = "runs/alexnet",
    export_dir: str = "saved_models/alexnet",
    epochs: int = 90,
    steps_per_epoch: int | None = None,
    batch_size: int = PAPER_BATCH_SIZE,
    learning_rate: float = PAPER_LEARNING_RATE,
    momentum: float = PAPER_MOMENTUM,
    weight_decay: float = PAPER_WEIGHT_DECAY,
    lr_reduce_factor: float = PAPER_LR_REDUCE_FACTOR,
    lr_reduce_patience: int = DEFAULT_LR_REDUCE_PATIENCE,
    max_lr_reductions: int = PAPER_LR_REDUCTIONS,
    strategy: str = "mirrored",
    devices: Sequence[str] | None = None,
    tower_devices: Sequence[str] | None = None,
    mixed_precision: str = "auto",
    jit_compile: bool = False,
    seed: int = 0,
    init: str = "paper",
    dropout_rate: float = DROPOUT_RATE,
    verbose: int = 1,
) -> TrainResult:
    """Trains AlexNet on a dataset with the paper's recipe (section 5), then exports the best
    model. What `scripts/train.py` calls; the arguments are its flags.

    Everything lives in `model_dir`: `backup/` (resumable state, see `Backup`), `best.keras`
    (the best model by validation top-1 error), `class_names.txt`, `stats.json` (the pixel
    statistics used), `training_log.csv`, `logs/` (TensorBoard).
    Running it again with the same arguments resumes a killed run where it stopped; a
    finished run is not trained again.

    Args:
        dataset: "alexnet_shapes" (embedded), "imagenet2012", "image_folder" or a prepared
            tensorflow-datasets name.
        data_dir, manual_dir, image_dir: where the dataset is (see `data.make_source`).
        stats: a JSON file from `scripts/compute_stats.py`; the source's default (ImageNet's
            mean and PCA) when None.
        model_dir: where the run's checkpoints and logs go.
        export_dir: the best model is exported as `<export_dir>/<next version>/`.
        epochs: the most epochs to train (paper: about 90).
        steps_per_epoch: cap on the steps of an epoch (default: one pass over the train split).
        batch_size: the global batch size, split over the replicas.
        learning_rate, momentum, weight_decay: the paper's SGD (section 5).
        lr_reduce_factor, lr_reduce_patience, max_lr_reductions: the learning rate is
            multiplied by `lr_reduce_factor` after `lr_reduce_patience` epochs without a lower
            validation top-1 error; after `max_lr_reductions` reductions the next such plateau
            ends training.
        strategy, devices, tower_devices: see `make_strategy`.
        mixed_precision: "auto" (chosen for the devices the run uses, see
            `precision.choose_precision`: mixed_float16 on GPUs with tensor cores,
            mixed_bfloat16 on CPUs with AMX-BF16 or AVX512_BF16, else float32), "none"
            (float32), "mixed_float16" or "mixed_bfloat16". LRN and the classifier stay
            float32. The choice and its reason are printed and kept in the backup.
        jit_compile: compile the train step with XLA.
        seed: initial weights, data order and augmentation.
        init: "paper" or "he" (see `AlexNet`).
        dropout_rate: dropout on fc6 and fc7 (paper 4.2: 0.5). Short runs on small data
            learn sooner without it (the quickstart: 62% validation accuracy after 360 steps
            with 0, chance level with 0.5 at the same point).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
    """
    from keras_alexnet import data, export
    from keras_alexnet.alexnet import INITIALIZATIONS, AlexNet

    _check_number("epochs", epochs, minimum=1, integer=True)
    if steps_per_epoch is not None:
        _check_number("steps_per_epoch", steps_per_epoch, minimum=1, integer=True)
    _check_number("batch_size", batch_size, minimum=1, integer=True)
    _check_number("learning_rate", learning_rate, minimum=0, strict_min=True)
    _check_number("momentum", momentum, minimum=0, maximum=1)
    _check_number("weight_decay", weight_decay, minimum=0)
    _check_number("lr_reduce_factor", lr_reduce_factor, minimum=0, strict_min=True)
    if lr_reduce_factor >= 1:
        raise SettingsError(
            f"lr_reduce_factor must be < 1 (the paper divides by 10: 0.1); received "
            f"lr_reduce_factor={lr_reduce_factor!r}."
        )
    _check_number("lr_reduce_patience", lr_reduce_patience, minimum=1, integer=True)
    _check_number("max_lr_reductions", max_lr_reductions, minimum=0, integer=True)
    _check_number("seed", seed, minimum=0, integer=True)
    _check_choice("mixed_precision", mixed_precision, precision.PRECISIONS)
    _check_choice("init", init, INITIALIZATIONS)
    if not model_dir:
        raise SettingsError("model_dir must name a directory; received an empty model_dir.")

    distribution, towers = make_strategy(strategy, devices, tower_devices)
    choice = _choose_precision(mixed_precision, distribution, towers, verbose)
    replicas = distribution.num_replicas_in_sync
    if batch_size % replicas:
        raise SettingsError(
            f"batch_size (the global batch) must divide evenly over the {replicas} replicas; "
            f"received batch_size={batch_size}. Use a multiple of {replicas}."
        )
    chief = _is_chief(distribution)
    try:
        source = data.make_source(
            dataset, data_dir=data_dir, manual_dir=manual_dir, image_dir=image_dir, seed=seed
        )
        color_stats = data.load_stats(stats) if stats else source.default_stats
    except ValueError as error:
        raise SettingsError(str(error)) from None
    if source.num_classes < 2:
        raise SettingsError(
            f"{source.name} has {source.num_classes} class ({list(source.class_names)}): a "
            "classifier needs at least 2 (with one, every prediction is right). Add a folder "
            "per class."
        )
    num_train = source.num_examples["train"]
    if num_train < batch_size:
        raise SettingsError(
            f"batch_size={batch_size} is larger than the {num_train} training images of "
            f"{source.name}; use a smaller batch_size."
        )
    steps = num_train // batch_size
    if steps_per_epoch:
        steps = min(steps, steps_per_epoch)

    settings = {  # what a resumed run must share with the run it resumes
        "dataset": source.name,
        "classes": source.num_classes,
        "class_names": list(source.class_names),
        "stats": dataclasses.asdict(color_stats),
        "init": init,
        "batch_size": batch_size,
        "steps_per_epoch": steps,
        "seed": seed,
        "dropout_rate": dropout_rate,
        "momentum": momentum,
        "weight_decay": weight_decay,
    }
    settings = json.loads(json.dumps(settings))  # as the backup will hold them
    adjustable = {  # what it may change (announced)
        "epochs": epochs,
        "lr_reduce_factor": lr_reduce_factor,
        "lr_reduce_patience": lr_reduce_patience,
        "max_lr_reductions": max_lr_reductions,
        "strategy": strategy,
        "jit_compile": jit_compile,
    }
    backup_dir = os.path.join(model_dir, run_directory.BACKUP_DIR)
    # Non-chief workers of a multi-worker run write into a scratch directory (the saving
    # code still runs on every worker, as collective ops require) and read the chief's backup.
    if chief:
        write_dir = model_dir
        run_directory.check_writable(model_dir)
        run_directory.check_writable(export_dir, "--export_dir", create=False)
        lock = run_directory.RunLock(model_dir).acquire()
    else:
        write_dir, lock = tempfile.mkdtemp(prefix="keras_alexnet_worker_"), None
    previous_policy = keras.mixed_precision.global_policy()
    try:
        state = run_directory.read_state(backup_dir)
        for change in run_directory.check_resume(state, settings, adjustable, model_dir):
            print(change)
        # Every check has passed: the run directory may be written. What scripts/export.py,
        # predict.py and evaluate.py need besides best.keras:
        write_class_names(source.class_names, os.path.join(write_dir, CLASS_NAMES_FILE))
        data.save_stats(color_stats, os.path.join(write_dir, STATS_FILE))
        keras.mixed_precision.set_global_policy(choice.policy)
        keras.utils.set_random_seed(seed)
        with distribution.scope():
            model = AlexNet(
                classes=source.num_classes,
                init=init,
                dropout_rate=dropout_rate,
                tower_devices=towers,
            )
            apply_weight_decay(model, weight_decay)
            model.compile(
                optimizer=paper_optimizer(learning_rate, momentum),
                loss="sparse_categorical_crossentropy",
                metrics=[
                    keras.metrics.SparseCategoricalAccuracy(name="top1_accuracy"),
                    keras.metrics.SparseTopKCategoricalAccuracy(
                        k=min(5, source.num_classes), name="top5_accuracy"
                    ),
                ],
                jit_compile=jit_compile,
            )
        plateau = PlateauSchedule(
            max_lr_reductions,
            monitor="val_top1_accuracy",  # the same as "validation error stops improving"
            mode="max",
            factor=lr_reduce_factor,
            patience=lr_reduce_patience,
            min_delta=0.0,
            verbose=1,
        )
        best = KeepBest(os.path.join(write_dir, BEST_MODEL_FILE))
        backup = Backup(
            backup_dir,
            stateful={"plateau": plateau, "best": best},
            settings=settings,
            write_dir=os.path.join(write_dir, run_directory.BACKUP_DIR),
            learning_rate=learning_rate,
            precision=choice.policy,
            adjustable=adjustable,
        )
        for callback in (plateau, best, backup):
            callback.set_model(model)  # restoring happens before fit
        with distribution.scope():
            epoch, step = backup.restore(state)
        if epoch or step:
            logging.info(
                "Resuming from the backup in %s at epoch %d, step %d.", model_dir, epoch + 1, step
            )
            print(f"Resuming {model_dir} at epoch {epoch + 1}, step {step} of {steps}.")
        callbacks = [
            StopOnNonFiniteLoss(backup.write_dir),
            plateau,
            best,
            backup,
            CsvHistory(os.path.join(write_dir, "training_log.csv"), backup),
            keras.callbacks.TensorBoard(os.path.join(write_dir, "logs"), profile_batch=0),
        ]

        def train_data(first_epoch, skip):
            def dataset_fn(context):
                per_replica = context.get_per_replica_batch_size(batch_size)
                per_pipeline = replicas // context.num_input_pipelines  # replicas it feeds
                shards = dict(
                    num_shards=context.num_input_pipelines, shard_index=context.input_pipeline_id
                )
                parts = [
                    _epoch_batches(
                        source,
                        per_replica,
                        batches=steps * per_pipeline,
                        skip=skip * per_pipeline if e == first_epoch else 0,
                        stats=color_stats,
                        seed=_epoch_seed(seed, e),
                        **shards,
                    )
                    for e in range(first_epoch, epochs)
                ]
                return functools.reduce(lambda a, b: a.concatenate(b), parts)

            return distribution.distribute_datasets_from_function(dataset_fn)

        workers = _cluster_size() if strategy == "multi_worker" else 1
        multi = workers > 1
        num_validation = source.num_examples["validation"]
        if multi:
            # Every worker must run the same number of steps: full batches of its shard only.
            validation_steps = (num_validation // workers) // (batch_size // workers)
        else:
            validation_steps = math.ceil(num_validation / batch_size)
        if validation_steps < 1:
            raise SettingsError(
                f"batch_size={batch_size} is larger than the {num_validation} validation images "
                f"of {source.name} can fill{' on every worker' if multi else ''}; use a smaller "
                "batch_size."
            )

        if multi:
            compat.average_scalar_logs_over_workers()
            size = model.input_shape[1]
            example = (tf.zeros((1, size, size, 3)), tf.zeros((1,), tf.int32))
            with distribution.scope():
                compat.build_metrics_from_shapes(model, example)

        def validation_data():
            # Keras keeps one validation iterator for the whole fit: each epoch takes exactly
            # one pass of `validation_steps` global batches from a repeated dataset.
            if not multi:  # global batches, which the strategy splits over the replicas
                # A pass is exactly `validation_steps` batches (the last one partial).
                return data.eval_dataset(source, batch_size, color_stats).repeat()

            def dataset_fn(context):
                per_replica = context.get_per_replica_batch_size(batch_size)
                per_pipeline = replicas // context.num_input_pipelines
                ds = data.eval_dataset(
                    source,
                    per_replica,
                    color_stats,
                    num_shards=context.num_input_pipelines,
                    shard_index=context.input_pipeline_id,
                    drop_remainder=True,  # workers must run equal step counts
                )
                return ds.take(validation_steps * per_pipeline).repeat()

            return distribution.distribute_datasets_from_function(dataset_fn)

        finished = backup.finished
        if finished == "epochs" and epoch < epochs:
            finished = None  # trained to fewer epochs before: go on to the new --epochs
        if finished:
            print(f"{model_dir} holds a finished run ({finished}); not training again.")
        else:
            backup.finished = backup.export_path = None  # (a finished run given more epochs)
            with _stop_on_sigterm(backup):
                val = validation_data()
                fit = functools.partial(
                    model.fit,
                    validation_data=val,
                    validation_steps=validation_steps,
                    callbacks=callbacks,
                    verbose=verbose,
                    shuffle=False,  # the datasets shuffle themselves
                )
                if step and epoch < epochs:  # finish the interrupted epoch first
                    backup.step_offset = step
                    fit(
                        train_data(epoch, step),
                        initial_epoch=epoch,
                        epochs=epoch + 1,
                        steps_per_epoch=steps - step,
                    )
                    epoch += 1
                if epoch < epochs and not plateau.finished:
                    fit(
                        train_data(epoch, 0),
                        initial_epoch=epoch,
                        epochs=epochs,
                        steps_per_epoch=steps,
                    )
            finished = "plateau" if plateau.finished else "epochs"

        export_path = backup.export_path
        if export_path is None or backup.finished != finished:
            with distribution.scope():
                model.load_weights(best.path)
            export_path = export.export_saved_model(
                model,
                export_dir if chief else os.path.join(write_dir, "export"),
                class_names=source.class_names,
                stats=color_stats,
            )
            if chief:
                backup.mark_finished(finished, export_path)
        best_logs = best.best_logs
        if verbose:
            top1, top5 = best_logs.get("val_top1_accuracy"), best_logs.get("val_top5_accuracy")
            print(
                f"Best epoch {best_logs.get('epoch')}: validation top-1 accuracy {top1:.4f} "
                f"(error {1 - top1:.4f}), top-5 accuracy {top5:.4f} (error {1 - top5:.4f})."
            )
            if chief:
                print(f"Exported to {export_path}")
        return TrainResult(
            backup.history, best_logs, export_path if chief else None, finished, choice.policy
        )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if lock:
            lock.release()
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


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


@contextlib.contextmanager
def _stop_on_sigterm(backup: Backup):
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
