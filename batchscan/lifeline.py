"""Processes that die with the coordinator: the parent-death signal (PR_SET_PDEATHSIG).

After a SIGKILL of the coordinator, nothing else would end its forkserver and the pool
workers forked from it: they kept scanning queued tasks with no timeout enforcing. Each of
them asks the kernel for SIGKILL when its parent dies: the forkserver when the coordinator
dies (armed as it preloads this module, below), each worker when the forkserver dies
(`arm()` in the pool initializer), so the chain unwinds from any link.

The forkserver learns its expected parent from `BATCHSCAN_LIFELINE_PARENT`, set only while
`batchscan.forkserver` starts it; importing this module anywhere else does nothing. A parent
that died before the signal was armed is noticed by `getppid()` and the process exits.
"""

from __future__ import annotations

import ctypes
import os
import signal

ENV = "BATCHSCAN_LIFELINE_PARENT"
_PR_SET_PDEATHSIG = 1


def arm(expected_parent: int | None = None) -> bool:
    """SIGKILL this process when its parent dies. Never raises; False when not applied."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)  # the parent died before the signal was armed
    return True


_forking_pid = 0  # set in the forkserver just before each fork, read in the new child


def _before_fork() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _after_fork_in_child() -> None:
    # A worker is forked long before the pool initializer runs `arm()`: a coordinator (and
    # so its forkserver) killed in between would leave it running, reparented to init.
    arm(_forking_pid)


def _arm_from_environment() -> None:
    parent = os.environ.pop(ENV, "")
    if parent.isdigit():
        arm(int(parent))
        # Every process the forkserver forks (a pool worker) is armed the moment it exists.
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


_arm_from_environment()
