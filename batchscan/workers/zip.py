"""Zip archives, read the way PyTorch reads them: PyTorch checkpoints, TorchScript, `.npz`,
`.keras`, `.mar`, and plain zips.

Layout. Local file headers (PK\\x03\\x04) with member data, a central directory (PK\\x01\\x02)
that lists every member with its local-header offset, and an end record (PK\\x05\\x06; zip64
adds PK\\x06\\x06 and its locator). `torch.save` writes `<name>/data.pkl` (the pickle),
`<name>/data/<key>` (raw storages, referenced from the pickle by persistent id),
`<name>/version`, `<name>/byteorder`; TorchScript adds `<name>/code/*.py` and
`<name>/constants.pkl`.

Attack surface. Scanners are bypassed through the container, not the pickle (attacks.md rows
20-28, 48-51): stdlib `zipfile` raises on a local/central name mismatch (CVE-2025-1944), a
bad CRC (CVE-2025-10156) or odd flag bits (CVE-2025-1945) while torch's miniz follows the
central directory and ignores the CRC; one bad entry aborts a naive member loop (modelscan
#354); a pickle in a member with a non-pickle name or protocol 0/1 (no PROTO) is skipped by
extension/magic dispatch; nested zips; duplicate names (torch uses the last); zip-slip names,
symlink members; encrypted members; decompression bombs.

What is checked. The central directory is parsed directly (zip64 included; data prepended to
the archive is detected and compensated like zipfile does; when it is itself a whole archive -
torch.distributed.checkpoint's `.distcp` writes one `torch.save` zip per item back to back -
each archive is scanned in turn at the same depth, not one level deeper each). Every entry is
visited, none can abort the loop. Each member is sniffed by content and scanned by the matching
format module (pickles wherever they are, nested archives recursively, within the shared
budgets). Tensor storages are never read beyond a 4 KiB sniff. Findings: name mismatches, CRC
mismatches (checked for members that are read whole), flag bits, unsupported methods, encrypted
members (a member merely *flagged* encrypted but stored in the clear is scanned and reported),
path traversal and absolute names, symlinks that escape, duplicate names, declared compression
ratios beyond the limit, TorchScript sources that reach Python or the OS, and in a `.keras`
archive, layer configs that name files the loader reads (workers/keras_files.py). A
compressed member's size is the one the central directory and the local header (or data
descriptor) agree on; decoding stops there, as in zipfile and miniz; without agreement no
size-based check runs on it. A TorchServe
archive's manifest (`MAR-INF/MANIFEST.json`) goes to `mar.py`: handler and model-definition
code, handlers outside the archive, requirements files.

Not checked: split/multi-disk archives (reported as not scanned).

Rules
| id     | name                     | severity | CWE     |
|--------|--------------------------|----------|---------|
| ZIP001 | path-traversal           | error    | CWE-22  |
| ZIP002 | symlink-escape           | error    | CWE-59  |
| ZIP003 | name-mismatch            | warning  | CWE-436 |
| ZIP004 | crc-mismatch             | warning  | CWE-354 |
| ZIP005 | unusual-flags            | warning  | CWE-436 |
| ZIP006 | encrypted-member         | info     | CWE-311 |
| ZIP007 | duplicate-name           | warning  | CWE-436 |
| ZIP008 | unsupported-method       | warning  | CWE-20  |
| ZIP009 | corrupt-entry            | warning  | CWE-20  |
| ZIP010 | compression-ratio        | warning  | CWE-409 |
| ZIP011 | prepended-data           | info     | CWE-436 |
| ZIP012 | torchscript-code         | error    | CWE-94  |
| ZIP013 | blacklisted-member       | error    | CWE-506 |
| KRS001 | keras-file-reference     | error    | CWE-73  |
| MAR001 | handler-code (mar.py)    | warning  | CWE-94  |
| MAR002 | handler-outside-archive  | warning  | CWE-829 |
| MAR003 | requirements             | warning  | CWE-829 |
| MAR004 | bad-manifest             | warning  | CWE-20  |
"""

from __future__ import annotations

