"""Local Hugging Face caches (`~/.cache/huggingface/hub`): each blob scanned once, named the
way users know it.

Layout: `models--ORG--NAME/` (also `datasets--`, `spaces--`) holds `blobs/<sha>` (the
content), `snapshots/<commit>/<path>` (symlinks into blobs, or copies when symlinks are
disabled) and `refs/<branch>` (commit ids). Walking it as a plain tree would either skip
every snapshot link (the default symlink policy) or scan shared blobs once per snapshot.

Here every snapshot file becomes a name `hf://ORG/NAME@COMMIT/PATH`; a blob is scanned once
and its record is repeated for each name that points to it. Blobs no snapshot references are
scanned under their own path, and a snapshot link that leaves the repository's `blobs/` is
reported instead of followed.

Everything else inside the folder gets a record too: a folder only has to be named
`models--X--Y` and hold `blobs/` and `snapshots/` to be read this way, so files at its root,
in `refs/` or in any extra folder, and whatever in `snapshots/` or `blobs/` is not a snapshot
file or a blob (directories, links to directories, FIFOs), are handed to the ordinary walk
(`other`), which applies the run's symlink policy. Any failure to list a part is an `error`
record for that part; the rest of the folder is still walked.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator

from batchscan.records import Status
from batchscan.sources import Item

_REPO = re.compile(r"\A(models|datasets|spaces)--(.+)\Z")
_SPECIAL = ("blobs", "snapshots")


def is_cache_repo(path: str) -> bool:
    name = os.path.basename(path.rstrip("/"))
    return (_REPO.match(name) is not None and os.path.isdir(os.path.join(path, "blobs"))
            and os.path.isdir(os.path.join(path, "snapshots")))


def _listing(path: str) -> tuple[list[str], Item | None]:
    try:
        return sorted(os.listdir(path)), None
    except OSError as exc:
        return [], Item(path=path, display=path, source="hf-cache", decided=Status.ERROR,
                        reason=f"cannot list directory: {exc.strerror}")


def walk_repo(path: str, other: Callable[[str], Iterator[Item]]) -> Iterator[Item]:
    """Items of one cache repository folder; `other(path)` walks an entry the ordinary way."""
    match = _REPO.match(os.path.basename(path.rstrip("/")))
    assert match is not None
    kind, name = match.groups()
    repo = ("" if kind == "models" else f"{kind}/") + name.replace("--", "/")
    entries, failed = _listing(path)
    if failed is not None:
        yield failed
        return
    for entry in entries:
        if entry not in _SPECIAL:
            yield from other(os.path.join(path, entry))
    blobs_dir = os.path.realpath(os.path.join(path, "blobs"))
    names: dict[str, list[str]] = {}
    snapshots = os.path.join(path, "snapshots")
    commits, failed = _listing(snapshots)
    if failed is not None:
        yield failed
    for commit in commits:
        base = os.path.join(snapshots, commit)
        if not os.path.isdir(base) or os.path.islink(base):
            yield from other(base)  # a file or a link where a commit folder belongs
            continue
        yield from _snapshot(base, f"hf://{repo}@{commit}/", blobs_dir, names, other)
    for target, displays in names.items():
        try:
            st = os.stat(target)
        except OSError as exc:
            for display in displays:
                yield Item(path=target, display=display, source="hf-cache",
                           decided=Status.ERROR, reason=f"cannot access: {exc.strerror}")
            continue
        yield Item(path=target, display=displays[0], source="hf-cache", size=st.st_size,
                   aliases=tuple(displays[1:]), ctime=st.st_ctime)
    blobs, failed = _listing(blobs_dir)
    if failed is not None:
        yield failed
    for blob in blobs:
        full = os.path.join(blobs_dir, blob)
        if full in names:
            continue
        try:
            st = os.lstat(full)
        except OSError as exc:
            yield Item(path=full, display=full, source="hf-cache", decided=Status.ERROR,
                       reason=f"cannot access: {exc.strerror}")
            continue
        if stat.S_ISREG(st.st_mode):
            yield Item(path=full, display=full, source="hf-cache", size=st.st_size,
                       ctime=st.st_ctime)
        else:
            yield from other(full)


def _snapshot(base: str, prefix: str, blobs_dir: str, names: dict[str, list[str]],
              other: Callable[[str], Iterator[Item]]) -> Iterator[Item]:
    """One commit's files: links into blobs become names; anything else is walked."""
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(base, onerror=errors.append):
        dirs.sort()
        for directory in [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            dirs.remove(directory)  # a link to a directory: the ordinary walk's policy
            yield from other(os.path.join(folder, directory))
        for file in sorted(files):
            link = os.path.join(folder, file)
            display = prefix + os.path.relpath(link, base)
            try:
                lst = os.lstat(link)
            except OSError as exc:
                yield Item(path=link, display=display, source="hf-cache",
                           decided=Status.ERROR, reason=f"cannot access: {exc.strerror}")
                continue
            if stat.S_ISLNK(lst.st_mode):
                target = os.path.realpath(link)
                if not os.path.exists(target):
                    yield Item(path=link, display=display, source="hf-cache",
                               decided=Status.SKIPPED,
                               reason=f"dangling snapshot link to {_readlink(link)!r}")
                    continue
                if os.path.dirname(target) != blobs_dir or not os.path.isfile(target):
                    yield Item(path=link, display=display, source="hf-cache",
                               decided=Status.ERROR,
                               reason=f"snapshot link leaves the cache: {target!r}")
                    continue
                names.setdefault(target, []).append(display)
            elif stat.S_ISREG(lst.st_mode):  # a copy (symlinks disabled in the cache)
                names.setdefault(os.path.realpath(link), []).append(display)
            else:
                yield from other(link)
        for error in errors:
            where = error.filename or base
            yield Item(path=where, display=where, source="hf-cache", decided=Status.ERROR,
                       reason=f"cannot list directory: {error.strerror}")
        errors.clear()


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
