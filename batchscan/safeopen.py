"""Opening a file found by the walk the way the walk reached it: one component at a time.

The walk (`batchscan/sources/local.py`) lists directories through descriptors opened
relative to their parent with `O_NOFOLLOW`, so a directory swapped for a symlink while the
walk runs is not followed. A worker (or a coordinator hash thread) that then opened the
file by its whole path would follow the swap after all, and could not open a path longer
than PATH_MAX at all. So a walked file is opened the same way: the command-line root by its
name (a link named there is followed, as `--follow-symlinks args` says), then every walked
component with `openat(parent_fd, name, O_NOFOLLOW)` (no `O_NOFOLLOW` under
`--follow-symlinks always`). No descriptor crosses a process boundary: a worker receives the
path and where the walked part starts (`Job.walk_from`) and opens it itself; at most two
descriptors are open at a time.
"""

from __future__ import annotations

import os
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def open_fd(path: str, walk_from: int | None = None, follow: bool = False) -> int:
    """A read-only descriptor of the regular file `path`; raises OSError (ELOOP when a
    walked component is now a symlink, EISDIR/EINVAL-like errors for what is no longer a
    regular file)."""
    nofollow = 0 if follow else os.O_NOFOLLOW
    if walk_from is None or walk_from <= 0 or walk_from >= len(path):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        return _regular(fd)
    parts = path[walk_from:].split("/")
    fd = os.open(path[:walk_from], _DIR)
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR | nofollow, dir_fd=fd)
            os.close(fd)
            fd = child
        # O_NONBLOCK: a FIFO put in the file's place must not hang the open
        leaf = os.open(parts[-1], os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | nofollow,
                       dir_fd=fd)
    finally:
        os.close(fd)
    return _regular(leaf)


def _regular(fd: int) -> int:
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(0, "no longer a regular file")
        os.set_blocking(fd, True)
    except OSError:
        os.close(fd)
        raise
    return fd
