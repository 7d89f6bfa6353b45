"""SARIF 2.1.0 rendering of records (for GitHub code scanning and other SARIF consumers).

SARIF is one JSON document, so it is rendered at the end from the records (JSONL stays the
system of record). Conventions followed (research/ecosystem.md 1.1): stable `ruleId`s with a
CWE tag and a string `security-severity`; the artifact URI is the file path only, the
archive member and byte offset go to `properties` and `region.byteOffset` (never into the
URI); `partialFingerprints` exclude volatile fields so alerts survive re-runs; files that
could not be fully scanned become tool execution notifications.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from typing import Any

from batchscan import __version__
from batchscan.records import ScanRecord, Severity
from batchscan.rules import CATALOGUE
from batchscan.schema import display_path, path_bytes

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note",
          Severity.DEBUG: "note"}
_SECURITY_SEVERITY = {Severity.ERROR: "9.0", Severity.WARNING: "6.0", Severity.INFO: "3.0",
                      Severity.DEBUG: "0.1"}


def _rule_table() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for rule in CATALOGUE:
        table[rule.rule_id] = {
            "id": rule.rule_id,
            "name": rule.name,
            "shortDescription": {"text": rule.description[:1000]},
            "help": {"text": rule.fix},
            "defaultConfiguration": {"level": _LEVEL[rule.severity]},
            "properties": {
                "tags": ["security", f"external/cwe/{rule.cwe.lower()}"],
                "security-severity": _SECURITY_SEVERITY[rule.severity],
            },
        }
    return table


def _uri(path: str) -> str:
    """Percent-encoded from the path's exact bytes: a name that is not UTF-8 stays exact."""
    return urllib.parse.quote(path_bytes(path).replace(b"\\", b"/"), safe="/:@")


def render(records: list[ScanRecord], run_id: str) -> dict[str, Any]:
    table = _rule_table()
    used: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for record in records:
        for finding in record.findings:
            rule = table.get(finding.rule_id) or {
                "id": finding.rule_id, "name": finding.rule_id,
                "shortDescription": {"text": finding.rule_id},
                "properties": {"tags": ["security"]},
            }
            used[finding.rule_id] = rule
            identity = "|".join((finding.rule_id, display_path(record.path),
                                 finding.member or "", finding.message))
            region: dict[str, Any] = {"startLine": 1}
            if finding.offset is not None and finding.member is None:
                region["byteOffset"] = finding.offset
            results.append({
                "ruleId": finding.rule_id,
                "level": _LEVEL[finding.severity],
                "message": {"text": finding.message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": _uri(record.path)}, "region": region}}],
                "partialFingerprints": {
                    "primaryLocationLineHash": hashlib.sha256(identity.encode()).hexdigest()},
                "properties": {"member": finding.member, "offset": finding.offset,
                               "evidence": finding.evidence, "sha256": record.sha256,
                               "format": record.format},
            })
        if record.status.incomplete:
            notifications.append({
                "level": "error",
                "message": {"text": f"{display_path(record.path)}: {record.status.value}: "
                                    f"{record.error}"},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": _uri(record.path)}}}],
            })
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "batchscan", "semanticVersion": __version__,
                                "rules": sorted(used.values(), key=lambda r: r["id"])}},
            "automationDetails": {"id": f"batchscan/{run_id}"},
            "results": results,
            "invocations": [{"executionSuccessful": True,
                             "toolExecutionNotifications": notifications}],
        }],
    }
