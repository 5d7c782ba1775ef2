"""Writing files so that nothing is lost: a kill at any moment leaves the previous file or
the new one (`atomic_save`), a full disk is refused before a large write (`check_free_space`)
or reported as `DiskFull` when it fills during one, a directory is checked before a long job
writes into it (`check_writable`), and what killed saves left behind is removed
(`remove_abandoned_saves`). Training, the export and the scripts write through these.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable


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


def atomic_save(save: Callable[[str], None], path: str) -> None:
    """Calls `save(temporary path)` next to `path`, then renames it into place. The temporary
    path is inside a new directory only this process made (`mkdtemp`: created exclusively, not
    guessable), so no file planted in its place, a symlink included, is ever written through."""
    directory, name = os.path.split(path)
    private = tempfile.mkdtemp(prefix=f".saving-{os.getpid()}-", dir=directory or ".")
    try:
        temporary = os.path.join(private, name)
        try:
            save(temporary)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
            raise DiskFull(
                f"The disk filled up while writing {path}: free space and run the same "
                "command again (the previous file is kept)."
            ) from None
        os.replace(temporary, path)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def remove_abandoned_saves(directory: str) -> list[str]:
    """Removes what saves killed midway left in `directory` (their `.saving-<pid>-*`
    directories, and the `.tmp-<pid>-<name>` files of older versions); returns the paths.
    Call it holding the run's lock: then no other process saves there."""
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if re.fullmatch(r"\.saving-\d+-.+", name) and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif re.fullmatch(r"\.tmp-\d+-.+", name) and os.path.isfile(path):
            os.remove(path)
        else:
            continue
        removed.append(path)
    return removed


def check_writable_file(path: str, flag: str, what: str = "a file") -> None:
    """Raises `PathError` (naming `flag`) unless `path` can be written as a file: not a
    folder, in a folder that exists (or can be created) and this process can write in.
    Checked before a long job whose result goes there."""
    if os.path.isdir(path):
        raise PathError(f"{flag}={path} is a folder; give the path of {what}.")
    check_writable(os.path.dirname(os.path.abspath(path)), f"{flag}'s folder", create=False)
