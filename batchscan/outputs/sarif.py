"""SARIF 2.1.0 rendering of records (for GitHub code scanning and other SARIF consumers).

SARIF is one JSON document, so it is rendered at the end from the records (JSONL stays the
system of record). What GitHub code scanning needs to keep alerts stable:

- stable `ruleId`s with a CWE tag, a string `security-severity`, `help` text and markdown and a
  `helpUri` to the rule's section of docs/rules.md (generated from `batchscan/rules.py`);
- artifact URIs relative to `%SRCROOT%` (`originalUriBaseIds` holds the scan directory), the
  file path only: the archive member and byte offset go to `properties` and
  `region.byteOffset`, never into the URI;
- `partialFingerprints` from `records.finding_identity`: rule + path (the sha256 for hub
  files, whose paths name a commit) + member without offsets; never the message or an
  offset, so an alert survives re-runs, new scanner versions and shifted payloads;
- `executionSuccessful` is false when the run was interrupted or a file could not be fully
  scanned, and each such file or event is a tool execution notification;
- GitHub keeps at most 25,000 results per run: beyond that the most severe 25,000 are kept
  and a notification says how many were left out (the JSONL output has them all).
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path
from typing import Any

from batchscan import __version__
from batchscan.records import ScanRecord, Severity, finding_identity
from batchscan.rules import CATALOGUE, help_uri
from batchscan.schema import display_path, path_bytes

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note",
          Severity.DEBUG: "note"}
_SECURITY_SEVERITY = {Severity.ERROR: "9.0", Severity.WARNING: "6.0", Severity.INFO: "3.0",
                      Severity.DEBUG: "0.1"}
GITHUB_MAX_RESULTS = 25_000  # per run (GitHub code scanning upload limits)
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "batchscanFinding/v1"


def _rule_table() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for rule in CATALOGUE:
        table[rule.rule_id] = {
            "id": rule.rule_id,
            "name": rule.name,
            "shortDescription": {"text": rule.description[:1000]},
            "fullDescription": {"text": rule.description},
            "help": {"text": rule.fix,
                     "markdown": f"{rule.description}\n\n**How to fix.** {rule.fix}"},
            "helpUri": help_uri(rule.rule_id),
            "defaultConfiguration": {"level": _LEVEL[rule.severity]},
            "properties": {
                "tags": ["security", f"external/cwe/{rule.cwe.lower()}"],
                "security-severity": _SECURITY_SEVERITY[rule.severity],
            },
        }
    return table


def _quote(path: str) -> str:
    """Percent-encoded from the path's exact bytes: a name that is not UTF-8 stays exact."""
    return urllib.parse.quote(path_bytes(path).replace(b"\\", b"/"), safe="/:@")


def artifact_location(path: str, base: str) -> dict[str, Any]:
    """A URI relative to `%SRCROOT%` (= `base`) when the file is under it; hub paths keep
    their `hf://` URI; other absolute paths become `file://` URIs."""
    if "://" in path:
        return {"uri": _quote(path)}
    absolute = os.path.normpath(Path(base, path))
    relative = os.path.relpath(absolute, base)
    if relative == os.curdir or relative.startswith(os.pardir):
        return {"uri": Path(absolute).as_uri()}
    return {"uri": _quote(relative), "uriBaseId": SRCROOT}


def _fingerprint(record: ScanRecord, rule_id: str, member: str | None, location: str) -> str:
    content = record.sha256 if record.source != "file" and record.sha256 else location
    return hashlib.sha256(finding_identity(rule_id, content, member).encode(
        "utf-8", "surrogateescape")).hexdigest()


def render(records: list[ScanRecord], run_id: str, summary: dict[str, Any] | None = None,
           base: str | None = None, max_results: int = GITHUB_MAX_RESULTS) -> dict[str, Any]:
    root = str(Path(base).absolute() if base else Path.cwd())
    table = _rule_table()
    used: dict[str, dict[str, Any]] = {}
    results: list[tuple[int, dict[str, Any]]] = []
    notifications: list[dict[str, Any]] = []
    incomplete = 0
    for record in records:
        location = artifact_location(record.path, root)
        for finding in record.findings:
            rule = table.get(finding.rule_id) or {
                "id": finding.rule_id, "name": finding.rule_id,
                "shortDescription": {"text": finding.rule_id},
                "properties": {"tags": ["security"]},
            }
            used[finding.rule_id] = rule
            region: dict[str, Any] = {"startLine": 1}
            if finding.offset is not None and finding.member is None:
                region["byteOffset"] = finding.offset
            fingerprint = _fingerprint(record, finding.rule_id, finding.member,
                                       location["uri"])
            results.append((finding.severity.rank, {
                "ruleId": finding.rule_id,
                "level": _LEVEL[finding.severity],
                "message": {"text": finding.message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": dict(location), "region": region}}],
                "partialFingerprints": {FINGERPRINT_KEY: fingerprint,
                                        "primaryLocationLineHash": fingerprint},
                "properties": {"path": display_path(record.path), "member": finding.member,
                               "offset": finding.offset, "evidence": finding.evidence,
                               "sha256": record.sha256, "format": record.format},
            }))
        if record.status.incomplete:
            incomplete += 1
            notifications.append({
                "level": "error",
                "message": {"text": f"{display_path(record.path)}: {record.status.value}: "
                                    f"{record.error}"},
                "locations": [{"physicalLocation": {"artifactLocation": dict(location)}}],
            })
    interrupted = bool(summary and summary.get("interrupted"))
    if interrupted:
        notifications.append({"level": "error", "message": {
            "text": "The scan was interrupted: files not yet scanned have no results."}})
    kept = [r for _, r in results]
    if len(results) > max_results:
        # the most severe first; sorted() is stable, so ties keep completion order
        kept = [r for _, r in sorted(results, key=lambda pair: -pair[0])[:max_results]]
        notifications.append({"level": "warning", "message": {
            "text": f"{len(results) - max_results} of {len(results)} results left out: "
                    f"GitHub code scanning keeps at most {max_results} per run; the most "
                    "severe are kept, the JSONL output has them all."}})
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "batchscan", "semanticVersion": __version__,
                                "informationUri": help_uri("").rstrip("#"),
                                "rules": sorted(used.values(), key=lambda r: r["id"])}},
            "automationDetails": {"id": f"batchscan/{run_id}"},
            "originalUriBaseIds": {SRCROOT: {"uri": Path(root).as_uri().rstrip("/") + "/"}},
            "results": kept,
            "invocations": [{"executionSuccessful": not interrupted and not incomplete,
                             "toolExecutionNotifications": notifications}],
            "properties": {"results_total": len(results), "results_kept": len(kept),
                           "incomplete_files": incomplete},
        }],
    }
