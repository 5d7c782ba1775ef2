"""Writing files safely: directories checked before a long job, saves atomic (never through a
planted symlink), a full disk reported with the old file kept, killed saves cleaned up."""

import os
import subprocess

import pytest

from keras_alexnet import files
from keras_alexnet.files import PathError
from keras_alexnet.serving.trained_model import write_class_names


def test_a_file_or_an_unwritable_directory_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "run"
    path.write_text("not a directory")
    with pytest.raises(PathError, match=r"--model_dir .*run is a file, not a directory"):
        files.check_writable(str(path))
    folder = tmp_path / "folder"
    folder.mkdir()
    monkeypatch.setattr(os, "access", lambda *args: False)  # as for a read-only directory
    with pytest.raises(PathError, match=r"cannot write in .*folder .*for --export_dir"):
        files.check_writable(str(folder / "a" / "b"), "--export_dir", create=False)
    assert not (folder / "a").exists()
    with pytest.raises(PathError, match=r"cannot create --export_dir .*run/x: .*is a file"):
        files.check_writable(str(path / "x"), "--export_dir", create=False)


def test_atomic_save_never_writes_through_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "names.txt").symlink_to(victim)
    write_class_names(["cat", "dog"], str(tmp_path / "names.txt"))
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

    with pytest.raises(files.DiskFull, match=r"The disk filled up while writing"):
        files.atomic_save(fills_up, str(target))
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["names.txt"]


def test_an_export_dir_whose_name_is_too_long_is_refused_before_training(tmp_path):
    too_long = str(tmp_path / ("x" * 300) / "alexnet")
    with pytest.raises(PathError, match=r"--export_dir .* is 300 bytes long, more than"):
        files.check_writable(too_long, "--export_dir", create=False)
    assert os.listdir(tmp_path) == []


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_saves_killed_midway_are_removed_and_live_ones_kept(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    dead = _dead_pid()
    (tmp_path / f".saving-{dead}-abcd").mkdir()
    (tmp_path / f".saving-{dead}-abcd" / "best.keras").write_bytes(b"half")
    (backup / f".saving-{dead}-efgh").mkdir()
    (backup / f".saving-{os.getpid()}-live").mkdir()  # a save of this (live) process
    (backup / "epoch0001.weights.h5").write_bytes(b"whole")
    (backup / f".saving-{dead}-a-file").write_bytes(b"not a folder the package made")
    removed = files.remove_abandoned_saves(str(tmp_path))
    removed += files.remove_abandoned_saves(str(backup))
    assert sorted(os.path.basename(p) for p in removed) == [
        f".saving-{dead}-abcd",
        f".saving-{dead}-efgh",
    ]
    assert sorted(os.listdir(tmp_path)) == ["backup"]
    assert sorted(os.listdir(backup)) == sorted(
        [f".saving-{dead}-a-file", f".saving-{os.getpid()}-live", "epoch0001.weights.h5"]
    )


@pytest.mark.parametrize("special", ["fifo", "dangling link"])
def test_atomic_save_refuses_to_replace_what_is_not_a_file(tmp_path, special):
    path = tmp_path / "stats.json"
    if special == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(tmp_path / "nowhere", path)
    with pytest.raises(PathError, match="not a regular file|symbolic link to nothing"):
        files.atomic_save(lambda t: open(t, "w").close(), str(path))
    assert os.path.lexists(path) and not os.path.isfile(path)
    assert sorted(os.listdir(tmp_path)) == ["stats.json"]


def test_atomic_save_never_writes_through_a_planted_temporary_name(tmp_path):
    """The temporary name is inside a folder made exclusively: a link planted at any
    guessable name beside the target is not followed."""
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    for pid_name in (f".saving-{os.getpid()}-x", "out.json.tmp", f".tmp-{os.getpid()}-out.json"):
        os.symlink(victim, tmp_path / pid_name)
    files.atomic_save(lambda t: open(t, "w").write("new"), str(tmp_path / "out.json"))
    assert victim.read_text() == "untouched" and (tmp_path / "out.json").read_text() == "new"


def test_hdf5s_words_for_a_full_disk_are_disk_full(tmp_path, monkeypatch):
    """h5py reports a full disk as "Can't synchronously write data" with no errno (seen
    converting the ImageNet weights into a full KERAS_HOME): one DiskFull line, not that."""
    import collections
    import shutil

    def fails(temporary):
        open(temporary, "wb").close()
        raise OSError("Unable to synchronously write data (file write failed: ...)")

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(files.DiskFull, match="The disk filled up while writing"):
        files.atomic_save(fails, str(tmp_path / "w.weights.h5"))
    monkeypatch.undo()
    with pytest.raises(OSError, match="synchronously write"):  # free space: another failure
        files.atomic_save(fails, str(tmp_path / "w.weights.h5"))
    assert os.listdir(tmp_path) == []
