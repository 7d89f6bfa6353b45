"""The results cache's database, as the worker runtime sees it: read-only lookups.

The coordinator's side (creating the database, storing results, the rule-set digest) lives in
`batchscan/cache.py`; workers import only this module, so the worker runtime never depends
on the coordinator. See `cache.py` for the design.

A result is keyed on everything it depends on: the content's sha256, the scanner version,
the rule-set digest plus the options that change findings (`-v`, `-b`, limits; together the
`rules` string), and the file name (the name is a format hint where a format has no magic
number, and `-b` patterns match it): the same bytes as `notes.txt` and as `config.yaml` are
two results.
"""

from __future__ import annotations

import sqlite3

import orjson

from batchscan import __version__
from batchscan.records import FileResult
from batchscan.schema import finding_from_dict

FILENAME = "batchscan-cache.sqlite3"
TABLE = "results_v2"  # v1 (keyed on sha256 + versions only) is ignored, never read
SCHEMA = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    sha256 TEXT NOT NULL, scanner TEXT NOT NULL, rules TEXT NOT NULL, name TEXT NOT NULL,
    format TEXT NOT NULL, size INTEGER, findings BLOB NOT NULL,
    PRIMARY KEY (sha256, scanner, rules, name))"""
BUSY_TIMEOUT_S = 2.0  # another run's commit is short: wait that long, then treat as a miss


def lookup(db: sqlite3.Connection, sha256: str, rules: str, name: str) -> FileResult | None:
    """The stored result, or None for a miss and for any database error (never raises)."""
    try:
        row = db.execute(
            f"SELECT format, size, findings FROM {TABLE} WHERE sha256=? AND scanner=? "
            "AND rules=? AND name=?", (sha256, __version__, rules, name)).fetchone()
        if row is None:
            return None
        findings = tuple(finding_from_dict(f) for f in orjson.loads(row[2]))
    except (sqlite3.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return FileResult(format=row[0], size=row[1], sha256=sha256, findings=findings,
                      cached=True)


class Reader:
    """A worker's side: read-only lookups (`mode=ro`). The database is in WAL mode; its
    `-wal` and `-shm` files exist while the coordinator holds its connection, which is all a
    read-only WAL reader needs (it creates nothing)."""

    def __init__(self, path: str, rules: str):
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        self.rules = rules

    def lookup(self, sha256: str, name: str) -> FileResult | None:
        return lookup(self.db, sha256, self.rules, name)
