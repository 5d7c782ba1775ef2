"""Writing files so that nothing is lost: a kill at any moment leaves the previous file or
the new one (`atomic_save`, the one way the package writes a file or folder whole), a full
disk is refused before a large write (`check_free_space`) or reported as `DiskFull` when it
fills during one, a directory is checked before a long job writes into it (`check_writable`),
and what killed writers left behind is removed (`remove_abandoned_saves`, the one cleaner:
every temporary thing the package writes lives in a `private_folder`, `.saving-<pid>-*`).
Training, the export, the weights cache and the commands write through these.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator


class PathError(ValueError):
    """A path given to the package (a run directory, an export directory, an output file, a
    backup) cannot be used as asked; the message names the path and what to do."""


class DiskFull(PathError):
    """Not enough free space to write a file; nothing was half-written."""


# Room left beside a file's estimated size: HDF5 and zip bookkeeping, the state file, logs.
_SPACE_MARGIN = 1.05
_SPACE_SLACK_BYTES = 16 << 20


def check_free_space(path: str, needed: int, what: str) -> None:
    """Raises `DiskFull` unless the filesystem holding `path` has room for `needed` bytes
    and a margin. Checked before each large write: HDF5 has been seen to crash the process
    (a segmentation fault) when the disk fills during a write, so a full disk is refused
    before writing, with a message instead of a crash."""
    directory = path if os.path.isdir(path) else os.path.dirname(path) or "."
    free = shutil.disk_usage(directory).free
    wanted = int(needed * _SPACE_MARGIN) + _SPACE_SLACK_BYTES
    if free < wanted:
        raise DiskFull(
            f"The disk is full at {directory}: {what} needs about {wanted / 1e6:,.0f} MB and "
            f"{free / 1e6:,.0f} MB are free. Free space and run the same command again (the "
            "last complete backup is kept)."
        )


def check_writable(directory: str, flag: str = "--model_dir", create: bool = True) -> None:
    """Raises `PathError` (naming `flag`) unless `directory` is, or can be created as,
    a directory this process can write in. With `create`, creates it."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise PathError(
            f"{flag} {directory} is a file, not a directory: give a directory (it is created "
            "if missing)."
        )
    if not create:
        existing = os.path.abspath(directory)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        _check_name_lengths(directory, existing, flag)
        if not os.path.isdir(existing):
            raise PathError(
                f"cannot create {flag} {directory}: {existing} is a file. Give a directory path."
            )
        directory = existing
    else:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            raise PathError(
                f"cannot create {flag} {directory} ({error.strerror}): give a directory you "
                "can write to."
            ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PathError(
            f"cannot write in {directory} (permission denied), for {flag}: give a directory "
            "you can write to, or change its permissions."
        )


def _check_name_lengths(directory: str, existing: str, flag: str) -> None:
    """Raises `PathError` for a part of `directory`'s path longer than the filesystem
    (that of `existing`, its nearest existing parent) allows: found now, not when the path is
    first written, which for --export_dir is after training."""
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for part in os.path.abspath(directory).split(os.sep):
        length = len(os.fsencode(part))
        if length > name_max:
            raise PathError(
                f"{flag} {directory}: the name {part[:32]!r}... is {length} bytes long, more "
                f"than the {name_max} this filesystem allows. Give a shorter name."
            )


# Every temporary file or folder the package writes sits in a folder of this name pattern:
# `.saving-<pid of the writer>-<random>` (`private_folder`), the one pattern the cleaner knows.
_PRIVATE_PREFIX = ".saving-"
_PRIVATE_NAME = re.compile(re.escape(_PRIVATE_PREFIX) + r"(\d+)-.+")


@contextlib.contextmanager
def private_folder(directory: str) -> Iterator[str]:
    """A new folder in `directory` that only this process made (`mkdtemp`: created
    exclusively, mode 0700, a name no one can guess), removed at the end of the block. A
    killed process leaves it; `remove_abandoned_saves` removes it once its pid is gone."""
    private = tempfile.mkdtemp(prefix=f"{_PRIVATE_PREFIX}{os.getpid()}-", dir=directory or ".")
    try:
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)


