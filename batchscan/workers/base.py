"""The small surface every format module shares: sources, contexts, rules and typed failures.

A format module (`workers/<format>.py`) exposes:

- `FORMAT: str` - its format id (the `format` field of a record);
- `RULES: tuple[Rule, ...]` - its rules, taken from the catalogue in `batchscan/rules.py`;
- `sniff(head: bytes, name: str) -> bool` - content-based recognition from the first bytes;
- `scan(source: Source, ctx: ScanContext) -> Iterator[Finding]` - the static analysis.

Modules raise `FormatError` for input they cannot parse and `LimitExceeded` when a budget runs
out; the task runner turns both into records. Nothing but records leaves a worker.
"""

from __future__ import annotations

import fnmatch
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from batchscan.records import Finding
from batchscan.rules import Rule

HEAD_BYTES = 64 * 1024
# The size of a member whose length nobody knows in advance (a decompressing stream without
# a declared size). Never a real size: checks that compare against a size must ask
# `Source.known_size` and skip when it is None rather than take this for one.
UNKNOWN_SIZE = 1 << 62


class FormatError(Exception):
    """The input is not valid in the format it claims; the message says what is wrong."""


class LimitExceeded(Exception):
    """A scanning budget ran out (depth, members, bytes, ratio, opcodes...)."""

    def __init__(self, resource: str, limit: int, actual: int, member: str | None = None):
        super().__init__(f"{resource} limit exceeded: {actual} > {limit}")
        self.resource = resource
        self.limit = limit
        self.actual = actual
        self.member = member


