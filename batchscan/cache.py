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
from batchscan.cachedb import FILENAME, SCHEMA, lookup
from batchscan.records import FileResult, ScanRecord, Status
from batchscan.rules import ANALYSIS_REVISION, CATALOGUE
from batchscan.schema import finding_to_dict


def ruleset_version() -> str:
    from batchscan.workers import pickle_policy  # data tables only, no scanner

    def canonical(value: object) -> object:
        # sets and frozensets iterate in a per-process (hash-seeded) order: sort them
        if isinstance(value, dict):
            return sorted((str(k), canonical(v)) for k, v in value.items())
        if isinstance(value, (set, frozenset)):
            return sorted(str(v) for v in value)
        return value

    digest = hashlib.sha256(f"analysis {ANALYSIS_REVISION}".encode())
    for table in (pickle_policy.DANGEROUS_MODULES, pickle_policy.DANGEROUS_CALLABLES,
                  pickle_policy.SAFE_GLOBALS, pickle_policy.DANGEROUS_ATTRIBUTES):
        digest.update(repr(canonical(table)).encode())
    for rule in CATALOGUE:
        digest.update(repr(rule).encode())
    return digest.hexdigest()[:16]


class Writer:
    """The coordinator's side: create the database and store finished results."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILENAME
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.execute(SCHEMA)
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
        return lookup(self.db, sha256, self.rules)

    def flush(self) -> None:
        self.db.commit()
        self.pending = 0

    def close(self) -> None:
        self.flush()
        self.db.close()
