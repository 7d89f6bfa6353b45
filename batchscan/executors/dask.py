"""A distributed executor on Dask: shards of the job list run on cluster workers, each of
which runs the same sandboxed pebble pool (`Engine`) as a local scan.

Why Dask over Ray: the unit of work here is coarse (a shard of thousands of files) and the
per-file hard timeout, memory limit and crash isolation already live in each node's pebble
pool, so the cluster only has to place shards and return records. Dask's futures API does
that with a small footprint and a `LocalCluster` that tests can start; Ray brings a heavier
runtime and still needs our own per-task timeout (research/ecosystem.md section 4).

Requirements on the cluster: the workers see the same paths (a shared file system or the
same image), and their processes may start children (`distributed.worker.daemon: False`),
since each shard starts a process pool. Records come back per shard as soon as the shard is
done and go through the coordinator's writer like local ones. `--cache DIR` is used by each
node at that path; the summary's `nodes` lists per worker its shards, files, cache hits and
the sandbox measures it could not apply (also merged into `sandbox_degraded`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from typing import Any

from batchscan.config import ScanConfig
from batchscan.records import ScanRecord
from batchscan.sandbox import degraded
from batchscan.sources import Item


def _run_shard(config: ScanConfig, run_id: str, items: list[Item],
               ) -> tuple[list[ScanRecord], dict[str, Any]]:
    """Runs on a Dask worker: the node's own sandboxed pool scans the shard, reading and
    writing the results cache at `--cache DIR` as seen from that node (a node-local disk, or
    a shared one: the SQLite cache is safe for concurrent runs). Returns the records and
    what the node could apply: its sandbox status and its cache use."""
    from batchscan.coordinator import Engine

    try:
        from distributed import get_worker

        worker = str(get_worker().address)
    except (ImportError, ValueError):
        worker = "local"
    engine = Engine(config, run_id)
    records = list(engine.run_items(items))  # run_items stores into and closes the cache
    report = {
        "node": socket.gethostname(),
        "worker": worker,
        "files": len(records),
        "cache": str(engine.cache.path) if engine.cache is not None else None,
        "cached": sum(r.cached for r in records),
        "sandbox": dict(engine.stats.sandbox),
        "sandbox_degraded": degraded(engine.stats.sandbox),
    }
    return records, report


def merge_nodes(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per Dask worker: shards, files, cache hits, what its sandbox missed."""
    nodes: dict[str, dict[str, Any]] = {}
    for report in reports:
        node = nodes.setdefault(report["worker"], {
            "node": report["node"], "worker": report["worker"], "shards": 0, "files": 0,
            "cache": report["cache"], "cached": 0, "sandbox_degraded": []})
        node["shards"] += 1
        node["files"] += report["files"]
        node["cached"] += report["cached"]
        for entry in report["sandbox_degraded"]:
            if entry not in node["sandbox_degraded"]:
                node["sandbox_degraded"].append(entry)
    return sorted(nodes.values(), key=lambda n: n["worker"])


def run(items: Iterable[Item], config: ScanConfig, run_id: str, scheduler: str | Any,
        shard_size: int = 2000, max_inflight: int | None = None,
        reports: list[dict[str, Any]] | None = None) -> Iterator[ScanRecord]:
    """Scan `items` on the cluster at `scheduler` (an address or a dask Client).

    Back-pressure: at most `max_inflight` shards (default: two per cluster worker) are
    submitted at a time, and the walk is only consumed as far as those shards need, so a
    million-file tree neither sits in the scheduler's memory nor in ours. Each finished
    shard's node report is appended to `reports`."""
    from distributed import Client, as_completed

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        if max_inflight is None:
            max_inflight = 2 * max(1, len(client.scheduler_info().get("workers", {})))
        source = iter(items)

        def next_shard() -> list[Item]:
            batch: list[Item] = []
            for item in source:
                batch.append(item)
                if len(batch) >= shard_size:
                    break
            return batch

        pending = as_completed()
        inflight = 0
        while True:
            while inflight < max_inflight:
                shard = next_shard()
                if not shard:
                    break
                pending.add(client.submit(_run_shard, config, run_id, shard, pure=False))
                inflight += 1
            if inflight == 0:
                return
            future = next(pending)
            inflight -= 1
            records, report = future.result()
            future.release()
            if reports is not None:
                reports.append(report)
            yield from records
    finally:
        if client is not scheduler:
            client.close()
