"""GGUF models (llama.cpp): a header, typed key/value metadata, tensor infos, tensor data.

Layout (v2/v3; v1 used 32-bit counts): `GGUF`, uint32 version, uint64 tensor count,
uint64 metadata count; each key is a uint64-length string followed by a uint32 value type
(0-12: integers, float32/64, bool, string, array of a type). Tensor infos: name, uint32
n_dims, uint64 dims, uint32 ggml type, uint64 offset (relative to the aligned data section).

Attack surface: `tokenizer.chat_template` (and any template-like string) is rendered with
Jinja2 by llama-cpp-python < 0.2.72 without a sandbox (CVE-2024-34359, "Llama Drama");
hostile counts and string lengths make naive parsers allocate terabytes (gguf.GGUFReader
memory-maps the file).

What is checked: the header is read with bounded reads (string <= 16 MiB, array <= 64 M
elements, counts bounded by the file size); every string metadata value that looks like a
template goes through the SSTI checks; tensor infos must lie inside the file.

Rules
| id     | name            | severity | CWE      |
|--------|-----------------|----------|----------|
| GGF001 | bad-header      | warning  | CWE-20   |
| GGF002 | tensor-bounds   | warning  | CWE-20   |
| CFG005 | template-injection  | error   | CWE-1336 |
| CFG006 | suspicious-template | warning | CWE-1336 |
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import textscan
from batchscan.workers.base import FormatError, ScanContext, Source
from batchscan.workers.configs import TEMPLATE_INJECTION, TEMPLATE_SUSPICIOUS

FORMAT = "gguf"

BAD_HEADER = rules.GGF001
TENSOR_BOUNDS = rules.GGF002
RULES: tuple[Rule, ...] = (BAD_HEADER, TENSOR_BOUNDS, TEMPLATE_INJECTION, TEMPLATE_SUSPICIOUS)

MAX_STRING = 16 * 1024 * 1024
MAX_ARRAY = 64 * 1024 * 1024
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}


def sniff(head: bytes, name: str) -> bool:
    return head[:4] == b"GGUF"


class _Reader:
    """Sequential bounded reads from the source (8 MiB window, refilled as needed)."""

    def __init__(self, source: Source):
        self.source = source
        self.pos = 0
        self.base = 0
        self.buf = b""

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.source.size:
            raise FormatError(f"read of {n} bytes at {self.pos} runs past the end")
        rel = self.pos - self.base
        if rel < 0 or rel + n > len(self.buf):
            self.base = self.pos
            self.buf = self.source.read_at(self.pos, max(n, 8 * 1024 * 1024))
            rel = 0
        data = self.buf[rel : rel + n]
        if len(data) < n:  # a stream of unknown length ended
            raise FormatError(f"read of {n} bytes at {self.pos} runs past the end")
        self.pos += n
        return data

    def unpack(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def string(self, wide: bool) -> str:
        length = int(self.unpack("<Q" if wide else "<I"))
        if length > MAX_STRING:
            raise FormatError(f"string of {length} bytes")
        return self.take(length).decode("utf-8", "replace")


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    reader = _Reader(source)
    try:
        yield from _parse(reader, source, ctx)
    except FormatError as exc:
        yield BAD_HEADER.finding(f"{exc} (offset {reader.pos})", member=ctx.member)
        ctx.note_incomplete(f"GGUF header: {exc}")


def _parse(reader: _Reader, source: Source, ctx: ScanContext) -> Iterator[Finding]:
    reader.take(4)
    version = int(reader.unpack("<I"))
    if version not in (1, 2, 3):
        raise FormatError(f"unknown GGUF version {version}")
    wide = version >= 2
    count_fmt = "<Q" if wide else "<I"
    tensors = int(reader.unpack(count_fmt))
    entries = int(reader.unpack(count_fmt))
    # Each key/value and tensor info takes at least 12 bytes: counts beyond that are lies.
    if (tensors + entries) * 12 > source.size:  # UNKNOWN_SIZE: the reads stop at the end
        raise FormatError(f"{tensors} tensors and {entries} metadata entries cannot fit")
    alignment = 32
    for _ in range(entries):
        key = reader.string(wide)
        kind = int(reader.unpack("<I"))
        value = _value(reader, kind, wide)
        if key == "general.alignment" and isinstance(value, int) and value > 0:
            alignment = value
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and textscan.looks_like_template(text):
                for hit in textscan.template_hits(text):
                    rule = TEMPLATE_INJECTION if hit.error else TEMPLATE_SUSPICIOUS
                    yield rule.finding(f"metadata {key!r}: template {hit.reason}",
                                       member=ctx.member, evidence=hit.excerpt)
    infos = []
    for _ in range(tensors):
        name = reader.string(wide)
        dims = int(reader.unpack("<I"))
        if dims > 8:
            raise FormatError(f"tensor {name!r} has {dims} dimensions")
        shape = [int(reader.unpack(count_fmt)) for _ in range(dims)]
        reader.unpack("<I")  # ggml type
        offset = int(reader.unpack("<Q"))
        infos.append((name, shape, offset))
    data_start = -(-reader.pos // alignment) * alignment
    for name, shape, offset in infos:
        if source.known_size is not None and data_start + offset > source.known_size:
            yield TENSOR_BOUNDS.finding(f"tensor {name!r} starts past the end of the file",
                                        member=ctx.member)
        elif any(dim > 1 << 40 for dim in shape):
            yield TENSOR_BOUNDS.finding(f"tensor {name!r} has an absurd shape {shape}",
                                        member=ctx.member)


def _value(reader: _Reader, kind: int, wide: bool) -> object:
    if kind in _SCALARS:
        return reader.unpack(_SCALARS[kind])
    if kind == 8:
        return reader.string(wide)
    if kind == 9:
        inner = int(reader.unpack("<I"))
        count = int(reader.unpack("<Q" if wide else "<I"))
        if count > MAX_ARRAY:
            raise FormatError(f"array of {count} elements")
        if inner in _SCALARS:
            reader.take(count * struct.calcsize(_SCALARS[inner]))
            return None
        if inner == 8:
            # vocabularies: keep only strings that could be templates
            return [s for s in (reader.string(wide) for _ in range(count)) if "{" in s]
        raise FormatError(f"array of type {inner}")
    raise FormatError(f"unknown metadata type {kind}")
