"""training.run in-process with a small stand-in for AlexNet (tests/stand_in.py): the
behaviours of a run (NaN stop, finished runs, more epochs, plateaus) in seconds. The real
network and the real scripts are run end to end in train_script_test.py."""

import hashlib
import os

import pytest

from keras_alexnet.config import TrainConfig
from keras_alexnet.training import NonFiniteLoss, run
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
    return run(TrainConfig(**settings), build_model=small_alexnet)


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
    assert (first.finished, len(first.history)) == ("epochs", 1)
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
    assert result.finished == "plateau"
    assert len(result.history) == 2
