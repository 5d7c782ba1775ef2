"""The run directory (`--model_dir`): one training process at a time in it, its backup read
back safely, and the settings a resumed run must share with the run it resumes.

`prepare` (the one entry point `training.run` uses) does, before it writes anything into the
directory:

1. `check_writable`: the path is a directory (created if missing) that this user can write;
2. `RunLock`: holds `<model_dir>/.lock` for the whole run; a second process is refused at once
   with the holder's pid, host and start time. The lock is an advisory `flock`, which the
   kernel drops when its process dies, so the lock of a killed run is taken over by the next;
3. `read_state` and `check_resume`: a backup that cannot be read is an error naming the file
   and what to do (never a traceback); a resume with a setting that changes the result is
   refused naming the setting and both values; settings allowed to change are announced.

Then it writes the files other scripts read (`write_class_names`, and the stats), and yields
a `RunPlace`: where this process writes and the state it resumes. Every file
of the run is written by `atomic_save`: under a temporary name, then renamed, so that a kill
at any moment leaves the previous file or the new one. `write_state` writes the backup's
`state.json` (a `run_state.RunState`) that way, and `read_state` reads it back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import json
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from keras_alexnet.run_state import RunState

if TYPE_CHECKING:
    from keras_alexnet.config import TrainConfig
    from keras_alexnet.data import ColorStats, Source

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

BEST_MODEL_FILE = "best.keras"
CLASS_NAMES_FILE = "class_names.txt"
STATS_FILE = "stats.json"
HISTORY_FILE = "training_log.csv"
BACKUP_DIR = "backup"
STATE_FILE = "state.json"
LOCK_FILE = ".lock"

# Settings a resumed run must share with the run it resumes: each changes what the weights
# in the backup mean, or which batches the rest of the run sees (README, "Resuming").
REQUIRED_SETTINGS = (
    "dataset",
    "classes",
    "class_names",
    "stats",
    "init",
    "batch_size",
    "steps_per_epoch",
    "seed",
    "dropout_rate",
    "momentum",
    "weight_decay",
    "weights",
    "train_from",
    "lrn",
)
# Settings that may change on resume; a change is announced. A new learning rate replaces
# the (possibly reduced) current one; the precision is the one chosen for this machine.
ADJUSTABLE_SETTINGS = (
    "learning_rate",
    "precision",
    "epochs",
    "lr_reduce_factor",
    "lr_reduce_patience",
    "max_lr_reductions",
    "strategy",
    "jit_compile",
)


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked; the message names the path and what to do."""


class DiskFull(RunDirectoryError):
    """Not enough free space to write a file of the run; nothing was half-written."""


# Room left beside a file's estimated size: HDF5 and zip bookkeeping, the state file, logs.
_SPACE_MARGIN = 1.05
_SPACE_SLACK_BYTES = 16 << 20


def check_free_space(path: str, needed: int, what: str) -> None:
    """Raises `DiskFull` unless the filesystem holding `path` has room for `needed` bytes
    and a margin. Checked before each large write: HDF5 has been seen to crash the process
    (a segmentation fault) when the disk fills during a write, so a full disk is refused
    before writing, with a message instead of a crash."""
    directory = path if os.path.isdir(path) else os.path.dirname(path) or "."
    free = shutil.disk_usage(directory).free
    wanted = int(needed * _SPACE_MARGIN) + _SPACE_SLACK_BYTES
    if free < wanted:
        raise DiskFull(
            f"The disk is full at {directory}: {what} needs about {wanted / 1e6:,.0f} MB and "
            f"{free / 1e6:,.0f} MB are free. Free space and run the same command again (the "
            "last complete backup is kept)."
        )


