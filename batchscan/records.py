"""The result types that cross every boundary: findings, per-file results and records.

`Finding` and `FileResult` are produced inside worker processes and pickled back to the
coordinator, so they stay small, frozen and free of references to open files. The coordinator
wraps a `FileResult` into a `ScanRecord`, the one line per input of DESIGN.md section 3.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Severity(enum.StrEnum):
    """Finding severities, lowest first (ModelAudit's names, lower-cased on the wire)."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Status(enum.StrEnum):
    """What happened to one input. Only CLEAN and FINDINGS mean "fully scanned".

    UNSUPPORTED: no scanner understood the file (its format is unknown); it got the cheap
    content checks only, so it is never CLEAN. It does not make the run incomplete unless
    the user asks (`--fail-on-unsupported`).
    """

    CLEAN = "clean"
    FINDINGS = "findings"
    ERROR = "error"
    TIMEOUT = "timeout"
    OOM = "oom"
    CRASHED = "crashed"
    TOO_LARGE = "too_large"
    SKIPPED = "skipped"
    UNSUPPORTED = "unsupported"

    @property
    def incomplete(self) -> bool:
        """True when the input could not be fully scanned (exit code 2 territory)."""
        return self in _INCOMPLETE


_INCOMPLETE = frozenset(
    {Status.ERROR, Status.TIMEOUT, Status.OOM, Status.CRASHED, Status.TOO_LARGE}
)

# Evidence is capped so that one record stays far below the 16 MB warehouse value limits.
MAX_EVIDENCE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation about one input. Identity for baselines excludes `offset`."""

    rule_id: str
    severity: Severity
    message: str
    member: str | None = None
    offset: int | None = None
    evidence: str | None = None
    cwe: str | None = None

    def __post_init__(self) -> None:
        if self.evidence is not None and len(self.evidence) > MAX_EVIDENCE_CHARS:
            clipped = self.evidence[:MAX_EVIDENCE_CHARS] + "...[truncated]"
            object.__setattr__(self, "evidence", clipped)


@dataclass(frozen=True, slots=True)
class FileResult:
    """What a worker learned about one file; the coordinator adds run-level fields."""

    format: str
    size: int | None
    sha256: str | None
    findings: tuple[Finding, ...] = ()
    error: str | None = None
    duration_ms: float = 0.0
    status: Status | None = None  # forced status (oom inside a worker); None = derive
    cached: bool = False  # reused from the results cache instead of scanned
    findings_dropped: int = 0  # findings cut to keep the record bounded (schema.cap_findings)

    def derived_status(self) -> Status:
        if self.status is not None:
            return self.status
        if self.error is not None:
            return Status.ERROR
        if any(f.severity.rank >= Severity.INFO.rank for f in self.findings):
            return Status.FINDINGS
        return Status.CLEAN


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """One JSONL line: every key of DESIGN.md section 3, in that order."""

    run_id: str
    path: str
    source: str
    size: int | None
    sha256: str | None
    format: str
    status: Status
    findings: tuple[Finding, ...]
    error: str | None
    scanned_at: str
    duration_ms: float
    scanner_version: str
    cached: bool = False
    findings_dropped: int = 0  # findings left out of `findings` by the record caps

    @property
    def max_severity(self) -> Severity | None:
        return highest_severity(self.findings)


_OFFSET_IN_MEMBER = re.compile(r"@[0-9]+(?=$|!/)")


def stable_member(member: str | None) -> str:
    """`member` without byte offsets (`a.zip!/pickle@73` -> `a.zip!/pickle`): offsets move
    when a scanner version or the bytes before a payload change, the place does not."""
    return _OFFSET_IN_MEMBER.sub("", member) if member else ""


def finding_identity(rule_id: str, content: str, member: str | None) -> str:
    """A finding's identity for baselines and SARIF fingerprints: rule + where the content
    is (its sha256, or a path when there is none) + member without offsets. Never the
    message or the offset, so it survives moves (by sha256), re-runs and new versions."""
    return "|".join((rule_id, content, stable_member(member)))


def highest_severity(findings: tuple[Finding, ...]) -> Severity | None:
    if not findings:
        return None
    return max((f.severity for f in findings), key=lambda s: s.rank)
