"""The small surface every format module shares: sources, contexts, rules and typed failures.

A format module (`workers/<format>.py`) exposes:

- `FORMAT: str` - its format id (the `format` field of a record);
- `RULES: tuple[Rule, ...]` - its rule table (stable ids, a CWE each);
- `sniff(head: bytes, name: str) -> bool` - content-based recognition from the first bytes;
- `scan(source: Source, ctx: ScanContext) -> Iterator[Finding]` - the static analysis.

Modules raise `FormatError` for input they cannot parse and `LimitExceeded` when a budget runs
out; the task runner turns both into records. Nothing but records leaves a worker.
"""

from __future__ import annotations

import fnmatch
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from batchscan.records import Finding, Severity

HEAD_BYTES = 64 * 1024


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


@dataclass(frozen=True, slots=True)
class Rule:
    """One check: a stable id, a short name, a default severity and a CWE."""

    rule_id: str
    name: str
    severity: Severity
    cwe: str
    description: str

    def finding(
        self,
        message: str,
        *,
        severity: Severity | None = None,
        member: str | None = None,
        offset: int | None = None,
        evidence: str | None = None,
    ) -> Finding:
        return Finding(
            rule_id=self.rule_id,
            severity=severity or self.severity,
            message=message,
            member=member,
            offset=offset,
            evidence=evidence,
            cwe=self.cwe,
        )


class Source:
    """A readable, seekable view of one input (a file, or a member held in memory)."""

    __slots__ = ("head", "name", "size", "stream")

    def __init__(self, stream: BinaryIO, size: int, name: str, head: bytes | None = None):
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

    def read_at(self, offset: int, length: int) -> bytes:
        self.stream.seek(offset)
        return self.stream.read(length)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-file budgets (ClamAV's four plus ours); defaults are documented in README."""

    max_depth: int = 8
    max_members: int = 10_000
    max_decompressed_bytes: int = 4 * 1024**3
    max_ratio: int = 200
    max_opcodes: int = 50_000_000
    max_nested_pickle_bytes: int = 64 * 1024**2


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


@dataclass(slots=True)
class ScanContext:
    """What a format scanner may consult or call while scanning one input."""

    limits: Limits = field(default_factory=Limits)
    blacklist: tuple[str, ...] = ()
    member: str | None = None  # member path of the current input inside its container
    depth: int = 0
    _matchers: tuple[Callable[[str], bool], ...] = ()

    def __post_init__(self) -> None:
        self._matchers = _compile_patterns(self.blacklist)

    def blacklisted(self, text: str) -> str | None:
        """The first `-b` pattern that matches `text`, if any."""
        for raw, match in zip(self.blacklist, self._matchers, strict=True):
            if match(text):
                return raw
        return None

    def child(self, member: str) -> ScanContext:
        """Context for a member of the current input (nested names joined with `!/`)."""
        if self.depth + 1 > self.limits.max_depth:
            raise LimitExceeded("nesting depth", self.limits.max_depth, self.depth + 1, member)
        joined = member if self.member is None else f"{self.member}!/{member}"
        ctx = ScanContext(self.limits, self.blacklist, joined, self.depth + 1)
        return ctx


class FormatModule(Protocol):
    FORMAT: str
    RULES: tuple[Rule, ...]

    def sniff(self, head: bytes, name: str) -> bool: ...

    def scan(self, source: Source, ctx: ScanContext) -> Iterator[Finding]: ...
