"""Reading what this process did not write, bounded before it is read: a cache record, a
model card, a `.keras` archive's members, a statistics file, a server's answer. Each read
opens a regular file only (a FIFO, a device or a link to one is refused without blocking),
refuses a size larger than the file can legitimately be before reading it, and parses JSON
with a depth limit, so a hostile or damaged file costs a one-line error, never the memory
or the time it asks for.

    facts = read_json(path, limit=1 << 20, what="the cache record")
    check_keras_archive("model.keras")        # every member's inflated size bounded
"""

from __future__ import annotations

import json
import os
import stat
import zipfile

# JSON nested deeper than this is no file of this package's (they nest 4 levels at most).
MAX_JSON_DEPTH = 64


class UntrustedInput(ValueError):
    """A file or an answer is not what it should be (kind, size, depth); the message names
    it, what was found and what to do."""


def open_regular(path: str, limit: int, what: str) -> tuple[int, int]:
    """Opens `path` for reading, returning (fd, size), when it is a regular file (or a link
    to one) of at most `limit` bytes; the caller closes fd. Opening never blocks, so a FIFO
    is refused like a device."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise UntrustedInput(f"{what} {path} cannot be opened ({error.strerror}).") from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise UntrustedInput(
            f"{what} {path} is not a regular file (a device, FIFO or socket, or a link to "
            "one): it is not read. Remove it or give the path of a file."
        )
    if status.st_size > limit:
        os.close(fd)
        raise UntrustedInput(
            f"{what} {path} has {status.st_size:,} bytes, more than the {limit:,} such a file "
            "can have: it is not read. Remove it or give the right file."
        )
    return fd, status.st_size


def read_bytes(path: str, limit: int, what: str) -> bytes:
    """The content of the regular file `path`, at most `limit` bytes (see `open_regular`)."""
    fd, _ = open_regular(path, limit, what)
    with os.fdopen(fd, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise UntrustedInput(f"{what} {path} grew past {limit:,} bytes while it was read.")
    return data


def parse_json(data: bytes | str, what: str):
    """`data` parsed as JSON, refused (one line) when it is not UTF-8 JSON or nests deeper
    than MAX_JSON_DEPTH."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise UntrustedInput(f"{what} nests deeper than JSON is read here.") from None
    except ValueError as error:  # not JSON, or not UTF-8
        raise UntrustedInput(f"{what} is not JSON ({error}).") from None
    _check_depth(value, what)
    return value


def _check_depth(value, what: str) -> None:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise UntrustedInput(f"{what} nests deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)


def read_json(path: str, limit: int, what: str):
    """The JSON file `path`, bounded in size and depth (`read_bytes`, `parse_json`)."""
    return parse_json(read_bytes(path, limit, what), f"{what} {path}")


# The largest a `.keras` of AlexNet may be, inflated, and each of its small members: the full
# network at 1000 classes in float32 is 244 MB; four times that allows float64 and large
# class counts. A member declaring more is refused before it is inflated (zipfile never
# inflates a member past the size it declares).
MAX_INFLATED_BYTES = 1 << 30
MAX_SMALL_MEMBER_BYTES = 16 << 20  # config.json, metadata.json, the model card
_LARGE_MEMBERS = ("model.weights.h5",)


def check_keras_archive(path: str) -> None:
    """Raises `UntrustedInput` unless `path` is a regular file and a zip whose members
    declare sizes that a `.keras` of AlexNet can have: checked before Keras or the model
    card opens it, on every path that reads one."""
    fd, _ = open_regular(path, MAX_INFLATED_BYTES, "The model file")
    with os.fdopen(fd, "rb") as file:
        try:
            with zipfile.ZipFile(file) as archive:
                members = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise UntrustedInput(
                f"The model file {path} is not a .keras archive ({error})."
            ) from None
    total = 0
    for member in members:
        limit = MAX_INFLATED_BYTES if member.filename in _LARGE_MEMBERS else MAX_SMALL_MEMBER_BYTES
        total += member.file_size
        if member.file_size > limit or total > MAX_INFLATED_BYTES:
            raise UntrustedInput(
                f"The model file {path}: its member {member.filename} inflates to "
                f"{member.file_size:,} bytes, more than any AlexNet's .keras holds "
                f"({limit:,}): it is not read."
            )


def read_zip_member(path: str, member: str, limit: int) -> bytes | None:
    """The member `member` of the zip `path`, or None when it has none; refused when it
    declares more than `limit` bytes (before it is inflated)."""
    with zipfile.ZipFile(path) as archive:
        try:
            info = archive.getinfo(member)
        except KeyError:
            return None
        if info.file_size > limit:
            raise UntrustedInput(
                f"{path}: its member {member} inflates to {info.file_size:,} bytes, more than "
                f"the {limit:,} it can have: it is not read."
            )
        with archive.open(info) as opened:
            return opened.read(limit + 1)[:limit]
