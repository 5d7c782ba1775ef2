"""The run directory: checked before anything is written, locked to one process, its backup
read back with one-line errors, and a resume refused when a setting that changes the result
differs."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_alexnet import run_directory
from keras_alexnet.run_directory import RunDirectoryError, RunLock
from keras_alexnet.run_state import RunState
from tests.conftest import encode, write


def test_a_file_or_an_unwritable_directory_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "run"
    path.write_text("not a directory")
    with pytest.raises(RunDirectoryError, match=r"--model_dir .*run is a file, not a directory"):
        run_directory.check_writable(str(path))
    folder = tmp_path / "folder"
    folder.mkdir()
    monkeypatch.setattr(os, "access", lambda *args: False)  # as for a read-only directory
    with pytest.raises(RunDirectoryError, match=r"cannot write in .*folder .*for --export_dir"):
        run_directory.check_writable(str(folder / "a" / "b"), "--export_dir", create=False)
    assert not (folder / "a").exists()
    with pytest.raises(RunDirectoryError, match=r"cannot create --export_dir .*run/x: .*is a file"):
        run_directory.check_writable(str(path / "x"), "--export_dir", create=False)


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    with RunLock(str(tmp_path)):
        with pytest.raises(
            RunDirectoryError,
            match=rf"in use by another training run \(pid "
            rf"{os.getpid()} on .*, started 20",
        ):
            RunLock(str(tmp_path)).acquire()
    with RunLock(str(tmp_path)):  # released: free again
        pass


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from keras_alexnet.run_directory import RunLock\n"
            f"RunLock({str(tmp_path)!r}).acquire()\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirectoryError, match=rf"pid {holder.pid} "):
            RunLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(str(tmp_path)):
        pass


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
    backup = str(tmp_path / "backup")
    assert run_directory.read_state(backup) is None
    _write_backup(backup, {"seed": 0})
    assert run_directory.read_state(backup).settings == {"seed": 0}
    state_file = tmp_path / "backup" / "state.json"
    state_file.write_text(state_file.read_text()[:25])
    with pytest.raises(RunDirectoryError, match=r"state.json is damaged.*JSONDecodeError.*Move "):
        run_directory.read_state(backup)
    _write_backup(backup, {"seed": 0})
    os.remove(tmp_path / "backup" / "epoch0001.weights.h5")
    with pytest.raises(
        RunDirectoryError,
        match=r"names the weights file epoch0001.weights.h5, "
        r"which is missing",
    ):
        run_directory.read_state(backup)


def test_resume_requires_the_settings_that_change_the_result():
    saved = {"seed": 0, "dropout_rate": 0.5, "stats": {"mean_rgb": [1, 2, 3]}}
    state = RunState(1, 0, "w.h5", saved, adjustable={"epochs": 5, "strategy": "mirrored"})
    now = dict(saved, stats={"mean_rgb": [1, 2, 4]}, dropout_rate=0.0, batch_size=8)
    with pytest.raises(
        RunDirectoryError,
        match=r"R holds a run with other settings \(stats: "
        r".*2, 3.* then, .*2, 4.* now; dropout_rate: 0.5 then, 0.0 now\).*new "
        r"--model_dir",
    ):
        run_directory.check_resume(state, now, {"epochs": 5, "strategy": "mirrored"}, "R")
    # batch_size was not recorded by this (older) backup: not compared.
    same = dict(saved, batch_size=8)
    assert run_directory.check_resume(state, same, {"epochs": 9, "strategy": "mirrored"}, "R") == [
        "epochs changed from 5 to 9."
    ]
    assert run_directory.check_resume(None, same, {}, "R") == []


def test_a_new_learning_rate_or_precision_on_resume_is_announced():
    """The variables are float32 under every policy: a run started on a CPU with bfloat16
    (auto: mixed_bfloat16) may go on on one without (auto: float32)."""
    state = RunState(1, 0, "w.h5", {}, adjustable={"learning_rate": 0.01, "precision": "x"})
    now = {"learning_rate": 0.001, "precision": "float32"}
    assert run_directory.check_resume(state, {}, now, "R") == [
        "learning_rate changed from 0.01 to 0.001.",
        "precision changed from 'x' to 'float32'.",
    ]


def test_state_files_of_older_backups_still_resume(tmp_path):
    """Before the learning rate and precision were adjustable settings they were kept at the
    top of state.json; keys a backup does not know are ignored."""
    backup = str(tmp_path / "backup")
    _write_backup(backup, {"seed": 0}, extra={"learning_rate": 0.01, "precision": None, "x": 1})
    state = run_directory.read_state(backup)
    assert state.adjustable == {"learning_rate": 0.01}
    assert (state.epoch, state.step, state.finished) == (1, 0, None)


def test_a_state_round_trips_through_its_file(tmp_path):
    state = RunState(
        3, 7, "w.weights.h5", {"seed": 1}, {"epochs": 9}, [{"epoch": 1}], [[1, 2]], {"a": {}}
    )
    run_directory.write_state(str(tmp_path), state)
    (tmp_path / "w.weights.h5").write_bytes(b"")
    assert run_directory.read_state(str(tmp_path)) == state
    assert sorted(os.listdir(tmp_path)) == ["state.json", "w.weights.h5"]  # no temporary


def test_a_refused_resume_writes_nothing(tmp_path):
    """Defect 1 of issue 13: a resume with another image folder was refused but replaced the
    run's class_names.txt (so an export labelled the old model with the new classes)."""
    from keras_alexnet.training import train

    for name in ("ant", "bee"):
        for i in range(4):
            write(f"{tmp_path}/b/{name}/{i}.png", encode(np.full((9, 9, 3), i, np.uint8), "PNG"))
    run = tmp_path / "run"
    _write_backup(str(run / "backup"), {"class_names": ["cat", "dog"], "classes": 2})
    (run / "class_names.txt").write_text("cat\ndog\n")
    (run / "stats.json").write_text("{}")
    with pytest.raises(
        RunDirectoryError,
        match=r"class_names: \['cat', 'dog'\] then, "
        r"\['ant', 'bee'\] now",
    ):
        train(
            "image_folder",
            image_dir=f"{tmp_path}/b",
            model_dir=str(run),
            export_dir=str(tmp_path / "export"),
            batch_size=2,
        )
    assert (run / "class_names.txt").read_text() == "cat\ndog\n"
    assert (run / "stats.json").read_text() == "{}"
    assert not os.path.exists(run / "training_log.csv")


