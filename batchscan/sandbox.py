"""The worker sandbox (DESIGN.md section 5), applied in the pool initializer.

Every step is best effort and never raises: a failing initializer would break the whole pool
(pebble reports "All workers expired"). What could not be applied is recorded in `STATUS` and
travels back with each batch, so the run summary says when isolation was degraded.

- memory: RLIMIT_DATA = --memory-limit (heap and private mappings; a Python allocation past it
  raises MemoryError), RLIMIT_AS as a loose backstop;
- RLIMIT_CORE = 0 (no core dumps of model bytes), PR_SET_DUMPABLE = 0;
- RLIMIT_FSIZE = 0: workers write no files;
- RLIMIT_NOFILE: bounds archive fan-out;
- PR_SET_NO_NEW_PRIVS;
- a fresh, empty network namespace: `unshare(CLONE_NEWNET)` when privileged (root keeps its
  file access), else `unshare(CLONE_NEWUSER | CLONE_NEWNET)`.
Everything a worker imports is imported before these calls (forkserver preload).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
from dataclasses import dataclass

from batchscan import lifeline

_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_GIB = 1024**3


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    memory_limit: int | None = 4 * _GIB
    isolate_network: bool = True
    max_open_files: int = 512
    enabled: bool = True


# What the current process got; read by batchscan.workers.task and sent back with results.
STATUS: dict[str, str] = {}


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


def _prctl(libc: ctypes.CDLL, option: int, value: int, label: str) -> None:
    if libc.prctl(option, value, 0, 0, 0) == 0:
        STATUS[label] = "ok"
    else:
        STATUS[label] = f"failed: errno {ctypes.get_errno()}"


def _unshare_network(libc: ctypes.CDLL) -> None:
    attempts = [_CLONE_NEWNET, _CLONE_NEWUSER | _CLONE_NEWNET] if os.geteuid() == 0 else [
        _CLONE_NEWUSER | _CLONE_NEWNET
    ]
    errors = []
    for flags in attempts:
        if libc.unshare(flags) == 0:
            STATUS["network"] = "isolated"
            return
        errors.append(os.strerror(ctypes.get_errno()))
    STATUS["network"] = "not isolated: " + "; ".join(errors)


def enter(policy: SandboxPolicy) -> None:
    """Apply the sandbox to the calling process. Never raises."""
    STATUS.clear()
    if not policy.enabled:
        STATUS["sandbox"] = "disabled"
        return
    try:
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
        if policy.isolate_network:
            _unshare_network(libc)
    except Exception as exc:
        STATUS["sandbox"] = f"failed: {type(exc).__name__}: {exc}"


def worker_init(policy: SandboxPolicy) -> None:
    """Pool initializer: Ctrl-C is the coordinator's business; die with the forkserver
    (which dies with the coordinator: `batchscan/lifeline.py`); then enter the sandbox."""
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    lifeline.arm()
    enter(policy)


def degraded(status: dict[str, str]) -> list[str]:
    """Human-readable list of sandbox measures that did not apply."""
    return [f"{key}: {value}" for key, value in sorted(status.items()) if value not in (
        "ok", "isolated")]
