"""Fault injection for the engine's own tests: files that make a worker misbehave on purpose.

Only active when the coordinator is configured with `fault_injection=True` (the test suite,
or `BATCHSCAN_FAULT_INJECTION=1` for the CLI); a file alone can never enable it. A fault file
starts with `BATCHSCAN-FAULT ` followed by one action:

- `sleep SECONDS`      hang (a C parser stuck in a loop)
- `allocate MIB`       allocate memory (a decompression bomb)
- `segfault`           read address 0 (a crashing native parser)
- `sigkill`            SIGKILL itself (the kernel OOM killer)
- `raise`              raise an unexpected exception (a scanner bug)
- `connect PORT`       try to reach 127.0.0.1:PORT (checks network isolation)
- `write PATH`         try to create a file (checks RLIMIT_FSIZE)
- `escape WHAT ARGS`   one escape a compromised parser would try, from inside the sandboxed
                       worker (see `ESCAPES`); the finding says what happened, but tests judge
                       by effect (the victim file's bytes, the listener that saw no
                       connection, the process still alive, the output unforged)
"""

from __future__ import annotations

import ctypes
import mmap
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import ScanContext, Source

FORMAT = "fault"
MAGIC = b"BATCHSCAN-FAULT "

FAULT_RAN = rules.TST001
RULES: tuple[Rule, ...] = (FAULT_RAN,)


def sniff(head: bytes, name: str) -> bool:
    return head.startswith(MAGIC)


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    words = source.head[len(MAGIC) :].split()
    action = words[0].decode() if words else ""
    arg = float(words[1]) if len(words) > 1 and words[1][:1].isdigit() else 0.0
    if action == "sleep":
        time.sleep(arg)
    elif action == "allocate":
        hog = bytearray(int(arg * 1024 * 1024))
        hog[::4096] = b"x" * len(hog[::4096])
    elif action == "segfault":
        ctypes.string_at(0)
    elif action == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise RuntimeError("injected scanner bug")
    elif action == "connect":
        try:
            with socket.create_connection(("127.0.0.1", int(arg)), timeout=2):
                outcome = "connected"
        except OSError as exc:
            outcome = f"blocked: {exc}"
        yield FAULT_RAN.finding(f"fault connect {outcome}")
        return
    elif action == "escape":
        args = [word.decode() for word in words[1:]]
        yield FAULT_RAN.finding(f"fault escape {' '.join(args)}: {escape(args)}")
        return
    elif action == "write":
        target = words[1].decode()
        try:
            with open(target, "wb") as handle:
                handle.write(b"x" * 4096)
            outcome = "written"
        except OSError as exc:
            outcome = f"blocked: {exc}"
        yield FAULT_RAN.finding(f"fault write {outcome}")
        return
    yield FAULT_RAN.finding(f"fault {action} completed")


# --- escapes: what code running in a compromised worker would try ---------------------------
_PTRACE_ATTACH, _PTRACE_PEEKDATA, _PTRACE_DETACH = 16, 2, 17


def _create(path: str) -> None:
    with open(path, "xb") as handle:
        handle.write(b"created by a worker")


def _truncate(path: str) -> None:
    os.truncate(path, 0)


def _open_truncate(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_TRUNC))


def _unlink(path: str) -> None:
    Path(path).unlink()


def _rename(path: str) -> None:
    Path(path).rename(path + ".moved")


def _chmod(path: str) -> None:
    Path(path).chmod(0o777)


def _mmap_write(path: str) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        with mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as view:
            view[:1] = b"X" if view[:1] != b"X" else b"Y"
            view.flush()
    finally:
        os.close(fd)


def _unix(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(2)
        client.connect(path)
        client.sendall(b"from a worker")


def _abstract(name: str) -> None:
    _unix("\0" + name)


def _tcp(port: str) -> None:
    with socket.create_connection(("127.0.0.1", int(port)), timeout=2) as client:
        client.sendall(b"from a worker")


def _kill(pid: str, signum: str = "10") -> None:
    os.kill(int(pid), int(signum))


def _siblings() -> list[int]:
    """The other processes forked by this worker's parent (the other workers)."""
    parent, me, found = os.getppid(), os.getpid(), []
    for entry in Path("/proc").iterdir():
        name = entry.name
        if name.isdigit() and int(name) != me:
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(name))
    return found


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[1])


def _kill_coordinator(signum: str = "10") -> None:
    """The coordinator is the parent of the forkserver, this worker's parent."""
    os.kill(_ppid(os.getppid()), int(signum))


def _self() -> str:
    """The kernel's own view of this worker (not the sandbox's STATUS)."""
    with open("/proc/self/status") as handle:
        lines = [line.split(":", 1) for line in handle]
    facts = {key: value.strip() for key, value in lines
             if key in ("Seccomp", "NoNewPrivs", "CapEff", "CapPrm", "CapBnd", "CapAmb")}
    facts["fds"] = ",".join(sorted(entry.name for entry in Path("/proc/self/fd").iterdir()))
    for fd in (0, 1, 2):
        facts[f"fd{fd}"] = str(Path(f"/proc/self/fd/{fd}").readlink())
    return " ".join(f"{key}={value}" for key, value in facts.items())


