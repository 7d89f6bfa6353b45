"""Run configuration: one frozen object the CLI builds and the library API accepts."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from batchscan.workers.base import Limits

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*\Z")


def parse_size(text: str) -> int:
    """`500MB` (decimal), `2GiB` (binary), `1048576` (bytes)."""
    match = _SIZE.match(text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 500MB, 2GiB or a byte count)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@dataclass(frozen=True, slots=True)
class ScanConfig:
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout: float = 300.0
    memory_limit: int | None = 4 * 1024**3
    max_file_size: int | None = None
    hash: bool = True
    verbose: bool = False
    blacklist: tuple[str, ...] = ()
    follow_symlinks: str = "args"
    one_file_system: bool = False
    max_depth: int | None = None
    limits: Limits = field(default_factory=Limits)
    sandbox: bool = True
    # engine tuning (documented in README; defaults measured on a 2-core machine)
    small_file: int = 1024 * 1024
    batch_files: int = 64
    batch_bytes: int = 8 * 1024 * 1024
    batch_timeout_cap: float = 30.0
    inflight_per_worker: int = 2
    coordinator_hash_from: int = 64 * 1024 * 1024  # larger files: hashed beside the scan
    stall_grace: float = 30.0
    fault_injection: bool = False
    cache_dir: str | None = None
    download_dir: str | None = None  # scratch for hub files (default: the system temp dir)
    max_download_bytes: int | None = None  # disk budget of hub files downloaded at once
