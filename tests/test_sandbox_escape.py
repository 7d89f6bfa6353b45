"""Escapes tried from inside real sandboxed workers, judged by their effect.

Each fault file (`BATCHSCAN-FAULT escape ...`, workers/faults.py) runs one escape in a pool
worker, as a compromised parser would. The tests never trust the probe's own words: they look
at the victim file's bytes, mode and name, at listeners that must see no connection, at
processes that must still be alive, at memory that must not appear in the output, at the
output that must not be forged. Each effect test has a control run with the sandbox off,
where the same probe does change the victim: so the test would fail without the sandbox.
Unprivileged runs use `setpriv` to become nobody (65534), skipped where that is impossible.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchscan.config import ScanConfig
from batchscan.coordinator import Engine
from batchscan.records import ScanRecord, Status

pytestmark = pytest.mark.sandbox

FILE_ESCAPES = ("create", "truncate", "open-truncate", "unlink", "rename", "chmod",
                "mmap-write")
NOBODY = 65534


def fault(root: Path, name: str, escape: str) -> None:
    (root / name).write_bytes(b"BATCHSCAN-FAULT escape " + escape.encode())


def scan(root: Path, sandbox: bool = True, jobs: int = 1) -> dict[str, ScanRecord]:
    engine = Engine(ScanConfig(jobs=jobs, timeout=10.0, fault_injection=True, sandbox=sandbox,
                               batch_files=1, memory_limit=512 * 1024 * 1024))
    records = {Path(r.path).name: r for r in engine.run([str(root)])}
    if sandbox:
        assert engine.stats.sandbox, "no worker reported its sandbox"
    return records


def text_of(records: dict[str, ScanRecord]) -> str:
    return json.dumps([r.to_dict() if hasattr(r, "to_dict") else repr(r)
                       for r in records.values()])


def victims(base: Path) -> dict[str, Path]:
    """One victim per file escape, each in a folder anyone may write (for the nobody runs)."""
    base.mkdir(mode=0o777, exist_ok=True)
    base.chmod(0o777)
    made = {}
    for action in FILE_ESCAPES:
        victim = base / f"victim-{action}"
        victim.write_bytes(b"precious bytes of " + action.encode())
        victim.chmod(0o666)
        made[action] = victim
    return made


def file_escapes(root: Path, made: dict[str, Path]) -> None:
    for action, victim in made.items():
        target = victim.parent / "created-by-worker" if action == "create" else victim
        fault(root, f"{action}.bin", f"{action} {target}")


def changed(base: Path, made: dict[str, Path]) -> list[str]:
    found = []
    if (base / "created-by-worker").exists():
        found.append("create")
    for action, victim in made.items():
        if action == "create":
            continue
        if not victim.exists() or victim.read_bytes() != b"precious bytes of " + \
                action.encode() or stat.S_IMODE(victim.stat().st_mode) != 0o666:
            found.append(action)
    if any(base.glob("*.moved")):
        found.append("rename")
    return sorted(set(found))


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandboxed", "control"])
def test_file_modifications_outside_the_worker_fail(tmp_path: Path, sandbox: bool) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    base = tmp_path / "victims"
    made = victims(base)
    file_escapes(root, made)
    records = scan(root, sandbox=sandbox)
    assert len(records) == len(FILE_ESCAPES)
    if sandbox:
        assert changed(base, made) == []
    else:  # the probe does damage when nothing stops it: the sandboxed result means something
        assert changed(base, made) == sorted(FILE_ESCAPES)


@contextlib.contextmanager
def listeners(tmp_path: Path) -> Iterator[dict[str, socket.socket]]:
    path = tmp_path / "listener.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(path))
    unix.listen(8)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0batchscan-test-{os.getpid()}")
    abstract.listen(8)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    socks = {"unix": unix, "abstract": abstract, "tcp": tcp}
    try:
        yield socks
    finally:
        for sock in socks.values():
            sock.close()


def accepted(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        conn, _ = sock.accept()
    except TimeoutError:
        return False
    conn.close()
    return True


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandboxed", "control"])
def test_connections_fail(tmp_path: Path, sandbox: bool) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    with listeners(tmp_path) as socks:
        fault(root, "unix.bin", f"unix {tmp_path / 'listener.sock'}")
        fault(root, "abstract.bin", f"abstract batchscan-test-{os.getpid()}")
        fault(root, "tcp.bin", f"tcp {socks['tcp'].getsockname()[1]}")
        scan(root, sandbox=sandbox)
        reached = sorted(name for name, sock in socks.items() if accepted(sock))
    if sandbox:
        assert reached == []
    else:
        # without any sandbox the path-based socket is reachable; the abstract socket and
        # TCP were already cut by the old network namespace, which sandbox=False removes too
        assert "unix" in reached


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandboxed", "control"])
def test_coordinator_cannot_be_signalled_or_read(tmp_path: Path, sandbox: bool) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    secret = b"coordinator-secret-" + os.urandom(6).hex().encode()
    held = ctypes.create_string_buffer(secret)
    caught: list[int] = []
    # Two signals, not one twice: a standard signal sent twice before its handler runs is
    # delivered once, which made the control flaky.
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: caught.append(signum))
    previous2 = signal.signal(signal.SIGUSR2, lambda signum, frame: caught.append(signum))
    try:
        fault(root, "kill.bin", f"kill {os.getpid()} {int(signal.SIGUSR1)}")
        fault(root, "kill-coordinator.bin", f"kill-coordinator {int(signal.SIGUSR2)}")
        fault(root, "memory.bin",
              f"read-memory {os.getpid()} {ctypes.addressof(held)} {len(secret)}")
        records = scan(root, sandbox=sandbox)
        time.sleep(0.1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        signal.signal(signal.SIGUSR2, previous2)
    leaked = secret.decode() in " ".join(f.message for r in records.values()
                                         for f in r.findings)
    if sandbox:
        assert caught == [] and not leaked
    else:
        assert sorted(caught) == sorted([signal.SIGUSR1, signal.SIGUSR2]) and leaked


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandboxed", "control"])
def test_another_worker_cannot_be_killed(tmp_path: Path, sandbox: bool) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "sleeper.bin").write_bytes(b"BATCHSCAN-FAULT sleep 3")
    fault(root, "killer.bin", "kill-siblings 9 1.0")
    records = scan(root, sandbox=sandbox, jobs=2)
    sleeper = records["sleeper.bin"]
    if sandbox:
        assert sleeper.status is Status.FINDINGS
        assert sleeper.findings[0].message == "fault sleep completed"
    else:
        assert sleeper.status is Status.CRASHED


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandboxed", "control"])
def test_execve_fails(tmp_path: Path, sandbox: bool) -> None:
    """A worker that could exec would be replaced by the program: its task never returns."""
    root = tmp_path / "tree"
    root.mkdir()
    fault(root, "exec.bin", f"execve {shutil.which('true') or '/bin/true'}")
    record = scan(root, sandbox=sandbox)["exec.bin"]
    if sandbox:
        assert record.status is Status.FINDINGS
    else:
        assert record.status in (Status.TIMEOUT, Status.CRASHED)


def cli(args: list[str], user: int | None = None, timeout: float = 120,
        ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCHSCAN_FAULT_INJECTION": "1"}
    command = [sys.executable, "-m", "batchscan", *args]
    if user is not None:
        python, extra = NOBODY_PYTHON
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
                   python, "-m", "batchscan", *args]
        env.update(extra, HOME="/nonexistent")
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False, cwd="/")


def test_a_worker_writing_to_stdout_does_not_reach_the_output(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    forged = '{"path":"FORGED","status":"clean"}'
    fault(root, "stdout.bin", "stdout " + forged.replace(" ", "+"))
    result = cli(["scan", str(root), "-f", "jsonl", "-j", "1"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # one line, the real record (its finding quotes the probe's argument, nothing more)
    assert [Path(line["path"]).name for line in lines] == ["stdout.bin"]
    assert '"path":"FORGED"' not in result.stderr


def test_the_kernel_sees_every_layer_in_a_worker(tmp_path: Path) -> None:
    """/proc/self/status and /proc/self/fd, read inside a worker: the kernel's word, not
    the sandbox's own status strings."""
    root = tmp_path / "tree"
    root.mkdir()
    fault(root, "self.bin", "self")
    message = scan(root)["self.bin"].findings[0].message
    facts = dict(item.split("=", 1) for item in message.split(": ", 1)[1].split())
    assert facts["Seccomp"] == "2" and facts["NoNewPrivs"] == "1"
    if os.geteuid() == 0:  # root keeps only CAP_DAC_READ_SEARCH (bit 2)
        for key in ("CapEff", "CapPrm", "CapBnd"):
            assert int(facts[key], 16) == 1 << 2, facts
    assert int(facts["CapAmb"], 16) == 0
    for fd in (0, 1, 2):
        assert facts[f"fd{fd}"] == "/dev/null"
    # 0-2, the channel's two pipe ends, the scanned file, and the listing's own descriptor
    assert len(facts["fds"].split(",")) <= 7, facts["fds"]


