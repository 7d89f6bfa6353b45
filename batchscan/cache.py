"""Results cache across runs: SQLite (stdlib), so an unchanged registry costs a walk and a
hash per file, not a scan. The key is in `batchscan/cachedb.py`: content sha256, scanner
version, rule-set digest, the options that change findings, and the file name.

- Writers: the coordinator only (workers cannot write files). Results are stored when a file
  was fully scanned (`clean` or `findings`); errors, timeouts and crashes are never cached.
- Readers: workers open the database read-only (`mode=ro`) and look up the hash they have
  just computed.
- Concurrent runs: WAL journal (readers never wait for a writer), short write transactions
  (a commit every 64 results or half a second, so another run's writer waits milliseconds),
  and a short busy timeout. Any cache failure (locked past the timeout, corrupt file, full
  disk) turns the cache off for the rest of the run with one warning on stderr: the run
  goes on uncached and no record is ever lost for the cache's sake.
- The rule-set version is a digest of the policy tables and every rule table: changing a
  rule invalidates old results automatically.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import sys
import time
from pathlib import Path

import orjson

from batchscan import __version__
from batchscan.cachedb import BUSY_TIMEOUT_S, FILENAME, SCHEMA, TABLE, lookup
from batchscan.records import FileResult, ScanRecord, Status
from batchscan.rules import ANALYSIS_REVISION, CATALOGUE
from batchscan.schema import finding_to_dict

COMMIT_EVERY = 64
COMMIT_AFTER_S = 0.5


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


def result_key(options: object) -> str:
    """The rule-set digest plus the run options that change a result (`-v`, `-b`, limits)."""
    return f"{ruleset_version()}-{hashlib.sha256(repr(options).encode()).hexdigest()[:16]}"


def name_of(display: str) -> str:
    """The name a worker is given as its format hint (and `-b` subject) for an item."""
    return display.rsplit("/", 1)[-1]


class Writer:
    """The coordinator's side: create the database and store finished results. Raises
    `sqlite3.Error`/`OSError` only from the constructor; afterwards failures disable it."""

    def __init__(self, directory: Path, options: object = ()):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILENAME
        self.rules = result_key(options)
        self.db: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(SCHEMA)
        self.pending = 0
        self.opened = 0.0  # when the open write transaction began

    def _failed(self, exc: Exception) -> None:
        sys.stderr.write(f"batchscan: warning: --cache {self.path} turned off for this run: "
                         f"{exc}\n")
        db, self.db = self.db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.rollback()
                db.close()

    def store(self, record: ScanRecord, name: str) -> None:
        if self.db is None or record.cached or record.sha256 is None or record.status not in (
            Status.CLEAN, Status.FINDINGS
        ):
            return
        findings = orjson.dumps([finding_to_dict(f) for f in record.findings])
        try:
            if not self.db.in_transaction:
                self.db.execute("BEGIN")
                self.opened = time.monotonic()
            self.db.execute(f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (record.sha256, __version__, self.rules, name, record.format,
                             record.size, findings))
            self.pending += 1
            if (self.pending >= COMMIT_EVERY
                    or time.monotonic() - self.opened >= COMMIT_AFTER_S):
                self.flush()
        except sqlite3.Error as exc:
            self._failed(exc)

    def tick(self) -> None:
        """Called while the run waits: never hold the write lock long without storing."""
        if self.db is not None and self.db.in_transaction and (
                time.monotonic() - self.opened >= COMMIT_AFTER_S):
            self.flush()

    def lookup(self, sha256: str, name: str) -> FileResult | None:
        """A result by content hash known before reading (a Hub listing's LFS sha256)."""
        if self.db is None:
            return None
        return lookup(self.db, sha256, self.rules, name)

    def flush(self) -> None:
        if self.db is None:
            return
        try:
            if self.db.in_transaction:
                self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._failed(exc)
        self.pending = 0

    def close(self) -> None:
        self.flush()
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
            self.db = None
