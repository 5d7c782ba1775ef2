"""The callbacks that keep a run safe: the plateau schedule, the backup and its restore,
SIGTERM, a non-finite loss."""

import json
import os

import keras
import numpy as np
import pytest

from keras_alexnet.training.backup import BackupState
from keras_alexnet.training.callbacks import (
    Backup,
    KeepBest,
    NonFiniteLoss,
    PlateauSchedule,
    StopOnNonFiniteLoss,
    TrainingInterrupted,
    restore,
)
from keras_alexnet.training.recipe import paper_optimizer


def _linear_model(w0, b0):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.get_layer("dense").set_weights([w0, b0])
    return model


# --- the plateau schedule ----------------------------------------------------------------------


def _compiled_linear(lr=0.01):
    model = _linear_model(np.zeros((3, 2), np.float32), np.zeros(2, np.float32))
    model.compile(optimizer=paper_optimizer(lr), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_plateau_schedule_divides_by_ten_then_ends_training():

    model = _compiled_linear(0.01)
    schedule = PlateauSchedule(
        2, monitor="val_top1_accuracy", mode="max", factor=0.1, patience=2, min_delta=0.0
    )
    schedule.set_model(model)
    schedule.on_train_begin()
    # Validation accuracy per epoch, and by hand: the rate after each epoch and whether
    # training goes on (patience 2: two epochs without a new best make a plateau).
    accuracies = [0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7, 0.7, 0.7]
    expected_lr = [1e-2, 1e-2, 1e-2, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4]
    expected_stop = [False] * 8 + [True]
    for epoch, accuracy in enumerate(accuracies):
        logs = {"val_top1_accuracy": accuracy}
        schedule.on_epoch_end(epoch, logs)
        assert float(model.optimizer.learning_rate) == pytest.approx(expected_lr[epoch])
        assert bool(model.stop_training) == expected_stop[epoch], epoch
        assert logs["learning_rate"] == pytest.approx(([1e-2] + expected_lr)[epoch])
    assert schedule.reductions == 2 and schedule.ended_training


def test_plateau_schedule_state_round_trips():

    def fresh():
        schedule = PlateauSchedule(3, monitor="val_top1_accuracy", mode="max", patience=3)
        schedule.set_model(_compiled_linear())
        return schedule

    first = fresh()
    for epoch, accuracy in enumerate([0.3, 0.4, 0.4, 0.4]):
        first.on_epoch_end(epoch, {"val_top1_accuracy": accuracy})
    second = fresh()
    second.set_state(json.loads(json.dumps(first.get_state())))
    second.on_train_begin()  # must not reset what was restored
    assert (
        second.get_state()
        == first.get_state()
        == {
            "wait": 2,
            "best": pytest.approx(0.4),
            "cooldown_counter": 0,
            "reductions": 0,
            "finished": False,
        }
    )


def test_step_schedule_sets_the_rate_before_every_step_from_the_step_count():
    from keras_alexnet.training.callbacks import StepSchedule
    from keras_alexnet.training.recipe import warmup_cosine

    schedule = warmup_cosine(0.1, 2, 3)
    x, y = np.ones((12, 3), np.float32), np.ones((12, 2), np.float32)

    def rates_of_fit(model, epochs):
        rates = []
        record = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: rates.append(
                float(model.optimizer.learning_rate)
            )
        )
        model.fit(
            x, y, batch_size=4, epochs=epochs, verbose=0, callbacks=[StepSchedule(schedule), record]
        )
        return rates

    want = [float(schedule(t)) for t in range(6)]
    assert want[0] == 0.0 and want[3] == pytest.approx(0.1)  # the warm-up, then the peak
    assert rates_of_fit(_compiled_linear(), 2) == pytest.approx(want)
    # A model whose optimizer was restored at step 3 (the backup keeps the count) goes on there.
    resumed = _compiled_linear()
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.optimizer.iterations.assign(3)
    assert rates_of_fit(resumed, 1) == pytest.approx(want[3:])


# --- the backup --------------------------------------------------------------------------------


def _backup(model, directory, first_step=0):

    plateau = PlateauSchedule(3, monitor="val_top1_accuracy", mode="max")
    best = KeepBest(os.path.join(directory, "best.keras"))
    start = BackupState(0, 0, "", {"batch_size": 4}, adjustable={"learning_rate": 0.01})
    backup = Backup(
        os.path.join(directory, "backup"), {"plateau": plateau, "best": best}, start, first_step
    )
    for callback in (plateau, best, backup):
        callback.set_model(model)
    return backup