def _kill_siblings(signum: str = "9", delay: str = "0") -> None:
    time.sleep(float(delay))
    targets = _siblings()
    errors = []
    for pid in targets:
        try:
            os.kill(pid, int(signum))
        except OSError as exc:
            errors.append(f"{pid}: {exc.strerror}")
    if errors or not targets:
        raise OSError(1, f"siblings {targets}: " + "; ".join(errors))


def _read_mem(pid: str, address: str, length: str) -> str:
    """Read another process's memory three ways; returns what was read (the leak)."""
    where, size, leaked, errors = int(address, 0), int(length), [], []
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as handle:
            handle.seek(where)
            leaked.append(handle.read(size).decode("latin-1"))
    except (OSError, ValueError) as exc:
        errors.append(f"mem: {exc}")
    libc = ctypes.CDLL(None, use_errno=True)

    class IoVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    buffer = ctypes.create_string_buffer(size)
    local, remote = IoVec(ctypes.addressof(buffer), size), IoVec(where, size)
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    got = libc.process_vm_readv(int(pid), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if got > 0:
        leaked.append(buffer.raw[:got].decode("latin-1"))
    else:
        errors.append(f"process_vm_readv: {os.strerror(ctypes.get_errno())}")
    libc.ptrace.restype = ctypes.c_long
    if libc.ptrace(_PTRACE_ATTACH, int(pid), None, None) == 0:
        os.waitpid(int(pid), 0x40000000)  # __WALL
        words = []
        for offset in range(0, size, 8):
            ctypes.set_errno(0)
            word = libc.ptrace(_PTRACE_PEEKDATA, int(pid), ctypes.c_void_p(where + offset),
                               None)
            words.append((word & (2**64 - 1)).to_bytes(8, "little"))
        libc.ptrace(_PTRACE_DETACH, int(pid), None, None)
        leaked.append(b"".join(words)[:size].decode("latin-1"))
    else:
        errors.append(f"ptrace: {os.strerror(ctypes.get_errno())}")
    return "leaked " + " | ".join(leaked) if leaked else "; ".join(errors)


def _execve(path: str, *argv: str) -> None:
    os.execv(path, [path, *argv])


def _stdout(text: str) -> None:
    data = (text.replace("+", " ") + "\n").encode()
    os.write(1, data)
    os.write(2, data)
    print(text.replace("+", " "), flush=True)  # noqa: T201 (the point)


def _fork_exec(path: str, *argv: str) -> None:
    pid = os.fork()
    if pid == 0:  # the child tries exec, then exits at once
        try:
            os.execv(path, [path, *argv])
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(1, f"child exit {os.waitstatus_to_exitcode(status)}")


def _channel(marker: str) -> str:
    """Write a hostile message to pebble's result pipe: a pickle that, unpickled by the
    coordinator's stock reader, creates `marker` there (`builtins.open(marker, "x")`)."""
    import fcntl
    import pickle
    import stat
    import struct

    payload = (b"\x80\x02cbuiltins\nopen\n" + pickle.dumps((marker, "x"), protocol=2)[2:-1]
               + b"R.")
    sent = []
    for entry in Path("/proc/self/fd").iterdir():
        fd = int(entry.name)
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                continue
            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_WRONLY:
                continue
            os.write(fd, struct.pack("!i", len(payload)) + payload)
            sent.append(fd)
        except OSError:
            continue
    return f"sent to fds {sent}"


ESCAPES: dict[str, Callable[..., object]] = {
    "channel": _channel,
    "create": _create,
    "truncate": _truncate,
    "open-truncate": _open_truncate,
    "unlink": _unlink,
    "rename": _rename,
    "chmod": _chmod,
    "mmap-write": _mmap_write,
    "unix": _unix,
    "abstract": _abstract,
    "tcp": _tcp,
    "kill": _kill,
    "kill-siblings": _kill_siblings,
    "kill-coordinator": _kill_coordinator,
    "self": _self,
    "read-limits": lambda: Path("/proc/self/limits").read_text(),
    "read-memory": _read_mem,
    "execve": _execve,
    "fork-exec": _fork_exec,
    "stdout": _stdout,
}


def _thread() -> str:
    import threading

    ran: list[str] = []
    worker = threading.Thread(target=ran.append, args=("thread ran",))
    worker.start()
    worker.join()
    return ran[0]


ESCAPES["thread"] = _thread


def escape(args: list[str]) -> str:
    """Attempt one escape; say what happened (for people: tests look at the effect)."""
    if not args or args[0] not in ESCAPES:
        return f"unknown escape {args[:1]}"
    try:
        result = ESCAPES[args[0]](*args[1:])
    except OSError as exc:
        return f"blocked: {exc}"
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}"
    return str(result) if isinstance(result, str) else "succeeded"
