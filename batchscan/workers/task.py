"""The task run in a worker process: scan a batch of files, return one result per file.

One read serves sniffing, scanning and hashing for small files (the whole file is read once
into memory). Large files are scanned through a buffered file object that reads only what
the format needs, then hashed in one sequential pass that shares the page cache.

Every failure of one file becomes that file's result; a batch never raises for one file's
sake. Only a dying process (timeout kill, segfault, SIGKILL) escapes, and the coordinator
then retries the batch's files one by one.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import replace

from batchscan import rules, safeopen, sandbox
from batchscan.cachedb import Reader
from batchscan.hashing import sha256_of
from batchscan.records import FileResult, Finding, Severity, Status
from batchscan.schema import MAX_FINDINGS, cap_findings
from batchscan.workers import faults, unknown
from batchscan.workers.base import (
    FormatError,
    FormatModule,
    LimitExceeded,
    Source,
)
from batchscan.workers.jobs import BatchResult, Job, WorkerOptions
from batchscan.workers.registry import SCANNERS, context, detect_source

SMALL_FILE = 1024 * 1024  # read whole: one read serves sniff, scan and hash

LIMIT_REACHED = rules.ENG002
BLACKLISTED_NAME = rules.ENG003
ENGINE_RULES = (LIMIT_REACHED, BLACKLISTED_NAME, rules.ENG004)


def scan_batch(jobs: list[Job], options: WorkerOptions) -> BatchResult:
    """Scan a batch; the pool reaches this through `batchscan.workers.entry.scan_batch`."""
    scanners: tuple[FormatModule, ...] = SCANNERS
    if options.fault_injection:
        scanners = (faults, *SCANNERS)
    refused = sandbox.refusal()
    if refused is not None:  # fail closed: no scan outside a complete sandbox
        results = tuple(FileResult(format="unknown", size=None, sha256=None, error=refused)
                        for _ in jobs)
        return BatchResult(results, tuple(sorted(sandbox.STATUS.items())), os.getpid())
    sandbox.begin_batch()
    unhashed = replace(options, hash=False)
    results = tuple(scan_file(job.path, options if job.hash else unhashed, scanners, job.name,
                              job.walk_from, job.follow)
                    for job in jobs)
    return BatchResult(results, tuple(sorted(sandbox.STATUS.items())), os.getpid())


_READERS: dict[str, Reader | None] = {}


def _cache(options: WorkerOptions) -> Reader | None:
    """One read-only connection per worker process; an unusable cache is just a miss."""
    assert options.cache_path is not None
    if options.cache_path not in _READERS:
        try:
            _READERS[options.cache_path] = Reader(options.cache_path, options.cache_rules)
        except sqlite3.Error:
            _READERS[options.cache_path] = None
    return _READERS[options.cache_path]


def scan_file(
    path: str, options: WorkerOptions, scanners: tuple[FormatModule, ...] = SCANNERS,
    name: str | None = None, walk_from: int | None = None, follow: bool = False,
) -> FileResult:
    started = time.perf_counter()
    fmt = "unknown"
    size: int | None = None
    sha: str | None = None
    collected = _Collected(options.verbose)
    findings = collected.findings
    error: str | None = None
    status: Status | None = None
    ctx = context(limits=options.limits, blacklist=options.blacklist)
    # The name is only a hint (extension-based sniffs, -b patterns); content decides.
    name = name or os.path.basename(path)
    try:
        pattern = ctx.blacklisted(name)
        if pattern is not None:
            findings.append(BLACKLISTED_NAME.finding(
                f"file name {name!r} matches blacklist pattern {pattern!r}"))
        with open(path, "rb",
                  opener=lambda _p, _f: safeopen.open_fd(path, walk_from, follow)) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= SMALL_FILE:
                data = handle.read()
                size = len(data)
                if options.hash:
                    sha = hashlib.sha256(data).hexdigest()
                source = Source.from_bytes(data, name)
            else:
                if options.cache_path and options.hash:
                    sha = sha256_of(handle, size)
                    handle.seek(0)
                source = Source(handle, size, name)
            if options.cache_path and sha is not None:
                reader = _cache(options)
                hit = reader.lookup(sha, name) if reader is not None else None
                if hit is not None:
                    return replace(hit, size=size,
                                   duration_ms=(time.perf_counter() - started) * 1000.0)
            ctx.directory = os.path.dirname(os.path.abspath(path))
            fmt, module = detect_source(source, scanners)
            if module is not None:
                try:
                    collected.extend(module.scan(source, ctx))
                finally:
                    fmt = ctx.format_hint or fmt
            elif fmt != "unknown":
                error = f"format {fmt!r} recognised but not scanned by this version"
            else:
                # Never clean: only the cheap content checks ran (`workers/unknown.py`).
                collected.extend(unknown.checks(source, ctx))
                status = Status.UNSUPPORTED
                error = unknown.REASON
            if sha is None and options.hash:
                # One sequential pass through a reused buffer; the scan's reads above were
                # small and hit the same page cache.
                sha = sha256_of(handle, size)
    except MemoryError:
        status = Status.OOM
        error = f"scanner exceeded the worker memory limit while scanning {fmt}"
    except LimitExceeded as exc:
        findings.append(LIMIT_REACHED.finding(str(exc), member=exc.member))
        error = str(exc)
    except FormatError as exc:
        error = f"invalid {fmt}: {exc}"
    except OSError as exc:
        error = f"cannot read file: {exc.strerror or exc}"
    except RecursionError:
        error = f"{fmt} structure nested too deeply to analyse"
    except Exception:
        # A parser library's own exception (KeyError, OverflowError, a decompressor's
        # error...) says nothing a user can act on, and its text is the attacker's: the
        # record says the file is malformed for its format, in that format's words.
        error = f"invalid {fmt}: malformed or unsupported {fmt} structure; not fully scanned"
    if status is Status.UNSUPPORTED and error != unknown.REASON:
        status = None  # the content checks or the hashing failed: an error record
    if ctx.incomplete and (error is None or status is Status.UNSUPPORTED):
        error = "not fully scanned: " + "; ".join(ctx.incomplete)
        status = None
    if not options.verbose:
        findings = [f for f in findings if f.severity is not Severity.DEBUG]
    kept, dropped = cap_findings(findings)
    return FileResult(
        format=fmt,
        size=size,
        sha256=sha,
        findings=kept,
        error=error,
        duration_ms=(time.perf_counter() - started) * 1000.0,
        status=status,
        findings_dropped=collected.dropped + dropped,
    )


class _Collected:
    """Findings gathered one by one as a scanner yields them, so an exception part-way
    loses none already made, and bounded: past a few times the record's cap the least
    severe are cut and counted (a pickle naming a million globals stays small)."""

    __slots__ = ("dropped", "findings", "verbose")

    def __init__(self, verbose: bool):
        self.findings: list[Finding] = []
        self.dropped = 0
        self.verbose = verbose

    def extend(self, found: Iterable[Finding]) -> None:
        for finding in found:
            if finding.severity is Severity.DEBUG and not self.verbose:
                continue
            self.findings.append(finding)
            if len(self.findings) >= 4 * MAX_FINDINGS:
                kept, cut = cap_findings(self.findings)
                self.findings[:] = kept
                self.dropped += cut
