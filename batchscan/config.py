"""Run configuration: one frozen object the CLI builds and the library API accepts."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

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


def _quota(quota: str, period: str) -> float | None:
    """CPUs allowed by one quota/period pair (None: unlimited or unreadable)."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None  # "max" (v2 unlimited) or garbage
    return q / p if q > 0 and p > 0 else None  # v1 uses -1 for unlimited


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cgroup_quota(root: Path, proc_cgroup: Path) -> float | None:
    """The tightest CPU quota of this process's cgroup and its ancestors (v2 `cpu.max`,
    v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`); None when there is none."""
    own: dict[str, str] = {}  # controller list ("" for v2) -> the process's cgroup path
    for line in (_read(proc_cgroup) or "").splitlines():
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        own[controllers] = path
    dirs: list[tuple[Path, bool]] = []  # (directory, is v2)
    v2_rel = own.get("", "/")
    dirs.extend(_ancestors(root, v2_rel, True))
    for controllers, rel in own.items():
        if "cpu" in controllers.split(","):
            for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                dirs.extend(_ancestors(mount, rel, False))
    best: float | None = None
    for directory, v2 in dirs:
        if v2:
            quota, _, period = (_read(directory / "cpu.max") or "").partition(" ")
            cpus = _quota(quota, period or "100000")
        else:
            cpus = _quota(_read(directory / "cpu.cfs_quota_us") or "",
                          _read(directory / "cpu.cfs_period_us") or "")
        if cpus is not None and (best is None or cpus < best):
            best = cpus
    return best


def _ancestors(mount: Path, rel: str, v2: bool) -> list[tuple[Path, bool]]:
    """`mount/rel` and each parent up to `mount` (a nested cgroup's parents may cap it)."""
    parts = [part for part in rel.split("/") if part and part not in (".", "..")]
    return [(mount.joinpath(*parts[:n]), v2) for n in range(len(parts), -1, -1)]


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup"),
                   proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup CPU quota
    (rounded up: a quota of 1.5 CPUs keeps 2 workers busy), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


@dataclass(frozen=True, slots=True)
class ScanConfig:
    jobs: int = field(default_factory=available_cpus)
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
