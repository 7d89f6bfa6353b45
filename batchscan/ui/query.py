"""DuckDB over the runs' JSONL files: pages, counts, one file, diffs and export rows.

A run is read once into a Parquet copy under `RUNS/.cache/` (rebuilt when the JSONL's size
or modification time changes): one streamed `COPY (SELECT row_number() OVER (), ...
FROM read_json(...))` in a single-threaded database of its own (an empty OVER() streams, so
the build stays within `BUILD_MEMORY` and spills to `RUNS/.cache/spill-build` if it must),
in the file's order, in row groups of 16,384 rows, with derived columns: `rid` (the line
number, which names a file in URLs and is the paging key: row-group zone maps find a rid
without reading the rest), `sev_rank` (for sorting by severity), `grp` (the repository or
folder: `hf://ORG/NAME@COMMIT` for hub and HF-cache names, the parent folder otherwise),
`rules` (distinct rule ids) and `n_findings`. Beside it, from the same build: a summary JSON
(counts by status x severity, findings by severity, formats, rules, slowest files) and a
Parquet table of groups, so a run page's banner, cards and group view read no records.

Large runs (more than `INLINE_BYTES` of JSONL) are copied in a background thread, started
when a UI scan ends or on first open; until then a page says "preparing" (or, for a run
that grows, shows the previous copy) instead of blocking a request. Pages are found by
keyset (`after`/`before` = the rid of the last/first row shown) on (sort key, rid), then
only those rows' columns are read (an old `offset=` link still works: it skips rows of the
narrow key only); the `findings` column is read only for a file's own page, exports and
diffs. All values reach SQL as bound parameters; only column names and
expressions chosen here are spliced.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

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
# Each sort is ascending on (key, rid); descending ones negate, nulls last.
SORT_KEYS = {
    "severity": "-sev_rank",
    "path": "path",
    "size": "-coalesce(size, -1)",
    "duration": "-coalesce(duration_ms, -1)",
    "file": "rid",
}
SORTS = tuple(SORT_KEYS)
PAGE_COLUMNS = ("rid, path, status, max_severity, format, size, duration_ms, rules, "
                "n_findings, error, grp")
ROW_GROUP_SIZE = 16384
INLINE_BYTES = 8_000_000  # smaller runs are copied within the request (well under 1 s)
BUILD_MEMORY = "128MB"  # DuckDB's limit while building a copy (it spills beyond)
SUFFIX = ".r2.parquet"  # the copy's layout version
_GROUP_COLUMNS = ("grp, count(*) AS files, max(sev_rank) AS sev_rank, "
                  "count(*) FILTER (WHERE status = 'findings' OR n_findings > 0) AS flagged, "
                  "count(*) FILTER (WHERE status IN (SELECT unnest(?))) AS incomplete, "
                  "coalesce(sum(size), 0) AS bytes")
_GROUP_ORDER = "sev_rank DESC, flagged DESC, grp"
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


class Preparing(Exception):
    """The run's Parquet copy is being built in the background; nothing to show yet."""

    def __init__(self, run_id: str, size: int, lines: int | None):
        super().__init__(run_id)
        self.run_id, self.size, self.lines = run_id, size, lines


@dataclass(slots=True)
class Copy:
    """A built Parquet copy of a run: the table's SQL text, its summary, and freshness."""

    table: str
    summary: dict[str, Any]
    stale: bool  # the JSONL has grown since (a live run): a newer copy is being built


@dataclass(slots=True)
class Page:
    total: int
    rows: list[dict[str, Any]]
    first: int | None = None  # rid of the first row shown: `before` of the previous page
    last: int | None = None  # rid of the last row shown: `after` of the next page
    more: bool = False  # a row follows the last one shown
    previous: bool = False  # a row precedes the first one shown


