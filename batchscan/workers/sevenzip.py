"""7z archives (py7zr): nullifAI hid PyTorch pickles in 7z files (attacks.md row 18).

Layout. A signature header, packed streams (often solid: many members in one stream), and an
(optionally compressed or encrypted) header listing the members.

Attack surface. Scanners without 7z support skip the archive entirely (picklescan needs the
optional py7zr; modelscan has none). Members can be bombs; headers can be encrypted.

What is checked. Every member is extracted into memory one at a time with a per-member cap
(py7zr's BytesIOFactory) and scanned by content. Encrypted archives cannot be scanned and are
never reported clean. Names that escape the extraction directory are reported.

Rules
| id     | name            | severity | CWE     |
|--------|-----------------|----------|---------|
| SVZ001 | path-traversal  | error    | CWE-22  |
| SVZ002 | encrypted       | info     | CWE-311 |
| SVZ003 | corrupt-archive | warning  | CWE-20  |
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, cast

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import LimitExceeded, ScanContext, Source, unsafe_path
from batchscan.workers.compressed import random_access

FORMAT = "7z"

TRAVERSAL = rules.SVZ001
ENCRYPTED = rules.SVZ002
CORRUPT = rules.SVZ003
RULES: tuple[Rule, ...] = (TRAVERSAL, ENCRYPTED, CORRUPT)

MAGIC = b"7z\xbc\xaf\x27\x1c"


def sniff(head: bytes, name: str) -> bool:
    return head.startswith(MAGIC)


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    import py7zr  # here, not at import: 20 ms of every run's start-up for a rare format
    from py7zr.io import BytesIOFactory

    source = random_access(source, ctx)
    source.stream.seek(0)
    limit = ctx.limits.max_member_bytes
    try:
        stream = cast(IO[bytes], source.stream)  # py7zr only needs read/seek/tell
        with py7zr.SevenZipFile(stream, mode="r") as archive:
            if archive.needs_password():
                yield ENCRYPTED.finding("7z archive is encrypted", member=ctx.member)
                ctx.note_incomplete("7z archive is encrypted")
                return
            infos = [i for i in archive.list() if not i.is_directory]
            for info in infos:
                ctx.count_member()
                where = ctx.where(info.filename)
                reason = unsafe_path(info.filename)
                if reason:
                    yield TRAVERSAL.finding(f"member name {info.filename!r}: {reason}",
                                            member=where)
                if (info.uncompressed or 0) > limit:
                    raise LimitExceeded("bytes of one member held in memory", limit,
                                        info.uncompressed, where)
            for info in infos:
                factory = BytesIOFactory(limit)
                archive.reset()
                archive.extract(targets=[info.filename], factory=factory)
                product = factory.products.get(info.filename)
                if product is None:
                    continue
                product.seek(0)
                data = product.read()
                ctx.count_decompressed(len(data))
                yield from ctx.scan_member(Source.from_bytes(data, info.filename),
                                           info.filename)
    except LimitExceeded:
        raise
    except Exception as exc:
        # py7zr raises its own classes and the decompressors' (CrcError, LZMAError,
        # Bad7zFile, KeyError on odd headers): say what is wrong in 7z terms.
        reason = "7z archive could not be read: " + _DAMAGE.get(
            type(exc).__name__, "damaged or unsupported archive structure")
        yield CORRUPT.finding(reason, member=ctx.member)
        ctx.note_incomplete(reason)


_DAMAGE = {
    "CrcError": "a member's CRC does not match its data",
    "LZMAError": "compressed data is corrupt",
    "Bad7zFile": "not a valid 7z archive",
    "DecompressionError": "compressed data is corrupt",
    "UnsupportedCompressionMethodError": "a member uses an unsupported compression method",
    "PasswordRequired": "the archive is encrypted",
}