def test_a_locked_run_directory_is_refused_before_anything_is_written(tmp_path, image_folder):
    from keras_alexnet.training import train

    run = tmp_path / "run"
    run.mkdir()
    with RunLock(str(run)):
        with pytest.raises(RunDirectoryError, match="in use by another training run"):
            train(
                "image_folder",
                image_dir=image_folder,
                model_dir=str(run),
                export_dir=str(tmp_path / "export"),
                batch_size=2,
            )
    assert sorted(os.listdir(run)) == [".lock"]


def test_abandoned_exports_are_removed(tmp_path):
    from keras_alexnet.export import remove_abandoned_exports

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(finished.stdout)
    time.sleep(0.1)
    (tmp_path / f".tmp-3-{dead}").mkdir()
    (tmp_path / f".tmp-4-{os.getpid()}").mkdir()
    (tmp_path / "2").mkdir()
    assert remove_abandoned_exports(str(tmp_path)) == [str(tmp_path / f".tmp-3-{dead}")]
    assert sorted(os.listdir(tmp_path)) == [f".tmp-4-{os.getpid()}", "2"]


def test_class_names_that_would_not_read_back_are_refused(tmp_path):
    from keras_alexnet.prediction import read_class_names
    from keras_alexnet.run_directory import RunDirectoryError, write_class_names

    path = str(tmp_path / "class_names.txt")
    write_class_names(["cat", "dog house", "ü"], path)
    assert read_class_names(path) == ["cat", "dog house", "ü"]
    for bad in ("two\nlines", " padded", ""):
        with pytest.raises(RunDirectoryError, match="cannot be kept one per line"):
            write_class_names(["cat", bad], path)
    assert read_class_names(path) == ["cat", "dog house", "ü"]  # the file is untouched


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
    backup = str(tmp_path / "backup")
    _write_backup(backup, {"seed": 0})
    state_file = tmp_path / "backup" / "state.json"
    state = json.loads(state_file.read_text())
    state.update(change)
    state_file.write_text(json.dumps(state))
    (tmp_path / "outside.weights.h5").write_bytes(b"weights")
    with pytest.raises(RunDirectoryError, match=rf"state.json is damaged.*{message}"):
        run_directory.read_state(backup)


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    with pytest.raises(RunDirectoryError, match=r"\.lock is not a lock file this run can use"):
        RunLock(str(run)).acquire()
    assert victim.read_text() == "keep"


def test_atomic_save_never_writes_through_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "names.txt").symlink_to(victim)
    run_directory.write_class_names(["cat", "dog"], str(tmp_path / "names.txt"))
    assert victim.read_text() == "keep"
    assert (tmp_path / "names.txt").read_text() == "cat\ndog\n"  # the link replaced by the file
    assert sorted(os.listdir(tmp_path)) == ["names.txt", "victim"]  # no temporaries left


def test_a_disk_that_fills_during_a_write_is_disk_full_and_keeps_the_old_file(tmp_path):
    import errno

    target = tmp_path / "names.txt"
    target.write_text("old\n")

    def fills_up(temporary):
        with open(temporary, "w") as file:
            file.write("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(run_directory.DiskFull, match=r"The disk filled up while writing"):
        run_directory.atomic_save(fills_up, str(target))
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["names.txt"]


def test_an_export_dir_whose_name_is_too_long_is_refused_before_training(tmp_path):
    too_long = str(tmp_path / ("x" * 300) / "alexnet")
    with pytest.raises(RunDirectoryError, match=r"--export_dir .* is 300 bytes long, more than"):
        run_directory.check_writable(too_long, "--export_dir", create=False)
    assert os.listdir(tmp_path) == []


def test_saves_killed_midway_are_removed_by_the_next_lock_holder(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (tmp_path / ".saving-123-abcd").mkdir()
    (tmp_path / ".saving-123-abcd" / "best.keras").write_bytes(b"half")
    (backup / ".tmp-77-epoch0001.weights.h5").write_bytes(b"half")
    (backup / "epoch0001.weights.h5").write_bytes(b"whole")
    removed = run_directory.remove_abandoned_saves(str(tmp_path))
    removed += run_directory.remove_abandoned_saves(str(backup))
    assert sorted(os.path.basename(p) for p in removed) == [
        ".saving-123-abcd",
        ".tmp-77-epoch0001.weights.h5",
    ]
    assert sorted(os.listdir(tmp_path)) == ["backup"]
    assert os.listdir(backup) == ["epoch0001.weights.h5"]