class RunStore:
    """One DuckDB database in memory; each request works on its own cursor."""

    def __init__(self, runs: RunsFolder, memory_limit: str = "192MB", threads: int = 2):
        self.runs = runs
        spill = runs.cache_dir / "spill"
        spill.mkdir(exist_ok=True)
        self._db = duckdb.connect(":memory:", config={
            "memory_limit": memory_limit, "threads": threads,
            "preserve_insertion_order": True, "enable_external_access": True,
            "temp_directory": str(spill),
        })
        self._build_lock = threading.Lock()  # one build at a time: memory
        self._state_lock = threading.Lock()
        self._building: dict[str, threading.Thread] = {}
        self._lines: dict[str, int] = {}  # records counted so far by a background build
        self._failed: dict[str, str] = {}  # stamp -> error of a build that failed

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return self._db.cursor()

    # --- the Parquet copy ------------------------------------------------------------------
    def _target(self, run_id: str) -> tuple[Path, Path]:
        source = self.runs.jsonl(run_id)
        stat = source.stat()
        return source, self.runs.cache_dir / f"{run_id}.{stat.st_size}-{stat.st_mtime_ns}{SUFFIX}"

    def _artifacts(self, run_id: str) -> list[tuple[int, int, Path, bool]]:
        """Files of the run's copies: (mtime, size, path, is the copy itself)."""
        pattern = re.compile(re.escape(run_id) + r"\.(\d+)-(\d+)" + re.escape(SUFFIX) + "(.*)")
        found = []
        for path in self.runs.cache_dir.iterdir():
            match = pattern.fullmatch(path.name)
            if match:
                found.append((int(match[2]), int(match[1]), path, not match[3]))
        return found

    def _copies(self, run_id: str) -> list[Path]:
        """Built copies of the run, newest first (a name's stamp is size-mtime)."""
        return [p for *_, p, whole in sorted(self._artifacts(run_id), reverse=True) if whole]

    def copy(self, run_id: str, wait: bool = True) -> Copy:
        """The run's copy; built here when small (or `wait`), else in the background.

        Without `wait`, a large run being copied raises `Preparing`, or, when an older copy
        exists (a run still growing), that copy is returned marked stale."""
        source, target = self._target(run_id)
        if not target.is_file():
            if wait or source.stat().st_size <= INLINE_BYTES:
                thread = self._building.get(run_id)
                if thread is not None:
                    thread.join()
                self._build_once(run_id, source, target)
            else:
                self.prepare(run_id)
                older = [p for p in self._copies(run_id) if p != target]
                if not older:
                    raise Preparing(run_id, source.stat().st_size, self._lines.get(run_id))
                return self._open(older[0], stale=True)
        return self._open(target, stale=False)

    def relation(self, run_id: str, wait: bool = True) -> str:
        """SQL text naming the run's table."""
        return self.copy(run_id, wait).table

    def summary(self, run_id: str, wait: bool = True) -> dict[str, Any]:
        return self.copy(run_id, wait).summary

    def prepare(self, run_id: str) -> None:
        """Start building the run's copy in a background thread (no-op if fresh or busy)."""
        with self._state_lock:
            thread = self._building.get(run_id)
            if thread is not None and thread.is_alive():
                return
            thread = threading.Thread(target=self._background, args=(run_id,), daemon=True,
                                      name=f"copy-{run_id}")
            self._building[run_id] = thread
            thread.start()

    def _background(self, run_id: str) -> None:
        try:
            source, target = self._target(run_id)
            if target.is_file():
                return
            lines = 0
            with open(source, "rb") as handle:  # for the "preparing N records" page
                while chunk := handle.read(1 << 22):
                    lines += chunk.count(b"\n")
                    self._lines[run_id] = lines
            self._build_once(run_id, source, target)
        except Exception as exc:  # shown on the page; the next open retries
            self._failed[run_id] = f"{type(exc).__name__}: {exc}"
        finally:
            with self._state_lock:
                self._building.pop(run_id, None)
            self._lines.pop(run_id, None)

    def _build_once(self, run_id: str, source: Path, target: Path) -> None:
        with self._build_lock:
            if not target.is_file():
                self._build(source, target, run_id)
                self._failed.pop(run_id, None)

    def _open(self, target: Path, stale: bool) -> Copy:
        summary = orjson.loads(_summary_path(target).read_bytes())
        return Copy("read_parquet(" + _quote(str(target)) + ")", summary, stale)

    def _build(self, source: Path, target: Path, run_id: str) -> None:
        tmp = target.with_name(target.name + ".tmp")
        # A database of its own, single-threaded: the numbering window is one stream anyway,
        # and one thread builds faster and in half the memory of two on a busy machine
        # (1,000,000 records: 4.9 s and 137 MB peak RSS against 9.9 s and 211 MB).
        cursor = duckdb.connect(":memory:", config={
            "memory_limit": BUILD_MEMORY, "threads": 1, "preserve_insertion_order": True,
            "temp_directory": str(self.runs.cache_dir / "spill-build")})
        try:
            self._write_copy(cursor, source, tmp, target)
        finally:
            cursor.close()
        for *_, old, _whole in self._artifacts(run_id):
            if not old.name.startswith(target.name) or old.name.endswith(".tmp"):
                old.unlink(missing_ok=True)

    @staticmethod
    def _write_copy(cursor: duckdb.DuckDBPyConnection, source: Path, tmp: Path,
                    target: Path) -> None:
        # row_number() over an empty window streams (no materialisation) and, with
        # preserve_insertion_order, numbers the lines in file order.
        cursor.execute(
            f"COPY (SELECT row_number() OVER () AS rid, *, {_SEV_RANK} AS sev_rank, "
            f"{_GROUP} AS grp, list_distinct([f.rule_id FOR f IN findings]) AS rules, "
            "coalesce(len(findings), 0) AS n_findings "
            "FROM read_json(?, format='newline_delimited', columns=?, ignore_errors=true, "
            "maximum_object_size=16777216)) "
            f"TO {_quote(str(tmp))} (FORMAT parquet, COMPRESSION zstd, "
            f"ROW_GROUP_SIZE {ROW_GROUP_SIZE})",
            [str(source), COLUMNS],
        )
        table = "read_parquet(" + _quote(str(tmp)) + ")"
        where, params = _where(Filters())
        cursor.execute(f"COPY (SELECT {_GROUP_COLUMNS} FROM {table}{where} GROUP BY grp "
                       f"ORDER BY {_GROUP_ORDER}) TO {_quote(str(_groups_path(tmp)))} "
                       "(FORMAT parquet, COMPRESSION zstd)", [list(INCOMPLETE), *params])
        summary = _summarise(cursor, table, Filters())
        row = cursor.execute("SELECT count(*) FROM read_parquet(?)",
                             [str(_groups_path(tmp))]).fetchone()
        summary["groups"] = row[0] if row else 0
        _groups_path(tmp).replace(_groups_path(target))
        summary_tmp = _summary_path(tmp)
        summary_tmp.write_bytes(orjson.dumps(summary))
        summary_tmp.replace(_summary_path(target))  # the summary first: a copy has one
        tmp.replace(target)

    def status(self, run_id: str) -> dict[str, Any]:
        """What a "preparing" page shows: JSONL size, records counted, a failed build."""
        return {"lines": self._lines.get(run_id), "error": self._failed.get(run_id)}

    # --- reading ---------------------------------------------------------------------------
    def page(self, run_id: str, filters: Filters, sort: str = "severity", offset: int = 0,
             limit: int = 50, after: int | None = None, before: int | None = None,
             wait: bool = True) -> Page:
        """One page of files in `sort` order: after the row `after`, before the row
        `before` (keyset on (key, rid)), or else at `offset`."""
        found = self.copy(run_id, wait)
        table = found.table
        where, params = _where(filters)
        key = SORT_KEYS.get(sort, SORT_KEYS["severity"])
        cursor = self._cursor()
        if not filters.as_query():
            total = found.summary["files"]
        else:
            row = cursor.execute(f"SELECT count(*) FROM {table}{where}", params).fetchone()
            total = row[0] if row else 0
        anchor = after if after is not None else before
        order = f"{key}, rid" if key != "rid" else "rid"
        tail = ""
        extra: list[Any] = []
        if anchor is not None:
            row = cursor.execute(f"SELECT {key} FROM {table} WHERE rid = ?",
                                 [anchor]).fetchone()
            if row is None:
                anchor = None
            else:
                op = ">" if after is not None else "<"
                keyed = f"rid {op} ?" if key == "rid" else \
                    f"({key} {op} ? OR ({key} = ? AND rid {op} ?))"
                where += f" AND {keyed}"
                extra = [anchor] if key == "rid" else [row[0], row[0], anchor]
                if before is not None and after is None:
                    order = f"{key} DESC, rid DESC" if key != "rid" else "rid DESC"
        if anchor is None:
            tail = f" OFFSET {max(int(offset), 0)}"
        # Two steps: the page's rids from the narrow sort key (DuckDB's top-N would carry
        # every shown column through the sort: 3x slower, and with an OFFSET it holds all
        # the skipped rows), then those rows' columns.
        rids = [r[0] for r in cursor.execute(
            f"SELECT rid FROM {table}{where} ORDER BY {order} LIMIT ?{tail}",
            [*params, *extra, limit + 1]).fetchall()]
        more = len(rids) > limit
        rids = rids[:limit]
        found_rows = {r["rid"]: r for r in _dicts(cursor.execute(
            f"SELECT {PAGE_COLUMNS} FROM {table} WHERE rid IN (SELECT unnest(?))",
            [rids]))} if rids else {}
        rows = [found_rows[rid] for rid in rids]
        previous = offset > 0 if anchor is None else after is not None
        if before is not None and after is None and anchor is not None:
            rows.reverse()
            previous, more = more, True  # the row `before` follows
        return Page(total, rows, rows[0]["rid"] if rows else None,
                    rows[-1]["rid"] if rows else None, more, previous)

    def counts(self, run_id: str, filters: Filters | None = None,
               wait: bool = True) -> dict[str, Any]:
        """Files, bytes, by status, by max severity, findings by severity, formats, rules
        (the run's summary file; a filtered view is counted on the copy)."""
        found = self.copy(run_id, wait)
        if filters is None or not filters.as_query():
            return found.summary
        return _summarise(self._cursor(), found.table, filters)

    def groups(self, run_id: str, filters: Filters, offset: int = 0,
               limit: int = 50, wait: bool = True) -> Page:
        """Files per repository/folder, most severe first (the whole run's table of groups
        is written with the copy; a filtered view is grouped here)."""
        found = self.copy(run_id, wait)
        offset = max(int(offset), 0)
        cursor = self._cursor()
        if not filters.as_query() and "groups" in found.summary:
            path = _groups_path(Path(found.table[len("read_parquet('"):-len("')")]))
            rows = _dicts(cursor.execute("SELECT * FROM read_parquet(?) LIMIT ? OFFSET ?",
                                         [str(path), limit, offset]))
            count = found.summary["groups"]
        else:
            where, params = _where(filters)
            rows = _dicts(cursor.execute(
                f"SELECT *, count(*) OVER () AS n_groups FROM (SELECT {_GROUP_COLUMNS} "
                f"FROM {found.table}{where} GROUP BY grp) ORDER BY {_GROUP_ORDER} "
                "LIMIT ? OFFSET ?", [list(INCOMPLETE), *params, limit, offset]))
            count = rows[0].pop("n_groups") if rows else 0
            for row in rows[1:]:
                row.pop("n_groups")
        return Page(count, rows, more=offset + len(rows) < count, previous=offset > 0)

    def record(self, run_id: str, rid: int, wait: bool = False) -> dict[str, Any] | None:
        table = self.relation(run_id, wait)
        rows = _dicts(self._cursor().execute(
            f"SELECT rid, {', '.join(_col(k) for k in RECORD_KEYS)} FROM {table} "
            "WHERE rid = ? AND path IS NOT NULL", [rid]))
        return rows[0] if rows else None

    def records(self, run_id: str, filters: Filters, sort: str = "file",
                chunk: int = 5000) -> Iterator[dict[str, Any]]:
        """Whole records of a filtered view, streamed in chunks (exports), in file order
        unless another sort is asked for."""
        table = self.relation(run_id)
        where, params = _where(filters)
        key = SORT_KEYS.get(sort, "rid")
        cursor = self._cursor()
        result = cursor.execute(
            f"SELECT {', '.join(_col(k) for k in RECORD_KEYS)} FROM {table}{where} "
            f"ORDER BY {key}{', rid' if key != 'rid' else ''}", params)
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