def test_workers_die_with_the_coordinator(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "sleeper.bin").write_bytes(b"BATCHSCAN-FAULT sleep 120")
    env = {**os.environ, "BATCHSCAN_FAULT_INJECTION": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "batchscan", "scan", str(root), "-j", "1",
                             "-t", "300"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        workers = []
        deadline = time.monotonic() + 30
        while not workers and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = [pid for pid in descendants(proc.pid) if grandchild(pid, proc.pid)]
        assert workers, "no worker started"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and parent_of(int(p.name)) is not None
            and parent_of(parent_of(int(p.name)) or 0) == pid]


def grandchild(pid: int, ancestor: int) -> bool:
    return parent_of(parent_of(pid) or 0) == ancestor


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


# --- as an unprivileged user -----------------------------------------------------------------
def _nobody_python() -> tuple[tuple[str, dict[str, str]], str | None]:
    """An interpreter nobody can run with this checkout importable: this one, or the system's
    of the same version given the checkout and its venv's packages (a venv whose base
    interpreter lives under /root is unreadable to nobody)."""
    if os.geteuid() != 0:
        return ("", {}), "needs root to switch to the unprivileged user"
    if shutil.which("setpriv") is None:
        return ("", {}), "setpriv is not installed"
    repo = str(Path(__file__).resolve().parent.parent)
    site = next((p for p in sys.path if p.endswith("site-packages")), "")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [(sys.executable, {}),
                  (f"/usr/bin/{version}", {"PYTHONPATH": f"{repo}:{site}"})]
    errors = []
    for python, extra in candidates:
        probe = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python,
             "-c", "import batchscan.cli, pebble, multiprocessing as m; "
                   "p = m.get_context('forkserver').Process(target=int); p.start(); p.join(); "
                   "raise SystemExit(p.exitcode)"],
            capture_output=True, check=False, cwd="/", env={**os.environ, **extra})
        if probe.returncode == 0:
            return (python, extra), None
        errors.append(f"{python}: {probe.stderr.decode(errors='replace')[-120:]}")
    return ("", {}), "no interpreter the unprivileged user can run: " + "; ".join(errors)


