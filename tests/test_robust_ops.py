"""Issue 14, operations: nothing a tree, a name or a signal does stops the run or loses a
record (the walk, HF-cache folders, --resume, the cache, signals, exit codes)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchscan.cachedb import FILENAME
from batchscan.records import Status
from batchscan.sources import hf_cache
from batchscan.sources.local import WalkOptions, walk_target
from batchscan.workers import task
from batchscan.workers.jobs import WorkerOptions
from fixtures.containers import EVIL

pytestmark = pytest.mark.slow
FAULTS = {"BATCHSCAN_FAULT_INJECTION": "1"}


def default_sigint() -> None:
    """A suite run as a background job has SIGINT ignored, and exec keeps that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args: str, env: dict[str, str] | None = None, preexec: Any = None,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchscan", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})},
                          check=False, preexec_fn=preexec)


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def by_path(text: str) -> dict[str, dict[str, Any]]:
    return {r["path"]: r for r in records(text)}


# --- 1. the walk ---------------------------------------------------------------------------

@pytest.fixture
def own_tmp() -> Iterator[Path]:
    """A scratch folder outside pytest's: its clean-up (shutil.rmtree, one recursion per
    level) would crash on a 1,012-level tree in every later pytest session."""
    scratch = Path(tempfile.mkdtemp(prefix="batchscan-deep-"))
    try:
        yield scratch
    finally:
        _remove_deep(scratch / "deep", scratch)
        shutil.rmtree(scratch, ignore_errors=True)


