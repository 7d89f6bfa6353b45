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
done and go through the coordinator's writer like local ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from batchscan.config import ScanConfig
from batchscan.records import ScanRecord
from batchscan.sources import Item


def _run_shard(config: ScanConfig, run_id: str, items: list[Item]) -> list[ScanRecord]:
    """Runs on a Dask worker: the node's own sandboxed pool scans the shard."""
    from batchscan.coordinator import Engine

    return list(Engine(config, run_id).run_items(items))


def run(items: Iterable[Item], config: ScanConfig, run_id: str, scheduler: str | Any,
        shard_size: int = 2000) -> Iterator[ScanRecord]:
    """Scan `items` on the cluster at `scheduler` (an address or a dask Client)."""
    from distributed import Client, as_completed

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        node_config = dataclasses.replace(config, cache_dir=None)  # the cache is local
        futures = []
        batch: list[Item] = []
        for item in items:
            batch.append(item)
            if len(batch) >= shard_size:
                futures.append(client.submit(_run_shard, node_config, run_id, batch,
                                             pure=False))
                batch = []
        if batch:
            futures.append(client.submit(_run_shard, node_config, run_id, batch, pure=False))
        for future in as_completed(futures):
            yield from future.result()
    finally:
        if client is not scheduler:
            client.close()
