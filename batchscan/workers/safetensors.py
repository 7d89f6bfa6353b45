"""safetensors: an 8-byte little-endian header length, a JSON header, then tensor bytes.

Layout. Header: `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
..., "__metadata__": {str: str}}`; offsets are relative to the end of the header and the
tensors must tile the data region exactly.

Attack surface. The format itself carries no code; the risks are parser DoS (a 2^63 header
length that a careless reader allocates, overlapping or out-of-bounds offsets: memory bugs
in loaders), a pickle renamed `.safetensors` (caught by content detection before this
module), and `__metadata__` strings that carry code, commands, URLs or encoded pickles for
some other tool to act on.

What is checked: header length against 100 MiB and the file size (no allocation before the
check), JSON validity, each tensor's dtype, shape and offsets (size = product of shape x
dtype width, inside the data region, no overlaps, no gaps), and every metadata value.
Tensor bytes are never read.

Rules
| id     | name              | severity | CWE     |
|--------|-------------------|----------|---------|
| SFT001 | bad-header        | warning  | CWE-20  |
| SFT002 | bad-tensor-layout | warning  | CWE-20  |
| SFT003 | metadata-code     | warning  | CWE-94  |
| CFG010 | encoded-pickle    | warning  | CWE-502 |
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import textscan
from batchscan.workers.base import ScanContext, Source
from batchscan.workers.configs import ENCODED_PICKLE, walk_config

FORMAT = "safetensors"

BAD_HEADER = rules.SFT001
BAD_LAYOUT = rules.SFT002
METADATA_CODE = rules.SFT003
RULES: tuple[Rule, ...] = (BAD_HEADER, BAD_LAYOUT, METADATA_CODE, ENCODED_PICKLE)

MAX_HEADER = 100 * 1024 * 1024
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "I16": 16,
    "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "C64": 64, "I64": 64,
    "U64": 64, "F64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


_MAX_INT = 2**63 - 1
_MAX_DIMS = 64


def sniff(head: bytes, name: str) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack_from("<Q", head)
    if head[8:9] != b"{":
        return False
    # A hostile length is still a safetensors file to reject, when the name says so.
    return 2 <= length <= MAX_HEADER or name.lower().endswith(".safetensors")


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    (length,) = struct.unpack_from("<Q", source.head)
    member = ctx.member
    size = source.known_size  # None inside a stream of unknown length: bounds are skipped
    raw = source.read_at(8, length) if length <= MAX_HEADER else b""
    if length > MAX_HEADER or len(raw) < length or (size is not None and 8 + length > size):
        yield BAD_HEADER.finding(f"header length {length} exceeds the file", member=member)
        ctx.note_incomplete(f"safetensors header length {length} is invalid")
        return
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        yield BAD_HEADER.finding(f"header is not valid JSON: {exc}"[:300], member=member)
        return
    except ValueError:  # an integer of thousands of digits (Python's int conversion limit)
        yield BAD_HEADER.finding("header holds a number too long for any tensor",
                                 member=member)
        return
    if not isinstance(header, dict):
        yield BAD_HEADER.finding("header is not a JSON object", member=member)
        return
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        yield from _metadata(metadata, ctx)
    yield from _layout(header, None if size is None else size - 8 - length, member)


def _metadata(metadata: object, ctx: ScanContext) -> Iterator[Finding]:
    if not isinstance(metadata, dict):
        yield BAD_HEADER.finding("__metadata__ is not a string map", member=ctx.member)
        return
    for key, value in metadata.items():
        if not isinstance(value, str):
            yield BAD_HEADER.finding(f"__metadata__[{key!r}] is not a string", member=ctx.member)
            continue
        for kind, excerpt in textscan.code_like(value):
            yield METADATA_CODE.finding(f"__metadata__[{key!r}] contains {kind}",
                                        member=ctx.member, evidence=excerpt)
    yield from walk_config(metadata, ctx, "__metadata__")


def _layout(tensors: dict[str, object], data_size: int | None,
            member: str | None) -> Iterator[Finding]:
    """Offsets against shape, dtype, each other and the data region (when its size is
    known: a member of unknown length gets no bounds check rather than a guessed one)."""
    spans: list[tuple[int, int, str]] = []
    for name, info in tensors.items():
        if not isinstance(info, dict):
            yield BAD_LAYOUT.finding(f"tensor {name!r} is not an object", member=member)
            continue
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        bits = DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
        if bits is None:
            yield BAD_LAYOUT.finding(f"tensor {name!r} has unknown dtype {dtype!r}",
                                     member=member)
            continue
        # Dimensions and offsets beyond 2^63 are no real tensor; bounding them keeps the
        # product below cheap (a header of huge integers multiplied for seconds).
        if not (isinstance(shape, list) and len(shape) <= _MAX_DIMS
                and all(isinstance(n, int) and 0 <= n <= _MAX_INT for n in shape)
                and isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(n, int) and 0 <= n <= _MAX_INT for n in offsets)):
            yield BAD_LAYOUT.finding(f"tensor {name!r} has an invalid shape or offsets",
                                     member=member)
            continue
        begin, end = offsets
        count = 1
        for n in shape:
            count *= n
        if end < begin or (data_size is not None and end > data_size) or (
            (end - begin) * 8 != count * bits
        ):
            inside = "" if data_size is None else f" inside {data_size} data bytes"
            yield BAD_LAYOUT.finding(
                f"tensor {name!r}: offsets {offsets} do not match shape {shape} of {dtype}"
                f"{inside}", member=member)
            continue
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin < cursor:
            yield BAD_LAYOUT.finding(f"tensor {name!r} overlaps the previous tensor",
                                     member=member)
        elif begin > cursor:
            yield BAD_LAYOUT.finding(f"{begin - cursor} unused bytes before tensor {name!r}",
                                     member=member)
        cursor = max(cursor, end)
    if spans and data_size is not None and cursor < data_size:
        yield BAD_LAYOUT.finding(f"{data_size - cursor} bytes after the last tensor",
                                 member=member)
