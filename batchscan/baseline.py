"""`--baseline OLD`: report only findings that an earlier run did not already have.

A finding's identity is `records.finding_identity`: rule id + the file's sha256 (its path only
when the run had no hash) + the member with byte offsets removed. Neither the path, the
message nor the offset is part of it, so a baseline keeps suppressing a finding after the
file is moved or the scan runs from another directory, and after a scanner version moves an
offset. Changed content is a new finding, as it should be.

The baseline may be any output batchscan writes that names findings: JSONL records
(`-f jsonl`, also gzip-free concatenated shards), `--flatten` rows, a `-f json` document or
SARIF. It is read completely before any output is opened, so `--baseline X -o X` works. A file
that is missing, unreadable, or not one of these shapes is a usage error, never an empty
baseline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from batchscan.records import ScanRecord, Severity, Status, finding_identity
from batchscan.schema import path_from_dict


class BaselineError(ValueError):
    """The baseline file cannot be used (the message says why and what would work)."""


def _identity(rule_id: Any, sha256: Any, path: Any, member: Any) -> str:
    if not isinstance(rule_id, str):
        raise BaselineError("a finding has no rule_id")
    content = sha256 if isinstance(sha256, str) and sha256 else str(path)
    return finding_identity(rule_id, content, member if isinstance(member, str) else None)


def _path(row: dict[str, Any]) -> object:
    """The OS path a record names (`path_bytes` restores a name that is not UTF-8)."""
    return path_from_dict(row) if isinstance(row.get("path"), str) else row.get("path")


def triage_expired(triage: object) -> bool:
    """`batchscan ui` adds `triage: {state, reason, expires}` to baseline findings; an
    `expires` date (YYYY-MM-DD, inclusive) in the past, or unreadable, ends the suppression."""
    if not isinstance(triage, dict) or not triage.get("expires"):
        return False
    try:
        until = dt.date.fromisoformat(str(triage["expires"])[:10])
    except ValueError:
        return True
    return dt.datetime.now(dt.UTC).date() > until


def _from_record(row: dict[str, Any]) -> Iterator[str]:
    if "findings" in row:  # a record (JSONL line or an entry of a -f json document)
        for finding in row["findings"] or []:
            if isinstance(finding, dict) and triage_expired(finding.get("triage")):
                continue  # a UI triage decision past its expiry: report the finding again
            yield _identity(finding.get("rule_id"), row.get("sha256"), _path(row),
                            finding.get("member"))
    elif "finding_rule_id" in row:  # a --flatten row (a clean file is a row of nulls)
        if row["finding_rule_id"] is not None:
            yield _identity(row["finding_rule_id"], row.get("sha256"), _path(row),
                            row.get("finding_member"))
    else:
        raise BaselineError("a line is neither a record nor a --flatten row")


def _from_sarif(document: dict[str, Any]) -> Iterator[str]:
    for run in document.get("runs") or []:
        for result in run.get("results") or []:
            props = result.get("properties") or {}
            try:
                uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            except (KeyError, IndexError, TypeError):
                uri = None
            yield _identity(result.get("ruleId"), props.get("sha256"),
                            props.get("path") or uri, props.get("member"))


def _from_document(document: Any) -> Iterable[str]:
    if isinstance(document, dict) and isinstance(document.get("records"), list):
        return [i for row in document["records"] for i in _from_record(row)]
    if isinstance(document, dict) and "runs" in document and "version" in document:
        return list(_from_sarif(document))
    if isinstance(document, dict) and "issues" in document:
        raise BaselineError("a --compat modelaudit document has no file hashes; "
                            "use a -f jsonl or -f json run as the baseline")
    if isinstance(document, dict) and ("findings" in document or "finding_rule_id" in document):
        return list(_from_record(document))
    raise BaselineError("not a batchscan output (expected JSONL records, --flatten rows, "
                        "a -f json document or SARIF)")


def load(path: Path) -> frozenset[str]:
    """Finding identities of an earlier run. Raises `BaselineError` with a clear reason."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BaselineError(f"--baseline {path}: cannot read: {exc.strerror}") from exc
    if not data.strip():
        raise BaselineError(f"--baseline {path}: the file is empty (a scan writes at least "
                            "one record per input)")
    try:
        try:  # one document: -f json, SARIF, or a one-line JSONL file
            known = set(_from_document(orjson.loads(data)))
        except orjson.JSONDecodeError:
            known = set()
            for number, line in enumerate(data.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    if number == len(data.splitlines()) and not data.endswith(b"\n"):
                        continue  # a torn last line of a killed run
                    raise BaselineError(f"line {number} is not JSON") from None
                if not isinstance(row, dict):
                    raise BaselineError(f"line {number} is not a JSON object") from None
                known.update(_from_record(row))
    except BaselineError as exc:
        if str(exc).startswith("--baseline"):
            raise
        raise BaselineError(f"--baseline {path}: {exc}") from None
    return frozenset(known)


def without_known(record: ScanRecord, known: frozenset[str]) -> ScanRecord:
    """`record` minus the findings whose identity is in the baseline."""
    content = record.sha256 or record.path
    kept = tuple(f for f in record.findings
                 if finding_identity(f.rule_id, content, f.member) not in known)
    if len(kept) == len(record.findings):
        return record
    status = record.status
    if status is Status.FINDINGS and not any(f.severity is not Severity.DEBUG for f in kept):
        status = Status.CLEAN
    return dataclasses.replace(record, findings=kept, status=status)
