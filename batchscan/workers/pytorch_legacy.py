"""Legacy (non-zip) PyTorch checkpoints, as written before torch 1.6 (and by `torch.save`
with `_use_new_zipfile_serialization=False`).

Layout. Five pickles back to back - the magic number 0x1950a86a20f9469cfc6c, the protocol
version, `sys_info`, the main object (tensors refer to storages by persistent id
`('storage', torch.FloatStorage, key, location, numel)`), and the sorted list of storage
keys - followed by the raw storages: for each key, an int64 element count and the bytes.

Attack surface. `torch.load(weights_only=False)` unpickles all five (attacks.md rows 22, 29,
31): modelscan scans only the first (the magic), so a payload in the main pickle passes. The
first pickle runs before the magic is compared, so a magic computed by `eval` still loads.

What is checked. All five pickles with the full pickle analysis; then the storage section is
walked with the element sizes named by the persistent ids, so that its length must match the
file exactly. Bytes after the last storage are reported (and scanned as their own format);
a storage section that does not add up is reported as damaged. Storage bytes are skipped by
length, never read.

Rules
| id     | name                | severity | CWE     |
|--------|---------------------|----------|---------|
| PTL001 | storage-mismatch    | warning  | CWE-20  |
| PTL002 | data-after-storages | warning  | CWE-436 |
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import pickle as pickle_format
from batchscan.workers.base import UNKNOWN_SIZE, ScanContext, SliceStream, Source

FORMAT = "pytorch_legacy"

MISMATCH = rules.PTL001
APPENDED = rules.PTL002
RULES: tuple[Rule, ...] = (MISMATCH, APPENDED)

# pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)
MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."

ELEMENT_SIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
    "ByteStorage": 1, "BoolStorage": 1, "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8, "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4,
    "QUInt4x2Storage": 1, "QUInt2x4Storage": 1, "UntypedStorage": 1,
}


def sniff(head: bytes, name: str) -> bool:
    return head.startswith(MAGIC)


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    data = source.head if len(source.head) >= source.size else None
    walk = pickle_format.Walk()
    yield from pickle_format.findings(source.stream, source.size, ctx, data=data,
                                      max_pickles=5, walk=walk)
    if walk.pickles < 5:
        return  # the pickle analysis already reported the damage
    offset = walk.end
    sizes = []
    for key in sorted(walk.storages):
        kind, _ = walk.storages[key]
        element = ELEMENT_SIZE.get(kind)
        if element is None:
            yield MISMATCH.finding(f"storage {key!r} has unknown type {kind!r}",
                                   member=ctx.member)
            return
        sizes.append((key, element))
    for key, element in sizes:
        raw = source.read_at(offset, 8)
        if len(raw) < 8:
            yield MISMATCH.finding(f"storage section ends before storage {key!r}",
                                   member=ctx.member, offset=offset)
            return
        (count,) = struct.unpack("<q", raw)
        end = offset + 8 + max(0, count) * element
        if count < 0 or end > source.size:
            # Reported where the count is: the end it claims may lie past 2^64.
            yield MISMATCH.finding(f"storage {key!r} claims {count} elements, past the end",
                                   member=ctx.member, offset=offset)
            return
        offset = end
    size = source.known_size
    if size is None and source.read_at(offset, 1):
        # a stream of unknown length: something follows, its length is not known
        yield APPENDED.finding("data follows the last storage", member=ctx.member,
                               offset=offset)
        rest = Source(SliceStream(source.stream, offset, UNKNOWN_SIZE), UNKNOWN_SIZE,
                      f"{source.name}|appended")
        yield from ctx.scan_member(rest, f"<appended@{offset}>")
    elif size is not None and offset < size:
        yield APPENDED.finding(f"{size - offset} bytes follow the last storage",
                               member=ctx.member, offset=offset)
        rest = Source(SliceStream(source.stream, offset, size - offset),
                      size - offset, f"{source.name}|appended")
        yield from ctx.scan_member(rest, f"<appended@{offset}>")
