"""What a run's backup records (`RunState`) and what a run does next (`next_action`).

`RunState` is `<model_dir>/backup/state.json` as a value: how far training got, the weights
file holding that point, the run's settings (compared on resume), the history, and what a
resumed run needs besides the weights (dropout seeds, the callbacks' counters, the running
metrics of an interrupted epoch). `run_directory` reads and writes it; `callbacks.Backup`
makes a new one at every save.

`next_action` is the whole of the decision "train, export, or nothing", as a pure function
of the state and the epochs asked for, so that it can be read, and tested, in one place.
"""

from __future__ import annotations

import dataclasses

TRAIN, EXPORT, DONE = "train", "export", "done"


@dataclasses.dataclass(frozen=True)
class RunState:
    """One complete backup. `epoch` epochs are done, and `step` steps of the next one."""

    epoch: int
    step: int
    weights: str  # the weights file (model and optimizer), in the backup directory
    settings: dict  # run_directory.REQUIRED_SETTINGS: a resumed run must share them
    adjustable: dict = dataclasses.field(default_factory=dict)  # ADJUSTABLE_SETTINGS
    history: list = dataclasses.field(default_factory=list)  # one dict of logs per epoch
    seed_states: list = dataclasses.field(default_factory=list)  # the dropout layers'
    callbacks: dict = dataclasses.field(default_factory=dict)  # name -> get_state()
    metric_state: list | None = None  # the running metrics, when saved inside an epoch
    finished: str | None = None  # "epochs" or "plateau", once the best model is exported
    export_path: str | None = None  # that export

    @property
    def plateau_ended(self) -> bool:
        """The plateau schedule ended training (paper 5: no reduction was left)."""
        return bool(self.callbacks.get("plateau", {}).get("finished"))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> RunState:
        """The state from `state.json`. Backups written before the learning rate and the
        precision were adjustable settings kept them at the top level; they are moved."""
        record = dict(record)
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
    that training `ended` ("epochs" or "plateau"); or DONE, that export exists."""

    kind: str
    epoch: int = 0
    step: int = 0
    ended: str | None = None


def next_action(state: RunState | None, epochs: int) -> Action:
    """The next thing a run asked to train `epochs` epochs does, given its backup.

    A plateau that ended training is final. Otherwise training goes on until `epochs`
    epochs are done, so a finished run given more epochs trains on. A run whose training
    ended but whose export did not happen (killed in between) exports; a run whose export
    is recorded does nothing.
    """
    if state is None:
        return Action(TRAIN)
    if state.plateau_ended:
        ended = "plateau"
    elif state.epoch < epochs:
        return Action(TRAIN, state.epoch, state.step)
    else:
        ended = "epochs"
    if state.finished == ended and state.export_path is not None:
        return Action(DONE, state.epoch, ended=ended)
    return Action(EXPORT, state.epoch, ended=ended)
