"""`-f json --compat modelaudit`: the document ModelAudit's `--format json` writes, so scripts
written for `modelaudit` / `promptfoo scan-model` keep working (research/modelaudit.md 4).

The keys scripts read are all there with ModelAudit's types: `issues[]` (`message`,
`severity` in ModelAudit's words: `critical`, `warning`, `info`, `debug`; `location` as
`"path (pos N)"`; `details`; `why`; `timestamp`; `type`; `rule_code`), `checks[]`,
`files_scanned`, `bytes_scanned`, `assets[]`, `has_errors`, `scanner_names`,
`file_metadata{path: {file_size, file_hashes{sha256}}}`, `start_time`, `duration`,
`total_checks`, `passed_checks`, `failed_checks`, `success`. `rule_code` is batchscan's rule id
(`PKL001`), not ModelAudit's S-code: the two catalogues do not map one to one.

`has_errors` is ModelAudit's "some input could not be fully scanned" (batchscan's
`error`/`timeout`/`oom`/`crashed`/`too_large`); those files are `failed` checks, and an
`issue` of severity `warning` with `type` = the status, as ModelAudit reports scan failures.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, BinaryIO

import orjson

from batchscan.records import ScanRecord, Severity, Status
from batchscan.rules import BY_ID

SEVERITY_NAMES = {Severity.ERROR: "critical", Severity.WARNING: "warning",
                  Severity.INFO: "info", Severity.DEBUG: "debug"}


def _timestamp(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _location(record: ScanRecord, member: str | None, offset: int | None) -> str:
    where = record.path if member is None else f"{record.path}:{member}"
    return where if offset is None else f"{where} (pos {offset})"


class ModelAuditJsonWriter:
    """Collects records; writes one ModelAudit-shaped JSON document at the end."""

    def __init__(self, out: BinaryIO, verbose: bool = False):
        self.out = out
        self.verbose = verbose
        self.started = time.time()
        self.issues: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        self.assets: list[dict[str, Any]] = []
        self.metadata: dict[str, dict[str, Any]] = {}
        self.scanners: set[str] = set()
        self.files = 0
        self.bytes = 0
        self.errors = False

    def write(self, record: ScanRecord) -> None:
        stamp = _timestamp(record.scanned_at)
        self.files += record.status is not Status.SKIPPED
        self.bytes += record.size or 0
        if record.format not in ("unknown", "skipped"):
            self.scanners.add(record.format)
        for finding in record.findings:
            if finding.severity is Severity.DEBUG and not self.verbose:
                continue
            rule = BY_ID.get(finding.rule_id)
            self.issues.append({
                "message": finding.message,
                "severity": SEVERITY_NAMES[finding.severity],
                "location": _location(record, finding.member, finding.offset),
                "details": {"rule_id": finding.rule_id, "member": finding.member,
                            "offset": finding.offset, "evidence": finding.evidence,
                            "cwe": finding.cwe, "sha256": record.sha256, "path": record.path},
                "why": rule.description if rule else None,
                "timestamp": stamp,
                "type": rule.name if rule else finding.rule_id,
                "rule_code": finding.rule_id,
            })
        if record.status.incomplete:
            self.errors = True
            self.issues.append({
                "message": f"{record.status.value}: {record.error}",
                "severity": "warning", "location": record.path,
                "details": {"status": record.status.value, "path": record.path},
                "why": "The file could not be fully scanned.", "timestamp": stamp,
                "type": record.status.value, "rule_code": None,
            })
        status = ("skipped" if record.status is Status.SKIPPED
                  else "failed" if record.status.incomplete or record.findings
                  else "passed")
        self.checks.append({
            "name": "batchscan scan", "status": status,
            "message": record.error or record.status.value,
            "severity": SEVERITY_NAMES[record.max_severity] if record.max_severity else None,
            "location": record.path, "details": {"format": record.format},
            "why": None, "rule_code": None, "timestamp": stamp,
        })
        self.assets.append({"path": record.path, "type": record.format, "size": record.size})
        self.metadata[record.path] = {
            "file_size": record.size,
            "file_hashes": {"sha256": record.sha256} if record.sha256 else {},
            "scan_outcome": record.status.value,
        }

    def finish(self, summary: dict[str, Any]) -> None:
        passed = sum(c["status"] == "passed" for c in self.checks)
        failed = sum(c["status"] == "failed" for c in self.checks)
        document = {
            "bytes_scanned": self.bytes,
            "issues": self.issues,
            "checks": self.checks,
            "files_scanned": self.files,
            "assets": self.assets,
            "has_errors": self.errors,
            "scanner_names": sorted(self.scanners),
            "file_metadata": self.metadata,
            "start_time": self.started,
            "duration": summary.get("wall_seconds", round(time.time() - self.started, 3)),
            "total_checks": len(self.checks),
            "passed_checks": passed,
            "failed_checks": failed,
            "success": not self.errors and not summary.get("interrupted", False),
        }
        self.out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        self.out.write(b"\n")
        self.out.flush()
