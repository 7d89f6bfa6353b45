"""The queue of scans started from the UI and their child processes.

A scan is the CLI run in a child process (`runner.py`): `-f jsonl -o RUNS/ID.jsonl --summary
RUNS/ID.summary.json` plus the options chosen on the setup page, validated by the CLI's own
argument parser (handed in by the CLI) before anything is queued. Scans run one at a time
(`parallel`), in the order they were started; the rest wait as `queued`. Cancel sends SIGINT,
so the run ends as Ctrl-C ends the CLI: a valid JSONL of complete lines and state
`interrupted`. Resume queues the same command with `--resume`: files already recorded are
skipped, the rest appended.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchscan.outputs.summary import EXIT_INTERRUPTED
from batchscan.ui.runs import RunMeta, RunsFolder, new_run_id, now_rfc3339

TERMINAL = ("finished", "interrupted", "cancelled", "failed")


class BadScan(ValueError):
    """Options the CLI's parser refuses (the message is argparse's)."""


@dataclass(slots=True)
class _Job:
    run_id: str
    resume: bool


class ScanManager:
    def __init__(self, runs: RunsFolder, parse: Callable[[list[str]], Any], parallel: int = 1,
                 on_end: Callable[[str], None] | None = None):
        self.runs = runs
        self.on_end = on_end  # called with the run id when a scan's child has ended
        self.parse = parse  # the CLI's argument parser (handed down: the CLI sits above)
        self.parallel = max(1, parallel)
        self._queue: collections.deque[_Job] = collections.deque()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Condition()
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"scan-{i}")
                         for i in range(self.parallel)]
        for thread in self._threads:
            thread.start()
        self._recover()

    def _recover(self) -> None:
        """Runs left `running` or `queued` by a UI that stopped are interrupted: resumable."""
        for run_id in self.runs.run_ids():
            with contextlib.suppress(Exception):
                meta = self.runs.meta(run_id)
                if meta.origin == "ui" and meta.state in ("running", "queued"):
                    meta.state = "interrupted" if meta.state == "running" else "cancelled"
                    self.runs.save_meta(meta)

    # --- requests --------------------------------------------------------------------------
    def submit(self, targets: list[str], options: list[str]) -> str:
        targets = [t.strip() for t in targets if t.strip()]
        if not targets:
            raise BadScan("no target")
        run_id = new_run_id()
        self._argv(run_id, targets, options, resume=False)  # refused here, not in the child
        meta = RunMeta(run_id=run_id, targets=targets, options=options, state="queued",
                       origin="ui", created=now_rfc3339())
        self.runs.save_meta(meta)
        with self._lock:
            self._queue.append(_Job(run_id, resume=False))
            self._lock.notify()
        return run_id

    def cancel(self, run_id: str) -> str:
        with self._lock:
            process = self._running.get(run_id)
            if process is not None:
                self._cancelled.add(run_id)
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)
                return "interrupting"
            for job in list(self._queue):
                if job.run_id == run_id:
                    self._queue.remove(job)
                    meta = self.runs.meta(run_id)
                    meta.state = "interrupted" if job.resume else "cancelled"
                    self.runs.save_meta(meta)
                    return meta.state
        raise BadScan("the run is neither queued nor running")

    def resume(self, run_id: str) -> None:
        meta = self.runs.meta(run_id)
        if meta.origin != "ui" or meta.state not in ("interrupted", "cancelled"):
            raise BadScan("only an interrupted scan started here can be resumed")
        with self._lock:
            if any(job.run_id == run_id for job in self._queue) or run_id in self._running:
                raise BadScan("already queued")
            meta.state = "queued"
            self.runs.save_meta(meta)
            self._queue.append(_Job(run_id, resume=True))
            self._lock.notify()

    def queued(self) -> list[str]:
        with self._lock:
            return [job.run_id for job in self._queue]

    def running(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Interrupt running scans (valid outputs, resumable) and stop the workers."""
        with self._lock:
            self._stopping = True
            processes = list(self._running.values())
            self._lock.notify_all()
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)

    # --- the work --------------------------------------------------------------------------
    def _argv(self, run_id: str, targets: list[str], options: list[str], resume: bool
              ) -> list[str]:
        scan = ["scan", *options, "-f", "jsonl", "-o", str(self.runs.jsonl(run_id, False)),
                "--summary", str(self.runs.summary_path(run_id)), "--no-progress"]
        if resume:
            scan.append("--resume")
        scan += ["--", *targets]
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                self.parse(scan)
        except SystemExit as exc:
            lines = stderr.getvalue().strip().splitlines()
            raise BadScan(lines[-1] if lines else "invalid options") from exc
        return [sys.executable, "-P", "-m", "batchscan.ui.runner",
                str(self.runs.progress_path(run_id)), *scan]

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
            self._run(job)

    def _run(self, job: _Job) -> None:
        meta = self.runs.meta(job.run_id)
        argv = self._argv(job.run_id, meta.targets, meta.options, job.resume)
        self.runs.progress_path(job.run_id).unlink(missing_ok=True)
        meta.state = "running"
        meta.started = meta.started or now_rfc3339()
        meta.resumes += int(job.resume)
        meta.summary = None
        self.runs.save_meta(meta)
        log = self.runs.cache_dir / f"{job.run_id}.stderr"
        with open(log, "ab") as errors:
            # A session of its own: Ctrl-C on the UI's terminal reaches the scans only through
            # shutdown(), which interrupts them one by one.
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errors,
                                       stderr=errors, start_new_session=True,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
            with self._lock:
                self._running[job.run_id] = process
            code = process.wait()
        with self._lock:
            self._running.pop(job.run_id, None)
            self._cancelled.discard(job.run_id)
        meta = self.runs.meta(job.run_id)
        meta.exit_code = code
        meta.ended = now_rfc3339()
        meta.summary = None
        if code == EXIT_INTERRUPTED:
            meta.state = "interrupted"
        elif code in (0, 1, 2) and self.runs.read_summary(job.run_id) is not None:
            meta.state = "finished"
        else:
            meta.state = "failed"
        self.runs.save_meta(meta)
        if self.on_end is not None and self.runs.jsonl(job.run_id, False).is_file():
            with contextlib.suppress(Exception):
                self.on_end(job.run_id)
