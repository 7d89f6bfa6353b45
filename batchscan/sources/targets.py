"""Turn command-line targets into a lazy stream of items: paths, `@FILE` lists, hub URLs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from batchscan.records import Status
from batchscan.sources import Item, hub
from batchscan.sources.local import WalkOptions, walk_target

HUB_PREFIX = "hf://"


def expand(targets: Iterable[str], options: WalkOptions, *, _depth: int = 0) -> Iterator[Item]:
    for target in targets:
        if target.startswith("@") and len(target) > 1:
            yield from _from_list(target[1:], options, _depth)
        elif target.startswith(HUB_PREFIX):
            yield from hub.expand(target)
        else:
            yield from walk_target(target, options)


def _from_list(list_path: str, options: WalkOptions, depth: int) -> Iterator[Item]:
    if depth >= 4:
        yield Item(path=list_path, display="@" + list_path, decided=Status.ERROR,
                   reason="@FILE lists nested more than 4 deep")
        return
    try:
        handle = open(list_path, "rb")  # noqa: SIM115 - closed below, read lazily
    except OSError as exc:
        yield Item(path=list_path, display="@" + list_path, decided=Status.ERROR,
                   reason=f"cannot read target list: {exc.strerror}")
        return
    with handle:
        # Bytes, decoded as the operating system decodes names (`os.fsdecode`): a line that
        # is not UTF-8 names the same file as the same bytes given on the command line.
        lines = (os.fsdecode(line.strip(b"\r\n\t ")) for line in handle)
        yield from expand((t for t in lines if t and not t.startswith("#")), options,
                          _depth=depth + 1)
