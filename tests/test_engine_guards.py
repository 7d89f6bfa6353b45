"""Each guard with real worker processes: timeout, memory limit, SIGKILL, segfault, bugs.

Fault files are only honoured because `fault_injection=True` is set on the coordinator
(workers/faults.py); each test checks that exactly the guilty file gets the failure record
while every other file gets its real result.
"""

from __future__ import annotations

import pickle
import re
import socket
import time
from pathlib import Path

import pytest

from batchscan.config import ScanConfig
from batchscan.coordinator import Engine
from batchscan.records import ScanRecord, Status

pytestmark = pytest.mark.sandbox

MIB = 1024 * 1024


def make_tree(tmp_path: Path, fault: str | None, benign: int = 12) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    for i in range(benign):
        (root / f"ok_{i:02d}.pkl").write_bytes(pickle.dumps({"i": i, "v": [1.5] * 50}, 4))
    (root / "evil.pkl").write_bytes(
        b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."
    )
    if fault is not None:
        (root / "fault.bin").write_bytes(b"BATCHSCAN-FAULT " + fault.encode())
    return root


def run(root: Path, **overrides: object) -> dict[str, ScanRecord]:
    settings: dict[str, object] = {"jobs": 2, "timeout": 3.0, "fault_injection": True,
                                   "memory_limit": 512 * MIB}
    settings.update(overrides)
    engine = Engine(ScanConfig(**settings))  # type: ignore[arg-type]
    records = {Path(r.path).name: r for r in engine.run([str(root)])}
    return records


def assert_others_real(records: dict[str, ScanRecord], benign: int = 12) -> None:
    for i in range(benign):
        rec = records[f"ok_{i:02d}.pkl"]
        assert rec.status is Status.CLEAN and rec.sha256 is not None and rec.format == "pickle"
    evil = records["evil.pkl"]
    assert evil.status is Status.FINDINGS and evil.max_severity is not None
    assert evil.max_severity.value == "error"


def test_one_record_per_file_and_none_lost(tmp_path: Path) -> None:
    root = make_tree(tmp_path, None, benign=300)
    records = run(root, batch_files=7)
    assert len(records) == 301
    assert_others_real(records, benign=300)


def test_hung_scanner_is_killed_at_the_timeout(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "sleep 600")
    started = time.monotonic()
    records = run(root, timeout=2.0)
    elapsed = time.monotonic() - started
    assert records["fault.bin"].status is Status.TIMEOUT
    assert "timeout" in (records["fault.bin"].error or "")
    assert_others_real(records)
    # batch attempt (<= 2 s) + solo attempt (2 s) + kill/respawn slack, far below 600 s
    assert elapsed < 30


def test_memory_limit_gives_oom_record(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "allocate 1024")
    records = run(root, memory_limit=256 * MIB)
    assert records["fault.bin"].status is Status.OOM
    assert_others_real(records)


def test_sigkilled_worker_gives_crashed_record(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "sigkill")
    records = run(root)
    fault = records["fault.bin"]
    assert fault.status is Status.CRASHED and "SIGKILL" in (fault.error or "")
    assert_others_real(records)


def test_segfaulting_worker_gives_crashed_record(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "segfault")
    records = run(root)
    fault = records["fault.bin"]
    assert fault.status is Status.CRASHED and "SIGSEGV" in (fault.error or "")
    assert_others_real(records)


def test_scanner_bug_gives_error_record(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "raise")
    records = run(root)
    fault = records["fault.bin"]
    assert fault.status is Status.ERROR and "invalid fault" in (fault.error or "")
    assert "RuntimeError" not in (fault.error or "")  # no internal exception names (issue 14)
    assert_others_real(records)


def test_several_crashes_in_one_run(tmp_path: Path) -> None:
    root = make_tree(tmp_path, "segfault")
    (root / "fault2.bin").write_bytes(b"BATCHSCAN-FAULT sigkill")
    (root / "fault3.bin").write_bytes(b"BATCHSCAN-FAULT allocate 2048")
    records = run(root, memory_limit=256 * MIB)
    assert records["fault.bin"].status is Status.CRASHED
    assert records["fault2.bin"].status is Status.CRASHED
    assert records["fault3.bin"].status is Status.OOM
    assert_others_real(records)


