"""JSON serialisation of records: the single place that knows the wire format.

Schema version 3 is DESIGN.md section 3 plus `cached`, `path_bytes` and `findings_dropped`
(README: "Schema versions"). Every key is present on every line (null when absent) so that
warehouses infer stable column types. `record.schema.json` next to this module is the
committed JSON Schema; the tests validate every emitted record against it.

Nothing a worker returns is trusted: `sanitize` (called by the coordinator on every record
before anyone writes it) makes a record encodable and bounded whatever a hostile file put in
it - lone surrogates escaped as `\\udXXX` text, integers limited to the signed 64-bit range
warehouses and orjson take, strings cut with a note of how much, at most `MAX_FINDINGS`
findings and `MAX_FINDINGS_BYTES` of them (the most severe kept, the rest counted in
`findings_dropped`).

Paths are operating-system strings (undecodable bytes held as surrogate escapes). On the
wire `path` is text in which every byte that is not valid UTF-8 is written `\\xNN`, and
`path_bytes` is the base64 of the exact bytes when (and only when) the name is not valid
UTF-8; `path_from_dict` turns both back into the operating-system string. `display_path` is
the text form every renderer uses.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import os
import re
from pathlib import Path
from typing import Any

import orjson

from batchscan import rules
from batchscan.records import MAX_EVIDENCE_CHARS, Finding, ScanRecord, Severity, Status

# 2 added `cached`; 3 added `path_bytes` and `findings_dropped`. Older lines are still read.
SCHEMA_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
SCHEMA_PATH = Path(__file__).with_name("record.schema.json")

_DUMP_OPTIONS = orjson.OPT_APPEND_NEWLINE


def utc_now() -> str:
    """RFC 3339 UTC with a `Z`, millisecond precision."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# --- paths ---------------------------------------------------------------------------------


def path_bytes(path: str) -> bytes:
    """The exact bytes a path names (surrogate escapes back to bytes, as `os.fsencode`)."""
    try:
        return path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is no escape (from a listing, say)
        return path.encode("utf-8", "surrogatepass")


def display_path(path: str) -> str:
    """The path as valid text: every byte that is not UTF-8 written as `\\xNN`."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path_bytes(path).decode("utf-8", "backslashreplace")


def path_fields(path: str) -> tuple[str, str | None]:
    """(`path`, `path_bytes`) of a record: base64 of the bytes only when text cannot hold them."""
    text = display_path(path)
    if text is path:
        return path, None
    return text, base64.b64encode(path_bytes(path)).decode("ascii")


def path_from_dict(data: dict[str, Any]) -> str:
    """The operating-system path a record names (inverse of `path_fields`)."""
    raw = data.get("path_bytes")
    if raw:
        return os.fsdecode(base64.b64decode(raw))
    path: str = data["path"]
    return path


# --- making a worker's result safe to write --------------------------------------------------

MAX_INT = 2**63 - 1  # orjson refuses more than 64 bits; warehouses take signed 64-bit
MAX_MESSAGE_CHARS = 1000
MAX_MEMBER_CHARS = 1000
MAX_ERROR_CHARS = 2000
MAX_SHORT_CHARS = 200  # format, source, run id, versions, rule ids
MAX_FINDINGS = 1000
MAX_FINDINGS_BYTES = 1024 * 1024
# What one record may take on the wire besides its path: the findings budget, one finding
# that may pass it, and the record's own strings escaped at worst.
MAX_RECORD_BYTES = 2 * MAX_FINDINGS_BYTES


def clean_text(value: object, limit: int) -> str:
    """Encodable text of at most about `limit` characters (escapes may add a few)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = f"{text[:limit]}...[{len(text) - limit} characters cut]"
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _clean_optional(value: object, limit: int) -> str | None:
    return None if value is None else clean_text(value, limit)


def _bounded_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        return None
    return value


def _severity(value: object) -> Severity:
    try:
        return Severity(str(value))
    except ValueError:
        return Severity.ERROR  # fail closed: an unknown severity is the worst one


def clean_finding(finding: Finding) -> Finding:
    """A finding every output can write; anything it cannot carry is said in the message."""
    message = clean_text(finding.message, MAX_MESSAGE_CHARS) or "(no message)"
    offset = _bounded_int(finding.offset)
    if finding.offset is not None and offset is None:
        bits = finding.offset.bit_length() if isinstance(finding.offset, int) else 0
        message += f" (offset not representable: {bits} bits)" if bits else " (bad offset)"
    rule_id = clean_text(finding.rule_id, MAX_SHORT_CHARS)
    if not (len(rule_id) == 6 and rule_id[:3].isalpha() and rule_id[:3].isupper()
            and rule_id[3:].isdigit() and rule_id.isascii()):
        message = f"{rule_id}: {message}"
        rule_id = rules.ENG004.rule_id
    cwe = _clean_optional(finding.cwe, MAX_SHORT_CHARS)
    if cwe is not None and not (cwe.startswith("CWE-") and cwe[4:].isdigit() and cwe.isascii()):
        cwe = None
    return Finding(
        rule_id=rule_id,
        severity=_severity(finding.severity),
        message=message,
        member=_clean_optional(finding.member, MAX_MEMBER_CHARS),
        offset=offset,
        evidence=_clean_optional(finding.evidence, MAX_EVIDENCE_CHARS + 20),
        cwe=cwe,
    )


