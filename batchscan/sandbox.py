"""The worker sandbox (DESIGN.md section 5), applied in the pool initializer.

A worker must be assumed compromised: a parser bug turned into code execution by a hostile
file. Every layer below is applied in every worker before it touches a file, in this order
(the later ones forbid what the earlier ones need):

1. limits: RLIMIT_DATA = --memory-limit (plus a loose RLIMIT_AS backstop), RLIMIT_CORE = 0,
   RLIMIT_FSIZE = 0, RLIMIT_NOFILE; RLIMIT_CPU is set per batch (`begin_batch`);
2. `PR_SET_DUMPABLE` 0, `PR_SET_NO_NEW_PRIVS`, `PR_SET_PDEATHSIG` SIGKILL (the parent is the
   forkserver, which exits when the coordinator does, once no worker holds its "alive" pipe:
   step 4 closes the workers' copies);
3. namespaces: a new network and mount namespace (`unshare`; with a user namespace when not
   root); in the new mount namespace every mount is made read-only (`mount_setattr`,
   recursive), a third layer under Landlock and seccomp. No PID namespace: one made by
   `unshare` holds only the caller's future children and forbids the caller to start threads
   (clone with CLONE_THREAD fails with EINVAL), which py7zr and other libraries do; exec is
   denied, and other processes are out of reach through Landlock and seccomp anyway (they
   stay visible in /proc, their memory and signals do not);
4. file descriptors: 0, 1 and 2 become /dev/null (results travel only through the pool's
   channel, a worker's prints cannot reach the output); every other descriptor except the
   two pipe ends of pebble's channel is closed (the forkserver's alive pipe, the resource
   tracker's pipe, the process-object pipe and its sentinel, anything a library left open);
5. capabilities: all dropped (effective, permitted, inheritable, ambient and the bounding
   set) except CAP_DAC_READ_SEARCH, so root still reads files whatever their modes and holds
   nothing else of root's power; with a user namespace the same drop applies there;
6. Landlock (`batchscan/landlock.py`): read files and list folders, nothing else; no TCP;
   signals and abstract unix sockets scoped to the worker;
7. seccomp (`batchscan/seccomp.py`): a deny-list (other processes, sockets, exec, mounts,
   namespaces, kernel facilities, file modification), EPERM for a denied call.

Nothing here raises: a failing initializer would break the whole pool. What could not be
applied is recorded in `STATUS` and travels back with each batch (the run summary's
`sandbox_degraded`). Fail closed: when a layer listed in `REQUIRED` is missing the worker
refuses to scan (every file gets an `error` record, see `refusal`); the other layers
(Landlock, namespaces, read-only mounts) may be missing on older kernels, and then the run
summary says so while seccomp's file-modification rules still stand.
Everything a worker imports is imported before these calls (forkserver preload).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import resource
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchscan import landlock, lifeline, seccomp

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1
_SYS_MOUNT_SETATTR = 442  # unified number (x86_64 and aarch64)
_CAP_DAC_READ_SEARCH = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_GIB = 1024**3

# Layers without which a worker refuses to scan (fail closed); `capabilities` only as root.
REQUIRED = ("no_new_privs", "seccomp", "stdio")


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    memory_limit: int | None = 4 * _GIB
    isolate_network: bool = True
    max_open_files: int = 512
    enabled: bool = True
    cpu_seconds: float | None = None  # RLIMIT_CPU per batch: -t plus a margin


# What the current process got; read by batchscan.workers.task and sent back with results.
STATUS: dict[str, str] = {}
_POLICY: list[SandboxPolicy] = []
_CPU_MARGIN = 5.0  # seconds of CPU past -t before the kernel's SIGXCPU


def _set_limit(which: int, soft: int, label: str) -> None:
    try:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))
        STATUS[label] = "ok"
    except (ValueError, OSError) as exc:
        STATUS[label] = f"failed: {exc}"


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _errno() -> str:
    return os.strerror(ctypes.get_errno())


def _prctl(libc: ctypes.CDLL, option: int, value: int, label: str) -> None:
    if libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) == 0:
        STATUS[label] = "ok"
    else:
        STATUS[label] = f"failed: {_errno()}"


def _parent_death(libc: ctypes.CDLL) -> None:
    parent = os.getppid()
    _prctl(libc, _PR_SET_PDEATHSIG, signal.SIGKILL, "parent_death")
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _unshare(libc: ctypes.CDLL, isolate_network: bool) -> None:
    wanted = _CLONE_NEWNS | (_CLONE_NEWNET if isolate_network else 0)
    attempts = [wanted, _CLONE_NEWUSER | wanted] if os.geteuid() == 0 else [
        _CLONE_NEWUSER | wanted]
    errors = []
    for flags in attempts:
        if libc.unshare(flags) == 0:
            if isolate_network:
                STATUS["network"] = "isolated"
            STATUS["namespaces"] = "ok"
            _read_only_mounts(libc)
            return
        errors.append(_errno())
    if isolate_network:  # at least the network, as before
        for flags in ([_CLONE_NEWNET] if os.geteuid() == 0 else []) + [
                _CLONE_NEWUSER | _CLONE_NEWNET]:
            if libc.unshare(flags) == 0:
                STATUS["network"] = "isolated"
                break
        else:
            STATUS["network"] = "not isolated: " + "; ".join(errors)
    STATUS["namespaces"] = "failed: mount: " + "; ".join(errors)


class _MountAttr(ctypes.Structure):
    # struct mount_attr { __u64 attr_set, attr_clr, propagation, userns_fd; }
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _read_only_mounts(libc: ctypes.CDLL) -> None:
    """In the worker's own mount namespace: nothing propagates back, every mount read-only."""
    if libc.mount(None, b"/", None, ctypes.c_ulong(_MS_REC | _MS_PRIVATE), None) != 0:
        STATUS["read_only_mounts"] = f"failed: private: {_errno()}"
        return
    attr = _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
    if libc.syscall(_SYS_MOUNT_SETATTR, ctypes.c_int(-100), b"/",  # AT_FDCWD
                    ctypes.c_uint(_AT_RECURSIVE), ctypes.byref(attr),
                    ctypes.c_size_t(ctypes.sizeof(attr))) != 0:
        STATUS["read_only_mounts"] = f"failed: {_errno()}"
        return
    STATUS["read_only_mounts"] = "ok"