def test_watchdog_rebuilds_a_pool_that_stops_making_progress(tmp_path: Path) -> None:
    # stall_grace < 0 makes the watchdog fire before pebble's own timeout would.
    root = make_tree(tmp_path, "sleep 600", benign=3)
    engine = Engine(ScanConfig(jobs=1, timeout=8.0, stall_grace=-6.5, fault_injection=True))
    records = {Path(r.path).name: r for r in engine.run([str(root)])}
    assert engine.stats.pool_rebuilds >= 2
    assert records["fault.bin"].status is Status.CRASHED
    assert "stalled" in (records["fault.bin"].error or "")
    assert_others_real(records, benign=3)


def test_sandbox_limits_are_in_force_in_the_worker(tmp_path: Path) -> None:
    """The kernel's limits table of a worker (/proc/self/limits read inside it), not the
    sandbox's own status strings."""
    root = make_tree(tmp_path, "escape self", benign=0)
    (root / "limits.bin").write_bytes(b"BATCHSCAN-FAULT escape read-limits")
    records = run(root, jobs=1)
    text = records["limits.bin"].findings[0].message.split(": ", 1)[1]
    soft = {}
    for line in text.splitlines()[1:]:
        name, value, *_ = re.split(r"\s{2,}", line.strip())
        soft[name] = value
    assert soft["Max file size"] == "0" and soft["Max core file size"] == "0", soft
    assert soft["Max data size"] == str(512 * MIB), soft
    assert soft["Max open files"] == "512", soft
    assert soft["Max cpu time"] != "unlimited", soft  # set per batch from -t


def test_workers_cannot_reach_the_network(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        root = make_tree(tmp_path, f"connect {port}", benign=1)
        engine = Engine(ScanConfig(jobs=1, fault_injection=True))
        records = {Path(r.path).name: r for r in engine.run([str(root)])}
    message = records["fault.bin"].findings[0].message
    if engine.stats.sandbox.get("network") != "isolated":
        pytest.skip(f"kernel refused a network namespace: {engine.stats.sandbox['network']}")
    assert "blocked" in message, message


def test_workers_cannot_write_files(tmp_path: Path) -> None:
    """Neither a new file nor an existing one: nothing created, not even empty, and the
    existing file's bytes unchanged (RLIMIT_FSIZE alone allowed both to be emptied)."""
    target = tmp_path / "written-by-worker"
    existing = tmp_path / "existing"
    existing.write_bytes(b"precious")
    root = make_tree(tmp_path, f"write {target}", benign=1)
    (root / "fault2.bin").write_bytes(b"BATCHSCAN-FAULT write " + str(existing).encode())
    run(root)
    assert not target.exists()
    assert existing.read_bytes() == b"precious"


def test_large_files_hashed_beside_the_scan_by_the_coordinator(tmp_path: Path) -> None:
    """Files over `coordinator_hash_from` are hashed by coordinator threads while a worker
    scans them: same sha256 as hashlib, findings intact, and a timeout still wins."""
    import hashlib

    root = make_tree(tmp_path, "sleep 600", benign=12)
    records = run(root, small_file=16, coordinator_hash_from=16, inflight_per_worker=1)
    assert_others_real(records)
    for name, record in records.items():
        if record.status is not Status.TIMEOUT:
            assert record.sha256 == hashlib.sha256((root / name).read_bytes()).hexdigest()
    assert records["fault.bin"].status is Status.TIMEOUT


def test_a_hash_stuck_past_the_timeout_is_a_timeout_record_with_its_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that never returns (a hung network mount) in a coordinator hash thread."""
    from concurrent.futures import Future

    from batchscan import hashing

    monkeypatch.setattr(hashing, "start", lambda path, *walk: Future())
    root = make_tree(tmp_path, None, benign=3)
    started = time.monotonic()
    records = run(root, timeout=1.5, small_file=16, coordinator_hash_from=16)
    assert time.monotonic() - started < 30
    assert {r.status for r in records.values()} == {Status.TIMEOUT}
    evil = records["evil.pkl"]
    assert evil.max_severity is not None and evil.max_severity.value == "error"
    assert evil.error is not None and "sha256 not finished" in evil.error
