"""Typed warehouse output: DDL and Parquet derived from `batchscan/record.schema.json`.

JSONL leaves column types to the loader's inference, which goes wrong on exactly the shards a
registry scan produces: a shard of clean files has only empty `findings` arrays and null
`max_severity`/`error`, so DuckDB infers `JSON[]` and `"NULL"` there and something else in the
next shard. The types are known, so they are written down once here, from the JSON Schema:

- `ddl(dialect)`: `CREATE TABLE` statements for DuckDB, BigQuery and a generic SQL
  (`batchscan schema --ddl duckdb|bigquery|sql`). Two tables: `batchscan_records` (one row per
  file; nested `findings` in DuckDB and BigQuery, left out in generic SQL) and
  `batchscan_finding_rows` (the `--flatten` shape: one row per finding, the record's columns
  repeated, `finding_*` columns null for a file without findings).
- `write_parquet(records, path, flatten)`: the same columns as typed Parquet
  (`batchscan report RUN.jsonl --to-parquet OUT.parquet [--flatten]`, needs pyarrow), so every
  shard has the same Parquet schema whatever it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batchscan.records import ScanRecord
from batchscan.schema import load_json_schema, record_to_dict

DIALECTS = ("duckdb", "bigquery", "sql")
RECORDS_TABLE = "batchscan_records"
FLAT_TABLE = "batchscan_finding_rows"

# JSON Schema type -> column type per dialect; "timestamp" is a string with format date-time
_SCALARS: dict[str, dict[str, str]] = {
    "duckdb": {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE",
               "boolean": "BOOLEAN", "timestamp": "TIMESTAMP WITH TIME ZONE"},
    "bigquery": {"string": "STRING", "integer": "INT64", "number": "FLOAT64",
                 "boolean": "BOOL", "timestamp": "TIMESTAMP"},
    "sql": {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE PRECISION",
            "boolean": "BOOLEAN", "timestamp": "TIMESTAMP WITH TIME ZONE"},
}


def _quote(dialect: str, name: str) -> str:
    """Every identifier quoted: `offset` is reserved in DuckDB, BigQuery and SQL."""
    return f"`{name}`" if dialect == "bigquery" else f'"{name}"'


def _kind(prop: dict[str, Any]) -> tuple[str, bool]:
    """(scalar kind, nullable) of one JSON Schema property."""
    if "const" in prop:
        value = prop["const"]
        return ("integer" if isinstance(value, int) else "string"), False
    if "enum" in prop:
        values = prop["enum"]
        return "string", None in values
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    nullable = "null" in types
    (kind,) = [t for t in types if t != "null"]
    if kind == "string" and prop.get("format") == "date-time":
        return "timestamp", nullable
    return kind, nullable


def _finding_properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    finding = schema["$defs"]["finding"]
    return [(name, finding["properties"][name]) for name in finding["required"]]


def columns(dialect: str, flatten: bool = False) -> list[tuple[str, str, bool]]:
    """(name, type, nullable) of each column, in record order."""
    schema = load_json_schema()
    scalars = _SCALARS[dialect]
    out: list[tuple[str, str, bool]] = []
    flat: list[tuple[str, str, bool]] = []  # --flatten puts finding_* after the record's
    for name in schema["required"]:
        prop = schema["properties"][name]
        if prop.get("type") == "array":
            fields = [(f, *_kind(p)) for f, p in _finding_properties(schema)]
            if flatten:
                flat = [(f"finding_{f}", scalars[kind], True) for f, kind, _ in fields]
            elif dialect == "duckdb":
                inner = ", ".join(f"{_quote(dialect, f)} {scalars[kind]}"
                                  for f, kind, _ in fields)
                out.append((name, f"STRUCT({inner})[]", False))
            elif dialect == "bigquery":
                inner = ", ".join(f"{_quote(dialect, f)} {scalars[kind]}"
                                  for f, kind, _ in fields)
                out.append((name, f"ARRAY<STRUCT<{inner}>>", True))  # REPEATED: no NOT NULL
            # generic SQL has no arrays: findings live in the flat table
            continue
        kind, nullable = _kind(prop)
        out.append((name, scalars[kind], nullable))
    return out + flat


def _table(dialect: str, name: str, cols: list[tuple[str, str, bool]]) -> str:
    body = ",\n".join(f"  {_quote(dialect, col)} {kind}{'' if nullable else ' NOT NULL'}"
                      for col, kind, nullable in cols)
    return f"CREATE TABLE {name} (\n{body}\n);\n"


def ddl(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"--ddl wants one of {', '.join(DIALECTS)}, got {dialect!r}")
    version = load_json_schema()["properties"]["schema_version"]["const"]
    head = (f"-- batchscan record schema_version {version}, generated from "
            f"batchscan/record.schema.json (batchscan schema --ddl {dialect})\n")
    return (head + _table(dialect, RECORDS_TABLE, columns(dialect)) + "\n"
            + _table(dialect, FLAT_TABLE, columns(dialect, flatten=True)))


def _arrow_schema(flatten: bool) -> Any:
    import pyarrow as pa

    types = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(),
             "BOOLEAN": pa.bool_(), "TIMESTAMP WITH TIME ZONE": pa.timestamp("ms", tz="UTC")}
    fields = []
    for name, kind, nullable in columns("duckdb", flatten):
        if kind.startswith("STRUCT("):
            inner = kind[len("STRUCT("):-len(")[]")]
            struct = pa.struct([pa.field(f.strip('"'), types[t]) for f, t in
                                (part.split(" ", 1) for part in inner.split(", "))])
            fields.append(pa.field(name, pa.list_(struct), nullable=False))
        else:
            fields.append(pa.field(name, types[kind], nullable=nullable))
    return pa.schema(fields)


def _rows(records: Iterable[ScanRecord], flatten: bool) -> list[dict[str, Any]]:
    import datetime as dt

    names = [name for name, _ in _finding_properties(load_json_schema())]
    rows: list[dict[str, Any]] = []
    for record in records:
        row = record_to_dict(record)
        row["scanned_at"] = dt.datetime.fromisoformat(row["scanned_at"].replace("Z", "+00:00"))
        if not flatten:
            rows.append(row)
            continue
        findings = row.pop("findings") or [{}]
        rows.extend({**row, **{f"finding_{k}": finding.get(k) for k in names}}
                    for finding in findings)
    return rows


def write_parquet(records: Iterable[ScanRecord], path: Path, flatten: bool = False) -> int:
    """Typed Parquet of `records` (one row per file, or per finding with `flatten`)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ValueError("--to-parquet needs pyarrow: pip install 'batchscan[warehouse]'") from exc
    rows = _rows(records, flatten)
    table = pa.Table.from_pylist(rows, schema=_arrow_schema(flatten))
    pq.write_table(table, str(path))
    return len(rows)
