"""Run a command and measure it: wall time, CPU time, and peak RSS per process of its tree.

`ru_maxrss` of children is unreliable for this (a forked child briefly shows its parent's
RSS before exec, and grandchildren such as pool workers are not waited by us), so the tree
under the command is sampled from /proc every 20 ms instead.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO


@dataclass
class Measured:
    wall: float
    cpu: float
    returncode: int
    stdout: bytes
    stderr: bytes
    peak_root_kib: int = 0  # the command's own process (batchscan's coordinator)
    peak_other_kib: int = 0  # the largest descendant (a worker, the forkserver)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (t, root RSS KiB)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def rss_kib(pid: int) -> int:
    """Resident set size of a process from /proc, 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far (its own, not its reaped children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(cmd: list[str], *, env: dict[str, str] | None = None) -> Measured:
    """Run `cmd` to completion; its stdout and stderr go through temporary files (a pipe that
    nobody reads while we poll /proc would block a chatty command)."""
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        return _run(cmd, env, out_file, err_file)


def _run(cmd: list[str], env: dict[str, str] | None, out_file: BinaryIO,
         err_file: BinaryIO) -> Measured:
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file, env=env)
    peak_root = peak_other = 0
    samples: list[tuple[float, int]] = []
    cpu_seen: dict[int, float] = {}  # last CPU time seen per process of the tree
    while proc.poll() is None:
        root = rss_kib(proc.pid)
        peak_root = max(peak_root, root)
        samples.append((time.perf_counter() - start, root))
        cpu_seen[proc.pid] = cpu_seconds(proc.pid) or cpu_seen.get(proc.pid, 0.0)
        stack = _children(proc.pid)
        while stack:
            child = stack.pop()
            peak_other = max(peak_other, rss_kib(child))
            cpu_seen[child] = max(cpu_seen.get(child, 0.0), cpu_seconds(child))
            stack.extend(_children(child))
        time.sleep(0.02)
    proc.wait()
    wall = time.perf_counter() - start
    out_file.seek(0)
    err_file.seek(0)
    out, err = out_file.read(), err_file.read()
    after = os.times()
    # Children reaped by us are counted by os.times; pool workers reaped by a forkserver are
    # not, so the /proc samples of every process seen (a lower bound) are the fallback.
    cpu = max((after.children_user - before.children_user)
              + (after.children_system - before.children_system), sum(cpu_seen.values()))
    return Measured(wall, cpu, proc.returncode, out, err, peak_root, peak_other, samples)