import json
import lzma
import re
import struct
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from batchscan import rules
from batchscan.records import Finding, Severity
from batchscan.rules import Rule
from batchscan.workers import mar, torchscript_code
from batchscan.workers import pickle as pickle_format
from batchscan.workers.base import (
    HEAD_BYTES,
    UNKNOWN_SIZE,
    FormatError,
    LimitExceeded,
    Readable,
    ScanContext,
    SliceStream,
    Source,
    unsafe_path,
)
from batchscan.workers.compressed import DecompressStream, materialize
from batchscan.workers.keras_files import FILE_REFERENCE, file_references

FORMAT = "zip"

TRAVERSAL = rules.ZIP001
SYMLINK = rules.ZIP002
NAME_MISMATCH = rules.ZIP003
CRC_MISMATCH = rules.ZIP004
ODD_FLAGS = rules.ZIP005
ENCRYPTED = rules.ZIP006
DUPLICATE = rules.ZIP007
UNSUPPORTED = rules.ZIP008
CORRUPT = rules.ZIP009
RATIO = rules.ZIP010
PREPENDED = rules.ZIP011
TORCHSCRIPT = rules.ZIP012
BLACKLISTED = rules.ZIP013
RULES: tuple[Rule, ...] = (TRAVERSAL, SYMLINK, NAME_MISMATCH, CRC_MISMATCH, ODD_FLAGS,
                           ENCRYPTED, DUPLICATE, UNSUPPORTED, CORRUPT, RATIO, PREPENDED,
                           TORCHSCRIPT, BLACKLISTED, FILE_REFERENCE, *mar.RULES)

_EOCD = b"PK\x05\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CENTRAL_FIXED = struct.Struct("<4s6H3I5H2I")
_LOCAL_FIXED = struct.Struct("<4s5H3I2H")
_SNIFF_STORAGE = 4096
_READ_WHOLE = 16 * 1024 * 1024  # members up to this size are read whole (and CRC-checked)
_WEAK_SNIFFS = frozenset({"onnx", "json", "unknown"})
_STORAGE = re.compile(r"(?:^|/)data/\d+\Z")


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    local_offset: int
    external: int
    made_by: int


def sniff(head: bytes, name: str) -> bool:
    return head[:4] in (_LOCAL, _EOCD)


def has_end_record(source: Source) -> bool:
    """An end-of-central-directory record near the end of an exact-size input."""
    if source.known_size is None or source.size < 22:
        return False
    tail_start = max(0, source.size - (65535 + 22))
    return _EOCD in source.read_at(tail_start, source.size - tail_start)


def _read_at(stream: Readable, offset: int, length: int) -> bytes:
    stream.seek(offset)
    return stream.read(length)


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if tag != 0x0001:
            continue
        values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
        if usize == 0xFFFFFFFF and values:
            usize = values.pop(0)
        if csize == 0xFFFFFFFF and values:
            csize = values.pop(0)
        if offset == 0xFFFFFFFF and values:
            offset = values.pop(0)
    return usize, csize, offset


def read_directory(source: Source) -> tuple[list[Entry], int, list[str]]:
    """Entries of the central directory, the offset correction, and damage notes."""
    stream, size = source.stream, source.size
    tail_start = max(0, size - (65535 + 22))
    tail = _read_at(stream, tail_start, size - tail_start)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise FormatError("no end-of-central-directory record")
    eocd_pos = tail_start + at
    (_, disk, cd_disk, _, total, cd_size, cd_offset, _) = struct.unpack_from(
        "<4s4H2IH", tail, at)
    if disk != cd_disk:
        raise FormatError("multi-disk archives are not supported")
    # A zip64 end record sits between the directory and the classic end record whenever
    # the writer emitted one (torch's miniz always does), whether or not fields overflowed.
    locator = _read_at(stream, eocd_pos - 20, 20) if eocd_pos >= 20 else b""
    if locator[:4] == _ZIP64_LOCATOR:
        (record_at,) = struct.unpack_from("<Q", locator, 8)
        # the record normally ends where the locator starts; that also fixes prepended data
        record_at = eocd_pos - 20 - 56 if record_at + 56 != eocd_pos - 20 else record_at
        record = _read_at(stream, record_at, 56)
        if record[:4] == _ZIP64_EOCD:
            total, cd_size, cd_offset = struct.unpack_from("<QQQ", record, 32)
            eocd_pos = record_at
    # Data prepended to the archive shifts every offset (self-extractors, polyglots).
    delta = max(0, eocd_pos - cd_size - cd_offset)
    notes: list[str] = []
    directory = _read_at(stream, cd_offset + delta, cd_size)
    entries: list[Entry] = []
    pos = 0
    while pos + _CENTRAL_FIXED.size <= len(directory):
        fields = _CENTRAL_FIXED.unpack_from(directory, pos)
        if fields[0] != _CENTRAL:
            notes.append(f"central directory damaged at entry {len(entries)}")
            break
        (_, made_by, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen, _, _,
         external, offset) = fields
        start = pos + _CENTRAL_FIXED.size
        raw_name = directory[start : start + nlen]
        extra = directory[start + nlen : start + nlen + elen]
        usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        entries.append(Entry(name, flags, method, crc, csize, usize, offset + delta,
                             external, made_by >> 8))
        pos = start + nlen + elen + clen
    if len(entries) < total:
        notes.append(f"central directory lists {len(entries)} of {total} entries")
    return entries, delta, notes


