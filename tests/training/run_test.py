"""training.train in-process with a small stand-in for AlexNet (tests/stand_in.py): the
behaviours of a run (NaN stop, finished runs, more epochs, plateaus) in seconds. The real
network and the real scripts are run end to end in train_script_test.py."""

import hashlib
import math
import os
import signal

import pytest

from keras_alexnet import files
from keras_alexnet.training import backup, train
from keras_alexnet.training.callbacks import NonFiniteLoss, TrainingInterrupted
from keras_alexnet.training.config import TrainConfig
from tests.stand_in import small_alexnet


def _run(folder, tmp_path, **overrides):
    settings = dict(
        dataset="image_folder",
        image_dir=folder,
        model_dir=str(tmp_path / "run"),
        export_dir=str(tmp_path / "export"),
        epochs=1,
        steps_per_epoch=3,
        batch_size=4,
        learning_rate=0.01,
        mixed_precision="none",
        verbose=0,
    )
    settings.update(overrides)
    return train(TrainConfig(**settings), build_model=small_alexnet)


def _hashes(folder):
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in sorted(os.listdir(folder))
    }


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_backup(folder, tmp_path, capsys):
    _run(folder, tmp_path)
    backup, best = tmp_path / "run" / "backup", tmp_path / "run" / "best.keras"
    before, best_before = _hashes(backup), hashlib.sha256(best.read_bytes()).hexdigest()
    with pytest.raises(NonFiniteLoss, match=r"stopped; the last good backup.*Lower --learning"):
        _run(folder, tmp_path, epochs=2, learning_rate=1e12)
    assert "learning_rate changed from 0.01 to 1000000000000.0" in capsys.readouterr().out
    assert _hashes(backup) == before
    assert hashlib.sha256(best.read_bytes()).hexdigest() == best_before


def test_a_finished_run_is_not_trained_again_and_more_epochs_continue_it(folder, tmp_path, capsys):
    first = _run(folder, tmp_path)
    assert (first.ended, len(first.history)) == ("epochs", 1)
    assert first.export_path == str(tmp_path / "export" / "1")
    again = _run(folder, tmp_path)
    assert "holds a finished run (epochs); not training again" in capsys.readouterr().out
    assert (len(again.history), again.export_path) == (1, first.export_path)
    more = _run(folder, tmp_path, epochs=2)
    assert "epochs changed from 1 to 2." in capsys.readouterr().out
    assert [row["epoch"] for row in more.history] == [1, 2]
    assert more.export_path == str(tmp_path / "export" / "2")


def test_a_plateau_after_the_last_reduction_ends_training(folder, tmp_path):
    """At a learning rate too small to change anything, validation accuracy stays put: with
    patience 1 and no reductions allowed, the second epoch's plateau ends the run."""
    result = _run(
        folder,
        tmp_path,
        epochs=5,
        learning_rate=1e-12,
        lr_reduce_patience=1,
        max_lr_reductions=0,
    )
    assert result.ended == "plateau"
    assert len(result.history) == 2


