"""Local Hugging Face caches (`~/.cache/huggingface/hub`): each blob scanned once, named the
way users know it.

Layout: `models--ORG--NAME/` (also `datasets--`, `spaces--`) holds `blobs/<sha>` (the
content), `snapshots/<commit>/<path>` (symlinks into blobs, or copies when symlinks are
disabled) and `refs/<branch>` (commit ids). Walking it as a plain tree would either skip
every snapshot link (the default symlink policy) or scan shared blobs once per snapshot.

Here every snapshot file becomes a name `hf://ORG/NAME@COMMIT/PATH`; a blob is scanned once
and its record is repeated for each name that points to it. Blobs no snapshot references are
scanned under their own path, so nothing in the cache goes unscanned, and a snapshot link
that leaves the repository's `blobs/` is reported instead of followed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from batchscan.records import Status
from batchscan.sources import Item

_REPO = re.compile(r"\A(models|datasets|spaces)--(.+)\Z")


def is_cache_repo(path: str) -> bool:
    name = os.path.basename(path.rstrip("/"))
    return (_REPO.match(name) is not None and os.path.isdir(os.path.join(path, "blobs"))
            and os.path.isdir(os.path.join(path, "snapshots")))


def walk_repo(path: str) -> Iterator[Item]:
    match = _REPO.match(os.path.basename(path.rstrip("/")))
    assert match is not None
    kind, name = match.groups()
    repo = ("" if kind == "models" else f"{kind}/") + name.replace("--", "/")
    blobs_dir = os.path.realpath(os.path.join(path, "blobs"))
    names: dict[str, list[str]] = {}
    snapshots = os.path.join(path, "snapshots")
    for commit in sorted(os.listdir(snapshots)):
        base = os.path.join(snapshots, commit)
        for folder, dirs, files in os.walk(base):
            dirs.sort()
            for file in sorted(files):
                link = os.path.join(folder, file)
                display = f"hf://{repo}@{commit}/{os.path.relpath(link, base)}"
                target = os.path.realpath(link)
                if os.path.islink(link):
                    if not os.path.exists(target):
                        yield Item(path=link, display=display, source="hf-cache",
                                   decided=Status.SKIPPED,
                                   reason=f"dangling snapshot link to {os.readlink(link)!r}")
                        continue
                    if os.path.dirname(target) != blobs_dir:
                        yield Item(path=link, display=display, source="hf-cache",
                                   decided=Status.ERROR,
                                   reason=f"snapshot link leaves the cache: {target!r}")
                        continue
                names.setdefault(target, []).append(display)
    for target, displays in names.items():
        yield Item(path=target, display=displays[0], source="hf-cache",
                   size=os.path.getsize(target), aliases=tuple(displays[1:]))
    for blob in sorted(os.listdir(blobs_dir)):
        full = os.path.join(blobs_dir, blob)
        if full not in names and os.path.isfile(full):
            yield Item(path=full, display=full, source="hf-cache", size=os.path.getsize(full))
