"""The run directory (`--model_dir`): one training process at a time in it, checked before
anything is written into it.

`prepare` (the one entry point `run.train` uses) does, before it writes anything into the
directory:

1. `files.check_writable`: the path is a directory (created if missing) that this user can
   write, and `--export_dir` one that can be created;
2. `DirectoryLock`: holds `<model_dir>/.lock` for the whole run; a second process is refused
   at once with the holder's pid, host and start time. The lock is an advisory `flock`, which
   the kernel drops when its process dies, so the lock of a killed run is taken over by the
   next;
3. `backup.read_state` and `backup.check_resume`: a backup that cannot be read is an error
   naming the file and what to do (never a traceback); a resume with a setting that changes
   the result is refused naming the setting and both values; settings allowed to change are
   announced.

Then it writes the files other scripts read beside `best.keras` (the class names and the
stats, see `serving.trained_model`), and yields a `Workspace`: where this process writes and
the backup it resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from keras_alexnet.files import PathError, check_writable, remove_abandoned_saves
from keras_alexnet.serving import trained_model
from keras_alexnet.training import backup

if TYPE_CHECKING:
    from keras_alexnet.training.setup import TrainingSetup

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

HISTORY_FILE = "training_log.csv"
LOGS_DIR = "logs"
LOCK_FILE = ".lock"


class DirectoryLock:
    """The exclusive lock of a run directory, held from `acquire` to `release`."""

    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        self.path = os.path.join(model_dir, LOCK_FILE)
        self._fd = None

    def acquire(self) -> DirectoryLock:
        if fcntl is None:
            return self
        try:
            # Never through a symlink: the lock file is truncated and written below.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            raise PathError(
                f"{self.path} is not a lock file this run can use ({error.strerror}): it is a "
                "symbolic link or not a regular file. Remove it, or give another --model_dir."
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise PathError(
                f"{self.path} is not a regular file: remove it, or give another --model_dir."
            )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise PathError(
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


@dataclasses.dataclass(frozen=True)
class Workspace:
    """Where this process of the run writes (`write_dir`: the run directory, or a worker's
    scratch directory), the run's backup directory, the backup it resumes (`resumed`, None
    for a new run), and the settings this run keeps in its backup (`backup_settings`)."""

    chief: bool
    write_dir: str
    backup_dir: str
    resumed: backup.BackupState | None
    settings: dict
    adjustable: dict

    def path(self, name: str) -> str:
        """The path of the run's file `name` where this process writes it."""
        return os.path.join(self.write_dir, name)


@contextlib.contextmanager
def prepare(setup: TrainingSetup) -> Iterator[Workspace]:
    """Checks the run directory (writable, locked by this process, its backup readable, the
    settings those of the run it resumes), announces the adjustable settings that changed,
    and only then writes the class names and stats. The lock is held until the block ends.

    Non-chief workers of a multi-worker run write into a scratch directory (the saving code
    still runs on every worker, as collective ops require) and read the chief's backup.
    """
    from keras_alexnet import data  # deferred, heavy: TensorFlow's tf.data side

    config = setup.config
    settings, adjustable = backup_settings(setup)
    backup_dir = os.path.join(config.model_dir, backup.BACKUP_DIR)
    if setup.chief:
        check_writable(config.model_dir)
        check_writable(config.export_dir, "--export_dir", create=False)
        write_dir, lock = config.model_dir, DirectoryLock(config.model_dir).acquire()
        for directory in (config.model_dir, backup_dir):
            for path in remove_abandoned_saves(directory):
                print(f"Removed {path}, left by a process killed while it saved.")
    else:
        write_dir, lock = tempfile.mkdtemp(prefix="keras_alexnet_worker_"), None
    try:
        resumed = backup.read_state(backup_dir)
        for change in backup.check_resume(resumed, settings, adjustable, config.model_dir):
            print(change)
        if resumed is not None and "weights" in resumed.settings:
            # The run's start stays as first recorded (digest and path), however named now.
            settings["weights"] = resumed.settings["weights"]
        trained_model.write_class_names(
            setup.source.class_names, os.path.join(write_dir, trained_model.CLASS_NAMES_FILE)
        )
        data.save_stats(setup.stats, os.path.join(write_dir, trained_model.STATS_FILE))
        yield Workspace(setup.chief, write_dir, backup_dir, resumed, settings, adjustable)
    finally:
        if lock:
            lock.release()
        if not setup.chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def backup_settings(setup: TrainingSetup) -> tuple[dict, dict]:
    """What a resumed run must share with the run it resumes, and what it may change
    (`backup.REQUIRED_SETTINGS`, `backup.ADJUSTABLE_SETTINGS`), as the backup holds them.
    The precision is the policy chosen for this machine, not the `auto` asked for."""
    config, source = setup.config, setup.source
    settings = {
        "dataset": source.name,
        "classes": source.num_classes,
        "class_names": list(source.class_names),
        "stats": dataclasses.asdict(setup.stats),
        "init": config.network_init,
        "batch_size": config.batch_size,
        "steps_per_epoch": setup.steps,
        "seed": config.seed,
        "dropout_rate": config.dropout_rate,
        "optimizer": config.optimizer,
        "lr_schedule": config.lr_schedule,
        "momentum": config.momentum,
        "adam_beta_2": config.adam_beta_2,
        "gradient_centralization": config.gradient_centralization,
        "weight_decay": config.weight_decay,
        "weights": backup.starting_point(config.weights),
        "train_from": config.train_from,
        "lrn": config.network_lrn,
    }
    adjustable = {
        key: setup.precision.policy if key == "precision" else getattr(config, key)
        for key in backup.ADJUSTABLE_SETTINGS
    }
    return json.loads(json.dumps(settings)), json.loads(json.dumps(adjustable))