def archive_kind(names: list[str]) -> str:
    """What a zip is, from its member layout: torch checkpoint, TorchScript, npz, keras."""
    if any(n.endswith("/code/") or "/code/" in n for n in names) and any(
        n.endswith("constants.pkl") for n in names
    ):
        return "torchscript"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "pytorch_zip"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
        return "keras_zip"
    if "MAR-INF/MANIFEST.json" in names:
        return "torchserve_mar"
    if "schema.json" in names:
        return "skops"  # skops.io.dump: schema.json and its arrays
    return "zip"


def _member_stream(source: Source, entry: Entry, data_start: int, ctx: ScanContext,
                   declared: int | None) -> tuple[Readable, int]:
    """The member's bytes and their length: the declared size when the headers agree on
    one (the decompressor stops there, as zipfile and miniz do), else UNKNOWN_SIZE."""
    raw = SliceStream(source.stream, data_start, entry.compressed)
    if entry.method == 0:
        return raw, entry.compressed
    size = UNKNOWN_SIZE if declared is None else declared
    if entry.method == 8:
        return DecompressStream(raw, "deflate", ctx, size=declared), size
    if entry.method == 12:
        return DecompressStream(raw, "bzip2", ctx, size=declared), size
    if entry.method == 93:
        return DecompressStream(raw, "zstd", ctx, size=declared), size
    if entry.method == 14:
        header = raw.read(4)
        if len(header) < 4:
            raise FormatError("truncated lzma member header")
        (props_size,) = struct.unpack_from("<H", header, 2)
        props = raw.read(props_size)
        lz_filter = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # type: ignore[attr-defined]
        inner = SliceStream(source.stream, data_start + 4 + props_size,
                            entry.compressed - 4 - props_size)
        def factory() -> lzma.LZMADecompressor:
            return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lz_filter])

        return DecompressStream(inner, "lzma", ctx, factory=factory, size=declared), size
    raise FormatError(f"compression method {entry.method}")


def _ends_with_archive(source: Source, end: int) -> bool:
    """The bytes before `end` finish with a zip end record (archives written back to back)."""
    if end < 22:
        return False
    record = _read_at(source.stream, end - 22, 22)
    return record[:4] == _EOCD and record[20:22] == b"\0\0"


