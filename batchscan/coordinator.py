"""The coordinator: a lazy item stream in, a bounded window of pool tasks, records out.

    items (lazy) -> pre-decided records (skipped, too_large, unreadable)  -> yield
                 -> small files batched (<= batch_files / batch_bytes)    -> pool task
                 -> large files alone                                     -> pool task
    pool results in completion order -> records                          -> yield

Back-pressure: at most `jobs * inflight_per_worker` tasks are in the pool at once; the walk
is only advanced when a slot frees. Failure handling:

- a task that times out, crashes (segfault, SIGKILL, OOM kill) or raises MemoryError costs
  nothing but its own files: a batch is split and its files retried one by one, so exactly
  the guilty file gets the `timeout` / `crashed` / `oom` record;
- a batch gets `min(timeout, batch_timeout_cap)` (its files are retried with the full
  per-file timeout), a single file gets `timeout`, enforced by pebble with SIGTERM then
  SIGKILL: a hung C parser is killed, the run goes on;
- a watchdog rebuilds the pool when no task has finished for longer than any task may run
  (pebble has known hangs after OOM kills) and retries what was in flight; a file caught in
  two stalls is marked `crashed`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import signal
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchscan import __version__, cache, channel, forkserver, hashing, rules, schema
from batchscan.config import ScanConfig
from batchscan.downloads import Downloads
from batchscan.records import FileResult, ScanRecord, Status, highest_severity
from batchscan.sandbox import SandboxPolicy, worker_init
from batchscan.schema import utc_now
from batchscan.sources import Item
from batchscan.sources.local import WalkOptions
from batchscan.sources.targets import expand
from batchscan.workers.entry import scan_batch
from batchscan.workers.jobs import BatchResult, Job, WorkerOptions

if TYPE_CHECKING:
    from pebble import ProcessPool


@dataclass(slots=True)
class _Task:
    items: list[Item]
    attempt: int = 0  # how many pool stalls this task has lived through (breaks: `solo`)
    pool: int = 0  # which pool it was submitted to (`Engine._pools`)
    solo: bool = False  # in flight when a pool broke: runs with nothing else in flight


@dataclass(slots=True)
class RunStats:
    """What the run summary reports besides the records themselves."""

    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    sandbox: dict[str, str] = field(default_factory=dict)
    pool_rebuilds: int = 0
    retried_files: int = 0
    interrupted: bool = False
    items_seen: int = 0
    walk_done: bool = False  # once true, items_seen is the run's total (progress ETA)

    @property
    def wall_seconds(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


class Engine:
    """Runs one scan. Use `run(targets)` as an iterator of records."""

    def __init__(self, config: ScanConfig, run_id: str | None = None,
                 keep: Callable[[Item], bool] | None = None,
                 prune: Callable[[str], bool] | None = None,
                 remaining: Callable[[Item], Item | None] | None = None):
        self.config = config
        self.keep = keep  # selection (shard, globs): items it rejects get no record
        self.remaining = remaining  # --resume: the names of an item not recorded yet
        # Set by a signal handler: the loop stops at its next turn, from a known place
        # (a KeyboardInterrupt raised inside pebble's or threading's lock code left locks
        # released twice: "release unlocked lock", and sometimes a hang).
        self.stop = threading.Event()
        self.run_id = run_id or uuid.uuid4().hex
        self.stats = RunStats()
        self.cache: cache.Writer | None = None
        cache_path, cache_rules = None, ""
        if config.cache_dir is not None and config.hash:
            try:
                self.cache = cache.Writer(
                    Path(config.cache_dir),
                    options=(config.verbose, config.blacklist, config.limits))
                cache_path, cache_rules = str(self.cache.path), self.cache.rules
            except (sqlite3.Error, OSError) as exc:  # the run goes on without a cache
                sys.stderr.write(f"batchscan: warning: --cache {config.cache_dir} not used: "
                                 f"{exc}\n")
        self.options = WorkerOptions(
            hash=config.hash,
            verbose=config.verbose,
            blacklist=config.blacklist,
            limits=config.limits,
            fault_injection=config.fault_injection,
            cache_path=cache_path,
            cache_rules=cache_rules,
        )
        self.policy = SandboxPolicy(memory_limit=config.memory_limit, enabled=config.sandbox,
                                    cpu_seconds=config.timeout)
        self.walk_options = WalkOptions(
            follow_symlinks=config.follow_symlinks,
            one_file_system=config.one_file_system,
            max_depth=config.max_depth,
            prune=prune,  # directories selection rules out as a whole: never walked
        )
        self._pool: ProcessPool | None = None
        self._pools = 0  # pools started so far; the current one is number `_pools`
        self._broken: tuple[int, str] | None = None  # a pool that broke, and why
        # Large local files are hashed by coordinator threads while a worker scans them
        # (batchscan/hashing.py); with a cache, workers hash first to look results up.
        self._hash_here = config.hash and self.cache is None
        # id(item) -> its hash in progress and when it must be done (-t applies to hashing too)
        self._hashes: dict[int, tuple[Future[str], float]] = {}
        # a scanned file whose hash is still running, by that hash (one file per hash)
        self._parked: dict[Future[str], tuple[Item, FileResult]] = {}
        # called before each step that may block (waiting for workers, the next item of a
        # walk or listing): the CLI flushes its batched JSONL output there; an exception
        # from it ends the run like a write error
        self.idle: Callable[[], None] | None = None
        window = max(1, config.jobs) * max(1, config.inflight_per_worker)
        self.downloads = Downloads(window, config.max_download_bytes, config.download_dir)

    # --- records -------------------------------------------------------------------------
    def _record(self, item: Item, result: FileResult) -> ScanRecord:
        """The record of one file, made safe to write (`schema.sanitize`). Nothing a worker
        returned can stop the run: whatever fails here becomes this file's `error` record,
        keeping the highest severity it had found."""
        try:
            return schema.sanitize(self._build(item, result))
        except Exception:
            worst = None
            with contextlib.suppress(Exception):
                worst = highest_severity(tuple(result.findings))
            findings = () if worst is None else (rules.ENG004.finding(
                "the scanner's findings could not be recorded", severity=worst),)
            return schema.sanitize(ScanRecord(
                run_id=self.run_id, path=item.display, source=item.source,
                size=item.size, sha256=None, format="unknown", status=Status.ERROR,
                findings=findings, error="the scanner returned a result that cannot be recorded",
                scanned_at=utc_now(), duration_ms=0.0, scanner_version=__version__))

    def _build(self, item: Item, result: FileResult) -> ScanRecord:
        listed = getattr(item.remote, "sha256", None)
        if listed and result.sha256 and result.sha256 != listed and result.error is None:
            # Corrupted in transit or swapped by a mirror: what was scanned is not the
            # content the Hub lists (and the cache may have answered for by that hash).
            result = dataclasses.replace(
                result, error=f"downloaded content has sha256 {result.sha256}, the Hub "
                              f"lists {listed}: not the file the listing names")
        return ScanRecord(
            run_id=self.run_id,
            path=item.display,
            source=item.source,
            size=result.size if result.size is not None else item.size,
            sha256=result.sha256 or getattr(item.remote, "sha256", None),
            format=result.format,
            status=result.derived_status(),
            findings=result.findings,
            error=result.error,
            scanned_at=utc_now(),
            duration_ms=result.duration_ms,
            scanner_version=__version__,
            cached=result.cached,
            findings_dropped=result.findings_dropped,
        )

    def _with_aliases(self, item: Item, record: ScanRecord) -> Iterator[ScanRecord]:
        """One record per name of the content (a blob shared by several snapshots). The
        result is cached under the name it was scanned with (the first), not the aliases:
        the name is part of the cache key."""
        if self.cache is not None:
            self.cache.store(record, cache.name_of(item.display))
        yield record
        for alias in item.aliases:
            yield dataclasses.replace(record, path=alias)

    def _decided(self, item: Item, status: Status, reason: str | None) -> Iterator[ScanRecord]:
        """The records of an item decided without a scan result (under every name)."""
        yield from self._with_aliases(item, self._record(
            item,
            FileResult(format="unknown", size=item.size, sha256=None, error=reason,
                       status=status),
        ))

    # --- pool ----------------------------------------------------------------------------
    def _new_pool(self) -> ProcessPool:
        # Imported here: pebble pulls in asyncio (20 ms), and by now the walk has found the
        # first files and any large one is already being hashed.
        from pebble import ProcessPool
        from pebble.common.types import CONSTS

        # pebble's manager threads poll every `sleep_unit` (0.1 s): the granularity of its
        # timeouts, and on average half of it added to every run's shutdown. 20 ms costs a
        # few hundred cheap wake-ups a second and takes ~50 ms off each run.
        CONSTS.sleep_unit = 0.02
        context = forkserver.start()
        self._pools += 1
        # Starts with one worker; `_grow` adds workers, up to -j, as tasks are submitted.
        pool = ProcessPool(
            max_workers=1,
            max_tasks=0,
            initializer=worker_init,
            initargs=(self.policy,),
            context=context,
        )
        channel.harden(pool)  # results are checked data, never unpickled code
        return pool

    def _grow(self, pool: ProcessPool, tasks: int) -> None:
        """As many workers as tasks in flight, up to -j: a scan of a few files never starts
        (and then kills half-started) idle workers; pebble's manager thread starts the new
        ones at its next turn (`create_workers` fills up to `workers_number`)."""
        manager = pool._pool_manager.worker_manager
        wanted = min(max(1, self.config.jobs), tasks)
        if wanted > manager.workers_number:
            manager.workers_number = wanted

    def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]
            _end_workers(pool)
            pool.join(timeout=10)

    def _submit(self, task: _Task, inflight: dict[Future[BatchResult], _Task]) -> None:
        if len(task.items) == 1:
            self._start_hash(task.items[0])
        if self._pool is None:
            self._pool = self._new_pool()
        jobs = [Job(item.path, cache.name_of(item.display), id(item) not in self._hashes,
                    item.walk_from, item.follow)
                for item in task.items]
        timeout = self.config.timeout
        if len(jobs) > 1:
            timeout = min(timeout, self.config.batch_timeout_cap)
        try:
            future = self._pool.schedule(scan_batch, args=(jobs, self.options),
                                         timeout=timeout)
        except RuntimeError:
            # pebble refuses new tasks once its pool broke; the broken pool's own tasks come
            # back aborted (see `_complete`). This one goes to a fresh pool.
            self._stop_pool()
            self._pool = self._new_pool()
            future = self._pool.schedule(scan_batch, args=(jobs, self.options),
                                         timeout=timeout)
        task.pool = self._pools
        inflight[future] = task
        self._grow(self._pool, len(inflight))

    # --- the loop ------------------------------------------------------------------------
    def items(self, targets: Iterable[str]) -> Iterator[Item]:
        """The selected items of `targets`, lazily (also what a distributed executor ships)."""
        items: Iterator[Item] = expand(targets, self.walk_options)
        if self.keep is not None:
            items = filter(self.keep, items)
        if self.remaining is not None:
            items = (left for left in map(self.remaining, items) if left is not None)
        return items

    def run(self, targets: Iterable[str]) -> Iterator[ScanRecord]:
        return self.run_items(self.items(targets))

    def run_items(self, items: Iterable[Item]) -> Iterator[ScanRecord]:
        config = self.config
        window = max(1, config.jobs) * max(1, config.inflight_per_worker)
        stall_limit = config.timeout + config.stall_grace
        source = iter(items)
        exhausted = False
        batch: list[Item] = []
        batch_bytes = 0
        retry: collections.deque[_Task] = collections.deque()
        inflight: dict[Future[BatchResult], _Task] = {}
        last_progress = time.monotonic()
        downloads = self.downloads
        try:
            while True:
                # A file scanned but still being hashed holds its slot: hash threads stay
                # bounded by the window like everything else in flight.
                while len(inflight) + downloads.pending + len(self._parked) < window:
                    if self.stop.is_set():
                        raise KeyboardInterrupt
                    if any(task.solo for task in inflight.values()):
                        break  # a file that was in flight when a pool broke runs alone
                    if retry:
                        if retry[0].solo and inflight:
                            break
                        self._submit(retry.popleft(), inflight)
                        continue
                    if exhausted:
                        if batch:
                            self._submit(_Task(batch), inflight)
                            batch, batch_bytes = [], 0
                            continue
                        break
                    if self.idle is not None:
                        self.idle()  # the walk or a listing may take long to give the next
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        self.stats.walk_done = True
                        continue
                    self.stats.items_seen += 1
                    if item.decided is not None:
                        yield from self._decided(item, item.decided, item.reason)
                        continue
                    limit = config.max_file_size
                    if limit is not None and item.size is not None and item.size > limit:
                        yield from self._decided(
                            item, Status.TOO_LARGE,
                            f"{item.size} bytes exceeds --max-file-size {limit}; not read",
                        )
                        continue
                    if item.remote is not None:
                        yield from self._remote(item)
                        continue
                    if item.size is None or item.size > config.small_file:
                        self._submit(_Task([item]), inflight)
                        continue
                    batch.append(item)
                    batch_bytes += item.size
                    if len(batch) >= config.batch_files or batch_bytes >= config.batch_bytes:
                        self._submit(_Task(batch), inflight)
                        batch, batch_bytes = [], 0
                if batch:
                    # About to block: do not let small files wait behind slow big ones.
                    self._submit(_Task(batch), inflight)
                    batch, batch_bytes = [], 0
                if not inflight and not downloads.pending and not self._parked:
                    break
                if self.stop.is_set():
                    raise KeyboardInterrupt
                waiting: list[Future[Any]] = [*inflight, *downloads.running, *self._parked]
                if self.idle is not None:
                    self.idle()
                done, _ = wait(waiting, timeout=0.25, return_when=FIRST_COMPLETED)
                if self.cache is not None:
                    self.cache.tick()
                now = time.monotonic()
                if any(future in inflight for future in done):
                    last_progress = now
                for future in done:
                    if future in self._parked:
                        yield from self._hashed(*self._parked.pop(future))
                        continue
                    if future in downloads.running:
                        fetched = downloads.finished(future)
                        if fetched.decided is not None:
                            downloads.release(fetched)
                            yield from self._decided(fetched, fetched.decided, fetched.reason)
                        else:
                            self._submit(_Task([fetched]), inflight)
                        continue
                    task = inflight.pop(future)
                    yield from self._complete(future, task, retry)
                if self._broken is not None:
                    yield from self._abandon(*self._broken, inflight, retry)
                    self._broken = None
                yield from self._overdue_hashes(now)
                if not inflight:
                    last_progress = now  # only downloads are running: no pool can stall
                if not done and now - last_progress > stall_limit:
                    yield from self._rebuild(inflight, retry)
                    last_progress = time.monotonic()
        except (KeyboardInterrupt, GeneratorExit):
            self.stats.interrupted = True
            raise
        finally:
            self._stop_pool()
            downloads.close()
            if self.cache is not None:
                self.cache.close()
            self.stats.finished = time.monotonic()

    def _remote(self, item: Item) -> Iterator[ScanRecord]:
        """A hub file: answered from the cache by the Hub's sha256, or queued for download."""
        from batchscan.sources import hub

        assert isinstance(item.remote, hub.Remote)
        sha = item.remote.sha256
        if self.cache is not None and sha is not None:
            cached = self.cache.lookup(sha, cache.name_of(item.display))
            if cached is not None:
                yield self._record(item, cached)
                return
        if not self.downloads.fits(item):
            yield from self._decided(
                item, Status.TOO_LARGE,
                f"{item.size} bytes exceeds --max-download-bytes "
                f"{self.config.max_download_bytes}; not downloaded")
            return
        self.downloads.add(item)

    def _discard_download(self, item: Item) -> None:
        if item.remote is not None:
            self.downloads.release(item)

    def _start_hash(self, item: Item) -> None:
        """A large file (local, or a finished download) is hashed by a coordinator thread
        while a worker scans it; a retried file keeps the hash already running."""
        size = item.size
        if (self._hash_here and size is not None and size >= self.config.coordinator_hash_from
                and id(item) not in self._hashes):
            self._hashes[id(item)] = (hashing.start(item.path, item.walk_from, item.follow),
                                      time.monotonic() + self.config.timeout)

    def _overdue_hashes(self, now: float) -> Iterator[ScanRecord]:
        """A hash stuck past the per-file timeout (a hung network mount): the record goes out
        as `timeout` with the scan's findings; the daemon thread is abandoned."""
        for future, (item, result) in list(self._parked.items()):
            if self._hashes[id(item)][1] > now:
                continue
            del self._parked[future], self._hashes[id(item)]
            self._discard_download(item)
            late = dataclasses.replace(
                result, status=Status.TIMEOUT,
                error=f"sha256 not finished within the {self.config.timeout:g} s per-file "
                      "timeout")
            yield from self._with_aliases(item, self._record(item, late))

    def _hashed(self, item: Item, result: FileResult) -> Iterator[ScanRecord]:
        """The record, once the coordinator's hash of a large file (if any) is in."""
        future = self._hashes.get(id(item), (None, 0.0))[0]
        if future is not None:
            if not future.done():
                self._parked[future] = (item, result)
                return
            del self._hashes[id(item)]
            try:
                result = dataclasses.replace(result, sha256=future.result())
            except Exception as exc:  # fail closed: no hash, no clean record
                result = dataclasses.replace(
                    result, error=result.error or f"cannot read file to hash it: {exc}")
        self._discard_download(item)  # only now: a download stays on disk while it is hashed
        yield from self._with_aliases(item, self._record(item, result))

    def _complete(
        self, future: Future[BatchResult], task: _Task, retry: collections.deque[_Task]
    ) -> Iterator[ScanRecord]:
        from pebble import ProcessExpired  # loaded with the pool

        status: Status
        try:
            batch = future.result()
        except TimeoutError:
            status = Status.TIMEOUT
            reason = f"killed after the {self.config.timeout:g} s per-file timeout"
        except ProcessExpired as exc:
            status = Status.CRASHED
            code = exc.exitcode
            if code is not None and code < 0:
                reason = f"worker died with {_signal_name(code)}"
                if code == -signal.SIGKILL:
                    reason += " (killed: the kernel OOM killer does this)"
            else:
                reason = f"worker exited with code {code}"
        except MemoryError:
            status = Status.OOM
            reason = "worker exceeded --memory-limit"
        except BrokenProcessPool as exc:
            # pebble aborts every task of a broken pool (a worker's message was refused, see
            # channel.py, or the pool's pipe failed), innocent ones included: `_submit`
            # replaces the pool, a batch is split, and a file alone is retried twice, so
            # only the file that keeps breaking it pays.
            status = Status.CRASHED
            why = str(exc) or str(exc.__cause__ or "") or "no reason given"
            reason = f"worker pool broke: {why}"
            self._broken = (task.pool, reason)
            if not task.solo:
                self.stats.retried_files += len(task.items)
                retry.extend(_Task([item], task.attempt, solo=True) for item in task.items)
                return
        except Exception as exc:
            status = Status.CRASHED
            reason = f"worker failed: {type(exc).__name__}: {exc}"
        else:
            self.stats.sandbox.update(batch.sandbox)
            for item, result in zip(task.items, batch.results, strict=True):
                yield from self._hashed(item, result)
            return
        if len(task.items) > 1:
            # Retry alone so only the guilty file carries the failure.
            self.stats.retried_files += len(task.items)
            retry.extend(_Task([item], task.attempt) for item in task.items)
            return
        self._discard_download(task.items[0])
        self._hashes.pop(id(task.items[0]), None)
        yield from self._decided(task.items[0], status, reason)

    def _abandon(
        self, pool: int, reason: str, inflight: dict[Future[BatchResult], _Task],
        retry: collections.deque[_Task],
    ) -> Iterator[ScanRecord]:
        """Pool number `pool` broke: stop it if it is still current, and retry the tasks it
        still held (a task that raced into it as it broke would otherwise never return)."""
        if pool == self._pools:
            self._stop_pool()
        for future, task in list(inflight.items()):
            if task.pool != pool:
                continue
            del inflight[future]
            if not task.solo:
                self.stats.retried_files += len(task.items)
                retry.extend(_Task([item], task.attempt, solo=True) for item in task.items)
            else:
                item = task.items[0]
                self._discard_download(item)
                self._hashes.pop(id(item), None)
                yield from self._decided(item, Status.CRASHED, reason)

    def _rebuild(
        self, inflight: dict[Future[BatchResult], _Task], retry: collections.deque[_Task]
    ) -> Iterator[ScanRecord]:
        """The pool stopped making progress: replace it and retry what it held."""
        self.stats.pool_rebuilds += 1
        stuck = list(inflight.values())
        inflight.clear()
        self._stop_pool()
        self._pool = self._new_pool()
        for task in stuck:
            for item in task.items:
                if task.attempt >= 1 and len(task.items) == 1:
                    self._discard_download(item)
                    self._hashes.pop(id(item), None)
                    yield from self._decided(item, Status.CRASHED,
                                        "worker pool stalled twice while scanning this file")
                else:
                    retry.append(_Task([item], task.attempt + 1))


