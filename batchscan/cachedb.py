"""The results cache's database, as the worker runtime sees it: read-only lookups by hash.

The coordinator's side (creating the database, storing results, the rule-set digest) lives in
`batchscan/cache.py`; workers import only this module, so the worker runtime never depends
on the coordinator. See `cache.py` for the design.
"""

from __future__ import annotations

import sqlite3

import orjson

from batchscan import __version__
from batchscan.records import FileResult
from batchscan.schema import finding_from_dict

FILENAME = "batchscan-cache.sqlite3"
SCHEMA = """CREATE TABLE IF NOT EXISTS results (
    sha256 TEXT NOT NULL, scanner TEXT NOT NULL, rules TEXT NOT NULL,
    format TEXT NOT NULL, size INTEGER, findings BLOB NOT NULL,
    PRIMARY KEY (sha256, scanner, rules))"""


def lookup(db: sqlite3.Connection, sha256: str, rules: str) -> FileResult | None:
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


class Reader:
    """A worker's side: read-only lookups by content hash."""

    def __init__(self, path: str, rules: str):
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        self.rules = rules

    def lookup(self, sha256: str) -> FileResult | None:
        return lookup(self.db, sha256, self.rules)
