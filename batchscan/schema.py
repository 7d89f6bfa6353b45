"""JSON serialisation of records: the single place that knows the wire format.

Schema version 2 is DESIGN.md section 3 plus `cached` (README: "Schema versions"). Every key
is present on every line (null when absent) so that warehouses infer stable column types.
`record.schema.json` next to this module is the committed JSON Schema; the tests validate
every emitted record against it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson

from batchscan.records import Finding, ScanRecord, Severity, Status

SCHEMA_VERSION = 2  # 2 added `cached`; version-1 lines are still read (cached = false)
SCHEMA_PATH = Path(__file__).with_name("record.schema.json")

_DUMP_OPTIONS = orjson.OPT_APPEND_NEWLINE


def utc_now() -> str:
    """RFC 3339 UTC with a `Z`, millisecond precision."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    return {
        "rule_id": finding.rule_id,
        "severity": finding.severity.value,
        "message": finding.message,
        "member": finding.member,
        "offset": finding.offset,
        "evidence": finding.evidence,
        "cwe": finding.cwe,
    }


def record_to_dict(record: ScanRecord) -> dict[str, Any]:
    max_severity = record.max_severity
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": record.run_id,
        "path": record.path,
        "source": record.source,
        "size": record.size,
        "sha256": record.sha256,
        "format": record.format,
        "status": record.status.value,
        "max_severity": max_severity.value if max_severity else None,
        "findings": [finding_to_dict(f) for f in record.findings],
        "error": record.error,
        "scanned_at": record.scanned_at,
        "duration_ms": round(record.duration_ms, 3),
        "scanner_version": record.scanner_version,
        "cached": record.cached,
    }


def dumps_record(record: ScanRecord) -> bytes:
    """One JSONL line, newline included."""
    return orjson.dumps(record_to_dict(record), option=_DUMP_OPTIONS)


def finding_from_dict(data: dict[str, Any]) -> Finding:
    return Finding(
        rule_id=data["rule_id"],
        severity=Severity(data["severity"]),
        message=data["message"],
        member=data.get("member"),
        offset=data.get("offset"),
        evidence=data.get("evidence"),
        cwe=data.get("cwe"),
    )


def record_from_dict(data: dict[str, Any]) -> ScanRecord:
    """Inverse of `record_to_dict` (used by `report` and `--resume`)."""
    if data.get("schema_version") not in (1, SCHEMA_VERSION):
        raise ValueError(f"unsupported schema_version {data.get('schema_version')!r}")
    return ScanRecord(
        run_id=data["run_id"],
        path=data["path"],
        source=data["source"],
        size=data["size"],
        sha256=data["sha256"],
        format=data["format"],
        status=Status(data["status"]),
        findings=tuple(finding_from_dict(f) for f in data["findings"]),
        error=data["error"],
        scanned_at=data["scanned_at"],
        duration_ms=float(data["duration_ms"]),
        scanner_version=data["scanner_version"],
        cached=bool(data.get("cached", False)),
    )


def load_json_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(SCHEMA_PATH.read_bytes())
    return loaded