def scan(source: Source, ctx: ScanContext, *, prefix: bool = True) -> Iterator[Finding]:
    """The archive at the end of the file, then each complete archive written before it.

    torch.distributed.checkpoint's `.distcp` is one `torch.save` zip per item, back to back.
    Those archives sit beside each other, not inside one another: they are scanned in this
    loop at the same depth (each counts as a member of the shared budget), never as a prefix
    nested one level deeper per archive. Prepended data that is not a whole archive is
    scanned as a nested member, as before, unless `prefix=False`: the caller has already
    scanned it (an executable that carries a zip: llamafiles, self-extractors).
    """
    if source.known_size is None:
        source = materialize(source, ctx)
    end = source.size
    part = ctx
    archives = 0
    while True:
        view = source if end == source.size else Source(
            SliceStream(source.stream, 0, end), end, source.name)
        delta = yield from _scan_archive(view, part, top=archives == 0)
        if not delta:
            break
        if not _ends_with_archive(source, delta):
            if not prefix:
                break
            yield PREPENDED.finding(f"{delta} bytes precede the archive", member=ctx.member,
                                    offset=0)
            head = Source(SliceStream(source.stream, 0, delta), delta, f"{source.name}|prefix")
            yield from ctx.scan_member(head, "<prefix>")
            break
        archives += 1
        ctx.count_member()
        end = delta
        part = ctx.sibling(f"<archive ending at {end}>")
    if archives:
        yield PREPENDED.finding(
            f"{archives + 1} zip archives written back to back (torch.distributed.checkpoint "
            "writes one per item); each is scanned", severity=Severity.INFO,
            member=ctx.member, offset=0)


def _scan_archive(source: Source, ctx: ScanContext, *,
                  top: bool) -> Generator[Finding, None, int]:
    """Scan one archive ending where `source` ends; return how many bytes precede it."""
    entries, delta, notes = read_directory(source)
    for note in notes:
        yield CORRUPT.finding(note, member=ctx.member)
        ctx.note_incomplete(note)
    names = [e.name for e in entries]
    kind = archive_kind(names)
    if ctx.depth == 0 and top:
        ctx.format_hint = kind
    seen: dict[str, int] = {}
    for entry in entries:
        seen[entry.name] = seen.get(entry.name, 0) + 1
    for name, count in seen.items():
        if count > 1:
            yield DUPLICATE.finding(f"{count} members are named {name!r}",
                                    member=ctx.where(name))
    if mar.MANIFEST in seen:
        by_name = {e.name: e for e in entries}

        def read(name: str) -> bytes | None:
            entry = by_name.get(name)
            return None if entry is None else _small_member(source, entry, ctx)

        yield from mar.check(names, read, ctx)
    for index, entry in enumerate(entries):
        try:
            yield from _scan_entry(source, entry, index, ctx, kind)
        except LimitExceeded:
            raise
        except (FormatError, OSError, struct.error, zlib.error, lzma.LZMAError) as exc:
            reason = f"member {entry.name!r}: {exc}"
            yield CORRUPT.finding(reason, member=ctx.where(entry.name))
            ctx.note_incomplete(reason)
    return delta


def _small_member(source: Source, entry: Entry, ctx: ScanContext) -> bytes | None:
    """The first MiB of a member (manifests, requirements), or None when it cannot be read
    (the member loop reports why)."""
    try:
        local = _read_at(source.stream, entry.local_offset, _LOCAL_FIXED.size)
        if len(local) < _LOCAL_FIXED.size or local[:4] != _LOCAL or entry.flags & 0x1:
            return None
        fields = _LOCAL_FIXED.unpack_from(local)
        start = entry.local_offset + _LOCAL_FIXED.size + fields[9] + fields[10]
        stream, _ = _member_stream(source, entry, start, ctx, None)
        return stream.read(1024 * 1024)
    except (FormatError, OSError, struct.error, zlib.error, lzma.LZMAError):
        return None