def _channel_fds() -> set[int] | None:
    """The pipe ends of pebble's channel, found in the worker's own Process arguments."""
    try:
        args: tuple[Any, ...] = multiprocessing.current_process()._args  # type: ignore[attr-defined]
    except AttributeError:
        return None
    fds: set[int] = set()
    for arg in args:
        for end in ("reader", "writer"):
            connection = getattr(arg, end, None)
            if connection is not None and hasattr(connection, "fileno"):
                with contextlib.suppress(OSError):
                    fds.add(connection.fileno())
    return fds if len(fds) == 2 else None


def _descriptors() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd, inheritable=False)
        STATUS["stdio"] = "ok"
    except OSError as exc:
        STATUS["stdio"] = f"failed: {exc}"
    finally:
        if null > 2:
            os.close(null)
    keep = _channel_fds()
    if keep is None:
        STATUS["descriptors"] = "not closed: the pool's channel was not found"
        return
    closed = 0
    for entry in Path("/proc/self/fd").iterdir():
        fd = int(entry.name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
                closed += 1
    # Objects that held the closed numbers must not close them again (they may be reused).
    with contextlib.suppress(Exception):
        from multiprocessing import resource_tracker

        resource_tracker._resource_tracker._fd = None  # type: ignore[attr-defined]
    STATUS["descriptors"] = "ok"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _capabilities(libc: ctypes.CDLL) -> None:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as handle:
            last = int(handle.read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        if cap != _CAP_DAC_READ_SEARCH:
            libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0)  # EPERM without SETPCAP
    libc.prctl(_PR_CAP_AMBIENT, ctypes.c_ulong(_PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0)
    keep = 1 << _CAP_DAC_READ_SEARCH
    data = (_CapData * 2)(_CapData(keep, keep, 0), _CapData(0, 0, 0))
    if libc.capset(ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), data) != 0:
        # Not holding CAP_DAC_READ_SEARCH (an ordinary user): drop everything.
        data = (_CapData * 2)(_CapData(0, 0, 0), _CapData(0, 0, 0))
        if libc.capset(ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), data) != 0:
            STATUS["capabilities"] = f"failed: {_errno()}"
            return
    STATUS["capabilities"] = "ok"


def _single_threaded() -> bool:
    try:
        return len(list(Path("/proc/self/task").iterdir())) == 1
    except OSError:
        return False


