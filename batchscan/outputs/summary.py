"""Run summary: counts that every output format shares, and the exit code of DESIGN.md 4."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from batchscan.records import ScanRecord, Severity, Status
from batchscan.schema import display_path

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_INCOMPLETE = 2
EXIT_INTERRUPTED = 130


@dataclass(slots=True)
class Summary:
    fail_on: Severity = Severity.WARNING
    files: int = 0
    bytes: int = 0
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    by_severity: collections.Counter[str] = field(default_factory=collections.Counter)
    by_rule: collections.Counter[str] = field(default_factory=collections.Counter)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    failing: int = 0  # files with a finding at or above fail_on
    incomplete: int = 0
    unsupported: int = 0  # no scanner understood them (counted apart, never clean)
    fail_on_unsupported: bool = False  # count them as incomplete for the exit code

    def add(self, record: ScanRecord) -> None:
        self.files += 1
        self.bytes += record.size or 0
        self.by_status[record.status.value] += 1
        for finding in record.findings:
            self.by_severity[finding.severity.value] += 1
            self.by_rule[finding.rule_id] += 1
        top = record.max_severity
        if top is not None and top.rank >= self.fail_on.rank:
            self.failing += 1
        if record.status.incomplete:
            self.incomplete += 1
        if record.status is Status.UNSUPPORTED:
            self.unsupported += 1
        self.slowest.append((record.duration_ms, display_path(record.path)))
        if len(self.slowest) > 50:
            self.slowest.sort(reverse=True)
            del self.slowest[5:]

    def exit_code(self, interrupted: bool = False) -> int:
        if interrupted:
            return EXIT_INTERRUPTED
        if self.failing:
            return EXIT_FINDINGS
        if self.incomplete or (self.fail_on_unsupported and self.unsupported):
            return EXIT_INCOMPLETE
        return EXIT_CLEAN

    def as_dict(self, wall_seconds: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        slowest = sorted(self.slowest, reverse=True)[:5]
        data: dict[str, Any] = {
            "files": self.files,
            "bytes": self.bytes,
            "by_status": dict(sorted(self.by_status.items())),
            "by_severity": {s.value: self.by_severity.get(s.value, 0) for s in Severity},
            "top_rules": dict(self.by_rule.most_common(10)),
            "failing_files": self.failing,
            "incomplete_files": self.incomplete,
            "unsupported_files": self.unsupported,
            "fail_on": self.fail_on.value,
            "wall_seconds": round(wall_seconds, 3),
            "files_per_second": round(self.files / wall_seconds, 1) if wall_seconds > 0 else None,
            "slowest": [{"path": p, "duration_ms": round(d, 1)} for d, p in slowest],
        }
        if extra:
            data.update(extra)
        return data

