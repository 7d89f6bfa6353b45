"""A small, bounded protobuf wire-format reader (no schema, no code generation).

Enough for the model formats that are protobufs (TensorFlow SavedModel/GraphDef, ONNX): it
yields (field number, wire type, value) where value is an int for varint/fixed fields and a
`memoryview` for length-delimited ones. Every length is checked against the buffer, so a
hostile length cannot make it allocate or read past the data.
"""

from __future__ import annotations

from collections.abc import Iterator

from batchscan.workers.base import FormatError

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


def read_varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise FormatError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FormatError("varint longer than 10 bytes")


def fields(data: memoryview | bytes) -> Iterator[tuple[int, int, int | memoryview]]:
    view = memoryview(data)
    pos = 0
    end = len(view)
    while pos < end:
        key, pos = read_varint(view, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise FormatError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(view, pos)
            yield number, wire, value
        elif wire == LENGTH:
            length, pos = read_varint(view, pos)
            if pos + length > end:
                raise FormatError(f"field {number} length {length} runs past the message")
            yield number, wire, view[pos : pos + length]
            pos += length
        elif wire == FIXED64:
            if pos + 8 > end:
                raise FormatError("truncated fixed64")
            yield number, wire, int.from_bytes(view[pos : pos + 8], "little")
            pos += 8
        elif wire == FIXED32:
            if pos + 4 > end:
                raise FormatError("truncated fixed32")
            yield number, wire, int.from_bytes(view[pos : pos + 4], "little")
            pos += 4
        else:
            raise FormatError(f"unsupported wire type {wire}")


def messages(data: memoryview | bytes, number: int) -> Iterator[memoryview]:
    for field, wire, value in fields(data):
        if field == number and wire == LENGTH and isinstance(value, memoryview):
            yield value


def text(data: memoryview | bytes, number: int) -> str | None:
    for value in messages(data, number):
        return bytes(value).decode("utf-8", "replace")
    return None


def texts(data: memoryview | bytes, number: int) -> list[str]:
    return [bytes(v).decode("utf-8", "replace") for v in messages(data, number)]


def integer(data: memoryview | bytes, number: int) -> int | None:
    for field, wire, value in fields(data):
        if field == number and wire in (VARINT, FIXED32, FIXED64) and isinstance(value, int):
            return value
    return None