def _restore(model, directory, learning_rate=0.01):
    """What `training.train` does on resume: the backup into the model, the counters into the
    callbacks (which a new `_backup` makes)."""
    from keras_alexnet.training import backup

    state = backup.read_state(os.path.join(directory, "backup"))
    restore(model, os.path.join(directory, "backup"), state, learning_rate)
    callbacks = _backup(model, directory)
    for name, callback in callbacks.stateful.items():
        callback.set_state(state.callbacks[name])
    return state, callbacks


def test_backup_restores_weights_optimizer_and_counters(tmp_path):
    model = _compiled_linear()
    x, y = np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)
    model.train_on_batch(x, y)
    backup = _backup(model, str(tmp_path))
    backup.stateful["plateau"].wait, backup.stateful["plateau"].reductions = 2, 1
    backup.on_epoch_end(0, {"loss": 1.5, "val_top1_accuracy": 0.25})
    saved = [v.numpy().copy() for v in model.variables + model.optimizer.variables]

    restored_model = _compiled_linear()
    state, restored = _restore(restored_model, str(tmp_path))
    assert (state.epoch, state.step) == (1, 0)
    now = restored_model.variables + restored_model.optimizer.variables
    for want, got in zip(saved, now, strict=True):
        np.testing.assert_array_equal(got.numpy(), want)  # includes momentum and iterations
    assert restored.stateful["plateau"].wait == 2
    assert restored.stateful["plateau"].reductions == 1
    assert state.history == [{"epoch": 1, "loss": 1.5, "val_top1_accuracy": 0.25}]
    assert state.settings == {"batch_size": 4}  # for backup.check_resume


def test_a_new_learning_rate_replaces_the_backups_reduced_one(tmp_path):
    model = _compiled_linear()
    model.optimizer.learning_rate = 0.001  # the plateau schedule reduced 0.01
    _backup(model, str(tmp_path)).on_epoch_end(0, {"loss": 1.0})
    same, other = _compiled_linear(0.01), _compiled_linear(0.05)  # (the run's --learning_rate)
    _restore(same, str(tmp_path), learning_rate=0.01)
    assert float(same.optimizer.learning_rate) == pytest.approx(0.001)  # kept as reduced
    _restore(other, str(tmp_path), learning_rate=0.05)
    assert float(other.optimizer.learning_rate) == pytest.approx(0.05)


def test_sigterm_in_the_last_step_of_an_epoch_stops_after_the_epoch(tmp_path):
    """A stop requested during an epoch's last step is left to the epoch's end (validation,
    then a backup at the epoch boundary), not saved as a mid-epoch backup with no steps left."""

    backup = _backup(_compiled_linear(), str(tmp_path))
    backup.set_params({"steps": 4, "epochs": 3})
    backup.on_epoch_begin(1)
    backup.request_stop()
    backup.on_train_batch_end(3)  # the last step: no backup, no stop yet
    assert not os.path.exists(tmp_path / "backup")
    with pytest.raises(TrainingInterrupted, match="after epoch 2"):
        backup.on_epoch_end(1, {"loss": 1.0})
    with open(tmp_path / "backup" / "state.json") as f:
        assert (json.load(f)["epoch"], 0) == (2, 0)
    backup.request_stop()
    with pytest.raises(TrainingInterrupted, match="at step 2 of epoch"):
        backup.on_train_batch_end(1)  # inside an epoch: saved where it is


def test_a_save_that_dies_midway_leaves_the_previous_backup(tmp_path, monkeypatch):
    model = _compiled_linear()
    backup = _backup(model, str(tmp_path))
    backup.on_epoch_end(0, {"loss": 1.0})
    files = sorted(os.listdir(tmp_path / "backup"))

    def dies_midway(path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a weights file")
        raise KeyboardInterrupt  # a kill between writing and renaming

    monkeypatch.setattr(model, "save_weights", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        backup.on_epoch_end(1, {"loss": 0.5})
    assert sorted(os.listdir(tmp_path / "backup")) == files  # no temporary file left either
    state, _ = _restore(_compiled_linear(), str(tmp_path))
    assert (state.epoch, state.step) == (1, 0)


def test_non_finite_loss_raises_before_anything_is_saved():

    guard = StopOnNonFiniteLoss("runs/x/backup")
    guard.on_train_batch_end(0, {"loss": 2.3})
    with pytest.raises(NonFiniteLoss, match="loss became nan at step 4 of epoch 1"):
        guard.on_train_batch_end(3, {"loss": float("nan")})
    with pytest.raises(NonFiniteLoss, match="val loss became inf"):
        guard.on_epoch_end(0, {"loss": 2.0, "val_loss": float("inf")})