def enter(policy: SandboxPolicy) -> None:
    """Apply the sandbox to the calling process. Never raises."""
    STATUS.clear()
    _POLICY[:] = [policy]
    if not policy.enabled:
        STATUS["sandbox"] = "disabled"
        return
    try:
        if not _single_threaded():  # Landlock and unshare(CLONE_NEWUSER) act per thread
            STATUS["threads"] = "failed: the worker has threads before the sandbox"
        if policy.memory_limit:
            _set_limit(resource.RLIMIT_DATA, policy.memory_limit, "memory")
            backstop = max(2 * policy.memory_limit, policy.memory_limit + 2 * _GIB)
            _set_limit(resource.RLIMIT_AS, backstop, "address_space")
        _set_limit(resource.RLIMIT_CORE, 0, "core")
        _set_limit(resource.RLIMIT_FSIZE, 0, "file_size")
        _set_limit(resource.RLIMIT_NOFILE, policy.max_open_files, "open_files")
        libc = _libc()
        if libc is None:
            STATUS["prctl"] = "failed: no libc"
            return
        _prctl(libc, _PR_SET_DUMPABLE, 0, "dumpable")
        _prctl(libc, _PR_SET_NO_NEW_PRIVS, 1, "no_new_privs")
        _parent_death(libc)
        _unshare(libc, policy.isolate_network)
        _descriptors()
        _capabilities(libc)
        try:
            STATUS["landlock"] = "ok: " + landlock.restrict_read_only(libc)
        except OSError as exc:
            STATUS["landlock"] = f"failed: {exc.strerror or exc}"
        try:
            STATUS["seccomp"] = "ok: " + seccomp.install(libc=libc)
        except OSError as exc:
            STATUS["seccomp"] = f"failed: {exc.strerror or exc}"
    except Exception as exc:
        STATUS["sandbox"] = f"failed: {type(exc).__name__}: {exc}"


def worker_init(policy: SandboxPolicy) -> None:
    """Pool initializer: Ctrl-C is the coordinator's business; die with the forkserver
    (which dies with the coordinator: `batchscan/lifeline.py`); then enter the sandbox."""
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    lifeline.arm()
    enter(policy)


def begin_batch() -> None:
    """Before each batch: RLIMIT_CPU soft limit = CPU used so far + -t + a margin.

    The wall-clock timeout (pebble, from outside) stays the authority; this is the kernel's
    own backstop (SIGXCPU ends the worker) for a worker whose coordinator cannot act, e.g.
    one stopped with SIGSTOP. The hard limit is left alone: a worker cannot raise a hard
    limit again, and it handles many batches. A compromised worker can raise its soft limit;
    the wall-clock kill still applies to it."""
    policy = _POLICY[0] if _POLICY else None
    if policy is None or not policy.enabled or not policy.cpu_seconds:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = int(used + policy.cpu_seconds + _CPU_MARGIN) + 1
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        STATUS["cpu"] = "ok"
    except (ValueError, OSError) as exc:
        STATUS["cpu"] = f"failed: {exc}"


def refusal() -> str | None:
    """Why this worker must not scan (a required layer is missing), or None."""
    return refusal_of(STATUS, os.geteuid())


def refusal_of(status: dict[str, str], euid: int | None = None) -> str | None:
    if not status or status.get("sandbox") == "disabled":
        return None
    euid = os.geteuid() if euid is None else euid
    required = list(REQUIRED) + (["capabilities"] if euid == 0 else [])
    missing = [f"{key}: {status.get(key, 'not applied')}" for key in required
               if not status.get(key, "").startswith("ok")]
    missing += [f"{key}: {status[key]}" for key in ("sandbox", "threads") if key in status]
    if not missing:
        return None
    return "worker sandbox incomplete, file not scanned: " + "; ".join(missing)


def supported_layers() -> list[tuple[str, str]]:
    """What the running kernel offers, without applying anything (for `batchscan doctor`)."""
    rows = []
    abi = landlock.abi_version()
    rows.append(("landlock", f"ABI {abi}" if abi else "not available"))
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as handle:
            actions = handle.read().split()
    except OSError:
        actions = []
    arch = seccomp.machine()
    rows.append(("seccomp", f"filters ({arch})" if "errno" in actions and seccomp.supported()
                 else f"not available ({arch}, actions: {' '.join(actions) or 'none'})"))
    try:
        with open("/proc/sys/user/max_user_namespaces") as handle:
            users = int(handle.read())
    except (OSError, ValueError):
        users = 0
    root = os.geteuid() == 0
    rows.append(("namespaces", "as root" if root else
                 "through a user namespace" if users else "user namespaces disabled"))
    rows.append(("capabilities", "root: all but CAP_DAC_READ_SEARCH dropped" if root
                 else "not root: none held"))
    return rows


def degraded(status: dict[str, str]) -> list[str]:
    """Human-readable list of sandbox measures that did not apply."""
    return [f"{key}: {value}" for key, value in sorted(status.items())
            if not (value in ("ok", "isolated") or value.startswith("ok: "))]
