"""Local directory trees, walked lazily and loop-safely.

The walk keeps a stack of open `os.scandir` iterators (one per directory level), so memory
stays flat however many entries a directory holds; entries are yielded in directory order.
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
            yield _skip(target, f"dangling symbolic link to {os.readlink(target)!r}")
            return
    if stat.S_ISDIR(st.st_mode) and hf_cache.is_cache_repo(target):
        yield from hf_cache.walk_repo(target)
    elif stat.S_ISDIR(st.st_mode):
        yield from _walk_dir(target, st, options)
    elif stat.S_ISREG(st.st_mode):
        yield Item(path=target, display=target, size=st.st_size)
    else:
        yield _skip(target, f"{_kind(st.st_mode)} is never opened")


def _walk_dir(root: str, root_stat: os.stat_result, options: WalkOptions) -> Iterator[Item]:
    follow = options.follow_symlinks == "always"
    root_dev = root_stat.st_dev
    # Each level: (iterator, path, identity); the identities on the stack are the ancestors.
    stack: list[tuple[Iterator[os.DirEntry[str]], str, tuple[int, int]]] = []
    ancestors: set[tuple[int, int]] = set()
    walked_links: set[tuple[int, int]] = set()

    def enter(path: str, identity: tuple[int, int]) -> Item | None:
        try:
            iterator = os.scandir(path)
        except OSError as exc:
            return _skip(path, f"cannot list directory: {exc.strerror}", Status.ERROR)
        stack.append((iterator, path, identity))
        ancestors.add(identity)
        return None

    failed = enter(root, (root_stat.st_dev, root_stat.st_ino))
    if failed is not None:
        yield failed
        return
    while stack:
        iterator, _, identity = stack[-1]
        try:
            entry = next(iterator, None)
        except OSError as exc:
            entry = None
            yield _skip(stack[-1][1], f"directory listing failed: {exc.strerror}", Status.ERROR)
        if entry is None:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            stack.pop()
            ancestors.discard(identity)
            continue
        path = entry.path
        try:
            if entry.is_symlink():
                if not follow:
                    if not os.path.exists(path):
                        yield _skip(path, f"dangling symbolic link to {os.readlink(path)!r}")
                    else:
                        yield _skip(path, "symbolic link not followed "
                                          f"(--follow-symlinks {options.follow_symlinks})")
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    yield _skip(path, f"dangling symbolic link to {os.readlink(path)!r}")
                    continue
            else:
                st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            yield _skip(path, f"cannot access: {exc.strerror}", Status.ERROR)
            continue
        mode = st.st_mode
        if stat.S_ISDIR(mode) and hf_cache.is_cache_repo(path):
            yield from hf_cache.walk_repo(path)
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
            if entry.is_symlink():
                if ident in walked_links:
                    yield _skip(path, "directory already walked through another link")
                    continue
                walked_links.add(ident)
            failed = enter(path, ident)
            if failed is not None:
                yield failed
        elif stat.S_ISREG(mode):
            yield Item(path=path, display=path, size=st.st_size)
        else:
            yield _skip(path, f"{_kind(mode)} is never opened")