class _Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs (not even `except Exception`)."""


def _interrupt_at(monkeypatch, epoch, step, how):
    """Makes the next run stop at `step` (1-based) of `epoch` (0-based): `how` "kill" raises
    there, as a SIGKILL would end the process; "term" sends this process a real SIGTERM."""
    from keras_alexnet.training.callbacks import Backup

    original = Backup.on_train_batch_end

    def interrupted(self, batch, logs=None):
        if (self.epoch, self.step_offset + batch + 1) == (epoch, step):
            monkeypatch.setattr(Backup, "on_train_batch_end", original)  # once
            if how == "kill":
                raise _Killed
            os.kill(os.getpid(), signal.SIGTERM)
        original(self, batch, logs)

    monkeypatch.setattr(Backup, "on_train_batch_end", interrupted)


PLATEAU_SGD = dict(lr_reduce_patience=1, max_lr_reductions=5, learning_rate=0.05)
COSINE_ADAM = dict(optimizer="adam", lr_schedule="cosine", learning_rate=0.001)


@pytest.mark.parametrize(
    "how, recipe", [("kill", PLATEAU_SGD), ("term", PLATEAU_SGD), ("term", COSINE_ADAM)]
)
def test_an_interrupted_run_resumes_exactly_as_if_uninterrupted(
    folder, tmp_path, monkeypatch, how, recipe
):
    """Interrupted in epoch 2 of 3 (by a stand-in for SIGKILL, or by a real SIGTERM), then run
    again: the history, learning rates (reduced by the plateau schedule, or set at every step
    by the cosine one), final weights and best model equal those of an uninterrupted run, bit
    for bit."""
    settings = dict(epochs=3, **recipe)
    reference = _run(folder, tmp_path / "reference", **settings)
    _interrupt_at(monkeypatch, epoch=1, step=2, how=how)
    with pytest.raises(_Killed if how == "kill" else TrainingInterrupted):
        _run(folder, tmp_path / how, **settings)
    state = backup.read_state(str(tmp_path / how / "run" / "backup"))
    assert (state.epoch, state.step) == ((1, 0) if how == "kill" else (1, 2))
    resumed = _run(folder, tmp_path / how, **settings)
    assert resumed.history == reference.history
    assert len({row["learning_rate"] for row in resumed.history}) > 1  # the schedule acted
    assert resumed.best_logs == reference.best_logs
    for name in ("backup/epoch0003-step00000000.weights.h5", "best.keras"):
        want, got = (tmp_path / run / "run" / name for run in ("reference", how))
        assert _weights(got) == _weights(want), name


def test_a_cosine_run_warms_up_decays_and_ends_after_its_epochs(folder, tmp_path):
    """3 epochs of 3 steps: the rate logged at each epoch's end is the one of its last step
    (2, 5, 8 of 9): a third of the way up the warm-up, then down the cosine from step 3."""
    result = _run(folder, tmp_path, epochs=3, **COSINE_ADAM)
    rate = COSINE_ADAM["learning_rate"]
    want = [rate * 2 / 3, rate * 0.5 * (1 + math.cos(math.pi * 2 / 6))]
    want.append(rate * 0.5 * (1 + math.cos(math.pi * 5 / 6)))
    assert [row["learning_rate"] for row in result.history] == pytest.approx(want, rel=1e-5)
    assert result.ended == "epochs"
    with pytest.raises(files.PathError, match=r"optimizer: 'adam' then, 'sgd' now"):
        _run(folder, tmp_path, epochs=4, learning_rate=0.001, lr_schedule="cosine")


def _weights(path):
    import keras

    from tests.stand_in import small_alexnet

    model = small_alexnet(3)
    if str(path).endswith(".keras"):
        model = keras.saving.load_model(path)
    else:
        model.load_weights(path, skip_mismatch=True)  # (the file also holds the optimizer)
    return [w.tobytes() for w in model.get_weights()]


def test_a_run_killed_between_training_and_export_exports(folder, tmp_path, monkeypatch, capsys):
    """The backup says training ended but records no export: the next run only exports."""
    from keras_alexnet.serving import export

    def killed(*args, **kwargs):
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(export, "export_saved_model", killed)
        with pytest.raises(_Killed):
            _run(folder, tmp_path)
    assert not os.path.exists(tmp_path / "export")
    result = _run(folder, tmp_path)
    assert "finished training (epochs); exporting its best model" in capsys.readouterr().out
    assert result.export_path == str(tmp_path / "export" / "1")
    assert (len(result.history), result.ended) == (1, "epochs")


def test_a_sigterm_after_the_last_epoch_still_completes_the_history(folder, tmp_path):
    """SIGTERM during the last epoch's last step stops after the epoch is saved, before the
    history file has its row; the run that then only exports writes it."""
    import csv

    from keras_alexnet.training.callbacks import Backup

    original = Backup.on_epoch_end

    def stop_first(self, epoch, logs=None):
        self.request_stop()
        original(self, epoch, logs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Backup, "on_epoch_end", stop_first)
        with pytest.raises(TrainingInterrupted, match="after epoch 1"):
            _run(folder, tmp_path)
    _run(folder, tmp_path)
    with open(tmp_path / "run" / "training_log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1"]


def test_a_full_disk_is_a_clear_error_before_any_write(folder, tmp_path, monkeypatch):
    import collections

    first = _run(folder, tmp_path)
    backup = tmp_path / "run" / "backup"
    before = _hashes(backup)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _: usage(10**9, 10**9, 4096))
    with pytest.raises(files.DiskFull, match=r"The disk is full at .*backup: the backup"):
        _run(folder, tmp_path, epochs=2)
    assert _hashes(backup) == before  # the last complete backup, untouched
    assert not [n for n in os.listdir(backup) if n.startswith(".saving")]
    assert first.export_path and os.listdir(tmp_path / "export") == ["1"]