NOBODY_PYTHON, NOBODY_SKIP = _nobody_python()


@pytest.mark.skipif(NOBODY_SKIP is not None, reason=str(NOBODY_SKIP))
def test_escapes_fail_as_an_unprivileged_user() -> None:
    base = Path(tempfile.mkdtemp(prefix="batchscan-nobody-"))
    try:
        base.chmod(0o777)
        root = base / "tree"
        root.mkdir()
        made = victims(base / "victims")
        for path in (base / "victims", *made.values()):
            os.chown(path, NOBODY, NOBODY)
        file_escapes(root, made)
        sock_path = base / "victims" / "listener.sock"
        with socket.socket(socket.AF_UNIX) as unix:
            unix.bind(str(sock_path))
            os.chown(sock_path, NOBODY, NOBODY)
            unix.listen(8)
            fault(root, "unix.bin", f"unix {sock_path}")
            fault(root, "coordinator.bin", f"kill-coordinator {int(signal.SIGKILL)}")
            fault(root, "exec.bin", f"execve {shutil.which('true') or '/bin/true'}")
            for path in root.iterdir():
                path.chmod(0o644)
            root.chmod(0o755)
            result = cli(["scan", str(root), "-f", "jsonl", "-j", "2", "-t", "10"], user=NOBODY)
            reached = accepted(unix)
        assert result.returncode != -signal.SIGKILL, "the coordinator was killed"
        records = {Path(line["path"]).name: line for line in map(json.loads,
                                                                  result.stdout.splitlines())}
        assert len(records) == len(FILE_ESCAPES) + 3, result.stderr[-2000:]
        assert changed(base / "victims", made) == []
        assert not reached
        assert records["exec.bin"]["status"] == "findings", json.dumps(records["exec.bin"])
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_doctor_reports_each_layer_applied_in_a_worker() -> None:
    result = subprocess.run([sys.executable, "-m", "batchscan", "doctor"], capture_output=True,
                            text=True, timeout=120, check=False)
    assert "landlock" in result.stdout and "seccomp" in result.stdout
    assert "test scan: clean, as expected" in result.stdout, result.stdout + result.stderr


