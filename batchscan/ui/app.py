"""The Starlette app: pages, JSON endpoints, the live event stream, exports.

Security of the UI itself (it can start scans and read every result):
- a random token, printed in the start URL, is required on every request (403 without it);
  it arrives as `?token=` once, then as an HttpOnly SameSite=Strict cookie for links;
  anything but GET/HEAD must carry it in the `X-Batchscan-Token` header (a cookie alone never
  changes state: no cross-site request forgery);
- templates autoescape everything (paths, members, messages and evidence are attacker-chosen),
  and a strict Content-Security-Policy allows only this origin's own script and style;
- run names resolve only inside the runs folder (`RunsFolder`): traversal is a 404;
- `Referrer-Policy: no-referrer` keeps the token out of Referer headers.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jinja2
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchscan import __version__
from batchscan.config import available_cpus
from batchscan.outputs.html import HtmlWriter, verdict
from batchscan.outputs.summary import Summary
from batchscan.outputs.writers import JsonlWriter, JsonWriter, SarifWriter, Writer
from batchscan.records import Severity
from batchscan.rules import CATALOGUE
from batchscan.schema import record_from_dict
from batchscan.ui.query import (
    INCOMPLETE,
    SEVERITIES,
    SORTS,
    STATUSES,
    Filters,
    Preparing,
    RunStore,
)
from batchscan.ui.runs import RunMeta, RunsFolder, UnknownRun
from batchscan.ui.scans import TERMINAL, BadScan, ScanManager
from batchscan.ui.triage import STATES, TriageStore, identity

HERE = Path(__file__).parent
TOKEN_HEADER = "x-batchscan-token"
COOKIE = "batchscan_token"
PAGE_SIZE = 50
RULES = {rule.rule_id: rule for rule in CATALOGUE}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


class TokenGuard:
    """Pure ASGI middleware (so it also guards streams and static files)."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        header = request.headers.get(TOKEN_HEADER, "")
        query = request.query_params.get("token", "")
        cookie = request.cookies.get(COOKIE, "")
        safe = scope["method"] in ("GET", "HEAD")
        offered = [header] if not safe else [header, query, cookie]
        if not any(v and secrets.compare_digest(v, self.token) for v in offered):
            reason = "403: a valid token is required"
            if not safe:
                reason += f" in the {TOKEN_HEADER} header"
            await PlainTextResponse(reason, status_code=403,
                                    headers=_security_headers())(scope, receive, send)
            return
        set_cookie = bool(query) and query != cookie

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in _security_headers().items()]
                if set_cookie:
                    headers.append((b"set-cookie", (
                        f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/").encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _security_headers() -> dict[str, str]:
    return {"content-security-policy": CSP, "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer", "x-frame-options": "DENY",
            "cache-control": "no-store"}


def _size(value: object) -> str:
    if value is None:
        return ""
    number = float(value)  # type: ignore[arg-type]
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if number < 1000 or unit == "TB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1000
    return str(value)


def _duration(meta: RunMeta) -> str:
    summary = meta.summary or {}
    seconds = summary.get("wall_seconds")
    return f"{seconds:.1f} s" if isinstance(seconds, int | float) else ""


def build_app(runs_dir: Path, token: str, parse: Callable[[list[str]], Any],
              parallel: int = 1) -> Starlette:
    runs = RunsFolder(runs_dir)
    store = RunStore(runs)
    triage = TriageStore(runs.triage_dir)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["size"] = _size
    env.globals.update(version=__version__, severities=SEVERITIES, statuses=STATUSES)
    scans: list[ScanManager] = []

    def manager() -> ScanManager:
        return scans[0]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A scan that ends has its copy built at once (in the background), not on first open.
        scans.append(ScanManager(runs, parse, parallel, on_end=store.prepare))
        yield
        await run_in_threadpool(manager().shutdown)

    def page(name: str, request: Request, **context: Any) -> HTMLResponse:
        template = env.get_template(name)
        return HTMLResponse(template.render(request=request, token=token, **context))

    def meta_or_404(run_id: str) -> RunMeta:
        try:
            runs.jsonl(run_id, must_exist=False)
            if not (runs.jsonl(run_id, False).is_file() or runs.meta_path(run_id).is_file()):
                raise UnknownRun(run_id)
            return runs.meta(run_id)
        except UnknownRun:
            raise _NotFound() from None

    def filters_of(request: Request) -> Filters:
        params = request.query_params
        def values(key: str) -> list[str]:
            return [v for v in params.getlist(key) if v]

        return Filters(status=values("status"), severity=values("severity"),
                       format=values("format"), rule=values("rule"),
                       q=params.get("q", "").strip(), group=params.get("group", ""))

    # --- pages -----------------------------------------------------------------------------
    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    async def history(request: Request) -> Response:
        q = request.query_params.get("q", "").strip().lower()
        offset = _int(request.query_params.get("offset"), 0)
        ids = runs.run_ids()
        metas = []
        for run_id in ids:
            try:
                meta = runs.meta(run_id)
            except (UnknownRun, OSError, ValueError):
                continue
            if q and q not in run_id.lower() and not any(q in t.lower() for t in meta.targets):
                continue
            metas.append(meta)
        shown = metas[offset:offset + PAGE_SIZE]
        counts = {}
        for meta in shown:
            counts[meta.run_id] = await run_in_threadpool(_run_counts, store, runs, meta)
        return page("history.html", request, metas=shown, counts=counts, total=len(metas),
                    offset=offset, page_size=PAGE_SIZE, q=q, duration=_duration)

    async def setup(request: Request) -> Response:
        recent: list[str] = []
        for run_id in runs.run_ids()[:200]:
            try:
                meta = runs.meta(run_id)
            except (UnknownRun, OSError, ValueError):
                continue
            recent += [t for t in meta.targets if t not in recent]
            if len(recent) >= 15:
                break
        return page("setup.html", request, recent=recent[:15], cpus=available_cpus())

    async def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        meta = meta_or_404(run_id)
        filters = filters_of(request)
        sort = request.query_params.get("sort", "severity")
        offset = max(_int(request.query_params.get("offset"), 0), 0)
        after = _int(request.query_params.get("after"), -1)
        before = _int(request.query_params.get("before"), -1)
        view = request.query_params.get("view", "files")
        has_records = runs.jsonl(run_id, False).is_file()
        data: dict[str, Any] = {}
        if has_records:
            data = await run_in_threadpool(
                _run_view, store, triage, run_id, filters, sort, offset, view,
                after if after >= 0 else None, before if before >= 0 else None)
        live = meta.state not in TERMINAL or meta.state == "interrupted"
        banner = _banner(meta, data.get("all"))
        return page("run.html", request, meta=meta, filters=filters, sort=sort, sorts=SORTS,
                    offset=offset, view=view, page_size=PAGE_SIZE, data=data, live=live,
                    banner=banner, query=filters.as_query(), urlencode=urllib.parse.urlencode,
                    incomplete=INCOMPLETE, duration=_duration(meta))

    async def file_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        meta_or_404(run_id)
        try:
            record = await run_in_threadpool(store.record, run_id, request.path_params["rid"])
        except Preparing as busy:
            return page("preparing.html", request, run_id=run_id,
                        preparing=_preparing(store, busy))
        if record is None:
            raise _NotFound()
        decisions = triage.decisions()
        findings = []
        for index, finding in enumerate(record["findings"] or []):
            rule = RULES.get(finding["rule_id"])
            findings.append({"index": index, **finding, "rule": rule,
                             "triage": decisions.get(identity(record, finding))})
        return page("file.html", request, run_id=run_id, record=record, findings=findings,
                    states=STATES)

    async def diff_page(request: Request) -> Response:
        old = request.query_params.get("old", "")
        new = request.query_params.get("new", "")
        ids = runs.run_ids()
        result = None
        if old and new:
            meta_or_404(old)
            meta_or_404(new)
            result = await run_in_threadpool(store.diff, old, new)
        return page("diff.html", request, ids=ids, old=old, new=new, result=result)

    # --- JSON endpoints --------------------------------------------------------------------
    async def check_path(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(_check_target,
                                                    request.query_params.get("path", "")))

    async def start_scan(request: Request) -> Response:
        body = await _json(request)
        targets = [str(t) for t in body.get("targets", []) if str(t).strip()]
        options = _options(body.get("options", {}))
        try:
            run_id = await run_in_threadpool(manager().submit, targets, options)
        except (BadScan, UnknownRun) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"run_id": run_id, "url": f"/runs/{run_id}"}, status_code=201)

    async def cancel(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        meta_or_404(run_id)
        try:
            state = manager().cancel(run_id)
        except BadScan as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"state": state})

    async def resume(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        meta_or_404(run_id)
        try:
            manager().resume(run_id)
        except BadScan as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"state": "queued"})

    async def mark(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        meta_or_404(run_id)
        try:
            record = await run_in_threadpool(store.record, run_id, request.path_params["rid"])
        except Preparing:
            return JSONResponse({"error": "the run is being prepared"}, status_code=409)
        if record is None:
            raise _NotFound()
        body = await _json(request)
        index = _int(body.get("index"), -1)
        findings = record["findings"] or []
        if not 0 <= index < len(findings):
            return JSONResponse({"error": "no such finding"}, status_code=400)
        if body.get("clear"):
            await run_in_threadpool(triage.unmark, record, findings[index])
            return JSONResponse({"state": None})
        try:
            decision = await run_in_threadpool(
                triage.mark, record, findings[index], str(body.get("state", "")),
                str(body.get("reason", "")).strip()[:2000], body.get("expires") or None, run_id)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"state": decision.state, "expires": decision.expires})

    async def events(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        meta_or_404(run_id)

        async def stream() -> AsyncIterator[bytes]:
            last = b""
            while True:
                meta = runs.meta(run_id)
                progress = runs.progress(run_id) or {}
                queue = manager().queued()
                event = {"state": meta.state, "progress": progress,
                         "position": queue.index(run_id) + 1 if run_id in queue else None,
                         "exit_code": meta.exit_code}
                payload = orjson.dumps(event)
                if payload != last:
                    yield b"event: progress\ndata: " + payload + b"\n\n"
                    last = payload
                if meta.state in TERMINAL:
                    yield b"event: end\ndata: " + orjson.dumps({"state": meta.state}) + b"\n\n"
                    return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.3)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})

    async def export(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        meta = meta_or_404(run_id)
        fmt = request.path_params["fmt"]
        if fmt not in EXPORTS:
            return PlainTextResponse("unknown format", status_code=400)
        filters = filters_of(request)
        # refuse a missing run before streaming begins (and build its copy if need be)
        await run_in_threadpool(store.relation, run_id)
        media, suffix = EXPORTS[fmt]
        name = f"{run_id}.{suffix}"
        chunks = _export(store, run_id, meta, filters, fmt)
        return StreamingResponse(_iterate(chunks), media_type=media, headers={
            "content-disposition": f'attachment; filename="{name}"'})

    routes = [
        Route("/", home),
        Route("/runs", history),
        Route("/setup", setup),
        Route("/diff", diff_page),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/files/{rid:int}", file_page),
        Route("/runs/{run_id}/events", events),
        Route("/runs/{run_id}/export.{fmt}", export),
        Route("/api/check", check_path),
        Route("/api/scans", start_scan, methods=["POST"]),
        Route("/api/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/api/runs/{run_id}/resume", resume, methods=["POST"]),
        Route("/api/runs/{run_id}/files/{rid:int}/triage", mark, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(TokenGuard, token=token)],
                    exception_handlers={_NotFound: _not_found, 404: _not_found})
    app.state.runs = runs
    app.state.store = store
    app.state.triage = triage
    return app


class _NotFound(Exception):
    pass


async def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("404: no such run or file", status_code=404)


async def _iterate(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    iterator = iter(chunks)
    while True:
        chunk = await run_in_threadpool(next, iterator, None)
        if chunk is None:
            return
        yield chunk


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _int(value: object, default: int) -> int:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return default


# --- helpers run in threads -----------------------------------------------------------------
def _run_counts(store: RunStore, runs: RunsFolder, meta: RunMeta) -> dict[str, Any] | None:
    if not runs.jsonl(meta.run_id, False).is_file():
        return None
    try:
        return store.counts(meta.run_id, wait=False)
    except Exception:  # being prepared, or a damaged file: the history page stays up
        return None


def _preparing(store: RunStore, busy: Preparing) -> dict[str, Any]:
    status = store.status(busy.run_id)
    return {"size": busy.size, "lines": busy.lines, "error": status["error"]}


def _run_view(store: RunStore, triage: TriageStore, run_id: str, filters: Filters, sort: str,
              offset: int, view: str, after: int | None = None,
              before: int | None = None) -> dict[str, Any]:
    """What the run page shows: the run's summary (no scan), one page of files or groups."""
    try:
        found = store.copy(run_id, wait=False)
        if view == "groups":
            shown = store.groups(run_id, filters, offset, PAGE_SIZE, wait=False)
        else:
            shown = store.page(run_id, filters, sort, offset, PAGE_SIZE, after, before,
                               wait=False)
    except Preparing as busy:
        return {"preparing": _preparing(store, busy)}
    decisions = triage.decisions()
    suppressed = sum(1 for key in decisions if not decisions[key].expired)
    return {"all": found.summary, "stale": found.stale, "total": shown.total,
            "rows": shown.rows, "first": shown.first, "last": shown.last, "more": shown.more,
            "previous": shown.previous,
            "keyset": after is not None or before is not None, "triaged": suppressed}


def _banner(meta: RunMeta, counts: dict[str, Any] | None) -> tuple[str, str]:
    if meta.state in ("queued", "running"):
        return "warn", "SCANNING: no verdict until the run ends"
    if counts is None:
        return "warn", f"NO RECORDS ({meta.state})"
    fail_on = "warning"
    if "--fail-on" in meta.options:
        at = meta.options.index("--fail-on") + 1
        fail_on = meta.options[at] if at < len(meta.options) else fail_on
    rank = Severity(fail_on).rank
    failing = sum(n for s, n in counts["by_max_severity"].items()
                  if s != "none" and Severity(s).rank >= rank)
    summary = {"files": counts["files"], "by_status": counts["by_status"],
               "failing_files": failing, "fail_on": fail_on,
               "interrupted": meta.state in ("interrupted", "cancelled", "failed")}
    return verdict(summary)


def _check_target(text: str) -> dict[str, Any]:
    """What the setup page shows beside a target as it is typed."""
    target = text.strip()
    if not target:
        return {"ok": False, "message": "empty"}
    if target.startswith("hf://"):
        rest = target[len("hf://"):]
        ok = bool(rest) and " " not in rest
        return {"ok": ok, "kind": "hub", "message": "Hugging Face Hub target" if ok else
                "expected hf://ORG/NAME[@REV] or hf://ORG"}
    if target.startswith("@"):
        path = Path(target[1:]).expanduser()
        if not path.is_file():
            return {"ok": False, "kind": "list", "message": "no such list file"}
        with open(path, "rb") as handle:
            lines = sum(1 for line in handle if line.strip())
        return {"ok": True, "kind": "list", "message": f"list of {lines} target(s)"}
    path = Path(target).expanduser()
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {"ok": False, "kind": "missing", "message": "does not exist"}
    except OSError as exc:
        return {"ok": False, "kind": "error", "message": exc.strerror or str(exc)}
    if path.is_dir():
        try:
            with os.scandir(path) as entries:
                count = sum(1 for _ in zip(range(10001), entries, strict=False))
        except OSError as exc:
            return {"ok": False, "kind": "folder", "message": exc.strerror or str(exc)}
        shown = "more than 10000" if count > 10000 else str(count)
        return {"ok": True, "kind": "folder", "message": f"folder, {shown} entries"}
    return {"ok": True, "kind": "file", "message": f"file, {_size(stat.st_size)}",
            "size": stat.st_size}


def _lines(value: object) -> list[str]:
    text = value if isinstance(value, str) else "\n".join(map(str, value or []))  # type: ignore[call-overload]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _options(form: object) -> list[str]:
    """The setup form's fields as CLI options (the CLI's parser judges the values)."""
    data = form if isinstance(form, dict) else {}
    argv: list[str] = []
    for pattern in _lines(data.get("blacklist")):
        argv += ["--blacklist", pattern]
    for pattern in _lines(data.get("include")):
        argv += ["--include", pattern]
    for pattern in _lines(data.get("exclude")):
        argv += ["--exclude", pattern]
    for key, flag in (("timeout", "--timeout"), ("max_file_size", "--max-file-size"),
                      ("jobs", "--jobs"), ("memory_limit", "--memory-limit"),
                      ("fail_on", "--fail-on"), ("follow_symlinks", "--follow-symlinks"),
                      ("max_depth", "--max-depth"), ("cache", "--cache")):
        value = str(data.get(key) or "").strip()
        if value:
            argv += [flag, value]
    if data.get("no_hash"):
        argv.append("--no-hash")
    if data.get("one_file_system"):
        argv.append("--one-file-system")
    return argv


EXPORTS = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "json": ("application/json", "json"),
    "sarif": ("application/sarif+json", "sarif"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "html": ("text/html; charset=utf-8", "html"),
}
CSV_COLUMNS = ("path", "status", "max_severity", "format", "size", "sha256", "source",
               "rule_id", "severity", "message", "member", "offset", "evidence", "cwe", "error")


def _export(store: RunStore, run_id: str, meta: RunMeta, filters: Filters,
            fmt: str) -> Iterator[bytes]:
    """The filtered view in one of the CLI's formats (JSONL/JSON/SARIF/HTML through the
    CLI's own writers) or CSV (one row per finding, a file without findings one row)."""
    rows = store.records(run_id, filters)
    if fmt == "csv":
        buffer = io.StringIO()
        out = csv.writer(buffer)
        out.writerow(CSV_COLUMNS)
        for row in rows:
            base = [row["path"], row["status"], row["max_severity"], row["format"], row["size"],
                    row["sha256"], row["source"]]
            for finding in row["findings"] or [None]:
                f = finding or {}
                out.writerow([*base, f.get("rule_id"), f.get("severity"), f.get("message"),
                              f.get("member"), f.get("offset"), f.get("evidence"),
                              f.get("cwe"), row["error"]])
            if buffer.tell() > 65536:
                yield buffer.getvalue().encode("utf-8", "surrogateescape")
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode("utf-8", "surrogateescape")
        return
    sink = _Sink()
    writer: Writer
    if fmt == "jsonl":
        writer = JsonlWriter(sink)  # type: ignore[arg-type]
    elif fmt == "json":
        writer = JsonWriter(sink, run_id)  # type: ignore[arg-type]
    elif fmt == "sarif":
        writer = SarifWriter(sink, run_id)  # type: ignore[arg-type]
    else:
        writer = HtmlWriter(sink, run_id)  # type: ignore[arg-type]
    fail_on = "warning"
    if "--fail-on" in meta.options and meta.options.index("--fail-on") + 1 < len(meta.options):
        fail_on = meta.options[meta.options.index("--fail-on") + 1]
    summary = Summary(fail_on=Severity(fail_on))
    for row in rows:
        record = record_from_dict({**row, "schema_version": row["schema_version"] or 2})
        writer.write(record)
        summary.add(record)
        if sink.size() > 65536:
            yield sink.take()
    wall = (meta.summary or {}).get("wall_seconds") or 0.0
    writer.finish(summary.as_dict(float(wall), {
        "run_id": run_id, "interrupted": meta.state in ("interrupted", "cancelled")}))
    yield sink.take()


class _Sink:
    """A bytes buffer the CLI's writers write into; exports drain it in chunks."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        self._parts.append(data)
        self._size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self._size

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts, self._size = [], 0
        return data