class Readable(Protocol):
    """What scanners need of a stream: files, BytesIO, slices and decompressing streams."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def tell(self) -> int: ...


class Source:
    """A readable, seekable view of one input (a file, or a member held in memory)."""

    __slots__ = ("head", "name", "size", "stream")

    def __init__(self, stream: Readable, size: int, name: str, head: bytes | None = None):
        self.stream = stream
        self.size = size
        self.name = name
        if head is None:
            stream.seek(0)
            head = stream.read(HEAD_BYTES)
            stream.seek(0)
        self.head = head

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> Source:
        return cls(io.BytesIO(data), len(data), name, data[:HEAD_BYTES])

    @property
    def known_size(self) -> int | None:
        """The input's real length, or None when it is not known (a decompressing stream)."""
        return None if self.size >= UNKNOWN_SIZE else self.size

    def read_at(self, offset: int, length: int) -> bytes:
        """At most `length` bytes at `offset`, never more than the input holds: a buffered
        `read(n)` allocates `n` bytes up front, so `read_at(0, 2 GiB)` of a 2 MiB file would
        cost 2 GiB (a benign ONNX model was `oom`). Unknown sizes (decompressing streams,
        `UNKNOWN_SIZE`) read in chunks and need no clamp."""
        length = max(0, min(length, self.size - offset))
        self.stream.seek(offset)
        return self.stream.read(length)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-file budgets (ClamAV's four plus ours); defaults are documented in README.

    A file and everything nested in it share one `Budget`, so a bomb cannot multiply its
    allowance by nesting.
    """

    max_depth: int = 8  # containers and nested pickles inside one another
    max_members: int = 10_000  # members of all containers of one input
    max_decompressed_bytes: int = 2 * 1024**3  # bytes produced by decompression, in total
    max_ratio: int = 1000  # decompressed/compressed, checked once output passes ratio_floor
    ratio_floor: int = 16 * 1024**2
    max_member_bytes: int = 512 * 1024**2  # one member held in memory (nested zip, npy...)
    max_opcodes: int = 50_000_000
    max_nested_pickle_bytes: int = 64 * 1024**2


@dataclass(slots=True)
class Budget:
    """Resources consumed so far by one top-level input and its members."""

    decompressed: int = 0
    members: int = 0


def _compile_patterns(patterns: tuple[str, ...]) -> tuple[Callable[[str], bool], ...]:
    """`-b` patterns: globs when they contain glob characters, else case-insensitive substrings."""
    def glob(pattern: str) -> Callable[[str], bool]:
        return lambda text: fnmatch.fnmatchcase(text.lower(), pattern)

    def substring(pattern: str) -> Callable[[str], bool]:
        return lambda text: pattern in text.lower()

    return tuple(
        glob(raw.lower()) if any(ch in raw for ch in "*?[") else substring(raw.lower())
        for raw in patterns
    )


Dispatch = Callable[["Source", "ScanContext"], Iterator[Finding]]
Detect = Callable[[bytes, str], "tuple[str, FormatModule | None]"]


@dataclass(slots=True)
class ScanContext:
    """What a format scanner may consult or call while scanning one input.

    `incomplete` collects reasons why the input could not be fully scanned (an encrypted
    member, a limit); the task runner turns them into the record's `error`, so such a file
    is never reported clean. `format_hint` lets a container name what the top-level file
    really is (a zip that is a PyTorch checkpoint).
    """

    limits: Limits = field(default_factory=Limits)
    blacklist: tuple[str, ...] = ()
    member: str | None = None  # member path of the current input inside its container
    depth: int = 0
    budget: Budget = field(default_factory=Budget)
    incomplete: list[str] = field(default_factory=list)
    dispatch: Dispatch | None = None  # the registry's `scan_source`: scans a member
    detect: Detect | None = None  # the registry's `detect`: names a member's format
    format_hint: str | None = None
    # The folder of the file on disk, for formats whose loaders open sibling files (ONNX
    # external data); None for members of containers and inputs that are not files.
    directory: str | None = None
    _matchers: tuple[Callable[[str], bool], ...] = ()

    def __post_init__(self) -> None:
        self._matchers = _compile_patterns(self.blacklist)

    def blacklisted(self, text: str) -> str | None:
        """The first `-b` pattern that matches `text`, if any."""
        for raw, match in zip(self.blacklist, self._matchers, strict=True):
            if match(text):
                return raw
        return None

    def where(self, member: str) -> str:
        return member if self.member is None else f"{self.member}!/{member}"

    def child(self, member: str) -> ScanContext:
        """Context for a member of the current input (nested names joined with `!/`)."""
        if self.depth + 1 > self.limits.max_depth:
            raise LimitExceeded("nesting depth", self.limits.max_depth, self.depth + 1,
                                self.where(member))
        ctx = ScanContext(self.limits, self.blacklist, self.where(member), self.depth + 1,
                          self.budget, self.incomplete, self.dispatch, self.detect)
        ctx._matchers = self._matchers
        return ctx

    def sibling(self, label: str) -> ScanContext:
        """Context for a part that sits beside the current input's other parts, not inside
        them (one of several zip archives written back to back): the same depth, its own
        member label. Its members still count against the shared budget."""
        ctx = ScanContext(self.limits, self.blacklist, self.where(label), self.depth,
                          self.budget, self.incomplete, self.dispatch, self.detect)
        ctx._matchers = self._matchers
        return ctx

    def note_incomplete(self, reason: str) -> None:
        if len(self.incomplete) < 20:
            self.incomplete.append(reason)

    def count_member(self) -> None:
        self.budget.members += 1
        if self.budget.members > self.limits.max_members:
            raise LimitExceeded("container members", self.limits.max_members,
                                self.budget.members, self.member)

    def count_decompressed(self, produced: int, consumed: int | None = None) -> None:
        """Charge decompressed bytes to the shared budget; check the ratio of one stream."""
        self.budget.decompressed += produced
        if self.budget.decompressed > self.limits.max_decompressed_bytes:
            raise LimitExceeded("decompressed bytes", self.limits.max_decompressed_bytes,
                                self.budget.decompressed, self.member)

    def scan_member(self, source: Source, member: str) -> Iterator[Finding]:
        """Sniff a member by content and scan it with the matching format module.

        The registry hands its `scan_source` in (`registry.context()`): this module sits
        below every format module and never imports the registry that imports them.
        """
        if self.dispatch is None:
            raise RuntimeError("ScanContext without a dispatch: build it with registry.context()")
        yield from self.dispatch(source, self.child(member))

    def format_of(self, head: bytes, name: str) -> tuple[str, FormatModule | None]:
        """The format id and scanner the registry would choose for a member."""
        if self.detect is None:
            raise RuntimeError("ScanContext without detect: build it with registry.context()")
        return self.detect(head, name)


_DTYPE_CODE = re.compile(r"[<>|=]?([a-zA-Z?])(\d*)(?:\[.*\])?\Z")
_DRIVE = re.compile(r"\A[A-Za-z]:")


def dtype_code_size(code: str) -> tuple[int, bool] | None:
    """(bytes per element, is object) of a NumPy type code such as '<f4', '|O', '<U5'."""
    match = _DTYPE_CODE.match(code)
    if match is None:
        return None
    kind, digits = match.group(1), match.group(2)
    if kind == "O":
        return 8, True
    size = int(digits) if digits else 1
    return (4 * size if kind == "U" else size), False


def unsafe_path(name: str) -> str | None:
    """Why an archive member name would escape the extraction directory, if it would."""
    normal = name.replace("\\", "/")
    if normal.startswith("/"):
        return "absolute path"
    if _DRIVE.match(normal):
        return "drive-letter path"
    if ".." in normal.split("/"):
        return "parent-directory component"
    return None


class FormatModule(Protocol):
    FORMAT: str
    RULES: tuple[Rule, ...]

    def sniff(self, head: bytes, name: str) -> bool: ...

    def scan(self, source: Source, ctx: ScanContext) -> Iterator[Finding]: ...


class SliceStream(io.RawIOBase):
    """A read-only, seekable window [start, start+length) of another seekable stream."""

    def __init__(self, base: Readable, start: int, length: int):
        super().__init__()
        self._base = base
        self._start = start
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._length
        self._pos = max(0, offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        remaining = self._length - self._pos
        if remaining <= 0:
            return b""
        if size is None or size < 0 or size > remaining:
            size = remaining
        self._base.seek(self._start + self._pos)
        data = self._base.read(size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
