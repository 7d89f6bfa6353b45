"""Local directory trees, walked lazily, loop-safely and through directory descriptors.

Each directory is opened relative to its parent's descriptor with `O_NOFOLLOW|O_DIRECTORY`
and listed from that descriptor, so a directory swapped for a symlink while the walk runs is
never followed (there is no window between checking a name and opening it), and paths
longer than PATH_MAX are walked like any other. Workers open the files the same way, one
component at a time (`batchscan/safeopen.py`).

Memory stays flat however many entries a directory holds: each level is a live `scandir`
iterator. Descriptors are bounded: at most `MAX_OPEN_LEVELS` levels hold one open (plus the
iterator's own); deeper, the level that is evicted has the rest of its listing read into
memory (names only) and its descriptor closed, and it is reopened on the way back up with
`openat(child, "..")`, checked to be the same directory (device and inode), so a tree
thousands of levels deep walks under `ulimit -n 1024`. A directory that changed place
meanwhile gets an `error` record for the entries not yet listed.

Symlinks follow ClamAV's convention (`--follow-symlinks never|args|always`, default `args`:
links named on the command line are followed, links met in the walk are not). With `always`,
a link to a directory already on the current path (a loop) or already walked is skipped with
a record. FIFOs, sockets and devices are never opened: they get a `skipped` record.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from batchscan.records import Status
from batchscan.sources import Item, hf_cache

FOLLOW_CHOICES = ("never", "args", "always")


@dataclass(frozen=True, slots=True)
class WalkOptions:
    follow_symlinks: str = "args"
    one_file_system: bool = False
    max_depth: int | None = None
    # directories for which this says True are not entered (`.batchscanignore`, --exclude)
    prune: Callable[[str], bool] | None = None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _skip(path: str, reason: str, status: Status = Status.SKIPPED) -> Item:
    return Item(path=path, display=path, decided=status, reason=reason)


def walk_target(target: str, options: WalkOptions) -> Iterator[Item]:
    """Items for one command-line path (file or directory)."""
    try:
        lst = os.lstat(target)
    except OSError as exc:
        yield _skip(target, f"cannot access: {exc.strerror}", Status.ERROR)
        return
    st = lst
    if stat.S_ISLNK(lst.st_mode):
        if options.follow_symlinks == "never":
            yield _skip(target, "symbolic link not followed (--follow-symlinks never)")
            return
        try:
            st = os.stat(target)
        except OSError:
            yield _skip(target, f"dangling symbolic link to {_readlink(target)!r}")
            return
    if stat.S_ISDIR(st.st_mode) and hf_cache.is_cache_repo(target):
        yield from hf_cache.walk_repo(target, lambda inner: walk_inside(inner, options))
    elif stat.S_ISDIR(st.st_mode):
        yield from _walk_dir(target, st, options, nofollow=False)
    elif stat.S_ISREG(st.st_mode):
        yield Item(path=target, display=target, size=st.st_size, ctime=st.st_ctime)
    else:
        yield _skip(target, f"{_kind(st.st_mode)} is never opened")


def walk_inside(path: str, options: WalkOptions) -> Iterator[Item]:
    """Items for an entry met inside a walk (links obey the walk's policy, not `args`)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        yield _skip(path, f"cannot access: {exc.strerror}", Status.ERROR)
        return
    if stat.S_ISLNK(st.st_mode):
        if options.follow_symlinks != "always":
            yield _skip(path, "symbolic link not followed "
                              f"(--follow-symlinks {options.follow_symlinks})")
            return
        yield from walk_target(path, options)
    elif stat.S_ISDIR(st.st_mode):
        yield from _walk_dir(path, st, options, nofollow=True)
    elif stat.S_ISREG(st.st_mode):
        yield Item(path=path, display=path, size=st.st_size, ctime=st.st_ctime)
    else:
        yield _skip(path, f"{_kind(st.st_mode)} is never opened")


def _readlink(path: str, dir_fd: int | None = None) -> str:
    try:
        return os.readlink(path, dir_fd=dir_fd)
    except OSError:
        return "?"


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
MAX_OPEN_LEVELS = 48  # levels holding a descriptor (each: its fd and its iterator's)
KEEP_OPEN_TOP = 8  # the top levels are never evicted: they hold the big listings


@dataclass(slots=True)
class _Level:
    path: str  # the directory's path, as records name it
    identity: tuple[int, int]
    fd: int | None  # None while evicted
    live: Iterator[os.DirEntry[str]] | None  # scandir over fd
    names: list[str] | None = None  # the rest of the listing, read when evicted

    def close(self) -> None:
        close = getattr(self.live, "close", None)
        if close is not None:
            close()
        self.live = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _walk_dir(root: str, root_stat: os.stat_result, options: WalkOptions,
              nofollow: bool) -> Iterator[Item]:
    follow = options.follow_symlinks == "always"
    link_flag = 0 if follow else os.O_NOFOLLOW
    root_dev = root_stat.st_dev
    prefix = root.rstrip("/") + "/"  # how paths below are built (see `path =` below)
    walk_from = len(prefix)
    stack: list[_Level] = []
    ancestors: set[tuple[int, int]] = set()
    walked_links: set[tuple[int, int]] = set()
    yield_later: list[Item] = []

    def open_level(path: str, fd: int, identity: tuple[int, int]) -> Item | None:
        try:
            live = os.scandir(fd)
        except OSError as exc:
            os.close(fd)
            return _skip(path, f"cannot list directory: {exc.strerror}", Status.ERROR)
        stack.append(_Level(path, identity, fd, live))
        ancestors.add(identity)
        held = [level for level in stack if level.fd is not None]
        if len(held) > MAX_OPEN_LEVELS:
            victim = held[KEEP_OPEN_TOP]
            try:
                assert victim.live is not None
                victim.names = [entry.name for entry in victim.live][::-1]
            except OSError:
                victim.names = []  # the listing broke: what was read is lost to an error
                yield_later.append(_skip(victim.path, "directory listing failed while "
                                                      "evicted", Status.ERROR))
            victim.close()
        return None

    def reopen(level: _Level, child_fd: int) -> str | None:
        """Give an evicted level its descriptor back through its child's `..`."""
        try:
            fd = os.open("..", _DIR_FLAGS, dir_fd=child_fd)
        except OSError as exc:
            return f"cannot reopen directory: {exc.strerror}"
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != level.identity:
            os.close(fd)
            return "directory moved during the walk; the rest of it was not listed"
        level.fd = fd
        return None

    try:
        root_fd = os.open(root, _DIR_FLAGS | (os.O_NOFOLLOW if nofollow else 0))
        if (os.fstat(root_fd).st_dev, os.fstat(root_fd).st_ino) != (root_stat.st_dev,
                                                                    root_stat.st_ino):
            os.close(root_fd)
            yield _skip(root, "directory replaced while the walk started", Status.ERROR)
            return
    except OSError as exc:
        yield _skip(root, f"cannot list directory: {exc.strerror}", Status.ERROR)
        return
    failed = open_level(root, root_fd, (root_stat.st_dev, root_stat.st_ino))
    if failed is not None:
        yield failed
        return
    try:
        while stack:
            level = stack[-1]
            name: str | None = None
            if level.live is not None:
                try:
                    entry = next(level.live, None)
                    name = entry.name if entry is not None else None
                except OSError as exc:
                    yield _skip(level.path, f"directory listing failed: {exc.strerror}",
                                Status.ERROR)
            elif level.names:
                name = level.names.pop()  # stored reversed: pop() is the next entry
            if name is None:
                stack.pop()
                ancestors.discard(level.identity)
                if stack and stack[-1].fd is None:
                    assert level.fd is not None
                    problem = reopen(stack[-1], level.fd)
                    while problem is not None and stack and stack[-1].fd is None:
                        # cannot get back up this way: what was not listed is an error
                        lost = stack.pop()
                        ancestors.discard(lost.identity)
                        yield _skip(lost.path, problem, Status.ERROR)
                level.close()
                continue
            dir_fd = level.fd
            assert dir_fd is not None
            path = level.path.rstrip("/") + "/" + name
            try:
                lst = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                st = lst
                if stat.S_ISLNK(lst.st_mode):
                    if not follow:
                        try:
                            os.stat(name, dir_fd=dir_fd)
                        except OSError:
                            yield _skip(path, "dangling symbolic link to "
                                              f"{_readlink(name, dir_fd)!r}")
                            continue
                        yield _skip(path, "symbolic link not followed "
                                          f"(--follow-symlinks {options.follow_symlinks})")
                        continue
                    try:
                        st = os.stat(name, dir_fd=dir_fd)
                    except OSError:
                        yield _skip(path, f"dangling symbolic link to "
                                          f"{_readlink(name, dir_fd)!r}")
                        continue
            except OSError as exc:
                yield _skip(path, f"cannot access: {exc.strerror}", Status.ERROR)
                continue
            mode = st.st_mode
            if stat.S_ISDIR(mode) and hf_cache.is_cache_repo(path):
                yield from hf_cache.walk_repo(path, lambda inner: walk_inside(inner, options))
                continue
            if stat.S_ISDIR(mode):
                ident = (st.st_dev, st.st_ino)
                if options.one_file_system and st.st_dev != root_dev:
                    yield _skip(path, "on another file system (--one-file-system)")
                    continue
                if options.max_depth is not None and len(stack) > options.max_depth:
                    yield _skip(path, f"deeper than --max-depth {options.max_depth}")
                    continue
                if options.prune is not None and options.prune(path):
                    continue
                if ident in ancestors:
                    yield _skip(path, "symbolic link loop (points to an enclosing directory)")
                    continue
                if stat.S_ISLNK(lst.st_mode):
                    if ident in walked_links:
                        yield _skip(path, "directory already walked through another link")
                        continue
                    walked_links.add(ident)
                try:
                    fd = os.open(name, _DIR_FLAGS | link_flag, dir_fd=dir_fd)
                    opened = os.fstat(fd)
                except OSError as exc:
                    # ELOOP/ENOTDIR: swapped for a link or a file since the stat; not followed
                    yield _skip(path, f"cannot list directory: {exc.strerror}", Status.ERROR)
                    continue
                if (opened.st_dev, opened.st_ino) != ident:
                    os.close(fd)
                    yield _skip(path, "directory replaced during the walk; not listed",
                                Status.ERROR)
                    continue
                failed = open_level(path, fd, ident)
                if failed is not None:
                    yield failed
                yield from yield_later
                yield_later.clear()
            elif stat.S_ISREG(mode):
                yield Item(path=path, display=path, size=st.st_size, ctime=st.st_ctime,
                           walk_from=walk_from, follow=follow)
            else:
                yield _skip(path, f"{_kind(mode)} is never opened")
    finally:
        for level in stack:
            level.close()