def check_writable(directory: str, flag: str = "--model_dir", create: bool = True) -> None:
    """Raises `RunDirectoryError` (naming `flag`) unless `directory` is, or can be created as,
    a directory this process can write in. With `create`, creates it."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise RunDirectoryError(
            f"{flag} {directory} is a file, not a directory: give a directory (it is created "
            "if missing)."
        )
    if not create:
        existing = os.path.abspath(directory)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        _check_name_lengths(directory, existing, flag)
        if not os.path.isdir(existing):
            raise RunDirectoryError(
                f"cannot create {flag} {directory}: {existing} is a file. Give a directory path."
            )
        directory = existing
    else:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            raise RunDirectoryError(
                f"cannot create {flag} {directory} ({error.strerror}): give a directory you "
                "can write to."
            ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise RunDirectoryError(
            f"cannot write in {directory} (permission denied), for {flag}: give a directory "
            "you can write to, or change its permissions."
        )


def _check_name_lengths(directory: str, existing: str, flag: str) -> None:
    """Raises `RunDirectoryError` for a part of `directory`'s path longer than the filesystem
    (that of `existing`, its nearest existing parent) allows: found now, not when the path is
    first written, which for --export_dir is after training."""
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for part in os.path.abspath(directory).split(os.sep):
        length = len(os.fsencode(part))
        if length > name_max:
            raise RunDirectoryError(
                f"{flag} {directory}: the name {part[:32]!r}... is {length} bytes long, more "
                f"than the {name_max} this filesystem allows. Give a shorter name."
            )


class RunLock:
    """The exclusive lock of a run directory, held from `acquire` to `release`."""

    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        self.path = os.path.join(model_dir, LOCK_FILE)
        self._fd = None

    def acquire(self) -> RunLock:
        if fcntl is None:
            return self
        try:
            # Never through a symlink: the lock file is truncated and written below.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            raise RunDirectoryError(
                f"{self.path} is not a lock file this run can use ({error.strerror}): it is a "
                "symbolic link or not a regular file. Remove it, or give another --model_dir."
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunDirectoryError(
                f"{self.path} is not a regular file: remove it, or give another --model_dir."
            )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirectoryError(
                f"{self.model_dir} is in use by another training run ({holder}): wait for it "
                "to end or stop it, or give another --model_dir."
            ) from None
        os.ftruncate(fd, 0)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
        os.write(fd, json.dumps(holder).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def _read_holder(fd) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"


def atomic_save(save: Callable[[str], None], path: str) -> None:
    """Calls `save(temporary path)` next to `path`, then renames it into place. The temporary
    path is inside a new directory only this process made (`mkdtemp`: created exclusively, not
    guessable), so no file planted in its place, a symlink included, is ever written through."""
    directory, name = os.path.split(path)
    private = tempfile.mkdtemp(prefix=f".saving-{os.getpid()}-", dir=directory or ".")
    try:
        temporary = os.path.join(private, name)
        try:
            save(temporary)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
            raise DiskFull(
                f"The disk filled up while writing {path}: free space and run the same "
                "command again (the previous file is kept)."
            ) from None
        os.replace(temporary, path)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def remove_abandoned_saves(directory: str) -> list[str]:
    """Removes what saves killed midway left in `directory` (their `.saving-<pid>-*`
    directories, and the `.tmp-<pid>-<name>` files of older versions); returns the paths.
    Call it holding the run's lock: then no other process saves there."""
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if re.fullmatch(r"\.saving-\d+-.+", name) and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif re.fullmatch(r"\.tmp-\d+-.+", name) and os.path.isfile(path):
            os.remove(path)
        else:
            continue
        removed.append(path)
    return removed


def write_class_names(class_names: Sequence[str], path: str) -> None:
    """One class name per line, in label order. A name that would not read back as itself
    (empty, a line break inside, spaces around it) is refused."""
    for name in class_names:
        if not name or name != name.strip() or "\n" in name or "\r" in name:
            raise RunDirectoryError(
                f"The class name {name!r} cannot be kept one per line in {path}: rename the "
                "class (no line breaks, no spaces around it)."
            )

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in class_names))

    atomic_save(write, path)


def write_state(backup_dir: str, state: RunState) -> None:
    """Writes `state` as the backup's `state.json`. Write its weights file first: the state
    names it, so a kill between the two leaves the previous complete backup."""
    os.makedirs(backup_dir, exist_ok=True)

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(state.to_json(), f, indent=1)

    atomic_save(write, os.path.join(backup_dir, STATE_FILE))


def _check_state_values(state: RunState) -> None:
    """Raises `TypeError`/`ValueError` for a state whose values cannot come from a run: wrong
    types, negative counters, a step beyond its epoch's steps, a weights file that is not a
    plain name inside the backup directory."""
    for name, kind in (("settings", dict), ("callbacks", dict), ("history", list)):
        if not isinstance(getattr(state, name), kind):
            raise TypeError(f"{name} is not a {kind.__name__}")
    for name in ("epoch", "step"):
        value = getattr(state, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} is {value!r}, not a count")
    steps = state.settings.get("steps_per_epoch")
    if isinstance(steps, int) and not state.step < steps:
        raise ValueError(f"step {state.step} lies beyond the epoch's {steps} steps")
    weights = state.weights
    if (
        not isinstance(weights, str)
        or weights in ("", ".", "..")
        or os.path.basename(weights) != weights
        or (os.altsep and os.altsep in weights)
    ):
        raise ValueError(f"the weights file {weights!r} is not a file of the backup directory")


