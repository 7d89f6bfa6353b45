"""Worker count and pool shutdown: `-j` defaults to the CPUs this process may use, and a
scan prints nothing on stderr after its output (no half-started worker left to die)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batchscan.config import ScanConfig, available_cpus
from batchscan.coordinator import Engine


def fake_cgroup(tmp_path: Path, proc_lines: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc_cgroup"
    proc.write_text(proc_lines)
    return root, proc


def affinity() -> int:
    return len(os.sched_getaffinity(0))


def test_v2_quota_caps_the_affinity(tmp_path: Path) -> None:
    root, proc = fake_cgroup(tmp_path, "0::/user.slice/job\n",
                             {"user.slice/job/cpu.max": "100000 100000\n"})
    assert available_cpus(root, proc) == 1


def test_v2_fractional_quota_rounds_up_and_never_exceeds_affinity(tmp_path: Path) -> None:
    root, proc = fake_cgroup(tmp_path, "0::/job\n", {"job/cpu.max": "150000 100000\n"})
    assert available_cpus(root, proc) == min(2, affinity())
    root, proc = fake_cgroup(tmp_path / "b", "0::/job\n", {"job/cpu.max": "5000000 100000\n"})
    assert available_cpus(root, proc) == affinity()  # 50 CPUs of quota: affinity decides


def test_v2_parent_quota_applies_to_a_nested_cgroup(tmp_path: Path) -> None:
    root, proc = fake_cgroup(tmp_path, "0::/outer/inner\n",
                             {"outer/cpu.max": "50000 100000\n",
                              "outer/inner/cpu.max": "max 100000\n"})
    assert available_cpus(root, proc) == 1


def test_v2_unlimited_and_missing_files_leave_the_affinity(tmp_path: Path) -> None:
    root, proc = fake_cgroup(tmp_path, "0::/job\n", {"job/cpu.max": "max 100000\n"})
    assert available_cpus(root, proc) == affinity()
    root, proc = fake_cgroup(tmp_path / "b", "garbage\n", {})
    assert available_cpus(root, proc) == affinity()
    assert available_cpus(tmp_path / "nowhere", tmp_path / "nothing") == affinity()


def test_v1_cfs_quota(tmp_path: Path) -> None:
    root, proc = fake_cgroup(tmp_path, "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n",
                             {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "100000\n",
                              "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"})
    assert available_cpus(root, proc) == 1
    root, proc = fake_cgroup(tmp_path / "b", "2:cpu,cpuacct:/\n",
                             {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                              "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert available_cpus(root, proc) == affinity()


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) not installed")
def test_affinity_set_by_taskset_is_the_default_jobs() -> None:
    code = ("from batchscan.config import available_cpus, ScanConfig;"
            "print(available_cpus(), ScanConfig().jobs)")
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.split() == ["1", "1"]


def test_cli_default_jobs_follow_the_affinity() -> None:
    """Without -j, the CLI's configuration takes the CPUs taskset leaves (one), not the
    machine's count."""
    if shutil.which("taskset") is None:
        pytest.skip("taskset (util-linux) not installed")
    code = ("from batchscan.cli import build_parser, config_from_args\n"
            "print(config_from_args(build_parser().parse_args(['scan', '.'])).jobs)\n")
    done = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]


def scan_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchscan", "scan", "-f", "jsonl", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_one_file_with_many_jobs_leaves_stderr_empty(tmp_path: Path) -> None:
    target = tmp_path / "one.pkl"
    target.write_bytes(pickle.dumps({"a": 1}))
    for _ in range(30):
        done = scan_cli("-j", "8", str(target))
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert [json.loads(line)["status"] for line in done.stdout.splitlines()] == ["clean"]


def test_tiny_tree_with_many_jobs_leaves_stderr_empty(tmp_path: Path) -> None:
    """Eight large files are eight tasks: eight workers start, some still starting when the
    last record is out; they must be ended before pebble unlinks the channel semaphores."""
    for i in range(8):
        (tmp_path / f"big{i}.pkl").write_bytes(pickle.dumps(b"x" * (2 << 20)))
    for i in range(4):
        (tmp_path / f"small{i}.pkl").write_bytes(pickle.dumps({"a": i}))
    for _ in range(30):
        done = scan_cli("-j", "8", str(tmp_path))
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert len(done.stdout.splitlines()) == 12


def test_pool_starts_only_as_many_workers_as_tasks(tmp_path: Path) -> None:
    target = tmp_path / "one.pkl"
    target.write_bytes(pickle.dumps([1, 2, 3]))
    engine = Engine(ScanConfig(jobs=8))
    seen: list[int] = []
    original = Engine._grow

    def spy(self: Engine, pool: object, tasks: int) -> None:
        original(self, pool, tasks)  # type: ignore[arg-type]
        seen.append(pool._pool_manager.worker_manager.workers_number)  # type: ignore[attr-defined]

    Engine._grow = spy  # type: ignore[method-assign]
    try:
        records = list(engine.run([str(target)]))
    finally:
        Engine._grow = original  # type: ignore[method-assign]
    assert [r.status.value for r in records] == ["clean"]
    assert seen == [1]