def test_a_worker_missing_a_required_layer_refuses_to_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed: no seccomp filter (say, an unknown architecture) means no scan at all."""
    from batchscan import sandbox
    from batchscan.workers import task
    from batchscan.workers.jobs import Job, WorkerOptions

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.")
    monkeypatch.setattr(sandbox, "STATUS", {**dict.fromkeys(
        ("no_new_privs", "stdio", "capabilities"), "ok"), "seccomp": "failed: no filter"})
    batch = task.scan_batch([Job(str(evil), "evil.pkl", True)], WorkerOptions())
    assert batch.results[0].error is not None and "seccomp" in batch.results[0].error
    assert batch.results[0].findings == ()


def test_a_worker_can_still_start_threads(tmp_path: Path) -> None:
    """Libraries (py7zr) start threads inside workers; a PID namespace made by unshare
    would forbid that (EINVAL), so the sandbox must not make one."""
    root = tmp_path / "tree"
    root.mkdir()
    fault(root, "thread.bin", "thread")
    record = scan(root)["thread.bin"]
    assert record.findings[0].message.endswith("thread ran")


@pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "control"])
def test_a_worker_cannot_run_code_in_the_coordinator_through_the_result_pipe(
    tmp_path: Path, guarded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compromised worker writes its own pickle to pebble's result pipe. The stock reader
    would unpickle it in the coordinator (the control shows the marker file appear there);
    batchscan's reader refuses it. Each refusal breaks the pool, which aborts every task in
    flight: only the files that break it get `crashed`, every other file its real record."""
    from batchscan import channel

    if not guarded:
        monkeypatch.setattr(channel, "harden", lambda pool: None)
    root = tmp_path / "tree"
    root.mkdir()
    marker = tmp_path / "ran-in-coordinator"
    hostile = {f"channel{k}.bin" for k in range(3)}
    for name in hostile:
        fault(root, name, f"channel {marker}")
    for index in range(300):
        (root / f"data{index:03}.json").write_text('{"a": 1}')
    engine = Engine(ScanConfig(jobs=2, timeout=10.0, fault_injection=True))
    records = {Path(r.path).name: r for r in engine.run([str(root)])}
    time.sleep(0.2)
    if guarded:
        assert not marker.exists()
        assert len(records) == 303
        assert {name for name, r in records.items() if r.status is not Status.CLEAN} == hostile
        for name in hostile:
            assert records[name].status is Status.CRASHED
            assert "refused a message from a worker" in (records[name].error or "")
        assert engine.stats.pool_rebuilds == 0  # no stall: every break was seen at once
    else:
        assert marker.exists()
