"""Compressed wrappers: gzip, zlib, bzip2, xz/lzma, zstd, lz4 (what `pandas.read_pickle` and
`joblib.load` decompress by magic before unpickling).

Layout. A single compressed stream (gzip may hold several members back to back) whose payload
is another file: `model.pkl.gz`, a compressed joblib dump, a `.pt.xz`.

Attack surface. The wrapper hides the payload from scanners that dispatch on the outer
format (attacks.md rows 35 and "Notes": picklescan and modelscan miss `.pkl.gz` and compressed
joblib); a decompression bomb exhausts a scanner's memory or time (row 49).

What is checked. The payload is decompressed as a stream (never all at once): its first
64 KiB are sniffed; only a payload that is itself a scannable format is read further, and
pickles are walked straight from the stream. Every decompressed byte is charged to the
file's shared budget, and the ratio is checked once the output passes 16 MiB: a 4 GiB bomb of
zeros costs one 64 KiB sniff. Truncated or corrupt streams are reported, and a gzip file with
several members is followed through all of them.

Not checked: zstd and lz4 need their optional libraries (`backports.zstd` or Python 3.14's
`compression.zstd`, `lz4`); without them the file is reported as recognised but not scanned.

Rules
| id     | name                 | severity | CWE     |
|--------|----------------------|----------|---------|
| CMP001 | corrupt-compression  | warning  | CWE-20  |
| CMP002 | compression-limit    | warning  | CWE-409 |
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import (
    HEAD_BYTES,
    UNKNOWN_SIZE,
    FormatError,
    LimitExceeded,
    Readable,
    ScanContext,
    Source,
)

FORMAT = "compressed"

CORRUPT = rules.CMP001
LIMIT = rules.CMP002
RULES: tuple[Rule, ...] = (CORRUPT, LIMIT)

_OUT_CHUNK = 1024 * 1024
_IN_CHUNK = 256 * 1024

try:  # Python 3.14 has compression.zstd; older ones the backport (py7zr depends on it)
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from backports import zstd as _zstd
    except ImportError:
        _zstd = None
try:
    import lz4.frame as _lz4
except ImportError:  # pragma: no cover - optional
    _lz4 = None


def _zlib_ok(head: bytes) -> bool:
    return (len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7
            and (head[0] << 8 | head[1]) % 31 == 0)


def _lzma_alone(head: bytes) -> bool:
    # .lzma "alone" header: properties byte 0x5d and a 32-bit dictionary size (a power of 2)
    if len(head) < 13 or head[0] != 0x5D:
        return False
    dictionary = int.from_bytes(head[1:5], "little")
    return dictionary & (dictionary - 1) == 0 and dictionary >= 4096


# kind -> (recogniser of head bytes, factory of a fresh decompressor)
_KINDS: dict[str, tuple[Callable[[bytes], bool], Callable[[], Any] | None]] = {
    "gzip": (lambda h: h[:2] == b"\x1f\x8b", lambda: zlib.decompressobj(wbits=31)),
    "bzip2": (lambda h: h[:3] == b"BZh" and h[3:4].isdigit(), bz2.BZ2Decompressor),
    "xz": (lambda h: h[:6] == b"\xfd7zXZ\x00", lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ)),
    "lzma": (_lzma_alone, lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE)),
    "zstd": (lambda h: h[:4] == b"\x28\xb5\x2f\xfd",
             (lambda: _zstd.ZstdDecompressor()) if _zstd is not None else None),
    "lz4": (lambda h: h[:4] == b"\x04\x22\x4d\x18",
            (lambda: _lz4.LZ4FrameDecompressor()) if _lz4 is not None else None),
    "zlib": (_zlib_ok, zlib.decompressobj),
    # raw deflate: zip members only (no magic of its own)
    "deflate": (lambda h: False, lambda: zlib.decompressobj(-15)),
}


def kind_of(head: bytes) -> str | None:
    for kind, (recognise, _) in _KINDS.items():
        if kind != "deflate" and recognise(head):
            return kind
    return None


def sniff(head: bytes, name: str) -> bool:
    kind = kind_of(head)
    if kind != "zlib":
        return kind is not None
    # Two bytes are a weak magic: require that the start really inflates.
    try:
        return bool(zlib.decompressobj().decompress(head[:4096], 64))
    except zlib.error:
        return False


class DecompressStream(io.RawIOBase):
    """Decompress lazily: read() and forward seek() pull only what they need.

    Output is charged to the shared budget once (a backward seek restarts decoding without
    charging again) and the ratio is checked against the compressed bytes consumed.

    `size` is a declared length (a zip member's): output stops there, as zipfile's and
    miniz's do, `overrun` says there was more, and `short` that the data ended before it.
    """

    def __init__(self, raw: Readable, kind: str, ctx: ScanContext,
                 factory: Callable[[], Any] | None = None, size: int | None = None):
        super().__init__()
        self.size = size
        self.short = False
        self.overrun = False
        factory = factory or _KINDS[kind][1]
        if factory is None:
            raise FormatError(f"no {kind} decoder is installed")
        self._factory = factory
        self._kind = kind
        self._raw = raw
        self._start = raw.tell()
        self._ctx = ctx
        self._restart()
        self._charged = 0
        self.corrupt: str | None = None

    def _restart(self) -> None:
        self._raw.seek(self._start)
        self._dec = self._factory()
        self._pending = b""
        self._buffer = b""
        self._pos = 0  # decompressed offset of _buffer[0] + consumed
        self._produced = 0
        self._consumed = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _more(self) -> bytes:
        """Next decompressed chunk, b"" at the end of the stream."""
        while not self._done:
            dec = self._dec
            try:
                if isinstance(dec, type(zlib.decompressobj())):
                    data = self._pending or self._raw.read(_IN_CHUNK)
                    self._consumed += 0 if self._pending else len(data)
                    if not data:
                        if not dec.eof:
                            self.corrupt = f"{self._kind} stream is truncated"
                        self._done = True
                        return dec.flush()
                    out = dec.decompress(data, _OUT_CHUNK)
                    self._pending = dec.unconsumed_tail
                    if dec.eof:
                        self._next_member(dec.unused_data)
                else:
                    if dec.eof:
                        self._next_member(dec.unused_data)
                        continue
                    data = b""
                    if dec.needs_input:
                        data = self._raw.read(_IN_CHUNK)
                        self._consumed += len(data)
                        if not data:
                            self.corrupt = f"{self._kind} stream is truncated"
                            self._done = True
                            return b""
                    out = dec.decompress(data, _OUT_CHUNK)
            except (LimitExceeded, MemoryError):
                raise
            except (zlib.error, EOFError, lzma.LZMAError) as exc:
                self.corrupt = f"{self._kind} stream is corrupt: {exc}"
                self._done = True
                return b""
            except Exception:
                # zstd's ZstdError, lz4's RuntimeError("LZ4F_decompress failed..."), bz2's
                # OSError: the decompressor's own words name its internals, not the damage.
                self.corrupt = f"{self._kind} stream is corrupt: the compressed data is invalid"
                self._done = True
                return b""
            if out:
                self._charge(len(out))
                return out
        return b""

    def _next_member(self, unused: bytes) -> None:
        """gzip (and xz/zstd) files may hold several streams back to back: keep going."""
        rest = (unused or b"") + self._pending
        if not rest:
            rest = self._raw.read(_IN_CHUNK)
            self._consumed += len(rest)
        if not rest or not _KINDS[self._kind][0](rest[:16]):
            self._done = True
            return
        self._dec = self._factory()
        self._pending = rest if isinstance(self._dec, type(zlib.decompressobj())) else b""
        if not self._pending:
            # feed the leftover to the fresh decompressor on the next call
            out = self._dec.decompress(rest, _OUT_CHUNK)
            self._buffer += out
            self._charge(len(out))

    def _charge(self, produced: int) -> None:
        self._produced += produced
        if self._produced > self._charged:
            self._ctx.count_decompressed(self._produced - self._charged)
            self._charged = self._produced
        limits = self._ctx.limits
        if self._produced > limits.ratio_floor and self._consumed and (
            self._produced / self._consumed > limits.max_ratio
        ):
            raise LimitExceeded("compression ratio", limits.max_ratio,
                                self._produced // max(1, self._consumed), self._ctx.member)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = UNKNOWN_SIZE
        if self.size is not None:
            size = min(size, self.size - self._pos)
            if size <= 0:
                self._check_overrun()
                return b""
        parts = []
        have = 0
        while have < size:
            if not self._buffer:
                self._buffer = self._more()
                if not self._buffer:
                    break
            take = self._buffer[: size - have]
            self._buffer = self._buffer[len(take) :]
            parts.append(take)
            have += len(take)
        self._pos += have
        if self.size is not None and have < size:
            self.short = True
        return b"".join(parts)

    def _check_overrun(self) -> None:
        """At the declared end: does the stream hold more (a size that hides data)?"""
        if not self.overrun and not self._buffer:
            self._buffer = self._more()
        if self._buffer:
            self.overrun = True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("seek from the end of a compressed stream")
        if offset < self._pos:
            self._restart()
        while self._pos < offset:
            if not self.read(min(offset - self._pos, _OUT_CHUNK)):
                break
        return self._pos


def random_access(source: Source, ctx: ScanContext) -> Source:
    """The source itself when seeking is cheap, else an in-memory copy: a backward seek in a
    decompressing stream decodes again from the start, so libraries that jump around
    (h5py, py7zr) get bytes in memory."""
    if source.known_size is not None and not isinstance(source.stream, DecompressStream):
        return source
    return materialize(source, ctx)


def materialize(source: Source, ctx: ScanContext) -> Source:
    """An exact-size, in-memory copy of a member (for formats that need random access)."""
    if source.known_size is not None and isinstance(source.stream, io.BytesIO):
        return source
    limit = ctx.limits.max_member_bytes
    if source.known_size is not None and source.known_size > limit:
        raise LimitExceeded("bytes of one member held in memory", limit, source.known_size,
                            ctx.member)
    source.stream.seek(0)
    data = source.stream.read(limit + 1)
    if len(data) > limit:
        raise LimitExceeded("bytes of one member held in memory", limit, len(data), ctx.member)
    return Source.from_bytes(data, source.name)


def inner_name(name: str, kind: str) -> str:
    for suffix in (".gz", ".gzip", ".bz2", ".xz", ".lzma", ".zst", ".lz4", ".z", ".zlib"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return f"{name}|{kind}"


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    kind = kind_of(source.head)
    if kind is None:  # pragma: no cover - sniff said yes
        return
    source.stream.seek(0)
    try:
        stream = DecompressStream(source.stream, kind, ctx)
    except FormatError as exc:
        ctx.note_incomplete(str(exc))
        return
    try:
        head = stream.read(HEAD_BYTES)
        stream.seek(0)
        inner = Source(stream, UNKNOWN_SIZE if len(head) >= HEAD_BYTES else len(head),
                       inner_name(source.name, kind), head)
        yield from ctx.scan_member(inner, inner.name)
    except LimitExceeded as exc:
        yield LIMIT.finding(f"decompression stopped: {exc}", member=ctx.member)
        ctx.note_incomplete(str(exc))
    if stream.corrupt:
        yield CORRUPT.finding(stream.corrupt, member=ctx.member)
        ctx.note_incomplete(stream.corrupt)