def _end_workers(pool: ProcessPool) -> None:
    """End a stopped pool's workers before pebble closes its channels.

    pebble's `stop` unlinks the channel's named semaphores first and ends the workers after:
    a worker still starting (unpickling its channel in the forkserver's child) then dies
    with a `FileNotFoundError ... SemLock._rebuild` traceback on our stderr, after the
    output is complete. So: no new worker once the manager thread is joined, then every
    worker gets SIGTERM and is joined while the semaphores still exist. Uses pebble
    internals (pinned <6); without them, pebble's own order applies.
    """
    loop = getattr(pool, "_pool_manager_loop", None)
    manager = getattr(getattr(pool, "_pool_manager", None), "worker_manager", None)
    workers = getattr(manager, "workers", None)
    if loop is None or not isinstance(workers, dict):
        return
    loop.join(timeout=10)
    if loop.is_alive():
        return
    started = list(workers.values())
    for worker in started:
        with contextlib.suppress(Exception):
            worker.terminate()
    deadline = time.monotonic() + 5
    for worker in started:
        with contextlib.suppress(Exception):
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
                worker.join(1)


def scan(
    targets: Iterable[str], config: ScanConfig | None = None, run_id: str | None = None
) -> Iterator[ScanRecord]:
    """Library entry point: scan files, directories and `@FILE` lists; yield records."""
    return Engine(config or ScanConfig(), run_id).run(targets)
