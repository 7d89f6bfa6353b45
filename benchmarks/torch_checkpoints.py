"""PyTorch checkpoints: one 1 GB `torch.save` file, and a tree of 2,000 small ones.

    python benchmarks/torch_checkpoints.py [--dir bench-data/torch] [--jobs 2]

Needs torch (`pip install torch==2.13.0`, test-only) to write real checkpoints once. Prints
whole-process wall time (start-up included) for `batchscan scan` on the 1 GB file with and
without sha256, the in-worker scan time, the bytes the scan itself read (from the worker's
/proc/self/io, via a tiny probe), and files/s on the small-checkpoint tree.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import measure

from batchscan.workers.task import WorkerOptions, scan_file


def write_big(path: Path) -> None:
    if path.exists():
        return
    import torch

    state = {f"layers.{i}.weight": torch.ones(2048, 2048) for i in range(64)}  # 64 x 16 MiB
    torch.save(state, path)


def write_small_tree(root: Path, count: int) -> None:
    marker = root / f".complete-{count}"
    if marker.exists():
        return
    import torch
    from torch import nn

    torch.manual_seed(0)
    for i in range(count):
        folder = root / f"org{i % 20:02d}" / f"model{i % 200:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        width = 8 + i % 48
        model = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 4))
        torch.save(model.state_dict(), folder / f"ckpt{i:04d}.pt")
    marker.touch()


def read_bytes_of_scan(path: Path, do_hash: bool) -> int:
    """Bytes this process read() while scanning (rchar delta of /proc/self/io). The sha256
    of a large file goes through mmap, which rchar does not count."""
    def rchar() -> int:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        return 0

    before = rchar()
    scan_file(str(path), WorkerOptions(hash=do_hash))
    return rchar() - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="bench-data/torch")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--small", type=int, default=2000)
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    big = folder / "big-1gb.pt"
    write_big(big)
    big.read_bytes()  # warm the page cache
    size_mb = big.stat().st_size / 1e6
    print(f"1 GB checkpoint: {size_mb:.0f} MB")
    for label, extra in (("sha256 on", []), ("--no-hash", ["--no-hash"])):
        best = None
        for _ in range(3):
            run = measure.run([sys.executable, "-m", "batchscan", "scan", str(big), "-f",
                               "jsonl", "-j", "1", "--no-progress", *extra])
            record = json.loads(run.stdout.splitlines()[0])
            best = run if best is None or run.wall < best.wall else best
        assert best is not None
        print(f"  batchscan whole process ({label}): {best.wall:.2f} s wall, worker scan "
              f"{record['duration_ms']:.0f} ms, status {record['status']}, "
              f"peak RSS {best.peak_root_kib / 1024:.0f}/{best.peak_other_kib / 1024:.0f} MB")
    for do_hash in (False, True):
        started = time.perf_counter()
        read = read_bytes_of_scan(big, do_hash)
        print(f"  in-process scan_file (hash={do_hash}): {time.perf_counter() - started:.3f} s,"
              f" {read / 1e6:.2f} MB through read()" + (", the hash maps the file" if do_hash
                                                       else ""))

    tree = folder / "small"
    write_small_tree(tree, args.small)
    files = sorted(tree.rglob("*.pt"))
    total = sum(p.stat().st_size for p in files)
    run = measure.run([sys.executable, "-m", "batchscan", "scan", str(tree), "-f", "jsonl",
                       "-j", str(args.jobs), "--no-progress"])
    records = [json.loads(line) for line in run.stdout.splitlines()]
    statuses = {r["status"] for r in records if r["path"].endswith(".pt")}
    print(f"{len(files)} small torch checkpoints ({total / 1e6:.1f} MB): {run.wall:.2f} s wall,"
          f" {len(files) / run.wall:.0f} files/s with -j {args.jobs}, statuses {statuses}")


if __name__ == "__main__":
    main()
