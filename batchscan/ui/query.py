"""DuckDB over the runs' JSONL files: pages, counts, one file, diffs and export rows.

A run is read once into a Parquet copy under `RUNS/.cache/` (rebuilt when the JSONL's size
or modification time changes), with three derived columns: `rid` (the line number, which
names a file in URLs), `sev_rank` (for sorting by severity) and `grp` (the repository or
folder: `hf://ORG/NAME@COMMIT` for hub and HF-cache names, the parent folder otherwise).
Every query then reads only the columns it needs from that copy, so a million-record run
pages and counts in milliseconds and the records never pass through Python except the page
shown. All values reach SQL as bound parameters; only column names chosen here are spliced.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from batchscan.records import Severity, Status
from batchscan.ui.runs import RunsFolder

FINDING_TYPE = ('STRUCT(rule_id VARCHAR, severity VARCHAR, message VARCHAR, member VARCHAR, '
                '"offset" BIGINT, evidence VARCHAR, cwe VARCHAR)[]')
# Explicit types: stable columns whatever the first lines hold, unknown keys ignored.
COLUMNS = {
    "schema_version": "INTEGER", "run_id": "VARCHAR", "path": "VARCHAR", "source": "VARCHAR",
    "size": "BIGINT", "sha256": "VARCHAR", "format": "VARCHAR", "status": "VARCHAR",
    "max_severity": "VARCHAR", "findings": FINDING_TYPE, "error": "VARCHAR",
    "scanned_at": "VARCHAR", "duration_ms": "DOUBLE", "scanner_version": "VARCHAR",
    "cached": "BOOLEAN",
}
RECORD_KEYS = tuple(COLUMNS)
SEVERITIES = tuple(s.value for s in reversed(Severity))  # error first
STATUSES = tuple(s.value for s in Status)
INCOMPLETE = tuple(s.value for s in Status if s.incomplete)
SORTS = {
    "severity": "sev_rank DESC, path",
    "path": "path",
    "size": "size DESC NULLS LAST, path",
    "duration": "duration_ms DESC NULLS LAST, path",
}
_SEV_RANK = ("CASE max_severity WHEN 'error' THEN 4 WHEN 'warning' THEN 3 "
             "WHEN 'info' THEN 2 WHEN 'debug' THEN 1 ELSE 0 END")
_GROUP = ("CASE WHEN path LIKE 'hf://%' "
          "THEN regexp_extract(path, '^(hf://(datasets/)?[^/]+/[^/@]+(@[^/]+)?)', 1) "
          "ELSE coalesce(nullif(regexp_extract(path, '^(.*)/[^/]*$', 1), ''), '.') END")


@dataclass(slots=True)
class Filters:
    """What a run page or an export selects; empty means everything."""

    status: list[str] = field(default_factory=list)
    severity: list[str] = field(default_factory=list)  # max_severity; "none" = no findings
    format: list[str] = field(default_factory=list)
    rule: list[str] = field(default_factory=list)
    q: str = ""  # substring of the path, case-insensitive
    group: str = ""  # exact repository/folder

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.status:
            clauses.append("status IN (SELECT unnest(?))")
            params.append([s for s in self.status if s in STATUSES])
        if self.severity:
            named = [s for s in self.severity if s in SEVERITIES]
            part = "max_severity IN (SELECT unnest(?))"
            if "none" in self.severity:
                part = f"({part} OR max_severity IS NULL)"
            clauses.append(part)
            params.append(named)
        if self.format:
            clauses.append("format IN (SELECT unnest(?))")
            params.append(self.format)
        if self.rule:
            clauses.append("list_has_any(rules, ?)")
            params.append(self.rule)
        if self.q:
            clauses.append("contains(lower(path), lower(?))")
            params.append(self.q)
        if self.group:
            clauses.append("grp = ?")
            params.append(self.group)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def as_query(self) -> list[tuple[str, str]]:
        pairs = [(k, v) for k in ("status", "severity", "format", "rule")
                 for v in getattr(self, k)]
        pairs += [(k, getattr(self, k)) for k in ("q", "group") if getattr(self, k)]
        return pairs


class RunStore:
    """One DuckDB database in memory; each request works on its own cursor."""

    def __init__(self, runs: RunsFolder, memory_limit: str = "192MB", threads: int = 2):
        self.runs = runs
        self._db = duckdb.connect(":memory:", config={
            "memory_limit": memory_limit, "threads": threads,
            "preserve_insertion_order": True, "enable_external_access": True,
        })
        self._build_lock = threading.Lock()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return self._db.cursor()

    # --- the Parquet copy ------------------------------------------------------------------
    def relation(self, run_id: str) -> str:
        """SQL text naming the run's table (a fresh Parquet copy of its JSONL)."""
        source = self.runs.jsonl(run_id)
        stat = source.stat()
        stamp = f"{stat.st_size}-{stat.st_mtime_ns}"
        target = self.runs.cache_dir / f"{run_id}.{stamp}.parquet"
        if not target.is_file():
            with self._build_lock:
                if not target.is_file():
                    self._build(source, target, run_id)
        # rid = line number: the copy keeps the file's order (a streamed COPY, no window
        # function holding a million rows in memory) and Parquet numbers its rows.
        return ("(SELECT file_row_number + 1 AS rid, * EXCLUDE (file_row_number) FROM "
                "read_parquet(" + _quote(str(target)) + ", file_row_number = true))")

    def _build(self, source: Path, target: Path, run_id: str) -> None:
        tmp = target.with_name(target.name + ".tmp")
        cursor = self._cursor()
        cursor.execute(
            f"COPY (SELECT *, {_SEV_RANK} AS sev_rank, "
            f"{_GROUP} AS grp, [f.rule_id FOR f IN findings] AS rules "
            "FROM read_json(?, format='newline_delimited', columns=?, ignore_errors=true, "
            "maximum_object_size=16777216)) "
            f"TO {_quote(str(tmp))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)",
            [str(source), COLUMNS],
        )
        tmp.replace(target)
        for old in self.runs.cache_dir.glob(f"{run_id}.*.parquet"):
            if old != target:
                old.unlink(missing_ok=True)

    # --- reading ---------------------------------------------------------------------------
    def page(self, run_id: str, filters: Filters, sort: str = "severity", offset: int = 0,
             limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
        table = self.relation(run_id)
        where, params = filters.where()
        order = SORTS.get(sort, SORTS["severity"])
        cursor = self._cursor()
        total = cursor.execute(f"SELECT count(*) FROM {table}{where} AND path IS NOT NULL"
                               if where else
                               f"SELECT count(*) FROM {table} WHERE path IS NOT NULL",
                               params).fetchone()
        rows = cursor.execute(
            f"SELECT rid, path, status, max_severity, format, size, duration_ms, "
            f"list_distinct(rules) AS rules, len(findings) AS n_findings, error, grp "
            f"FROM {table}{where}{' AND' if where else ' WHERE'} path IS NOT NULL "
            f"ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return (total[0] if total else 0), _dicts(rows)

    def counts(self, run_id: str, filters: Filters | None = None) -> dict[str, Any]:
        """Files, bytes, by status, by max severity, findings by severity, formats, rules."""
        table = self.relation(run_id)
        where, params = (filters or Filters()).where()
        where = where + (" AND" if where else " WHERE") + " path IS NOT NULL"
        cursor = self._cursor()
        row = cursor.execute(f"SELECT count(*), coalesce(sum(size), 0), "
                             f"coalesce(sum(duration_ms), 0) FROM {table}{where}",
                             params).fetchone()
        files, size, busy = row if row else (0, 0, 0.0)
        by_status = dict(cursor.execute(
            f"SELECT status, count(*) FROM {table}{where} GROUP BY 1", params).fetchall())
        by_max = dict(cursor.execute(
            f"SELECT coalesce(max_severity, 'none'), count(*) FROM {table}{where} GROUP BY 1",
            params).fetchall())
        findings = dict(cursor.execute(
            f"SELECT f.severity, count(*) FROM (SELECT unnest(findings) AS f FROM {table}"
            f"{where}) GROUP BY 1", params).fetchall())
        formats = cursor.execute(
            f"SELECT format, count(*) FROM {table}{where} GROUP BY 1 ORDER BY 2 DESC",
            params).fetchall()
        rules = cursor.execute(
            f"SELECT r, count(*) FROM (SELECT unnest(rules) AS r FROM {table}{where}) "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50", params).fetchall()
        slowest = cursor.execute(
            f"SELECT path, duration_ms FROM {table}{where} "
            "ORDER BY duration_ms DESC NULLS LAST LIMIT 5", params).fetchall()
        return {
            "files": files, "bytes": size, "busy_ms": busy,
            "by_status": {s: by_status.get(s, 0) for s in STATUSES},
            "by_max_severity": {s: by_max.get(s, 0) for s in (*SEVERITIES, "none")},
            "findings_by_severity": {s: findings.get(s, 0) for s in SEVERITIES},
            "formats": formats, "rules": rules, "slowest": slowest,
            "incomplete": sum(by_status.get(s, 0) for s in INCOMPLETE),
            "skipped": by_status.get("skipped", 0),
        }

    def groups(self, run_id: str, filters: Filters, offset: int = 0,
               limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
        table = self.relation(run_id)
        where, params = filters.where()
        where = where + (" AND" if where else " WHERE") + " path IS NOT NULL"
        cursor = self._cursor()
        total = cursor.execute(f"SELECT count(DISTINCT grp) FROM {table}{where}",
                               params).fetchone()
        rows = cursor.execute(
            f"SELECT grp, count(*) AS files, max(sev_rank) AS sev_rank, "
            f"count(*) FILTER (WHERE status = 'findings' OR len(findings) > 0) AS flagged, "
            f"count(*) FILTER (WHERE status IN (SELECT unnest(?))) AS incomplete, "
            f"coalesce(sum(size), 0) AS bytes FROM {table}{where} GROUP BY grp "
            f"ORDER BY sev_rank DESC, flagged DESC, grp LIMIT ? OFFSET ?",
            [list(INCOMPLETE), *params, limit, offset])
        return (total[0] if total else 0), _dicts(rows)

    def record(self, run_id: str, rid: int) -> dict[str, Any] | None:
        table = self.relation(run_id)
        rows = _dicts(self._cursor().execute(
            f"SELECT rid, {', '.join(_col(k) for k in RECORD_KEYS)} FROM {table} "
            "WHERE rid = ? AND path IS NOT NULL", [rid]))
        return rows[0] if rows else None

    def records(self, run_id: str, filters: Filters, sort: str = "path",
                chunk: int = 5000) -> Iterator[dict[str, Any]]:
        """Whole records of a filtered view, streamed in chunks (exports)."""
        table = self.relation(run_id)
        where, params = filters.where()
        where = where + (" AND" if where else " WHERE") + " path IS NOT NULL"
        cursor = self._cursor()
        result = cursor.execute(
            f"SELECT {', '.join(_col(k) for k in RECORD_KEYS)} FROM {table}{where} "
            f"ORDER BY {SORTS.get(sort, 'path')}", params)
        names = [d[0] for d in result.description or ()]
        while True:
            rows = result.fetchmany(chunk)
            if not rows:
                return
            for row in rows:
                yield dict(zip(names, row, strict=True))

    # --- two runs --------------------------------------------------------------------------
    def diff(self, old_id: str, new_id: str, limit: int = 500) -> dict[str, Any]:
        """Findings new / fixed / unchanged and files added / removed between two runs.

        A finding is the same in both runs when rule id and member match and either the path
        or the sha256 does (a moved file keeps its findings; offsets never count)."""
        old, new = self.relation(old_id), self.relation(new_id)
        cursor = self._cursor()
        # Two equi-keys instead of one OR-join, so DuckDB hash-joins them (an OR is a loop).
        key = "f.rule_id || chr(0) || coalesce(f.member, chr(1)) || chr(0) || "
        flat = (f"(SELECT rid, path, f.rule_id AS rule_id, f.member AS member, "
                f"f.severity AS severity, f.message AS message, {key}path AS k_path, "
                f"{key}sha256 AS k_sha FROM (SELECT rid, path, sha256, unnest(findings) AS f "
                "FROM {t} WHERE path IS NOT NULL))")
        cursor.execute(f"CREATE OR REPLACE TEMP VIEW d_old AS SELECT * FROM {flat.format(t=old)}")
        cursor.execute(f"CREATE OR REPLACE TEMP VIEW d_new AS SELECT * FROM {flat.format(t=new)}")
        out: dict[str, Any] = {}
        for name, left, right, negate in (("new", "d_new", "d_old", True),
                                          ("fixed", "d_old", "d_new", True),
                                          ("unchanged", "d_new", "d_old", False)):
            matched = (f"(a.k_path IN (SELECT k_path FROM {right}) OR "
                       f"coalesce(a.k_sha IN (SELECT k_sha FROM {right} WHERE k_sha IS NOT NULL),"
                       " false))")
            sql = f"FROM {left} a WHERE {'NOT ' if negate else ''}{matched}"
            total = cursor.execute(f"SELECT count(*) {sql}").fetchone()
            rows = cursor.execute(
                f"SELECT a.rid, a.path, a.rule_id, a.member, a.severity, a.message {sql} "
                "ORDER BY a.path, a.rule_id LIMIT ?", [limit])
            out[name] = {"total": total[0] if total else 0, "rows": _dicts(rows)}
        for name, left, right in (("added", new, old), ("removed", old, new)):
            sql = (f"FROM {left} a WHERE a.path IS NOT NULL AND a.path NOT IN "
                   f"(SELECT path FROM {right} WHERE path IS NOT NULL)")
            total = cursor.execute(f"SELECT count(*) {sql}").fetchone()
            rows = cursor.execute(f"SELECT a.rid, a.path, a.status, a.max_severity {sql} "
                                  "ORDER BY a.path LIMIT ?", [limit])
            out[name] = {"total": total[0] if total else 0, "rows": _dicts(rows)}
        return out


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _col(name: str) -> str:
    return f'"{name}"'


def _dicts(result: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names: Sequence[str] = [d[0] for d in result.description or ()]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
