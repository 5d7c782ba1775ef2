"""A run's backup, with no Keras in it: what it holds, when a run may resume from it, and
what the run does next.

A backup is `<model_dir>/backup/`: one weights file (model and optimizer; the Keras side,
`callbacks.Backup` and `callbacks.restore`, writes and reads it) and `state.json`, a
`BackupState`: how far training got, the weights file holding that point, the run's settings,
the history, and what a resumed run needs besides the weights (dropout seeds, the callbacks'
counters, the running metrics of an interrupted epoch). Here:

- the resume contract: the `REQUIRED_SETTINGS` a resumed run must share with the run it
  resumes, the `ADJUSTABLE_SETTINGS` it may change (announced; a run's values of both are
  `directory.backup_settings`), `starting_point` and `check_resume`;
- `read_state` and `write_state`: `state.json` read back safely, and written atomically;
- every state a run makes: `first_state` (what it starts from), `saved_state` (at each save),
  `exported_state` (after the export);
- `next_action`: the whole decision "train, export, or nothing", as a pure function of the
  state and the epochs asked for, so that it can be read, and tested, in one place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from keras_alexnet import untrusted
from keras_alexnet.files import PathError, atomic_save

BACKUP_DIR = "backup"
STATE_FILE = "state.json"
# A state holds the settings (class names included) and one history row per epoch: a few
# kilobytes to a few megabytes. Read bounded (`untrusted`): a backup may be damaged or planted.
MAX_STATE_BYTES = 64 << 20

# Settings a resumed run must share with the run it resumes: each changes what the weights
# in the backup mean, or which batches the rest of the run sees (docs/training.md, "Resuming").
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
    "optimizer",
    "lr_schedule",
    "momentum",
    "adam_beta_2",
    "gradient_centralization",
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


TRAIN, EXPORT, DONE = "train", "export", "done"
# What ends training: the epochs asked for are done, or a plateau with no learning-rate
# reduction left (paper 5).
EPOCHS, PLATEAU = "epochs", "plateau"
ENDINGS = (EPOCHS, PLATEAU)


@dataclasses.dataclass(frozen=True)
class BackupState:
    """One complete backup. `epoch` epochs are done, and `step` steps of the next one."""

    epoch: int
    step: int
    weights: str  # the weights file (model and optimizer), in the backup directory
    settings: dict  # REQUIRED_SETTINGS: a resumed run must share them
    adjustable: dict = dataclasses.field(default_factory=dict)  # ADJUSTABLE_SETTINGS
    history: list = dataclasses.field(default_factory=list)  # one dict of logs per epoch
    seed_states: list = dataclasses.field(default_factory=list)  # the dropout layers'
    callbacks: dict = dataclasses.field(default_factory=dict)  # name -> get_state()
    metric_state: list | None = None  # the running metrics, when saved inside an epoch
    ended: str | None = None  # what ended training (`ENDINGS`), once the best model is exported
    export_path: str | None = None  # that export

    @property
    def plateau_ended(self) -> bool:
        """The plateau schedule ended training (paper 5: no reduction was left)."""
        return bool(self.callbacks.get("plateau", {}).get("finished"))

    def to_json(self) -> dict:
        record = dataclasses.asdict(self)
        record["finished"] = record.pop("ended")  # (the file's name for it)
        return record

    @classmethod
    def from_json(cls, record: dict) -> BackupState:
        """The state from `state.json`. Backups written before the learning rate and the
        precision were adjustable settings kept them at the top level; they are moved."""
        record = dict(record)
        record["ended"] = record.pop("finished", None)
        adjustable = dict(record.get("adjustable") or {})
        for key in ("learning_rate", "precision"):
            if key in record:
                value = record.pop(key)
                if value is not None:
                    adjustable.setdefault(key, value)
        record["adjustable"] = adjustable
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})


@dataclasses.dataclass(frozen=True)
class Action:
    """What a run does next: TRAIN from (`epoch`, `step`); EXPORT the best model of a run
    whose training `ended` (one of `ENDINGS`); or DONE, that export exists."""

    kind: str
    epoch: int = 0
    step: int = 0
    ended: str | None = None


def next_action(state: BackupState | None, epochs: int) -> Action:
    """The next thing a run asked to train `epochs` epochs does, given its backup.

    A plateau that ended training is final. Otherwise training goes on until `epochs`
    epochs are done, so a finished run given more epochs trains on. A run whose training
    ended but whose export did not happen (killed in between) exports; a run whose export
    is recorded does nothing.
    """
    if state is None:
        return Action(TRAIN)
    if state.plateau_ended:
        ended = PLATEAU
    elif state.epoch < epochs:
        return Action(TRAIN, state.epoch, state.step)
    else:
        ended = EPOCHS
    if state.ended == ended and state.export_path is not None:
        return Action(DONE, state.epoch, ended=ended)
    return Action(EXPORT, state.epoch, ended=ended)


def first_state(resumed: BackupState | None, settings: dict, adjustable: dict) -> BackupState:
    """The state a run starts from: the backup it resumes, or an empty one, with this run's
    settings (`directory.backup_settings`; `check_resume` has compared them)."""
    start = resumed or BackupState(0, 0, "", settings)
    return dataclasses.replace(start, settings=settings, adjustable=adjustable)


def saved_state(
    start: BackupState,
    *,
    epoch: int,
    step: int,
    weights: str,
    history: list,
    seed_states: list,
    callbacks: dict,
    metric_state: list | None,
) -> BackupState:
    """The state of a save at (`epoch`, `step`) of a run that started from `start`."""
    return dataclasses.replace(
        start,
        epoch=epoch,
        step=step,
        weights=weights,
        history=history,
        seed_states=seed_states,
        callbacks=callbacks,
        metric_state=metric_state,
        ended=None,
        export_path=None,
    )


def exported_state(state: BackupState, ended: str, export_path: str) -> BackupState:
    """`state` once training `ended` (one of `ENDINGS`) and its best model is exported."""
    return dataclasses.replace(state, ended=ended, export_path=export_path)


def write_state(backup_dir: str, state: BackupState) -> None:
    """Writes `state` as the backup's `state.json`. Write its weights file first: the state
    names it, so a kill between the two leaves the previous complete backup."""
    os.makedirs(backup_dir, exist_ok=True)

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(state.to_json(), f, indent=1)

    atomic_save(write, os.path.join(backup_dir, STATE_FILE))


def _check_state_values(state: BackupState) -> None:
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


def read_state(backup_dir: str) -> BackupState | None:
    """The backup's `state.json`, or None when there is no backup.

    Raises:
        PathError: the state file is damaged, or names a weights file that is gone.
    """
    path = os.path.join(backup_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    start_over = (
        f"Move {backup_dir} away to start this run over (best.keras and the logs stay), or "
        "give another --model_dir."
    )
    try:
        record = untrusted.parse_json(untrusted.read_bytes(path, MAX_STATE_BYTES, "it"), "it")
        state = BackupState.from_json(record)
        _check_state_values(state)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise PathError(
            f"the backup {path} is damaged and cannot be resumed ({type(error).__name__}: "
            f"{error}). {start_over}"
        ) from None
    if not os.path.isfile(os.path.join(backup_dir, state.weights)):
        raise PathError(
            f"the backup {path} names the weights file {state.weights}, which is missing from "
            f"{backup_dir}. {start_over}"
        )
    return state


def check_resume(
    state: BackupState | None, settings: dict, adjustable: dict, model_dir: str
) -> list[str]:
    """Compares a resumed run's settings with those of the run it resumes.

    Returns:
        The announcements of adjustable settings that changed (empty for a new run).

    Raises:
        PathError: a required setting differs; names it, both values, and how to
            start a new run. Settings an older backup did not record are not compared.
    """
    if state is None:
        return []
    saved = state.settings
    changed = [
        key
        for key in REQUIRED_SETTINGS
        if key in saved
        and not (key == "weights" and same_start(saved[key], settings[key]))
        and saved[key] != settings[key]
    ]
    if changed:
        listed = "; ".join(
            f"{key}: {_shown(saved[key])} then, {_shown(settings[key])} now" for key in changed
        )
        raise PathError(
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


def starting_point(weights: str | None):
    """What a run's `--weights` were, as its backup records them: None or "imagenet" as
    given; a file as {"path": its absolute path, "sha256": its digest}, without the digest
    when the file is gone (a resumed run restores the backup and never reads it)."""
    if weights is None or weights == "imagenet":
        return weights
    path = os.path.abspath(os.path.expanduser(weights))
    if not os.path.isfile(path):
        return {"path": path}
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return {"path": path, "sha256": digest.hexdigest()}


def same_start(saved, now) -> bool:
    """Whether a resumed run names the weights its backup started from: the same digest
    where both know the file's, else the same absolute path (the file is gone or moved
    away; the backup holds what the run made of it). A backup of an older version recorded
    the argument as given."""
    if isinstance(saved, str) and isinstance(now, dict):
        return os.path.abspath(os.path.expanduser(saved)) == now["path"]
    if not (isinstance(saved, dict) and isinstance(now, dict)):
        return saved == now
    if "sha256" in saved and "sha256" in now:
        return saved["sha256"] == now["sha256"]
    return saved.get("path") == now.get("path")


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