def _where(filters: Filters) -> tuple[str, list[Any]]:
    where, params = filters.where()
    return where + (" AND" if where else " WHERE") + " path IS NOT NULL", params


def _summary_path(copy: Path) -> Path:
    return copy.with_name(copy.name + ".summary.json")


def _groups_path(copy: Path) -> Path:
    return copy.with_name(copy.name + ".groups.parquet")


def _summarise(cursor: duckdb.DuckDBPyConnection, table: str,
               filters: Filters) -> dict[str, Any]:
    """Counts for a banner, cards and filter lists (one pass per figure; build time)."""
    where, params = _where(filters)
    row = cursor.execute(f"SELECT count(*), coalesce(sum(size), 0), "
                         f"coalesce(sum(duration_ms), 0) FROM {table}{where}",
                         params).fetchone()
    files, size, busy = row if row else (0, 0, 0.0)
    matrix = cursor.execute(
        f"SELECT status, coalesce(max_severity, 'none'), count(*) FROM {table}{where} "
        "GROUP BY 1, 2", params).fetchall()
    by_status: dict[str, int] = {}
    by_max: dict[str, int] = {}
    for status, severity, n in matrix:
        by_status[status] = by_status.get(status, 0) + n
        by_max[severity] = by_max.get(severity, 0) + n
    findings = dict(cursor.execute(
        f"SELECT f.severity, count(*) FROM (SELECT unnest(findings) AS f FROM {table}"
        f"{where}) GROUP BY 1", params).fetchall())
    formats = cursor.execute(
        f"SELECT format, count(*) FROM {table}{where} GROUP BY 1 ORDER BY 2 DESC, 1",
        params).fetchall()
    rules = cursor.execute(
        f"SELECT f.rule_id, count(*) FROM (SELECT unnest(findings) AS f FROM {table}{where}) "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50", params).fetchall()
    slowest = cursor.execute(
        f"SELECT path, duration_ms FROM {table}{where} "
        "ORDER BY duration_ms DESC NULLS LAST LIMIT 5", params).fetchall()
    return {
        "files": files, "bytes": size, "busy_ms": busy,
        "by_status": {s: by_status.get(s, 0) for s in STATUSES},
        "by_max_severity": {s: by_max.get(s, 0) for s in (*SEVERITIES, "none")},
        "status_by_severity": [list(r) for r in matrix],
        "findings_by_severity": {s: findings.get(s, 0) for s in SEVERITIES},
        "formats": [list(r) for r in formats], "rules": [list(r) for r in rules],
        "slowest": [list(r) for r in slowest],
        "incomplete": sum(by_status.get(s, 0) for s in INCOMPLETE),
        "skipped": by_status.get("skipped", 0),
    }


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _col(name: str) -> str:
    return f'"{name}"'


def _dicts(result: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names: Sequence[str] = [d[0] for d in result.description or ()]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