def read_state(backup_dir: str) -> RunState | None:
    """The backup's `state.json`, or None when there is no backup.

    Raises:
        RunDirectoryError: the state file is damaged, or names a weights file that is gone.
    """
    path = os.path.join(backup_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    start_over = (
        f"Move {backup_dir} away to start this run over (best.keras and the logs stay), or "
        "give another --model_dir."
    )
    try:
        with open(path, encoding="utf-8") as file:
            state = RunState.from_json(json.load(file))
        _check_state_values(state)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise RunDirectoryError(
            f"the backup {path} is damaged and cannot be resumed ({type(error).__name__}: "
            f"{error}). {start_over}"
        ) from None
    if not os.path.isfile(os.path.join(backup_dir, state.weights)):
        raise RunDirectoryError(
            f"the backup {path} names the weights file {state.weights}, which is missing from "
            f"{backup_dir}. {start_over}"
        )
    return state


def check_resume(
    state: RunState | None, settings: dict, adjustable: dict, model_dir: str
) -> list[str]:
    """Compares a resumed run's settings with those of the run it resumes.

    Returns:
        The announcements of adjustable settings that changed (empty for a new run).

    Raises:
        RunDirectoryError: a required setting differs; names it, both values, and how to
            start a new run. Settings an older backup did not record are not compared.
    """
    if state is None:
        return []
    saved = state.settings
    changed = [key for key in REQUIRED_SETTINGS if key in saved and saved[key] != settings[key]]
    if changed:
        listed = "; ".join(
            f"{key}: {_shown(saved[key])} then, {_shown(settings[key])} now" for key in changed
        )
        raise RunDirectoryError(
            f"{model_dir} holds a run with other settings ({listed}). These change what the "
            "run computes: resume it with its own settings, or give a new --model_dir to "
            "start another run."
        )
    before = state.adjustable
    return [
        f"{key} changed from {_shown(before[key])} to {_shown(adjustable[key])}."
        for key in ADJUSTABLE_SETTINGS
        if key in before and before[key] != adjustable[key]
    ]


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclasses.dataclass(frozen=True)
class RunPlace:
    """Where a process of the run writes (`write_dir`: the run directory, or a worker's
    scratch directory), the run's backup directory, the backup's state (None for a new run),
    and the settings this run keeps in its backup."""

    chief: bool
    write_dir: str
    backup_dir: str
    state: RunState | None
    settings: dict
    adjustable: dict


@contextlib.contextmanager
def prepare(
    config: TrainConfig,
    source: Source,
    stats: ColorStats,
    steps: int,
    policy: str,
    chief: bool,
) -> Iterator[RunPlace]:
    """Checks the run directory (writable, locked by this process, its backup readable, the
    settings those of the run it resumes), announces the adjustable settings that changed,
    and only then writes the class names and stats. The lock is held until the block ends.

    Non-chief workers of a multi-worker run write into a scratch directory (the saving code
    still runs on every worker, as collective ops require) and read the chief's backup.
    """
    from keras_alexnet import data

    settings, adjustable = resume_settings(config, source, stats, steps, policy)
    backup_dir = os.path.join(config.model_dir, BACKUP_DIR)
    if chief:
        check_writable(config.model_dir)
        check_writable(config.export_dir, "--export_dir", create=False)
        write_dir, lock = config.model_dir, RunLock(config.model_dir).acquire()
        for directory in (config.model_dir, backup_dir):
            for path in remove_abandoned_saves(directory):
                print(f"Removed {path}, left by a process killed while it saved.")
    else:
        write_dir, lock = tempfile.mkdtemp(prefix="keras_alexnet_worker_"), None
    try:
        state = read_state(backup_dir)
        for change in check_resume(state, settings, adjustable, config.model_dir):
            print(change)
        # What scripts/export.py, predict.py and evaluate.py need besides best.keras.
        write_class_names(source.class_names, os.path.join(write_dir, CLASS_NAMES_FILE))
        data.save_stats(stats, os.path.join(write_dir, STATS_FILE))
        yield RunPlace(chief, write_dir, backup_dir, state, settings, adjustable)
    finally:
        if lock:
            lock.release()
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def resume_settings(
    config: TrainConfig, source: Source, stats: ColorStats, steps: int, policy: str
) -> tuple[dict, dict]:
    """What a resumed run must share with the run it resumes, and what it may change
    (`REQUIRED_SETTINGS`, `ADJUSTABLE_SETTINGS`), as the backup holds them. The precision is
    the policy chosen for this machine (`policy`), not the `auto` asked for."""
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
        "weights": config.weights,
        "train_from": config.train_from,
        "lrn": config.network_lrn,
    }
    adjustable = {
        key: policy if key == "precision" else getattr(config, key) for key in ADJUSTABLE_SETTINGS
    }
    return json.loads(json.dumps(settings)), json.loads(json.dumps(adjustable))
