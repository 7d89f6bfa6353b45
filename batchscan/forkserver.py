"""The workers' forkserver: started once per run, with imports only from the installed package.

Every pool worker is forked from one server process that has already imported every scanner
(`batchscan.workers.task`). Python starts that server (and multiprocessing's resource
tracker) as `python -c ...`, which by default puts the current directory first on the import
path, and the server then takes the coordinator's `sys.path`. A scan run from inside a
checkout would import that checkout's `workers/`, `batchscan/` or even `multiprocessing/`
folder in a process outside any sandbox. So both are started in safe-path mode
(`PYTHONSAFEPATH=1`: no current directory for `-c`) and with a `sys.path` from which the
current directory is removed; the package itself is found through the installation.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from batchscan import lifeline

# lifeline first: the server dies with the coordinator (PR_SET_PDEATHSIG) from the start.
PRELOAD = ["batchscan.lifeline", "batchscan.workers.task"]
# Thread pools inside native libraries would multiply memory per worker (glibc arenas).
WORKER_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HDF5_USE_FILE_LOCKING": "FALSE",
}


def context() -> multiprocessing.context.ForkServerContext:
    """The context pools use; the forkserver it starts inherits WORKER_ENV and PRELOAD."""
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def import_path(path: list[str], cwd: Path) -> list[str]:
    """`path` without the entries that name the current directory ('' or its absolute path)."""
    here = cwd.resolve()
    return [entry for entry in path if entry and (cwd / entry).resolve() != here]


@contextlib.contextmanager
def _safe_imports() -> Iterator[None]:
    """While the server starts: no current directory on its path, by flag and by list."""
    saved_path = sys.path[:]
    saved_flag = os.environ.get("PYTHONSAFEPATH")
    try:
        cwd = Path.cwd()
    except OSError:  # the current directory was removed: nothing there to import
        cwd = Path("/nonexistent")
    sys.path[:] = import_path(sys.path, cwd)
    os.environ["PYTHONSAFEPATH"] = "1"
    os.environ[lifeline.ENV] = str(os.getpid())  # read (and dropped) by the server only
    try:
        yield
    finally:
        os.environ.pop(lifeline.ENV, None)
        sys.path[:] = saved_path
        if saved_flag is None:
            os.environ.pop("PYTHONSAFEPATH", None)
        else:
            os.environ["PYTHONSAFEPATH"] = saved_flag


def start() -> multiprocessing.context.ForkServerContext:
    """Start the server now (idempotent); it preloads while this process goes on importing."""
    from multiprocessing import forkserver

    ctx = context()
    with _safe_imports():
        forkserver.ensure_running()
    return ctx
