"""A single self-contained HTML report: summary, inline SVG charts, flagged files.

No external asset (no script, stylesheet, font or image is fetched), so the file reads offline
and can be attached to a ticket. Every value from a record is escaped with `html.escape`: file
names, members, messages and evidence are attacker-chosen. Files that are clean are counted
but not listed; files with findings or not fully scanned are listed (up to `MAX_ROWS`, the
rest counted), sorted by severity.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any, BinaryIO

from batchscan.records import ScanRecord, Severity, Status

MAX_ROWS = 5000
_COLOURS = {"error": "#b3261e", "warning": "#b86e00", "info": "#1f6feb", "debug": "#6e7781",
            "clean": "#1a7f37", "findings": "#b3261e", "skipped": "#6e7781"}
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1f2328}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.5em}
.banner{padding:.8em 1em;border-radius:6px;font-weight:600;margin:1em 0}
.bad{background:#ffebe9;border:1px solid #b3261e}.warn{background:#fff8c5;border:1px solid #b86e00}
.good{background:#dafbe1;border:1px solid #1a7f37}
.charts{display:flex;flex-wrap:wrap;gap:2em}.charts figure{margin:0}
table{border-collapse:collapse;width:100%;margin-top:.5em}
th,td{border-bottom:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top}
td.path,td.ev{font-family:ui-monospace,monospace;word-break:break-all}
.sev-error{color:#b3261e;font-weight:600}.sev-warning{color:#b86e00;font-weight:600}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def bar_chart(title: str, items: Iterable[tuple[str, float]], unit: str = "") -> str:
    """Horizontal bars as inline SVG (labels escaped)."""
    rows = [(label, value) for label, value in items]
    width, bar_left, row_h = 420, 170, 20
    top = max((v for _, v in rows), default=0) or 1
    height = max(row_h * len(rows), row_h) + 24
    parts = [f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" role="img" aria-label="{_e(title)}">'
             f'<text x="0" y="14" font-size="13" font-weight="600">{_e(title)}</text>']
    for index, (label, value) in enumerate(rows):
        y = 24 + index * row_h
        length = (width - bar_left - 70) * value / top
        colour = _COLOURS.get(label, "#57606a")
        short = label if len(label) <= 26 else "…" + label[-25:]
        parts.append(
            f'<text x="0" y="{y + 13}" font-size="12">{_e(short)}</text>'
            f'<rect x="{bar_left}" y="{y + 2}" width="{length:.1f}" height="14" '
            f'fill="{colour}"><title>{_e(label)}: {_e(value)}</title></rect>'
            f'<text x="{bar_left + length + 4:.1f}" y="{y + 13}" font-size="12">'
            f'{_e(round(value, 1) if isinstance(value, float) else value)}{_e(unit)}</text>')
    if not rows:
        parts.append('<text x="0" y="38" font-size="12">none</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


def verdict(summary: dict[str, Any]) -> tuple[str, str]:
    """(css class, sentence): never "clean" when anything was not fully scanned."""
    by_status = summary.get("by_status", {})
    incomplete = {s.value: by_status.get(s.value, 0) for s in Status
                  if (s.incomplete or s in (Status.SKIPPED, Status.UNSUPPORTED))
                  and by_status.get(s.value)}
    detail = ", ".join(f"{n} {s}" for s, n in incomplete.items())
    if summary.get("failing_files"):
        text = (f"FLAGGED: {summary['failing_files']} file(s) with findings at or above "
                f"{summary.get('fail_on', 'warning')}")
        return "bad", text + (f"; not fully scanned: {detail}" if detail else "")
    if summary.get("interrupted"):
        return "warn", "INCOMPLETE: the run was interrupted" + (f"; {detail}" if detail else "")
    if incomplete:
        return "warn", f"NOT FULLY SCANNED: {detail}"
    if not summary.get("files"):
        return "warn", "NOTHING SCANNED"
    return "good", (f"CLEAN: all {summary['files']} file(s) fully scanned, nothing at or above "
                    f"{summary.get('fail_on', 'warning')}")


def render(summary: dict[str, Any], flagged: list[ScanRecord], left_out: int,
           title: str) -> str:
    css, sentence = verdict(summary)
    severity_rows = [(s.value, summary.get("by_severity", {}).get(s.value, 0))
                     for s in reversed(Severity)]
    status_rows = [(s.value, summary.get("by_status", {}).get(s.value, 0)) for s in Status]
    charts = "".join((
        bar_chart("Files by status", status_rows),
        bar_chart("Findings by severity", severity_rows),
        bar_chart("Top rules", list(summary.get("top_rules", {}).items())),
        bar_chart("Slowest files (ms)",
                  [(s["path"], s["duration_ms"]) for s in summary.get("slowest", [])]),
    ))
    rows = []
    for record in flagged:
        top = record.max_severity
        details = "".join(
            f"<div><span class='sev-{_e(f.severity.value)}'>{_e(f.severity.value)}</span> "
            f"<b>{_e(f.rule_id)}</b> {_e(f.message)}"
            + (f" <i>member</i> <code>{_e(f.member)}</code>" if f.member else "")
            + (f" <i>offset</i> {_e(f.offset)}" if f.offset is not None else "")
            + (f"<div class='ev'><code>{_e(f.evidence)}</code></div>" if f.evidence else "")
            + "</div>" for f in record.findings)
        if record.error:
            details += f"<div><i>error</i> {_e(record.error)}</div>"
        rows.append(
            f"<tr><td class='sev-{_e(top.value if top else '')}'>{_e(top.value if top else '')}"
            f"</td><td>{_e(record.status.value)}</td><td class='path'>{_e(record.path)}</td>"
            f"<td>{_e(record.format)}</td><td>{_e(record.sha256 or '')}</td>"
            f"<td>{details}</td></tr>")
    more = f"<p>{left_out} more file(s) not listed.</p>" if left_out else ""
    facts = (f"{_e(summary.get('files', 0))} files, {_e(summary.get('bytes', 0))} bytes, "
             f"run {_e(summary.get('run_id', ''))}, "
             f"wall time {_e(summary.get('wall_seconds', ''))} s")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1><p>{facts}</p>"
        f"<div class='banner {css}' id='verdict'>{_e(sentence)}</div>"
        f"<div class='charts'>{charts}</div>"
        "<h2>Files with findings or not fully scanned</h2>"
        "<table><thead><tr><th>severity</th><th>status</th><th>path</th><th>format</th>"
        f"<th>sha256</th><th>findings</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{more}</body></html>\n")


class HtmlWriter:
    """Keeps only the files worth listing (bounded), renders once at the end."""

    def __init__(self, out: BinaryIO, run_id: str):
        self.out = out
        self.run_id = run_id
        self.flagged: list[ScanRecord] = []
        self.left_out = 0

    def write(self, record: ScanRecord) -> None:
        if not (record.findings or record.status not in (Status.CLEAN, Status.FINDINGS)):
            return
        self.flagged.append(record)
        if len(self.flagged) > 2 * MAX_ROWS:
            self._trim()

    def _trim(self) -> None:
        self.flagged.sort(key=_order)
        self.left_out += max(len(self.flagged) - MAX_ROWS, 0)
        del self.flagged[MAX_ROWS:]

    def finish(self, summary: dict[str, Any]) -> None:
        self._trim()
        page = render(summary, self.flagged, self.left_out, f"batchscan report {self.run_id}")
        self.out.write(page.encode("utf-8", "surrogateescape"))
        self.out.flush()


def _order(record: ScanRecord) -> tuple[int, str]:
    top = record.max_severity
    return (-(top.rank + 1 if top else 0), record.path)
