"""NumPy `.npy` arrays (versions 1-3); `.npz` archives are zips of them (workers/zip.py).

Layout. `\\x93NUMPY`, major and minor version bytes, a little-endian header length (2 bytes
in version 1, 4 in versions 2-3), an ASCII (v3: UTF-8) Python dict literal with `descr`,
`fortran_order` and `shape`, padding, then the array bytes. For an object dtype the "array
bytes" are a pickle.

Attack surface. `numpy.load(allow_pickle=True)` unpickles object arrays (CVE-2019-6446 made
it opt-in; attacks.md row 34); modelscan crashes on numpy 2 and skips them.

What is checked. The header is parsed with `ast.literal_eval` (literals only) under a 64 KiB
bound; an object dtype (also inside structured dtypes) hands the data to the pickle analysis;
otherwise the data size implied by shape and dtype must match the file: a short file is
damaged, bytes beyond it are reported and scanned as their own format.

Rules
| id     | name           | severity | CWE     |
|--------|----------------|----------|---------|
| NPY001 | object-array   | info     | CWE-502 |
| NPY002 | bad-header     | warning  | CWE-20  |
| NPY003 | size-mismatch  | warning  | CWE-20  |
"""

from __future__ import annotations

import ast
import struct
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import pickle as pickle_format
from batchscan.workers.base import ScanContext, SliceStream, Source, dtype_code_size

FORMAT = "numpy"

OBJECT_ARRAY = rules.NPY001
BAD_HEADER = rules.NPY002
SIZE_MISMATCH = rules.NPY003
RULES: tuple[Rule, ...] = (OBJECT_ARRAY, BAD_HEADER, SIZE_MISMATCH)

MAGIC = b"\x93NUMPY"
_MAX_HEADER = 64 * 1024


def sniff(head: bytes, name: str) -> bool:
    return head.startswith(MAGIC)


def _itemsize(descr: object) -> tuple[int, bool] | None:
    """(bytes per element, contains objects) for a descr; None when it cannot be computed."""
    if isinstance(descr, str):
        return dtype_code_size(descr)
    if isinstance(descr, list):
        total, has_objects = 0, False
        for field in descr:
            if not isinstance(field, tuple) or len(field) < 2:
                return None
            inner = _itemsize(field[1])
            if inner is None:
                return None
            count = 1
            if len(field) > 2 and isinstance(field[2], tuple):
                for n in field[2]:
                    count *= n if isinstance(n, int) else 1
            total += inner[0] * count
            has_objects = has_objects or inner[1]
        return total, has_objects
    return None


def parse_header(head: bytes) -> tuple[dict[str, object], int] | str:
    """The header dict and the data offset, or why it is invalid."""
    if len(head) < 10:
        return "truncated header"
    major = head[6]
    if major == 1:
        (length,) = struct.unpack_from("<H", head, 8)
        start = 10
    elif major in (2, 3):
        if len(head) < 12:
            return "truncated header"
        (length,) = struct.unpack_from("<I", head, 8)
        start = 12
    else:
        return f"unknown format version {major}"
    if length > _MAX_HEADER or start + length > len(head):
        return f"header length {length} is out of bounds"
    text = head[start : start + length].decode("utf-8" if major == 3 else "latin-1", "replace")
    try:
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return "header is not a Python literal"
    if not isinstance(header, dict) or not {"descr", "shape"} <= set(header):
        return "header lacks descr or shape"
    return header, start + length


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    parsed = parse_header(source.head)
    if isinstance(parsed, str):
        yield BAD_HEADER.finding(parsed, member=ctx.member)
        return
    header, data_offset = parsed
    shape = header["shape"]
    size = _itemsize(header["descr"])
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        yield BAD_HEADER.finding(f"invalid shape {shape!r}", member=ctx.member)
        return
    if size is None:
        yield BAD_HEADER.finding(f"unsupported descr {header['descr']!r}", member=ctx.member)
        return
    itemsize, has_objects = size
    if has_objects:
        yield OBJECT_ARRAY.finding(f"object array of shape {shape}: its data is a pickle",
                                   member=ctx.member, offset=data_offset)
        data = source.head if len(source.head) >= source.size else None
        yield from pickle_format.findings(source.stream, source.size, ctx,
                                          start=data_offset, data=data)
        return
    count = 1
    for n in shape:
        count *= n
    expected = data_offset + count * itemsize
    length = source.known_size  # None: a stream of unknown length, no size to compare
    if length is not None and length < expected:
        yield SIZE_MISMATCH.finding(
            f"shape {shape} of {header['descr']!r} needs {expected} bytes, the file has "
            f"{length}", member=ctx.member)
    elif length is not None and length > expected:
        extra = length - expected
        yield SIZE_MISMATCH.finding(f"{extra} bytes follow the array data",
                                    member=ctx.member, offset=expected)
        rest = Source(SliceStream(source.stream, expected, extra), extra,
                      f"{source.name}|appended")
        yield from ctx.scan_member(rest, f"<appended@{expected}>")
