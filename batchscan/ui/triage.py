"""Triage: a finding accepted or marked a false positive, with a reason and an optional expiry.

Stored where the CLI looks: `RUNS/triage/baseline.jsonl` is a baseline in the format
`batchscan scan --baseline FILE` reads (JSONL records; a finding listed there is known), so
the UI and the CLI share one suppression file:

    batchscan scan models/ --baseline batchscan-runs/triage/baseline.jsonl

Each line is the triaged file's record with only its triaged findings; each such finding
carries `triage: {state, reason, expires, at, run_id}`. The CLI ignores a finding whose
`expires` date has passed (`baseline.load`). The UI never hides a triaged finding: it shows
it marked. Identity is the CLI's: rule id + sha256 (the path without a hash) + member,
offsets excluded.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from batchscan import __version__
from batchscan.records import finding_identity
from batchscan.schema import SCHEMA_VERSION, path_from_dict
from batchscan.ui.runs import now_rfc3339

STATES = ("accepted", "false_positive")
Identity = str  # records.finding_identity: rule + sha256 (or path) + member without offsets


@dataclass(frozen=True, slots=True)
class Decision:
    state: str
    reason: str
    expires: str | None
    at: str
    run_id: str | None

    @property
    def expired(self) -> bool:
        if not self.expires:
            return False
        try:
            until = dt.date.fromisoformat(self.expires[:10])
        except ValueError:
            return True
        return dt.datetime.now(dt.UTC).date() > until


def identity(record: dict[str, Any], finding: dict[str, Any]) -> Identity:
    """The CLI's baseline identity (`batchscan/baseline.py`), so a triage decision follows
    the file's content across moves and re-runs exactly as `--baseline` does."""
    content = record.get("sha256") or path_from_dict(record)
    return finding_identity(finding["rule_id"], content, finding.get("member"))


class TriageStore:
    def __init__(self, folder: Path):
        self.path = folder / "baseline.jsonl"
        self._lock = threading.Lock()

    def _lines(self) -> list[dict[str, Any]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = []
        for line in raw.splitlines():
            try:
                lines.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return lines

    def decisions(self) -> dict[Identity, Decision]:
        found: dict[Identity, Decision] = {}
        for record in self._lines():
            for finding in record.get("findings") or []:
                mark = finding.get("triage") or {}
                found[identity(record, finding)] = Decision(
                    state=str(mark.get("state", "accepted")), reason=str(mark.get("reason", "")),
                    expires=mark.get("expires"), at=str(mark.get("at", "")),
                    run_id=mark.get("run_id"))
        return found

    def mark(self, record: dict[str, Any], finding: dict[str, Any], state: str, reason: str,
             expires: str | None, run_id: str | None) -> Decision:
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        if expires:
            dt.date.fromisoformat(expires)  # ValueError for the caller
        decision = Decision(state, reason, expires or None, now_rfc3339(), run_id)
        entry = {key: finding.get(key) for key in
                 ("rule_id", "severity", "message", "member", "offset", "evidence", "cwe")}
        entry["triage"] = {"state": state, "reason": reason, "expires": decision.expires,
                           "at": decision.at, "run_id": run_id}
        self._replace(identity(record, finding), record, entry)
        return decision

    def unmark(self, record: dict[str, Any], finding: dict[str, Any]) -> None:
        self._replace(identity(record, finding), record, None)

    def _replace(self, key: Identity, record: dict[str, Any],
                 entry: dict[str, Any] | None) -> None:
        with self._lock:
            lines = self._lines()
            target = None
            for line in lines:
                line["findings"] = [f for f in line.get("findings") or []
                                    if identity(line, f) != key]
                if (line.get("path"), line.get("sha256")) == (key[1], key[2]):
                    target = line
            if entry is not None:
                if target is None:
                    target = _baseline_record(record)
                    lines.append(target)
                target["findings"].append(entry)
            kept = [line for line in lines if line.get("findings")]
            for line in kept:
                line["max_severity"] = _highest(line["findings"])
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in kept))
            tmp.replace(self.path)


_RANK = {"debug": 0, "info": 1, "warning": 2, "error": 3}


def _highest(findings: list[dict[str, Any]]) -> str | None:
    ranked = [f.get("severity") for f in findings if f.get("severity") in _RANK]
    return max(ranked, key=lambda s: _RANK[str(s)]) if ranked else None


def _baseline_record(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION, "run_id": "triage", "path": record["path"],
        "source": record.get("source") or "file", "size": record.get("size"),
        "sha256": record.get("sha256"), "format": record.get("format") or "unknown",
        "status": "findings", "max_severity": None, "findings": [], "error": None,
        "scanned_at": now_rfc3339(), "duration_ms": 0.0, "scanner_version": __version__,
        "cached": False,
    }