def check_replaceable(path: str, flag: str = "the output") -> None:
    """Raises `PathError` unless `path` is free, a regular file, a folder or a link to a
    regular file: a FIFO, a device (`/dev/null`) or a socket is never replaced by a file."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise PathError(
                f"{flag} {path} is a symbolic link to nothing ({os.readlink(path)}): remove the "
                "link or give another path."
            ) from None
        return
    if not (stat.S_ISREG(status.st_mode) or stat.S_ISDIR(status.st_mode)):
        raise PathError(
            f"{flag} {path} is not a regular file (a device, FIFO or socket): it is not "
            "replaced. Give the path of a file."
        )


def atomic_save(
    save: Callable[[str], None],
    path: str,
    rename: Callable[[str, str], str] | None = None,
) -> str:
    """Calls `save(temporary path)` in a `private_folder` beside `path`, makes what it wrote
    durable (fsync), then renames it into place and returns where it landed: a file or a
    folder appears whole or not at all, and nothing planted at the temporary name, a symlink
    included, is ever written through. `rename(temporary, path)` replaces `os.replace` where
    the final name is chosen at the rename (an export's version). A `path` that is a device,
    FIFO or socket is refused (`check_replaceable`).

    Raises:
        DiskFull: the disk filled up while writing (the previous file is kept).
    """
    check_replaceable(path)
    directory, name = os.path.split(path)
    with private_folder(directory) as private:
        temporary = os.path.join(private, name)
        try:
            save(temporary)
            _fsync_tree(temporary)
        except OSError as error:
            if not _disk_full(error, directory):
                raise
            raise DiskFull(
                f"The disk filled up while writing {path}: free space and run the same "
                "command again (the previous file is kept)."
            ) from None
        if rename is None:
            os.replace(temporary, path)
            final = path
        else:
            final = rename(temporary, path)
        _fsync_directory(os.path.dirname(final) or ".")
    return final


def _disk_full(error: OSError, directory: str) -> bool:
    """Whether a failed write failed for want of space: ENOSPC, or HDF5's own words for it
    ("Can't synchronously write data", no errno) on a disk with almost nothing free."""
    if error.errno == errno.ENOSPC or "No space left on device" in str(error):
        return True
    if "synchronously write" in str(error):
        return shutil.disk_usage(directory or ".").free < _SPACE_SLACK_BYTES
    return False


def _fsync_tree(path: str) -> None:
    """fsync every regular file at or under `path` (where the platform allows it)."""
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(root, name) for root, _, names in os.walk(path) for name in names]
    for file_path in paths:
        if os.path.isfile(file_path) and not os.path.islink(file_path):
            fd = os.open(file_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _fsync_directory(directory: str) -> None:
    """fsync a folder, so that a rename into it survives a power cut (POSIX only)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_abandoned_saves(directory: str) -> list[str]:
    """Removes what writers killed midway left in `directory`: their `private_folder`s whose
    process is gone (a live process's is left alone); returns the paths removed. The pid is
    checked on this machine only: a folder shared by several machines may hold a live
    writer's folder of another machine with a pid that is free here, which is then removed
    and that write fails."""
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        match = _PRIVATE_NAME.fullmatch(name)
        if match and os.path.isdir(path) and not os.path.islink(path):
            if not process_alive(int(match.group(1))):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (this process counts): how a temporary
    folder named after its writer's pid is known to be abandoned."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OverflowError:  # no such pid on any machine
        return False
    return True


def check_writable_file(path: str, flag: str, what: str = "a file") -> None:
    """Raises `PathError` (naming `flag`) unless `path` can be written as a file: not a
    folder, a device, a FIFO or a socket, in a folder that exists (or can be created) and
    this process can write in.
    Checked before a long job whose result goes there."""
    if os.path.isdir(path):
        raise PathError(f"{flag}={path} is a folder; give the path of {what}.")
    check_writable(os.path.dirname(os.path.abspath(path)), f"{flag}'s folder", create=False)
    check_replaceable(path, f"{flag}={path}:")
