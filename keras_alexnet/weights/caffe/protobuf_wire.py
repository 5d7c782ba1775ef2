"""Reading Protocol Buffers messages from their wire format, with no schema compiled.

A `.caffemodel` is one serialized `caffe.NetParameter`. Reading it needs only the wire format
(field number, wire type, value): this module walks a message and hands back its fields, and
reads repeated float fields straight into NumPy arrays that view the file's bytes, so a 244 MB
file is never copied field by field. Any inconsistency (a length past the end of its message, a
varint of more than ten bytes, a wire type Caffe never writes) is a `WireError` that says at
which byte it happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10


class WireError(ValueError):
    """The bytes are not a well-formed Protocol Buffers message."""


@dataclass(frozen=True)
class Field:
    """One field occurrence: `value` is an int (varint, fixed32, fixed64) or, for a
    length-delimited field, the `(start, end)` byte range of its payload in the buffer."""

    number: int
    wire_type: int
    value: int | tuple[int, int]
    offset: int


def read_varint(buffer, position: int, end: int) -> tuple[int, int]:
    """The varint at `position` and the position after it."""
    result = shift = 0
    for index in range(position, min(end, position + _MAX_VARINT_BYTES)):
        byte = buffer[index]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, index + 1
        shift += 7
    if end - position < _MAX_VARINT_BYTES:
        raise WireError(f"the message ends inside a number at byte {position}")
    raise WireError(f"a number at byte {position} is longer than {_MAX_VARINT_BYTES} bytes")


def fields(buffer, start: int = 0, end: int | None = None) -> Iterator[Field]:
    """The fields of the message in `buffer[start:end]`, in the order they were written."""
    end = len(buffer) if end is None else end
    position = start
    while position < end:
        offset = position
        key, position = read_varint(buffer, position, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {offset}")
        if wire_type == VARINT:
            value, position = read_varint(buffer, position, end)
        elif wire_type in (FIXED32, FIXED64):
            width = 4 if wire_type == FIXED32 else 8
            if position + width > end:
                raise WireError(f"the message ends inside field {number} at byte {offset}")
            value = int.from_bytes(buffer[position : position + width], "little")
            position += width
        elif wire_type == LENGTH_DELIMITED:
            length, position = read_varint(buffer, position, end)
            if position + length > end:
                raise WireError(
                    f"field {number} at byte {offset} declares {length} bytes, but its message "
                    f"ends {end - position} bytes later (a truncated file?)"
                )
            value = (position, position + length)
            position += length
        else:
            raise WireError(f"field {number} at byte {offset} has wire type {wire_type}")
        yield Field(number, wire_type, value, offset)


def to_float(bits: int, wire_type: int) -> float:
    """A fixed32 field's float value (or a fixed64 field's double)."""
    dtype, width = ("<f4", 4) if wire_type == FIXED32 else ("<f8", 8)
    return float(np.frombuffer(bits.to_bytes(width, "little"), dtype)[0])


def string(buffer, field: Field) -> str:
    start, end = field.value
    return bytes(buffer[start:end]).decode("utf-8", errors="replace")


def packed_varints(buffer, field: Field) -> list[int]:
    """A repeated integer field: packed (one length-delimited field) or one varint."""
    if field.wire_type == VARINT:
        return [field.value]
    start, end = field.value
    values, position = [], start
    while position < end:
        value, position = read_varint(buffer, position, end)
        values.append(value)
    return values


def signed(value: int) -> int:
    """An int64 field's value: negative numbers are written as 10-byte two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


def float_array(buffer, field: Field, end: int, dtype: str) -> tuple[np.ndarray, int]:
    """A repeated float (`dtype="<f4"`) or double (`"<f8"`) field starting at `field`.

    Packed (the form Caffe writes): a view of the payload, no copy. Unpacked (one key before
    every number): all the following occurrences of the same field up to `end`, read at once.
    Returns the values and the position after the last one read.
    """
    width = np.dtype(dtype).itemsize
    if field.wire_type == LENGTH_DELIMITED:
        start, stop = field.value
        if (stop - start) % width:
            raise WireError(
                f"field {field.number} at byte {field.offset} holds {stop - start} bytes, not a "
                f"whole number of {width}-byte values"
            )
        return np.frombuffer(buffer, dtype, count=(stop - start) // width, offset=start), stop
    key = bytes(buffer[field.offset : field.offset + 1])
    record = 1 + width
    count = (end - field.offset) // record
    table = np.frombuffer(buffer, np.uint8, count=count * record, offset=field.offset)
    table = table.reshape(count, record)
    keys_match = table[:, 0] == key[0]
    run = count if keys_match.all() else int(np.argmin(keys_match))
    values = np.ascontiguousarray(table[:run, 1:]).view(dtype).reshape(run)
    return values, field.offset + run * record
