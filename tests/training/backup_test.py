"""The backup: `next_action` (what a run does next, from its backup and the epochs asked for)
as a table; `state.json` read back with one-line errors; a resume refused when a setting
that changes the result differs."""

import json
import os

import pytest

from keras_alexnet.files import PathError
from keras_alexnet.training import backup
from keras_alexnet.training.backup import DONE, EXPORT, TRAIN, Action, BackupState, next_action

PLATEAU_ENDED = {"plateau": {"finished": True}}


def _state(epoch, step=0, ended=None, export_path=None, callbacks=None):
    return BackupState(
        epoch,
        step,
        "w.weights.h5",
        {},
        callbacks=callbacks or {"plateau": {"finished": False}},
        ended=ended,
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
        (_state(5, ended="epochs", export_path="e/1"), 5, Action(DONE, 5, ended="epochs")),
        (_state(5, ended="epochs", export_path="e/1"), 3, Action(DONE, 5, ended="epochs")),
        # A finished run given more epochs trains on.
        (_state(5, ended="epochs", export_path="e/1"), 8, Action(TRAIN, 5, 0)),
        # A plateau that ended training is final, more epochs or not.
        (_state(3, callbacks=PLATEAU_ENDED), 8, Action(EXPORT, 3, ended="plateau")),
        (
            _state(3, ended="plateau", export_path="e/1", callbacks=PLATEAU_ENDED),
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
    state = BackupState.from_json(record)
    assert state.adjustable == {"epochs": 2, "learning_rate": 0.01, "precision": "float32"}
    assert BackupState.from_json(state.to_json()) == state


def _write_backup(
    backup_dir, settings, adjustable=None, weights="epoch0001.weights.h5", extra=None
):
    os.makedirs(backup_dir, exist_ok=True)
    state = {"epoch": 1, "step": 0, "weights": weights, "settings": settings, **(extra or {})}
    if adjustable is not None:
        state["adjustable"] = adjustable
    with open(os.path.join(backup_dir, "state.json"), "w") as f:
        json.dump(state, f)
    with open(os.path.join(backup_dir, weights), "wb") as f:
        f.write(b"weights")


def test_a_damaged_backup_is_one_error_naming_it(tmp_path):
    backup_dir = str(tmp_path / "backup")
    assert backup.read_state(backup_dir) is None
    _write_backup(backup_dir, {"seed": 0})
    assert backup.read_state(backup_dir).settings == {"seed": 0}
    state_file = tmp_path / "backup" / "state.json"
    state_file.write_text(state_file.read_text()[:25])
    with pytest.raises(
        PathError, match=r"state.json is damaged.*it is not JSON \(Unterminated string.*Move "
    ):
        backup.read_state(backup_dir)
    _write_backup(backup_dir, {"seed": 0})
    os.remove(tmp_path / "backup" / "epoch0001.weights.h5")
    with pytest.raises(
        PathError,
        match=r"names the weights file epoch0001.weights.h5, "
        r"which is missing",
    ):
        backup.read_state(backup_dir)


def test_resume_requires_the_settings_that_change_the_result():
    saved = {"seed": 0, "dropout_rate": 0.5, "stats": {"mean_rgb": [1, 2, 3]}}
    state = BackupState(1, 0, "w.h5", saved, adjustable={"epochs": 5, "strategy": "mirrored"})
    now = dict(saved, stats={"mean_rgb": [1, 2, 4]}, dropout_rate=0.0, batch_size=8)
    with pytest.raises(
        PathError,
        match=r"R holds a run with other settings \(stats: "
        r".*2, 3.* then, .*2, 4.* now; dropout_rate: 0.5 then, 0.0 now\).*new "
        r"--model_dir",
    ):
        backup.check_resume(state, now, {"epochs": 5, "strategy": "mirrored"}, "R")
    # batch_size was not recorded by this (older) backup: not compared.
    same = dict(saved, batch_size=8)
    assert backup.check_resume(state, same, {"epochs": 9, "strategy": "mirrored"}, "R") == [
        "epochs changed from 5 to 9."
    ]
    assert backup.check_resume(None, same, {}, "R") == []


def test_a_new_learning_rate_or_precision_on_resume_is_announced():
    """The variables are float32 under every policy: a run started on a CPU with bfloat16
    (auto: mixed_bfloat16) may go on on one without (auto: float32)."""
    state = BackupState(1, 0, "w.h5", {}, adjustable={"learning_rate": 0.01, "precision": "x"})
    now = {"learning_rate": 0.001, "precision": "float32"}
    assert backup.check_resume(state, {}, now, "R") == [
        "learning_rate changed from 0.01 to 0.001.",
        "precision changed from 'x' to 'float32'.",
    ]


def test_state_files_of_older_backups_still_resume(tmp_path):
    """Before the learning rate and precision were adjustable settings they were kept at the
    top of state.json; keys a backup does not know are ignored."""
    backup_dir = str(tmp_path / "backup")
    _write_backup(backup_dir, {"seed": 0}, extra={"learning_rate": 0.01, "precision": None, "x": 1})
    state = backup.read_state(backup_dir)
    assert state.adjustable == {"learning_rate": 0.01}
    assert (state.epoch, state.step, state.ended) == (1, 0, None)


def test_a_state_round_trips_through_its_file(tmp_path):
    state = BackupState(
        3, 7, "w.weights.h5", {"seed": 1}, {"epochs": 9}, [{"epoch": 1}], [[1, 2]], {"a": {}}
    )
    backup.write_state(str(tmp_path), state)
    (tmp_path / "w.weights.h5").write_bytes(b"")
    assert backup.read_state(str(tmp_path)) == state
    assert sorted(os.listdir(tmp_path)) == ["state.json", "w.weights.h5"]  # no temporary


@pytest.mark.parametrize(
    "change, message",
    [
        ({"callbacks": []}, "callbacks is not a dict"),
        ({"epoch": "3"}, "epoch is '3', not a count"),
        ({"epoch": -1}, "epoch is -1, not a count"),
        ({"step": 213, "settings": {"steps_per_epoch": 2}}, "step 213 lies beyond the epoch's 2"),
        ({"weights": "../outside.weights.h5"}, "is not a file of the backup directory"),
        ({"weights": "/etc/hostname"}, "is not a file of the backup directory"),
    ],
)
def test_a_tampered_backup_is_refused_as_damaged(tmp_path, change, message):
    backup_dir = str(tmp_path / "backup")
    _write_backup(backup_dir, {"seed": 0})
    state_file = tmp_path / "backup" / "state.json"
    state = json.loads(state_file.read_text())
    state.update(change)
    state_file.write_text(json.dumps(state))
    (tmp_path / "outside.weights.h5").write_bytes(b"weights")
    with pytest.raises(PathError, match=rf"state.json is damaged.*{message}"):
        backup.read_state(backup_dir)