def test_a_tree_1012_levels_deep_walks_under_ulimit_n_1024(own_tmp: Path) -> None:
    tmp_path = own_tmp
    root = tmp_path / "deep"
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    os.mkdir("deep", dir_fd=fd)
    expected = []
    path = str(root)
    for level in range(1012):
        child = os.open("deep" if level == 0 else "d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
        if level % 100 == 0:
            leaf = os.open(f"f{level}.pkl", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(leaf, pickle.dumps(level, 4))
            os.close(leaf)
            expected.append(f"{path}/f{level}.pkl")
        if level == 1011:  # over 1 MiB: submitted alone, so the pool starts down here
            leaf = os.open("big.pkl", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(leaf, pickle.dumps(b"x" * 1_100_000, 4))
            os.close(leaf)
            expected.append(f"{path}/big.pkl")
            break
        os.mkdir("d", dir_fd=fd)
        path += "/d"
    os.close(fd)

    def low_limit() -> None:
        default_sigint()
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    result = cli("scan", str(root), "-f", "jsonl", "-j", "2", preexec=low_limit)
    assert "Too many open files" not in result.stderr
    found = by_path(result.stdout)
    assert sorted(found) == sorted(expected)
    assert all(r["status"] == "clean" for r in found.values()), result.stdout[-600:]
    assert result.returncode == 0


def _remove_deep(root: Path, scratch: Path) -> None:
    """shutil.rmtree (and pytest's clean-up) recurse once per level: hoist level by level."""
    current = root
    if not current.is_dir():
        return
    for level in range(100_000):
        if not (current / "d").is_dir():
            break
        hoisted = scratch / f"hoisted{level}"
        (current / "d").rename(hoisted)
        shutil.rmtree(current)
        current = hoisted
    shutil.rmtree(current)


def _make_long_path(base: Path, levels: int) -> str:
    """A directory chain whose path is longer than PATH_MAX (4096), built with openat."""
    name = "n" * 250
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    path = str(base)
    for _ in range(levels):
        os.mkdir(name, dir_fd=fd)
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
        path += "/" + name
    with open("evil.pkl", "wb", opener=lambda n, f: os.open(n, f, dir_fd=fd)) as handle:
        handle.write(EVIL)
    os.close(fd)
    return path + "/evil.pkl"


def test_a_path_longer_than_path_max_is_scanned(tmp_path: Path) -> None:
    target = _make_long_path(tmp_path, 20)
    assert len(target) > 4096
    result = cli("scan", str(tmp_path), "-f", "jsonl", "-j", "1")
    found = by_path(result.stdout)
    assert list(found) == [target]
    assert found[target]["status"] == "findings" and found[target]["max_severity"] == "error"
    assert result.returncode == 1


def test_a_directory_swapped_for_a_symlink_mid_walk_is_not_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.pkl").write_bytes(EVIL)
    root = tmp_path / "root"
    (root / "inner").mkdir(parents=True)
    (root / "inner" / "ok.pkl").write_bytes(pickle.dumps(1, 4))
    real = hf_cache.is_cache_repo

    def swap(path: str) -> bool:  # runs after the walk's stat of the entry, before its open
        if path.endswith("/inner") and not os.path.islink(path):
            os.rename(path, path + ".moved")
            os.symlink(outside, path)
        return real(path)

    monkeypatch.setattr(hf_cache, "is_cache_repo", swap)
    items = list(walk_target(str(root), WalkOptions()))
    assert not any("secret" in item.path for item in items)
    [item] = items
    assert item.path == str(root / "inner") and item.decided is Status.ERROR


def test_a_worker_does_not_follow_a_directory_swapped_after_the_walk(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.pkl").write_bytes(EVIL)
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "model.pkl").write_bytes(pickle.dumps({"ok": 1}, 4))
    [item] = walk_target(str(root), WalkOptions())
    (root / "sub").rename(root / "sub.moved")
    (root / "sub").symlink_to(outside)
    result = task.scan_file(item.path, WorkerOptions(), walk_from=item.walk_from,
                            follow=item.follow)
    assert not result.findings and result.error is not None


# --- 2. HF-cache folders -----------------------------------------------------------------

def _hf_repo(base: Path) -> Path:
    repo = base / "hub" / "models--org--name"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "aaa").write_bytes(pickle.dumps({"weights": [1, 2]}, 4))
    for commit in ("c1", "c2", "c3"):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "model.bin").symlink_to("../../blobs/aaa")
    return repo


def test_every_file_inside_an_hf_cache_folder_gets_a_record(tmp_path: Path) -> None:
    repo = _hf_repo(tmp_path)
    (repo / "evil.pkl").write_bytes(EVIL)
    (repo / "extra" / "deeper").mkdir(parents=True)
    (repo / "extra" / "deeper" / "evil2.pkl").write_bytes(EVIL)
    (repo / "snapshots" / "stray.pkl").write_bytes(EVIL)
    (repo / "blobs" / "sub").mkdir()
    (repo / "blobs" / "sub" / "hidden.pkl").write_bytes(EVIL)
    result = cli("scan", str(tmp_path / "hub"), "-f", "jsonl", "-j", "1")
    found = by_path(result.stdout)
    for hidden in (repo / "evil.pkl", repo / "extra" / "deeper" / "evil2.pkl",
                   repo / "snapshots" / "stray.pkl", repo / "blobs" / "sub" / "hidden.pkl"):
        assert found[str(hidden)]["max_severity"] == "error", sorted(found)
    assert result.returncode == 1


def test_hf_cache_aliases_get_records_whatever_the_status(tmp_path: Path) -> None:
    _hf_repo(tmp_path)
    result = cli("scan", str(tmp_path / "hub"), "-f", "jsonl", "--max-file-size", "10")
    names = {f"hf://org/name@{c}/model.bin" for c in ("c1", "c2", "c3")}
    found = by_path(result.stdout)
    assert names <= set(found)
    assert {found[n]["status"] for n in names} == {"too_large"}


def test_hf_cache_aliases_lost_mid_burst_come_back_on_resume(tmp_path: Path) -> None:
    _hf_repo(tmp_path)
    out = tmp_path / "run.jsonl"
    first = cli("scan", str(tmp_path / "hub"), "-f", "jsonl", "-o", str(out), "-j", "1")
    assert first.returncode == 0
    full = out.read_bytes().splitlines(keepends=True)
    # a run stopped after the blob's first record: the aliases were never written
    out.write_bytes(b"".join(line for line in full if b"@c2/" not in line
                             and b"@c3/" not in line))
    cli("scan", str(tmp_path / "hub"), "-f", "jsonl", "-o", str(out), "--resume", "-j", "1")
    paths = [r["path"] for r in records(out.read_text())]
    assert sorted(paths) == sorted(r["path"] for r in records(b"".join(full).decode()))


# --- 3. --resume -----------------------------------------------------------------------------

@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    for i in range(5):
        (root / f"w{i}.pkl").write_bytes(pickle.dumps({"i": i}, 4))
    return root


def test_a_future_mtime_is_not_appended_again_on_every_resume(small_tree: Path,
                                                              tmp_path: Path) -> None:
    future = time.time() + 10 * 365 * 86400
    os.utime(small_tree / "w1.pkl", (future, future))
    out = tmp_path / "run.jsonl"
    command = ("scan", str(small_tree), "-f", "jsonl", "-o", str(out), "--resume", "-j", "1")
    cli(*command)
    cli(*command)
    cli(*command)
    paths = [r["path"] for r in records(out.read_text())]
    assert len(paths) == len(set(paths)) == 5


def test_a_second_run_cannot_append_to_an_output_in_use(small_tree: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    out.write_bytes(b"")
    with out.open("ab") as holder:  # another run holds the output
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        result = cli("scan", str(small_tree), "-f", "jsonl", "-o", str(out), "--resume")
        plain = cli("scan", str(small_tree), "-f", "jsonl", "-o", str(out))
    assert result.returncode == plain.returncode == 2
    assert "another batchscan run" in result.stderr and "Traceback" not in result.stderr
    assert out.read_bytes() == b""


def test_a_resumed_run_reports_and_exits_on_the_whole_output(small_tree: Path,
                                                             tmp_path: Path) -> None:
    (small_tree / "evil.pkl").write_bytes(EVIL)
    out, summary = tmp_path / "run.jsonl", tmp_path / "summary.json"
    first = cli("scan", str(small_tree), "-f", "jsonl", "-o", str(out))
    assert first.returncode == 1
    again = cli("scan", str(small_tree), "-f", "jsonl", "-o", str(out), "--resume",
                "--summary", str(summary))
    assert again.returncode == 1  # the ERROR finding is in the checkpoint
    document = json.loads(summary.read_text())
    assert document["files"] == 6 and document["by_severity"]["error"] >= 1


def test_retry_failed_scans_failed_records_again_and_replaces_them(small_tree: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    cli("scan", str(small_tree), "-f", "jsonl", "-o", str(out))
    lines = records(out.read_text())
    lines[2].update(status="crashed", error="worker died with SIGSEGV")
    out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    kept = cli("scan", str(small_tree), "-f", "jsonl", "-o", str(out), "--resume")
    assert kept.returncode == 2  # a crashed record is kept without --retry-failed
    retried = cli("scan", str(small_tree), "-f", "jsonl", "-o", str(out), "--resume",
                  "--retry-failed")
    assert retried.returncode == 0, retried.stderr
    final = records(out.read_text())
    assert sorted(r["path"] for r in final) == sorted(str(p) for p in small_tree.iterdir())
    assert {r["status"] for r in final} == {"clean"}


# --- 4. the results cache -----------------------------------------------------------------

def test_a_cache_locked_by_another_run_costs_no_record(small_tree: Path,
                                                       tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cli("scan", str(small_tree), "-f", "jsonl", "--cache", str(cache))
    (small_tree / "new.pkl").write_bytes(EVIL)
    other = sqlite3.connect(cache / FILENAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another run stuck in the middle of a write
    try:
        started = time.monotonic()
        result = cli("scan", str(small_tree), "-f", "jsonl", "--cache", str(cache), "-j", "1")
        elapsed = time.monotonic() - started
    finally:
        other.rollback()
        other.close()
    assert len(records(result.stdout)) == 6, result.stderr
    assert result.returncode == 1 and elapsed < 25
    assert "Traceback" not in result.stderr


def test_two_runs_sharing_a_cache_both_finish(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(400):
        (root / f"f{i}.pkl").write_bytes(pickle.dumps({"n": i, "pad": "x" * i}, 4))
    command = [sys.executable, "-m", "batchscan", "scan", str(root), "-f", "jsonl",
               "--cache", str(tmp_path / "cache"), "-j", "1"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-500:]
        assert len(records(stdout.decode())) == 400


def test_the_cache_key_covers_the_name_the_blacklist_and_verbose(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    yaml_payload = b"x: !!python/object/apply:os.system ['true']\n"
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "notes.txt").write_bytes(yaml_payload)
    (second / "config.yaml").write_bytes(yaml_payload)
    cli("scan", str(first), "-f", "jsonl", "--cache", str(cache))
    named = by_path(cli("scan", str(second), "-f", "jsonl", "--cache", str(cache)).stdout)
    assert named[str(second / "config.yaml")]["format"] == "yaml"
    assert named[str(second / "config.yaml")]["max_severity"] == "error"

    (first / "model.pkl").write_bytes(pickle.dumps({"ok": 1}, 4))
    cli("scan", str(first / "model.pkl"), "-f", "jsonl", "--cache", str(cache))
    flagged = records(cli("scan", str(first / "model.pkl"), "-f", "jsonl", "--cache",
                          str(cache), "-b", "model").stdout)
    assert "ENG003" in {f["rule_id"] for f in flagged[0]["findings"]}

    data = tmp_path / "c"
    data.mkdir()
    (data / "m.pkl").write_bytes(pickle.dumps({"a": [1, 2, 3]}, 4))
    cli("scan", str(data), "-f", "jsonl", "--cache", str(cache))
    loud = records(cli("scan", str(data), "-f", "jsonl", "--cache", str(cache), "-v").stdout)
    assert loud[0]["cached"] is False  # -v keeps DEBUG findings: not the quiet run's result
    again = records(cli("scan", str(data), "-f", "jsonl", "--cache", str(cache), "-v").stdout)
    assert again[0]["cached"] is True


# --- 5. signals ------------------------------------------------------------------------------

def _slow_tree(root: Path, slow: int = 4) -> None:
    root.mkdir()
    for i in range(30):
        (root / f"f{i:02d}.pkl").write_bytes(pickle.dumps([i], 4))
    for i in range(slow):
        (root / f"slow{i}.bin").write_bytes(b"BATCHSCAN-FAULT sleep 20 " + b" " * 1_100_000)


def test_repeated_ctrl_c_exits_130_with_a_valid_json_document(tmp_path: Path) -> None:
    root = tmp_path / "slow"
    _slow_tree(root)
    for trial in range(4):
        out = tmp_path / f"run{trial}.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "batchscan", "scan", str(root), "-f", "json", "-o",
             str(out), "-j", "2", "--no-progress"], env={**os.environ, **FAULTS},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=default_sigint)
        time.sleep(2.0 + trial * 0.3)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and process.poll() is None:
            process.send_signal(signal.SIGINT)  # impatient Ctrl-C, over and over
            time.sleep(0.01)
        assert process.wait(timeout=30) == 130
        stderr = process.stderr.read().decode() if process.stderr else ""
        assert "Traceback" not in stderr and "release unlocked lock" not in stderr
        document = json.loads(out.read_text())
        assert document["summary"]["interrupted"] is True


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task_dir in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task_dir / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "?"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigkill_of_the_coordinator_leaves_nothing_running(tmp_path: Path) -> None:
    root = tmp_path / "slow"
    _slow_tree(root)
    process = subprocess.Popen(
        [sys.executable, "-m", "batchscan", "scan", str(root), "-f", "jsonl", "-j", "2",
         "-t", "60", "--no-progress"], env={**os.environ, **FAULTS},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        children: set[int] = set()
        while time.monotonic() < deadline and len(children) < 3:  # forkserver + 2 workers
            time.sleep(0.2)
            children = _descendants(process.pid)
        assert len(children) >= 3
        process.kill()  # the coordinator only
        process.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.1)
        survivors = {p: _cmdline(p) for p in children if _alive(p)}
        assert not survivors
    finally:
        for pid in _descendants(process.pid) | {process.pid}:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


# --- 6. exit codes -------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("--shard", "3/3"),
    ("--resume",),
    ("--retry-failed",),
    ("-o", "/"),
    ("-f", "jsonl", "-o", "/dev/full"),
    ("-o", "/nonexistent-dir/out.jsonl"),
    ("--summary", "/nonexistent-dir/summary.json"),
])
def test_usage_and_output_faults_exit_2_with_one_line(small_tree: Path,
                                                      args: tuple[str, ...]) -> None:
    result = cli("scan", str(small_tree), "-j", "1", *args)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("batchscan: ")


def test_a_bad_summary_path_is_refused_before_the_scan(small_tree: Path) -> None:
    (small_tree / "slow.bin").write_bytes(b"BATCHSCAN-FAULT sleep 20 " + b" " * 1_100_000)
    started = time.monotonic()
    result = cli("scan", str(small_tree), "--summary", "/nonexistent-dir/s.json", env=FAULTS)
    assert result.returncode == 2 and time.monotonic() - started < 10
