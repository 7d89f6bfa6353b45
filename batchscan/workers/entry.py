"""The function the pool schedules, importable without loading any scanner.

pebble pickles `scan_batch` by name, so the coordinator must import the module that defines
it. This one imports `batchscan.workers.task` only when it runs: in a worker, where the
forkserver has already imported the task with every scanner. The coordinator process never
pays for importing the scanners itself.
"""

from __future__ import annotations

from batchscan.workers.jobs import BatchResult, Job, WorkerOptions


def scan_batch(jobs: list[Job], options: WorkerOptions) -> BatchResult:
    """The pool's entry point: scan a batch in this (worker) process."""
    from batchscan.workers import task

    return task.scan_batch(jobs, options)
