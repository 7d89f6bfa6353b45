"""Results cache across runs: SQLite (stdlib), keyed on content sha256 + scanner version +
rule-set version, so an unchanged registry costs a walk and a hash per file, not a scan.

- Writers: the coordinator only (workers cannot write files). Results are stored when a file
  was fully scanned (`clean` or `findings`); errors, timeouts and crashes are never cached.
- Readers: workers open the database read-only (`mode=ro`) and look up the hash they have
  just computed. The journal mode is DELETE (not WAL), so readers need no writable side
  files; SQLite's file locks make concurrent runs on one cache safe, and a busy timeout
  rides out another run's commit.
- The rule-set version is a digest of the policy tables and every rule table: changing a
  rule invalidates old results automatically.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import orjson

from batchscan import __version__
from batchscan.records import FileResult, ScanRecord, Status
from batchscan.schema import finding_from_dict, finding_to_dict

FILENAME = "batchscan-cache.sqlite3"
_SCHEMA = """CREATE TABLE IF NOT EXISTS results (
    sha256 TEXT NOT NULL, scanner TEXT NOT NULL, rules TEXT NOT NULL,
    format TEXT NOT NULL, size INTEGER, findings BLOB NOT NULL,
    PRIMARY KEY (sha256, scanner, rules))"""


def ruleset_version() -> str:
    from batchscan.workers import pickle_policy
    from batchscan.workers.registry import SCANNERS
    from batchscan.workers.task import ENGINE_RULES

    def canonical(value: object) -> object:
        # sets and frozensets iterate in a per-process (hash-seeded) order: sort them
        if isinstance(value, dict):
            return sorted((str(k), canonical(v)) for k, v in value.items())
        if isinstance(value, (set, frozenset)):
            return sorted(str(v) for v in value)
        return value

    digest = hashlib.sha256()
    for table in (pickle_policy.DANGEROUS_MODULES, pickle_policy.DANGEROUS_CALLABLES,
                  pickle_policy.SAFE_GLOBALS, pickle_policy.DANGEROUS_ATTRIBUTES):
        digest.update(repr(canonical(table)).encode())
    for rule in (*ENGINE_RULES, *(r for m in SCANNERS for r in m.RULES)):
        digest.update(repr(rule).encode())
    return digest.hexdigest()[:16]


def _lookup(db: sqlite3.Connection, sha256: str, rules: str) -> FileResult | None:
    try:
        row = db.execute(
            "SELECT format, size, findings FROM results WHERE sha256=? AND scanner=? "
            "AND rules=?", (sha256, __version__, rules)).fetchone()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    findings = tuple(finding_from_dict(f) for f in orjson.loads(row[2]))
    return FileResult(format=row[0], size=row[1], sha256=sha256, findings=findings,
                      cached=True)


class Writer:
    """The coordinator's side: create the database and store finished results."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILENAME
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.execute(_SCHEMA)
        self.db.commit()
        self.rules = ruleset_version()
        self.pending = 0

    def store(self, record: ScanRecord) -> None:
        if record.cached or record.sha256 is None or record.status not in (
            Status.CLEAN, Status.FINDINGS
        ):
            return
        findings = orjson.dumps([finding_to_dict(f) for f in record.findings])
        self.db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                        (record.sha256, __version__, self.rules, record.format, record.size,
                         findings))
        self.pending += 1
        if self.pending >= 500:
            self.flush()

    def lookup(self, sha256: str) -> FileResult | None:
        """A result by content hash known before reading (a Hub listing's LFS sha256)."""
        return _lookup(self.db, sha256, self.rules)

    def flush(self) -> None:
        self.db.commit()
        self.pending = 0

    def close(self) -> None:
        self.flush()
        self.db.close()


class Reader:
    """A worker's side: read-only lookups by content hash."""

    def __init__(self, path: str, rules: str):
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        self.rules = rules

    def lookup(self, sha256: str) -> FileResult | None:
        return _lookup(self.db, sha256, self.rules)
