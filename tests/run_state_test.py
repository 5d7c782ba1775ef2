"""`next_action`: what a run does next, from its backup and the epochs asked for, as a table."""

import pytest

from keras_alexnet.run_state import DONE, EXPORT, TRAIN, Action, RunState, next_action

PLATEAU_ENDED = {"plateau": {"finished": True}}


def _state(epoch, step=0, finished=None, export_path=None, callbacks=None):
    return RunState(
        epoch,
        step,
        "w.weights.h5",
        {},
        callbacks=callbacks or {"plateau": {"finished": False}},
        finished=finished,
        export_path=export_path,
    )


@pytest.mark.parametrize(
    "state, epochs, expected",
    [
        # No backup: a new run.
        (None, 5, Action(TRAIN, 0, 0)),
        # Killed at an epoch boundary (SIGKILL) or inside an epoch (SIGTERM).
        (_state(2), 5, Action(TRAIN, 2, 0)),
        (_state(2, step=7), 5, Action(TRAIN, 2, 7)),
        # Trained all epochs, killed before the export: export.
        (_state(5), 5, Action(EXPORT, 5, ended="epochs")),
        # Exported: nothing to do, also when fewer epochs are asked for now.
        (_state(5, finished="epochs", export_path="e/1"), 5, Action(DONE, 5, ended="epochs")),
        (_state(5, finished="epochs", export_path="e/1"), 3, Action(DONE, 5, ended="epochs")),
        # A finished run given more epochs trains on.
        (_state(5, finished="epochs", export_path="e/1"), 8, Action(TRAIN, 5, 0)),
        # A plateau that ended training is final, more epochs or not.
        (_state(3, callbacks=PLATEAU_ENDED), 8, Action(EXPORT, 3, ended="plateau")),
        (
            _state(3, finished="plateau", export_path="e/1", callbacks=PLATEAU_ENDED),
            8,
            Action(DONE, 3, ended="plateau"),
        ),
        # Fewer epochs asked for than were trained, never exported: export what is best.
        (_state(4, step=2), 3, Action(EXPORT, 4, ended="epochs")),
    ],
)
def test_next_action(state, epochs, expected):
    assert next_action(state, epochs) == expected


def test_a_state_from_an_older_backup_moves_its_rate_and_precision():
    record = {"epoch": 1, "step": 0, "weights": "w", "settings": {}, "learning_rate": 0.01}
    record.update(precision="float32", adjustable={"epochs": 2})
    state = RunState.from_json(record)
    assert state.adjustable == {"epochs": 2, "learning_rate": 0.01, "precision": "float32"}
    assert RunState.from_json(state.to_json()) == state
