"""Writers: each receives records as they complete and finishes with the run summary.

- `JsonlWriter`: one line per record. Lines reach the file whole: each `write()` to the file
  holds only complete lines, so a killed run leaves a valid, resumable file (every complete
  line is a complete record; `selection.load_checkpoint` cuts a torn last line). Unbatched,
  every record is flushed at once. Batched (the CLI's local runs), lines are gathered and
  written together before each step of the engine that may block (waiting for workers,
  taking the next item of a walk or listing: `Engine.idle`), every `_BATCH_SECONDS` and
  every `_BATCH_BYTES`: a 1,000,000-file walk made one write system call per record before,
  about a tenth of its coordinator time. A record is on disk before the engine waits for
  anything.
- `JsonWriter`: one document `{schema_version, run_id, summary, records}` written at the end.
- `TextWriter`: files with findings or failures as they complete, then a summary.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol, TextIO

import orjson

from batchscan.records import ScanRecord, Severity, Status
from batchscan.schema import SCHEMA_VERSION, display_path, dumps_record, record_to_dict


class Writer(Protocol):
    def write(self, record: ScanRecord) -> None: ...

    def finish(self, summary: dict[str, Any]) -> None: ...


_BATCH_SECONDS = 0.1
_BATCH_BYTES = 256 * 1024


class _Lines:
    """Complete JSONL lines on their way to `out`, flushed per record or in batches."""

    def __init__(self, out: BinaryIO, batched: bool):
        self.out = out
        self.batched = batched
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._since = time.monotonic()

    def _put(self, lines: bytes) -> None:
        if not self.batched:
            self.out.write(lines)
            self.out.flush()
            return
        self._pending.append(lines)
        self._pending_bytes += len(lines)
        if (self._pending_bytes >= _BATCH_BYTES
                or time.monotonic() - self._since >= _BATCH_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Write what is pending, whole lines in one write, and flush the file (cheap when
        nothing is pending: the engine calls it before each step that may block)."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self.out.write(data)
            self.out.flush()
        self._since = time.monotonic()

    def finish(self, summary: dict[str, Any]) -> None:
        self.flush()
        self.out.flush()


class JsonlWriter(_Lines):
    def __init__(self, out: BinaryIO, batched: bool = False):
        super().__init__(out, batched)

    def write(self, record: ScanRecord) -> None:
        self._put(dumps_record(record))


class JsonWriter:
    def __init__(self, out: BinaryIO, run_id: str):
        self.out = out
        self.run_id = run_id
        self.records: list[dict[str, Any]] = []

    def write(self, record: ScanRecord) -> None:
        self.records.append(record_to_dict(record))

    def finish(self, summary: dict[str, Any]) -> None:
        document = {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "summary": summary,
            "records": self.records,
        }
        self.out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        self.out.write(b"\n")
        self.out.flush()


class SarifWriter:
    """Collects records; writes one SARIF 2.1.0 document at the end."""

    def __init__(self, out: BinaryIO, run_id: str):
        self.out = out
        self.run_id = run_id
        self.records: list[ScanRecord] = []

    def write(self, record: ScanRecord) -> None:
        self.records.append(record)

    def finish(self, summary: dict[str, Any]) -> None:
        from batchscan.outputs.sarif import render

        self.out.write(orjson.dumps(render(self.records, self.run_id, summary),
                                    option=orjson.OPT_INDENT_2))
        self.out.write(b"\n")
        self.out.flush()


FINDING_COLUMNS = ("rule_id", "severity", "message", "member", "offset", "evidence", "cwe")


class FlatJsonlWriter(_Lines):
    """`--flatten`: one row per finding (a file without findings is one row of nulls), so a
    warehouse can load findings without unnesting; the record's columns repeat on each row."""

    def __init__(self, out: BinaryIO, batched: bool = False):
        super().__init__(out, batched)

    def write(self, record: ScanRecord) -> None:
        base = record_to_dict(record)
        findings = base.pop("findings")
        rows = findings or [dict.fromkeys(FINDING_COLUMNS)]
        self._put(b"".join(
            orjson.dumps({**base, **{f"finding_{k}": row[k] for k in FINDING_COLUMNS}},
                         option=orjson.OPT_APPEND_NEWLINE)
            for row in rows))


_LABEL = {
    Severity.ERROR: "ERROR",
    Severity.WARNING: "WARNING",
    Severity.INFO: "INFO",
    Severity.DEBUG: "DEBUG",
}


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with control characters, escape sequences and bidirectional overrides shown as
    `\\xNN` / `\\uNNNN`: a file name or archive member must not move the cursor, recolour or
    rewrite the terminal, nor hide what follows it."""
    return _CONTROL.sub(lambda m: (f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                                   else f"\\u{ord(m.group()):04x}"), text)


class TextWriter:
    """Human output. `emit` writes a block of lines (default: to `out`); with a progress bar
    on the same terminal it is the bar's `write`, which clears the bar, prints and redraws.
    `quiet` (-q) leaves out the closing summary."""

    def __init__(self, out: TextIO, verbose: bool = False,
                 emit: Callable[[str], None] | None = None, quiet: bool = False):
        self.out = out
        self.verbose = verbose
        self.quiet = quiet
        self.emit = emit or self._emit

    def _emit(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def write(self, record: ScanRecord) -> None:
        quiet = record.status in (Status.CLEAN, Status.UNSUPPORTED) and not record.findings
        if quiet and not self.verbose:
            return
        head = f"{printable(display_path(record.path))} [{record.format}] {record.status.value}"
        if record.error:
            head += f": {printable(record.error)}"
        lines = [head]
        for finding in record.findings:
            if finding.severity is Severity.DEBUG and not self.verbose:
                continue
            where = ""
            if finding.member:
                where += f" in {printable(finding.member)}"
            if finding.offset is not None:
                where += f" at offset {finding.offset}"
            label = _LABEL[finding.severity]
            lines.append(f"  {label:7} {finding.rule_id} {printable(finding.message)}{where}")
            if finding.evidence and (self.verbose or finding.severity.rank >= 2):
                lines.append(f"          evidence: {printable(finding.evidence[:300])}")
        if record.findings_dropped:
            lines.append(f"  ({record.findings_dropped} more findings not recorded)")
        self.emit("\n".join(lines) + "\n")

    def finish(self, summary: dict[str, Any]) -> None:
        if self.quiet:
            self.out.flush()
            return
        sev = summary["by_severity"]
        status = ", ".join(f"{k} {v}" for k, v in summary["by_status"].items()) or "none"
        lines = [
            "",
            f"Scanned {summary['files']} files ({summary['bytes']:,} bytes) in "
            f"{summary['wall_seconds']:.2f} s"
            + (f", {summary['files_per_second']} files/s" if summary["files_per_second"] else ""),
            f"Status: {status}",
            f"Findings: ERROR {sev['error']}, WARNING {sev['warning']}, INFO {sev['info']}"
            + (f", DEBUG {sev['debug']}" if self.verbose else ""),
        ]
        if summary.get("slowest"):
            lines.append("Slowest: " + ", ".join(
                f"{printable(s['path'])} ({s['duration_ms']:.0f} ms)"
                for s in summary["slowest"][:3]))
        if summary.get("top_rules"):
            lines.append("Top rules: " + ", ".join(
                f"{rule} x{count}" for rule, count in summary["top_rules"].items()))
        if summary.get("sandbox_degraded"):
            lines.append("Sandbox degraded: " + "; ".join(summary["sandbox_degraded"]))
        if summary.get("interrupted"):
            lines.append("Interrupted: the results above are partial.")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
