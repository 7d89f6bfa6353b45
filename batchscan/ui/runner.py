"""The child process of a scan started from the UI: the CLI itself, observed.

    python -P -m batchscan.ui.runner PROGRESS.json scan [CLI options] -f jsonl -o RUN.jsonl

Runs `batchscan.cli.main` unchanged (same options, same engine, same worker sandbox, same
exit codes; SIGINT ends it exactly as Ctrl-C ends the CLI, with a valid output) with one
addition: the engine is a subclass that counts each record as it passes and exposes the walk's
progress, and a thread writes those counts to PROGRESS.json four times a second (atomically,
by rename) for the live page. Nothing else crosses from this process to the UI.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from batchscan import cli
from batchscan.coordinator import Engine
from batchscan.records import ScanRecord

NEWEST = 10  # flagged files shown on the live page


class Progress:
    def __init__(self, path: Path):
        self.path = path
        self.started = time.time()
        self.done = 0
        self.bytes = 0
        self.by_status: collections.Counter[str] = collections.Counter()
        self.by_severity: collections.Counter[str] = collections.Counter()
        self.flagged: collections.deque[dict[str, Any]] = collections.deque(maxlen=NEWEST)
        self.engine: Engine | None = None
        self.finished = False
        self._lock = threading.Lock()

    def add(self, record: ScanRecord) -> None:
        top = record.max_severity
        with self._lock:
            self.done += 1
            self.bytes += record.size or 0
            self.by_status[record.status.value] += 1
            self.by_severity[top.value if top else "none"] += 1
            if (top is not None and top.value in ("warning", "error")) or record.status.incomplete:
                self.flagged.appendleft({"path": record.path, "status": record.status.value,
                                         "max_severity": top.value if top else None})

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            elapsed = max(time.time() - self.started, 1e-6)
            stats = self.engine.stats if self.engine is not None else None
            seen = stats.items_seen if stats else 0
            walk_done = bool(stats and stats.walk_done)
            rate = self.done / elapsed
            eta = (max(seen - self.done, 0) / rate) if walk_done and rate > 0 else None
            return {
                "done": self.done, "seen": max(seen, self.done), "walk_done": walk_done,
                "bytes": self.bytes, "elapsed": round(elapsed, 2),
                "files_per_second": round(rate, 1), "eta_seconds": eta,
                "by_status": dict(self.by_status), "by_severity": dict(self.by_severity),
                "flagged": list(self.flagged), "finished": self.finished,
                "updated": time.time(),
            }

    def write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(self.snapshot()))
        tmp.replace(self.path)

    def keep_writing(self, stop: threading.Event) -> None:
        while not stop.wait(0.25):
            self.write()


def observed_engine(progress: Progress) -> type[Engine]:
    class ObservedEngine(Engine):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            progress.engine = self

        def run(self, targets: Iterable[str]) -> Iterator[ScanRecord]:
            inner = super().run(targets)
            try:
                for record in inner:
                    progress.add(record)
                    yield record
            finally:
                close = getattr(inner, "close", None)
                if close is not None:
                    close()  # an interrupt between records still stops the pool

    return ObservedEngine


def main(argv: list[str]) -> int:
    progress = Progress(Path(argv[0]))
    cli.Engine = observed_engine(progress)  # type: ignore[attr-defined]
    stop = threading.Event()
    writer = threading.Thread(target=progress.keep_writing, args=(stop,), daemon=True)
    writer.start()
    try:
        return cli.main(argv[1:])
    finally:
        stop.set()
        progress.finished = True
        progress.write()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