def _scan_entry(source: Source, entry: Entry, index: int, ctx: ScanContext,
                kind: str) -> Iterator[Finding]:
    where = ctx.where(entry.name)
    ctx.count_member()
    unsafe = unsafe_path(entry.name)
    if unsafe:
        yield TRAVERSAL.finding(f"member name {entry.name!r}: {unsafe}", member=where)
    pattern = ctx.blacklisted(entry.name.rsplit("/", 1)[-1])
    if pattern is not None:
        yield BLACKLISTED.finding(f"member {entry.name!r} matches blacklist pattern "
                                  f"{pattern!r}", member=where)
    if entry.name.endswith("/") and entry.size == 0:
        return  # a directory entry
    local = _read_at(source.stream, entry.local_offset, _LOCAL_FIXED.size)
    if len(local) < _LOCAL_FIXED.size or local[:4] != _LOCAL:
        raise FormatError(f"no local header at offset {entry.local_offset}")
    fields = _LOCAL_FIXED.unpack_from(local)
    lnlen, lelen = fields[9], fields[10]
    local_name = _read_at(source.stream, entry.local_offset + _LOCAL_FIXED.size, lnlen)
    if local_name.decode("utf-8", "replace") != entry.name and local_name.decode(
        "cp437", "replace"
    ) != entry.name:
        yield NAME_MISMATCH.finding(
            f"local header names {local_name[:200]!r}, the central directory "
            f"{entry.name!r}; torch reads the central directory's", member=where,
            offset=entry.local_offset)
    data_start = entry.local_offset + _LOCAL_FIXED.size + lnlen + lelen
    if entry.flags & 0x60:
        yield ODD_FLAGS.finding(
            f"flag bits 0x{entry.flags & 0x60:02x} (patched data / strong encryption) on "
            f"{entry.name!r}: zipfile and torch refuse it, other loaders may not",
            member=where)
    if entry.size > ctx.limits.ratio_floor and entry.compressed and (
        entry.size / entry.compressed > ctx.limits.max_ratio
    ):
        ratio = entry.size // entry.compressed
        yield RATIO.finding(f"{entry.name!r} declares {entry.size} bytes from "
                            f"{entry.compressed} (ratio {ratio})", member=where)
        ctx.note_incomplete(f"member {entry.name!r} exceeds the compression-ratio limit")
    is_symlink = (entry.external >> 16) & 0o170000 == 0o120000 and entry.made_by == 3
    declared, disagreement = _declared_size(source, entry, fields, local_name, lelen,
                                            data_start)
    if disagreement:
        yield CORRUPT.finding(f"{entry.name!r}: {disagreement}; checks that need the size "
                              "were skipped", member=where, offset=entry.local_offset)
    try:
        stream, size = _member_stream(source, entry, data_start, ctx, declared)
    except FormatError as exc:
        yield UNSUPPORTED.finding(f"{entry.name!r}: {exc}", member=where)
        ctx.note_incomplete(f"member {entry.name!r} uses {exc}; not scanned")
        return
    storage = _STORAGE.search(entry.name) is not None and ctx.format_hint != "zip"
    whole = (size if size != UNKNOWN_SIZE else entry.size) <= _READ_WHOLE
    if storage:
        head = stream.read(_SNIFF_STORAGE)
        data = None
    elif whole:
        data = stream.read(_READ_WHOLE + 1)
        head = data[:HEAD_BYTES]
    else:
        data = None
        head = stream.read(HEAD_BYTES)
    if is_symlink:
        target = (data or head).decode("utf-8", "replace")
        escape = unsafe_path(target)
        if escape:
            yield SYMLINK.finding(f"{entry.name!r} links to {target!r} ({escape})",
                                  member=where)
        return
    if entry.flags & 0x1:
        yield from _encrypted(head, data, entry, where, ctx)
        if data is None or not _looks_plain(head, ctx):
            return
    if data is not None and len(data) <= _READ_WHOLE and entry.method in (0, 8, 12, 14, 93):
        if (zlib.crc32(data) & 0xFFFFFFFF) != entry.crc and not entry.flags & 0x8:
            yield CRC_MISMATCH.finding(
                f"{entry.name!r}: CRC-32 0x{zlib.crc32(data):08x}, directory says "
                f"0x{entry.crc:08x}", member=where)
        member = Source.from_bytes(data, entry.name)
        if kind == "keras_zip" and entry.name == "config.json":
            yield from _keras_config(data, ctx.child(entry.name))
    else:
        stream.seek(0)
        member = Source(stream, size, entry.name, head)
    if "/code/" in f"/{entry.name}" and entry.name.endswith(".py"):
        yield from _torchscript(member, where)
        return
    if storage:
        fmt, _ = ctx.format_of(head, entry.name)
        if fmt in _WEAK_SNIFFS or (fmt == "pickle" and not pickle_format.imports_something(head)):
            # Tensor bytes that happen to look like a weakly-recognised format: torch never
            # parses a storage, and a pickle without an import has nothing to run.
            return
    yield from ctx.scan_member(member, entry.name)
    if isinstance(stream, DecompressStream):
        yield from _stream_damage(stream, entry, where, ctx)


