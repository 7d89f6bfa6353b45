"""CatBoost binary models (`.cbm`, `CatBoost.save_model` default format).

Layout (catboost/libs/model/model.cpp, flatbuffers/model.fbs). `CBM1`, a uint32 size, then a
FlatBuffers `TModelCore` of that size: field 0 `FormatVersion` (string,
`FlabuffersModel_v1`), 1 `ModelTrees` (table: splits, leaf values, borders), 2 `InfoMap`
(vector of `TKeyValue {Key, Value}` strings: `params` - the training options as JSON,
`model_guid`, `training`, `output_options`, `class_params`, `catboost_version_info`, and any
user metadata set with `model.set_metadata`), 3 `ModelPartIds` (vector of strings). After the
core come the serialized parts it names (CTR value tables for categorical features, text and
embedding processing collections).

Attack surface. CatBoost stores no code: objectives and metrics are named in `params` and
looked up natively; Python user-defined objectives and metrics are never saved. The loader
parses the flatbuffer (offsets an attacker controls) and the parts in native code; the
Python package decodes `params` and the InfoMap strings with `json.loads`. So what a file can
carry is malformed offsets and free strings (metadata) that downstream code may evaluate or
unpickle.

What is checked. The magic, the core size against the file, the FlatBuffers root table, its
vtable and every field of TModelCore and TKeyValue with bounds (strings, vectors and tables
must lie inside the core; else `error`); FormatVersion; the ModelTrees table header; every
InfoMap key and value through the config checks (JSON values parsed first: templates,
encoded pickles, `_target_`...). Model parts after the core are not parsed: a model that has
them (categorical features, text or embedding features) is reported as not fully scanned.

Rules: CFG001-CFG010 (see workers/configs.py) on the InfoMap.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source
from batchscan.workers.configs import CONFIG_RULES, walk_config

FORMAT = "catboost"
RULES: tuple[Rule, ...] = CONFIG_RULES

MAX_CORE = 1024**3
MAX_INFO = 100_000
FORMAT_VERSION = "FlabuffersModel_v1"


def sniff(head: bytes, name: str) -> bool:
    return head[:4] == b"CBM1" and len(head) >= 8


class _Flat:
    """Bounded FlatBuffers accessors over one buffer."""

    def __init__(self, data: bytes):
        self.data = data

    def u32(self, at: int) -> int:
        if not 0 <= at <= len(self.data) - 4:
            raise FormatError(f"offset {at} outside the {len(self.data)}-byte core")
        value: int = struct.unpack_from("<I", self.data, at)[0]
        return value

    def u16(self, at: int) -> int:
        if not 0 <= at <= len(self.data) - 2:
            raise FormatError(f"offset {at} outside the {len(self.data)}-byte core")
        value: int = struct.unpack_from("<H", self.data, at)[0]
        return value

    def table(self, at: int) -> tuple[int, list[int]]:
        """(table position, absolute field positions or 0 when absent)."""
        soffset = struct.unpack("<i", struct.pack("<I", self.u32(at)))[0]
        vtable = at - soffset
        vsize, tsize = self.u16(vtable), self.u16(vtable + 2)
        if vsize < 4 or vsize % 2 or at + tsize > len(self.data):
            raise FormatError(f"table at {at} has a malformed vtable at {vtable}")
        fields = []
        for index in range((vsize - 4) // 2):
            rel = self.u16(vtable + 4 + 2 * index)
            if rel and rel >= tsize:
                raise FormatError(f"table at {at}: field {index} lies outside the table")
            fields.append(at + rel if rel else 0)
        return at, fields

    def field(self, fields: list[int], index: int) -> int:
        return fields[index] if index < len(fields) else 0

    def indirect(self, at: int) -> int:
        target = at + self.u32(at)
        if target >= len(self.data):
            raise FormatError(f"reference at {at} points outside the core")
        return target

    def string(self, at: int) -> str:
        start = self.indirect(at)
        length = self.u32(start)
        if start + 4 + length > len(self.data):
            raise FormatError(f"string at {start} runs past the core")
        return self.data[start + 4 : start + 4 + length].decode("utf-8", "replace")

    def vector(self, at: int, element: int) -> list[int]:
        start = self.indirect(at)
        count = self.u32(start)
        if start + 4 + count * element > len(self.data):
            raise FormatError(f"vector of {count} at {start} runs past the core")
        return [start + 4 + i * element for i in range(count)]


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    header = source.read_at(0, 8)
    if len(header) < 8:
        raise FormatError("truncated header")
    (size,) = struct.unpack_from("<I", header, 4)
    if size > MAX_CORE:
        raise LimitExceeded("CatBoost core bytes", MAX_CORE, size, ctx.member)
    if 8 + size > source.size:
        raise FormatError(f"core of {size} bytes runs past the end of the file")
    flat = _Flat(source.read_at(8, size))
    _, fields = flat.table(flat.u32(0))
    version_at = flat.field(fields, 0)
    version = flat.string(version_at) if version_at else ""
    if version != FORMAT_VERSION:
        raise FormatError(f"unknown model format version {version[:40]!r}")
    trees_at = flat.field(fields, 1)
    if not trees_at:
        raise FormatError("the model has no trees table")
    flat.table(flat.indirect(trees_at))
    info_at = flat.field(fields, 2)
    info: dict[str, Any] = {}
    for element in flat.vector(info_at, 4) if info_at else []:
        _, kv = flat.table(flat.indirect(element))
        key_at, value_at = flat.field(kv, 0), flat.field(kv, 1)
        key = flat.string(key_at) if key_at else ""
        value = flat.string(value_at) if value_at else ""
        if len(info) >= MAX_INFO and key not in info:
            # the loader keeps every entry: the ones past the bound are not checked
            ctx.note_incomplete(f"CatBoost InfoMap has more than {MAX_INFO} entries; the "
                                "rest are not checked")
            break
        info[key] = _decode(value)
    yield from walk_config(info, ctx, "InfoMap")
    parts_at = flat.field(fields, 3)
    parts = [flat.string(p) for p in flat.vector(parts_at, 4)] if parts_at else []
    if parts or source.size > 8 + size:
        named = ", ".join(parts[:5]) or f"{source.size - 8 - size} bytes"
        ctx.note_incomplete(f"CatBoost model parts after the core ({named}) are not parsed")


def _decode(value: str) -> Any:
    if value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value
