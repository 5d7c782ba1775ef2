"""The run directory: checked before anything is written, and locked to one process."""

import os
import subprocess
import sys

import numpy as np
import pytest

from keras_alexnet.files import PathError
from keras_alexnet.training import TrainConfig
from keras_alexnet.training.directory import DirectoryLock
from tests.conftest import REPO_ROOT, encode, write
from tests.training.backup_test import _write_backup


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    with DirectoryLock(str(tmp_path)):
        with pytest.raises(
            PathError,
            match=rf"in use by another training run \(pid "
            rf"{os.getpid()} on .*, started 20",
        ):
            DirectoryLock(str(tmp_path)).acquire()
    with DirectoryLock(str(tmp_path)):  # released: free again
        pass


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from keras_alexnet.training.directory import DirectoryLock\n"
            f"DirectoryLock({str(tmp_path)!r}).acquire()\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PathError, match=rf"pid {holder.pid} "):
            DirectoryLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    with DirectoryLock(str(tmp_path)):
        pass


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
        PathError,
        match=r"class_names: \['cat', 'dog'\] then, "
        r"\['ant', 'bee'\] now",
    ):
        train(
            TrainConfig(
                dataset="image_folder",
                image_dir=f"{tmp_path}/b",
                model_dir=str(run),
                export_dir=str(tmp_path / "export"),
                batch_size=2,
            )
        )
    assert (run / "class_names.txt").read_text() == "cat\ndog\n"
    assert (run / "stats.json").read_text() == "{}"
    assert not os.path.exists(run / "training_log.csv")


def test_a_locked_run_directory_is_refused_before_anything_is_written(tmp_path, image_folder):
    from keras_alexnet.training import train

    run = tmp_path / "run"
    run.mkdir()
    with DirectoryLock(str(run)):
        with pytest.raises(PathError, match="in use by another training run"):
            train(
                TrainConfig(
                    dataset="image_folder",
                    image_dir=image_folder,
                    model_dir=str(run),
                    export_dir=str(tmp_path / "export"),
                    batch_size=2,
                )
            )
    assert sorted(os.listdir(run)) == [".lock"]


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    with pytest.raises(PathError, match=r"\.lock is not a lock file this run can use"):
        DirectoryLock(str(run)).acquire()
    assert victim.read_text() == "keep"