def _declared_size(source: Source, entry: Entry, local: tuple[int, ...], local_name: bytes,
                   extra_length: int, data_start: int) -> tuple[int | None, str | None]:
    """The member's uncompressed size when the central directory and the local header (or
    the data descriptor that follows the data) agree on it; else None and the disagreement.

    zipfile and miniz take the central directory's size; a reader that streams local
    headers takes the other. A size only one of them states is no size to check against.
    """
    if (entry.flags | local[2]) & 0x8:
        raw = _read_at(source.stream, data_start + entry.compressed, 24)
        body = raw[4:] if raw[:4] == b"PK\x07\x08" else raw
        layouts = []
        if len(body) >= 12:
            layouts.append(struct.unpack_from("<II", body, 4))
        if len(body) >= 20:
            layouts.append(struct.unpack_from("<QQ", body, 4))
        if (entry.compressed, entry.size) in layouts:
            return entry.size, None
        return None, (f"the data descriptor does not repeat the central directory's sizes "
                      f"({entry.compressed} compressed, {entry.size} bytes)")
    csize, usize = local[7], local[8]
    if 0xFFFFFFFF in (csize, usize):
        extra = _read_at(source.stream, entry.local_offset + _LOCAL_FIXED.size
                         + len(local_name), extra_length)
        usize, csize, _ = _zip64_extra(extra, usize, csize, 0)
    if usize != entry.size:
        return None, (f"the local header declares {usize} bytes, the central directory "
                      f"{entry.size}")
    return entry.size, None


def _stream_damage(stream: DecompressStream, entry: Entry, where: str,
                   ctx: ScanContext) -> Iterator[Finding]:
    """What decoding a streamed member showed about its declared size and its data."""
    if stream.corrupt:
        reason = f"{entry.name!r}: {stream.corrupt}"
    elif stream.short:
        reason = (f"{entry.name!r} decompresses to fewer than the {entry.size} bytes its "
                  "headers declare")
    elif stream.overrun:
        reason = (f"{entry.name!r} decompresses to more than the {entry.size} bytes its "
                  "headers declare; loaders stop at the declared size")
    else:
        return
    yield CORRUPT.finding(reason, member=where)
    ctx.note_incomplete(reason)


def _keras_config(data: bytes, ctx: ScanContext) -> Iterator[Finding]:
    """The Keras-specific file references of a `.keras` config (the member is also scanned
    as JSON, which reports a config that does not parse)."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return
    yield from file_references(document, ctx, "config.json")


def _looks_plain(head: bytes, ctx: ScanContext) -> bool:
    return ctx.format_of(head, "")[1] is not None


def _encrypted(head: bytes, data: bytes | None, entry: Entry, where: str,
               ctx: ScanContext) -> Iterator[Finding]:
    if data is not None and _looks_plain(head, ctx):
        yield ODD_FLAGS.finding(
            f"{entry.name!r} is flagged encrypted but stored in the clear: scanners that "
            "honour the flag skip it, loaders that ignore it run it", member=where)
        return
    yield ENCRYPTED.finding(f"{entry.name!r} is encrypted and cannot be scanned", member=where)
    ctx.note_incomplete(f"member {entry.name!r} is encrypted")


def _torchscript(member: Source, where: str) -> Iterator[Finding]:
    text = member.read_at(0, 4 * 1024 * 1024).decode("utf-8", "replace")
    found = torchscript_code.reaches(text)
    for severity in (Severity.ERROR, Severity.WARNING):
        hits = [r for r in found if r.severity is severity]
        if not hits:
            continue
        lines = text.splitlines()
        first = hits[0]
        line = lines[first.line - 1].strip() if 0 < first.line <= len(lines) else first.what
        names = sorted({r.what for r in hits})
        label = "TorchScript code uses" if severity is Severity.ERROR else (
            "TorchScript code calls custom operators (native code that runs when the model is "
            "used):")
        yield TORCHSCRIPT.finding(f"{label} {', '.join(names[:8])}", severity=severity,
                                  member=where, evidence=line[:300])


__all__ = ["FORMAT", "RULES", "archive_kind", "read_directory", "scan", "sniff"]
