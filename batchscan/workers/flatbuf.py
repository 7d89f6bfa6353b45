"""A small, bounded FlatBuffers reader (no schema compiler, no generated code).

Enough for the model formats that are flatbuffers (TFLite, ExecuTorch `.pte`). A flatbuffer
starts with a uint32 offset to the root table; a table starts with an int32 offset back to its
vtable (uint16 vtable size, uint16 table size, one uint16 offset per field, 0 = absent);
strings and vectors are a uint32 length then the data; references are uint32 offsets from
where they are stored (https://flatbuffers.dev/internals/).

Every offset and length is checked against the buffer, so a hostile offset cannot make the
reader allocate or read past the data; the references walked are bounded by the buffer's
size (a vector of N refs to one table of M entries would otherwise cost N x M). The data is
read lazily in pages from the `Source`: weight vectors are skipped by their length, never
read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from batchscan.workers.base import FormatError, Source

_PAGE = 64 * 1024
_MAX_PAGES = 256  # 16 MiB of cached pages per file
MAX_STRING = 1024 * 1024


class Buffer:
    """Bounds-checked little-endian reads of `size` bytes starting at `base` in a source."""

    def __init__(self, source: Source, base: int = 0, size: int | None = None):
        self.source = source
        self.base = base
        self.size = source.size - base if size is None else size
        self._pages: dict[int, bytes] = {}
        # Table and string references walked so far. Each takes 4 bytes of its vector, so a
        # buffer whose vectors are read once (or twice) stays under size / 2; more means
        # vectors or tables shared to multiply the walk (N refs to one plan of M entries).
        self.walked = 0
        self.max_walked = self.size // 2 + 4096

    def walk(self, count: int, what: str) -> None:
        self.walked += count
        if self.walked > self.max_walked:
            raise FormatError(f"{what}: {self.walked} references walked in a {self.size}-byte "
                              "flatbuffer (tables or vectors shared to multiply the work)")

    def read(self, pos: int, length: int, what: str = "data") -> bytes:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise FormatError(f"{what} at {pos} (+{length}) lies outside the {self.size}-byte "
                              f"flatbuffer")
        page, within = divmod(pos, _PAGE)
        if within + length <= _PAGE:
            chunk = self._pages.get(page)
            if chunk is None:
                if len(self._pages) >= _MAX_PAGES:
                    self._pages.clear()
                chunk = self.source.read_at(self.base + page * _PAGE,
                                            min(_PAGE, self.size - page * _PAGE))
                self._pages[page] = chunk
            data = chunk[within : within + length]
        else:
            data = self.source.read_at(self.base + pos, length)
        if len(data) != length:
            raise FormatError(f"{what} at {pos} is truncated")
        return data

    def u8(self, pos: int) -> int:
        return self.read(pos, 1)[0]

    def u16(self, pos: int) -> int:
        value: int = struct.unpack("<H", self.read(pos, 2))[0]
        return value

    def u32(self, pos: int) -> int:
        value: int = struct.unpack("<I", self.read(pos, 4))[0]
        return value

    def i32(self, pos: int) -> int:
        value: int = struct.unpack("<i", self.read(pos, 4))[0]
        return value

    def u64(self, pos: int) -> int:
        value: int = struct.unpack("<Q", self.read(pos, 8))[0]
        return value

    def root(self) -> Table:
        return Table(self, self.u32(0), "root table")


class Table:
    """One table: fields by index (0 = the first field of the schema)."""

    __slots__ = ("_vsize", "_vtable", "buf", "pos")

    def __init__(self, buf: Buffer, pos: int, what: str):
        self.buf = buf
        self.pos = pos
        self._vtable = pos - buf.i32(pos)
        self._vsize = buf.u16(self._vtable)
        if self._vsize < 4 or self._vsize % 2:
            raise FormatError(f"{what} at {pos} has a vtable of {self._vsize} bytes")
        buf.read(self._vtable, self._vsize, f"{what} vtable")

    def _field(self, index: int) -> int:
        slot = 4 + 2 * index
        if slot + 2 > self._vsize:
            return 0
        offset = self.buf.u16(self._vtable + slot)
        return self.pos + offset if offset else 0

    def present(self, index: int) -> bool:
        return self._field(index) != 0

    def u8(self, index: int, default: int = 0) -> int:
        at = self._field(index)
        return self.buf.u8(at) if at else default

    def i8(self, index: int, default: int = 0) -> int:
        at = self._field(index)
        if not at:
            return default
        value: int = struct.unpack("<b", self.buf.read(at, 1))[0]
        return value

    def i32(self, index: int, default: int = 0) -> int:
        at = self._field(index)
        return self.buf.i32(at) if at else default

    def u32(self, index: int, default: int = 0) -> int:
        at = self._field(index)
        return self.buf.u32(at) if at else default

    def u64(self, index: int, default: int = 0) -> int:
        at = self._field(index)
        return self.buf.u64(at) if at else default

    def _target(self, index: int) -> int:
        at = self._field(index)
        return at + self.buf.u32(at) if at else 0

    def table(self, index: int, what: str) -> Table | None:
        target = self._target(index)
        return Table(self.buf, target, what) if target else None

    def string(self, index: int, what: str = "string") -> str | None:
        target = self._target(index)
        return string_at(self.buf, target, what) if target else None

    def vector(self, index: int, width: int, what: str) -> tuple[int, int]:
        """(position of the first element, element count); (0, 0) when absent."""
        target = self._target(index)
        if not target:
            return 0, 0
        count = self.buf.u32(target)
        start = target + 4
        if count * width > self.buf.size - start:
            raise FormatError(f"{what}: {count} elements run past the flatbuffer")
        return start, count

    def tables(self, index: int, what: str) -> Iterator[Table]:
        start, count = self.vector(index, 4, what)
        self.buf.walk(count, what)
        for i in range(count):
            at = start + 4 * i
            yield Table(self.buf, at + self.buf.u32(at), f"{what}[{i}]")

    def strings(self, index: int, what: str) -> Iterator[str]:
        start, count = self.vector(index, 4, what)
        self.buf.walk(count, what)
        for i in range(count):
            at = start + 4 * i
            yield string_at(self.buf, at + self.buf.u32(at), f"{what}[{i}]")

    def ints(self, index: int, what: str, width: int = 4) -> list[int]:
        start, count = self.vector(index, width, what)
        raw = self.buf.read(start, count * width, what) if count else b""
        code = {4: "i", 8: "q", 1: "B"}[width]
        return list(struct.unpack(f"<{count}{code}", raw))


def string_at(buf: Buffer, pos: int, what: str) -> str:
    length = buf.u32(pos)
    if length > MAX_STRING:
        raise FormatError(f"{what}: a {length}-byte string is longer than {MAX_STRING}")
    return buf.read(pos + 4, length, what).decode("utf-8", "replace")