def _unrecordable(finding: object) -> Finding:
    severity = _severity(getattr(finding, "severity", None))
    return rules.ENG004.finding("the scanner reported a finding that could not be recorded",
                                severity=severity)


def cap_findings(findings: tuple[Finding, ...] | list[Finding]) -> tuple[tuple[Finding, ...], int]:
    """At most `MAX_FINDINGS` findings and `MAX_FINDINGS_BYTES` of them, the most severe
    first chosen (ties in the order found); returns (kept, in their order, and how many cut)."""
    if not findings:
        return (), 0
    if len(findings) <= MAX_FINDINGS and sum(_size(f) for f in findings[:MAX_FINDINGS]) \
            <= MAX_FINDINGS_BYTES:
        return tuple(findings), 0
    order = sorted(range(len(findings)), key=lambda i: -findings[i].severity.rank)
    chosen: list[int] = []
    used = 0
    for index in order:
        cost = _size(findings[index])
        if len(chosen) >= MAX_FINDINGS or used + cost > MAX_FINDINGS_BYTES:
            continue
        chosen.append(index)
        used += cost
        if len(chosen) >= MAX_FINDINGS:
            break
    chosen.sort()
    return tuple(findings[i] for i in chosen), len(findings) - len(chosen)


def _size(finding: Finding) -> int:
    """Upper bound of a finding's encoded size (control characters escape to six bytes)."""
    texts = (finding.message, finding.member or "", finding.evidence or "")
    return 160 + sum(6 * len(t) if not t.isprintable() else 4 * len(t) for t in texts)


def sanitize(record: ScanRecord) -> ScanRecord:
    """The record with every field a hostile worker result could spoil made safe and bounded.

    Raises only on a record that is not a `ScanRecord` at all; the coordinator's guard then
    writes that file's `error` record (see `Engine._record`).
    """
    findings: list[Finding] = []
    for finding in record.findings:
        try:
            findings.append(clean_finding(finding))
        except Exception:  # one broken finding costs its details, never its severity
            findings.append(_unrecordable(finding))
    kept, dropped = cap_findings(findings)
    dropped += record.findings_dropped if _bounded_int(record.findings_dropped) else 0
    status = record.status if isinstance(record.status, Status) else Status.ERROR
    error = _clean_optional(record.error, MAX_ERROR_CHARS)
    if status is Status.ERROR and error is None:
        error = "the scanner reported an error without saying why"
    if status is Status.CLEAN and (error is not None or dropped):
        status = Status.ERROR if error is not None else Status.FINDINGS
    duration = record.duration_ms
    if not isinstance(duration, (int, float)) or not math.isfinite(duration) or duration < 0:
        duration = 0.0
    return ScanRecord(
        run_id=clean_text(record.run_id, MAX_SHORT_CHARS),
        path=record.path,
        source=clean_text(record.source, MAX_SHORT_CHARS),
        size=_bounded_int(record.size),
        sha256=record.sha256 if _is_sha256(record.sha256) else None,
        format=_format_id(record.format),
        status=status,
        findings=kept,
        error=error,
        scanned_at=record.scanned_at,
        duration_ms=float(duration),
        scanner_version=clean_text(record.scanner_version, MAX_SHORT_CHARS),
        cached=record.cached is True,
        findings_dropped=dropped,
    )


_SHA256 = re.compile(r"[0-9a-f]{64}")
_FORMAT_ID = re.compile(r"[a-z0-9_]+")


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def _format_id(value: object) -> str:
    if (isinstance(value, str) and len(value) <= MAX_SHORT_CHARS
            and _FORMAT_ID.fullmatch(value) is not None):
        return value
    return "unknown"


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
    path, raw_path = path_fields(record.path)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": record.run_id,
        "path": path,
        "path_bytes": raw_path,
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
        "findings_dropped": record.findings_dropped,
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
    if data.get("schema_version") not in READABLE_VERSIONS:
        raise ValueError(f"unsupported schema_version {data.get('schema_version')!r}")
    return ScanRecord(
        run_id=data["run_id"],
        path=path_from_dict(data),
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
        findings_dropped=int(data.get("findings_dropped") or 0),
    )


def load_json_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(SCHEMA_PATH.read_bytes())
    return loaded
