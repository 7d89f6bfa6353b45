"""What the coordinator sends to workers and gets back: light types, no scanner imported.

The function the pool schedules is `batchscan.workers.entry.scan_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batchscan.records import FileResult
from batchscan.workers.base import Limits


@dataclass(frozen=True, slots=True)
class Job:
    path: str  # what to open
    name: str | None = None  # the name users know it by (a cache blob's snapshot file name)
    hash: bool = True  # False: the coordinator hashes this (large) file itself
    walk_from: int | None = None  # where the walked part of `path` starts (safeopen.py)
    follow: bool = False  # --follow-symlinks always: walked components may be links


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    hash: bool = True
    verbose: bool = False
    blacklist: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    fault_injection: bool = False
    cache_path: str | None = None  # read-only results cache (batchscan/cache.py)
    cache_rules: str = ""


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: tuple[FileResult, ...]
    sandbox: tuple[tuple[str, str], ...]
    pid: int
