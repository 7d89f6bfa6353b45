"""Flax/JAX msgpack checkpoints (`flax.serialization.to_bytes`, `flax.training.checkpoints`).

Layout. One msgpack map (the state dict: nested maps of str keys); leaves are msgpack
scalars, strings, binaries, or extension types: 1 = ndarray (payload: msgpack
`[shape, dtype name, raw bytes]`), 2 = Python complex (payload: msgpack `[real, imag]`), 3 =
NumPy scalar (as 1, 0-d). Arrays over 1 GiB are split into maps marked
`__msgpack_chunked_array__`.

Attack surface. `flax.serialization.msgpack_restore` calls `msgpack.unpackb(ext_hook=...)`
and `np.frombuffer(buffer, dtype=np.dtype(name)).reshape(shape)`: there is no code path -
object and structured dtypes cannot be built from a buffer (NumPy refuses), unknown extension
types come back as opaque `ExtType` values. The format is inert by design; what a file can
steer is resource use (msgpack lengths and counts, nesting: the reference unpacker allocates
by declared sizes) and strings that downstream code might decode (encoded pickles).

What is checked. The whole file is parsed with a bounded msgpack reader (lengths and counts
bounded by the bytes left, nesting <= 256, every ext payload parsed too); array extension
payloads must be `[shape, dtype, bytes]` with a plain numeric dtype and a buffer of exactly
shape x itemsize bytes; other extension types, object/structured dtypes and mismatched
buffers -> FLX001 (info); string leaves go through the config checks (encoded pickles,
templates); trailing bytes or truncation -> `error`.

Rules
| id     | name                | severity | CWE    |
|--------|---------------------|----------|--------|
| FLX001 | unexpected-ext-type | info     | CWE-20 |
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source
from batchscan.workers.configs import CONFIG_RULES, walk_config

FORMAT = "flax_msgpack"

UNEXPECTED = rules.FLX001
RULES: tuple[Rule, ...] = (UNEXPECTED, *CONFIG_RULES)

MAX_BYTES = 1 << 40  # read in windows; tensor bytes are skipped
MAX_DEPTH = 256
MAX_STRINGS = 100_000
MAX_FINDINGS = 20
_NDARRAY, _COMPLEX, _NPSCALAR = 1, 2, 3
# An ndarray extension (ext8/16/32 or fixext, type 1) whose payload opens a 3-element array.
_ARRAY_EXT = re.compile(rb"(?:\xc7.|\xc8..|\xc9....)\x01\x93", re.DOTALL)
# NumPy dtype names flax writes (`arr.dtype.name`), plus JAX's bfloat16 and friends.
_DTYPE = re.compile(r"\A(?:bool|u?int(?:8|16|32|64)|float(?:16|32|64|128)|complex(?:64|128|256)"
                    r"|bfloat16|float8_[a-z0-9]+|int4|uint4|float4_e2m1fn)\Z")
_SIZES = {"bool": 1, "bfloat16": 2, "int4": 1, "uint4": 1, "float4_e2m1fn": 1}


def sniff(head: bytes, name: str) -> bool:
    if len(head) < 2:
        return False
    first = head[0]
    if 0x81 <= first <= 0x8F:  # not 0x80: that is a pickle's PROTO opcode
        key_at = 1
    elif first in (0xDE, 0xDF):
        key_at = 3 if first == 0xDE else 5
    else:
        return False
    key = head[key_at : key_at + 1]
    if not key or not (0xA0 <= key[0] <= 0xBF or key[0] in (0xD9, 0xDA)):
        return False
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if base.endswith((".msgpack", ".flax")) or base == "checkpoint":  # Orbax's legacy file
        return True
    return _ARRAY_EXT.search(head) is not None


class _Blob(int):
    """A binary value that was skipped, not read: its length."""


class _Reader:
    """Sequential bounded reads from the source (a 64 KiB window, refilled as needed);
    binaries over 64 KiB (tensor bytes) are skipped, never read."""

    def __init__(self, source: Source):
        self.source = source
        self.size = source.size
        self.pos = 0
        self.base = 0
        self.buf = b""
        self.strings: list[str] = []
        self.problems: list[str] = []

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise FormatError(f"msgpack value of {n} bytes at offset {self.pos} runs past the end")
        rel = self.pos - self.base
        if rel < 0 or rel + n > len(self.buf):
            self.base = self.pos
            # A small window: after a skipped tensor the next refill must not read it.
            self.buf = self.source.read_at(self.pos, max(n, 64 * 1024))
            rel = 0
            if len(self.buf) < n:
                raise FormatError(f"truncated at offset {self.pos}")
        chunk = self.buf[rel : rel + n]
        self.pos += n
        return chunk

    def skip(self, n: int) -> _Blob:
        if n < 0 or self.pos + n > self.size:
            raise FormatError(f"msgpack value of {n} bytes at offset {self.pos} runs past the end")
        self.pos += n
        return _Blob(n)

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self, n: int, per: int) -> int:
        if n * per > self.size - self.pos:
            raise FormatError(f"msgpack container of {n} entries at offset {self.pos} exceeds "
                              "the file")
        return n

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise FormatError(f"msgpack nests deeper than {MAX_DEPTH}")
        b = self.take(1)[0]
        if b <= 0x7F or b >= 0xE0:
            return b if b <= 0x7F else b - 0x100
        if 0x80 <= b <= 0x8F:
            return self.map(b & 0x0F, depth)
        if 0x90 <= b <= 0x9F:
            return self.array(b & 0x0F, depth)
        if 0xA0 <= b <= 0xBF:
            return self.string(b & 0x1F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if b in simple:
            return simple[b]
        if b in (0xC4, 0xC5, 0xC6):
            size = self.unpack({0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}[b])
            return self.take(size) if size <= 65536 else self.skip(size)
        if b in (0xC7, 0xC8, 0xC9):
            size = self.unpack({0xC7: ">B", 0xC8: ">H", 0xC9: ">I"}[b])
            return self.ext(self.unpack(">b"), size, depth)
        numbers = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
                   0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
        if b in numbers:
            return self.unpack(numbers[b])
        if 0xD4 <= b <= 0xD8:
            code = self.unpack(">b")
            return self.ext(code, 1 << (b - 0xD4), depth)
        if b in (0xD9, 0xDA, 0xDB):
            return self.string(self.unpack({0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}[b]))
        if b in (0xDC, 0xDD):
            return self.array(self.unpack(">H" if b == 0xDC else ">I"), depth)
        if b in (0xDE, 0xDF):
            return self.map(self.unpack(">H" if b == 0xDE else ">I"), depth)
        raise FormatError(f"invalid msgpack byte 0x{b:02x} at offset {self.pos - 1}")

    def string(self, n: int) -> str:
        text = self.take(n).decode("utf-8", "replace")
        if len(self.strings) < MAX_STRINGS and n >= 4:
            self.strings.append(text)
        return text

    def array(self, n: int, depth: int) -> list[Any]:
        return [self.value(depth + 1) for _ in range(self.count(n, 1))]

    def map(self, n: int, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for _ in range(self.count(n, 2)):
            key = self.value(depth + 1)
            if isinstance(key, (list, dict)):
                raise FormatError("msgpack map key is a container")
            result[key if not isinstance(key, bytes) else key.hex()] = self.value(depth + 1)
        return result

    def ext(self, code: int, size: int, depth: int) -> str:
        at, end = self.pos, self.pos + size
        if end > self.size:
            raise FormatError(f"extension of {size} bytes at offset {at} runs past the end")
        if code in (_NDARRAY, _NPSCALAR):
            triple = self.value(depth + 1)
            if self.pos != end or not (isinstance(triple, list) and len(triple) == 3):
                raise FormatError(f"array extension at offset {at} is not [shape, dtype, bytes]")
            self.ndarray(triple, at)
            return "<ndarray>"
        if code == _COMPLEX:
            pair = self.value(depth + 1)
            if self.pos != end or not (isinstance(pair, list) and len(pair) == 2):
                raise FormatError(f"complex extension at offset {at} is not [real, imag]")
            return "<complex>"
        self.skip(size)
        self.problem(f"extension type {code} ({size} bytes) at offset {at}")
        return "<ext>"

    def ndarray(self, triple: list[Any], at: int) -> None:
        shape, dtype, buffer = triple
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise FormatError(f"array extension at offset {at} has a malformed shape")
        if isinstance(dtype, bytes):
            dtype = dtype.decode("latin-1")
        if not isinstance(dtype, str) or _DTYPE.match(dtype) is None:
            self.problem(f"array at offset {at} has dtype {str(dtype)[:80]!r}, which flax "
                         "does not write")
            return
        if not isinstance(buffer, (bytes, _Blob)):
            raise FormatError(f"array extension at offset {at} has no byte buffer")
        length = buffer if isinstance(buffer, _Blob) else len(buffer)
        digits = re.search(r"\d+", dtype)
        itemsize = _SIZES.get(dtype) or (int(digits.group()) // 8 if digits else 1)
        elements = 1
        for dim in shape:
            elements = min(elements * dim, 1 << 62)
        packed = dtype in ("int4", "uint4", "float4_e2m1fn")
        if not packed and elements * itemsize != length:
            self.problem(f"array at offset {at}: shape {shape[:8]} of {dtype} does not match "
                         f"its {int(length)}-byte buffer")

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_FINDINGS:
            self.problems.append(text)


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.size > MAX_BYTES:
        raise LimitExceeded("Flax msgpack bytes", MAX_BYTES, source.size, ctx.member)
    reader = _Reader(source)
    state = reader.value(0)
    if reader.pos != source.size:
        raise FormatError(f"{source.size - reader.pos} bytes follow the state dict")
    if not isinstance(state, dict):
        raise FormatError("the checkpoint is not a msgpack map")
    for problem in reader.problems:
        yield UNEXPECTED.finding(problem, member=ctx.member)
    yield from walk_config(reader.strings, ctx, "strings")
