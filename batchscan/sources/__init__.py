"""Where scan targets come from: each source yields `Item`s lazily into the coordinator."""

from __future__ import annotations

from dataclasses import dataclass

from batchscan.records import Status


@dataclass(frozen=True, slots=True)
class Item:
    """One input: a file to scan, or an entry already decided (skipped, unreadable...)."""

    path: str  # what a worker opens
    display: str  # the path as the user names it (the record's `path`)
    source: str = "file"
    size: int | None = None
    decided: Status | None = None  # set when no worker is needed
    reason: str | None = None  # why, for decided items
    aliases: tuple[str, ...] = ()  # more names for the same content (HF cache snapshots)
    remote: object | None = None  # what to download first (sources/hub.py Remote)
    ctime: float | None = None  # status-change time seen by the walk (--resume identity)
    walk_from: int | None = None  # where the walked part of `path` starts (safeopen.py)
    follow: bool = False  # walked components may be symlinks (--follow-symlinks always)
