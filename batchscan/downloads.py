"""Hub files fetched on the coordinator side, a few at a time, under a disk budget.

Workers are sandboxed without a network, so the coordinator downloads. Each download runs in
its own daemon thread (an interrupted run never waits for a half-fetched 10 GB shard) into
its own folder under the scratch directory, and the folder is deleted as soon as the file's
record is out. Two limits hold at every moment:

- at most `slots` downloads run at once (one per task slot of the pool window);
- the bytes reserved (files downloading, downloaded and waiting, or being scanned) never
  exceed `budget`: a file is only started when its listed size fits beside the others. A file
  larger than the whole budget is never started (the coordinator records it `too_large`).
"""

from __future__ import annotations

import collections
import dataclasses
import shutil
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

from batchscan.records import Status
from batchscan.sources import Item, hub


class Downloads:
    def __init__(self, slots: int, budget: int | None, directory: str | None):
        self.slots = max(1, slots)
        self.budget = budget
        self.directory = directory
        self.scratch: Path | None = None
        self.waiting: collections.deque[Item] = collections.deque()
        self.running: dict[Future[Item], Item] = {}
        self.reserved = 0
        # display path -> (bytes, folder) of each copy (a file may be named by two targets)
        self._held: dict[str, list[tuple[int, Path]]] = {}

    def fits(self, item: Item) -> bool:
        """Whether the file could ever be fetched under the budget."""
        return self.budget is None or (item.size or 0) <= self.budget

    @property
    def pending(self) -> int:
        return len(self.waiting) + len(self.running)

    def add(self, item: Item) -> None:
        self.waiting.append(item)
        self.start()

    def start(self) -> None:
        while self.waiting and len(self.running) < self.slots:
            need = self.waiting[0].size or 0
            if self.budget is not None and self.reserved and self.reserved + need > self.budget:
                return  # wait until a scanned file frees its bytes
            item = self.waiting.popleft()
            future: Future[Item] = Future()
            self.running[future] = item
            try:
                folder = Path(tempfile.mkdtemp(dir=self._scratch()))
            except OSError as exc:  # an unusable --download-dir: this file's error record
                future.set_result(dataclasses.replace(
                    item, decided=Status.ERROR,
                    reason=f"cannot create a download folder: {exc}"[:500]))
                continue
            self.reserved += need
            self._held.setdefault(item.display, []).append((need, folder))
            threading.Thread(target=self._fetch, args=(item, folder, future), daemon=True,
                             name="batchscan-download").start()

    @staticmethod
    def _fetch(item: Item, folder: Path, future: Future[Item]) -> None:
        assert isinstance(item.remote, hub.Remote)
        try:
            path = hub.download(item.remote, folder, item.size)
        except Exception as exc:
            future.set_result(dataclasses.replace(
                item, decided=Status.ERROR,
                reason=f"download failed: {type(exc).__name__}: {exc}"[:500]))
            return
        future.set_result(dataclasses.replace(item, path=path))

    def _scratch(self) -> Path:
        if self.scratch is None:
            if self.directory is not None:
                Path(self.directory).mkdir(parents=True, exist_ok=True)
            self.scratch = Path(tempfile.mkdtemp(prefix="batchscan-downloads-",
                                                 dir=self.directory))
        return self.scratch

    def finished(self, future: Future[Item]) -> Item:
        """A download is over (fetched or failed); its bytes stay reserved until release."""
        del self.running[future]
        return future.result()

    def release(self, item: Item) -> None:
        """The file's record is out: delete the download and free its bytes."""
        held = self._held.get(item.display)
        if held:
            mine = next((i for i, (_, folder) in enumerate(held)
                         if item.path.startswith(f"{folder}/")), 0)
            need, folder = held.pop(mine)
            if not held:
                del self._held[item.display]
            self.reserved -= need
            shutil.rmtree(folder, ignore_errors=True)
        self.start()

    def close(self) -> None:
        self.waiting.clear()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
