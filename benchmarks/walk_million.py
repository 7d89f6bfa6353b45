"""A 1,000,000-entry tree of empty files: time to the first record and the coordinator's RSS.

    python benchmarks/walk_million.py [--entries 1000000] [--seconds 60] [--dir bench-data/million]

Creates the tree once (1,000 directories of 1,000 empty files), starts `batchscan scan -j 2
-f jsonl`, samples the coordinator's RSS from /proc every 20 ms, and prints the time until
the first record was written, records written per 10 s, and the RSS curve. With
`--seconds N` the run is interrupted after N seconds (SIGINT; exit 130 and a valid output
are part of what is measured); `--seconds 0` lets it finish.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from measure import rss_kib


def make_tree(root: Path, entries: int) -> None:
    marker = root / f".complete-{entries}"
    if marker.exists():
        return
    per_dir = 1000
    for d in range(entries // per_dir):
        folder = root / f"d{d:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(per_dir):
            os.close(os.open(folder / f"f{f:04d}", os.O_CREAT | os.O_WRONLY, 0o644))
    marker.touch()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--dir", default="bench-data/million")
    args = parser.parse_args()
    root = Path(args.dir) / "tree"
    started = time.perf_counter()
    make_tree(root, args.entries)
    print(f"tree of {args.entries:,} entries ready ({time.perf_counter() - started:.0f} s)")
    out = Path(args.dir) / "run.jsonl"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "batchscan", "scan", str(root), "-f",
                                "jsonl", "-o", str(out), "-j", "2", "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_record = None
    curve: list[tuple[float, int, int]] = []
    next_mark = 0.0
    while process.poll() is None:
        now = time.perf_counter() - started
        if first_record is None and out.exists() and out.stat().st_size > 0:
            first_record = now
        if now >= next_mark:
            size = out.stat().st_size if out.exists() else 0
            curve.append((now, rss_kib(process.pid), size))
            next_mark += 10.0
        if args.seconds and now > args.seconds:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
            break
        time.sleep(0.02)
    records = sum(1 for _ in out.open("rb")) if out.exists() else 0
    wall = time.perf_counter() - started
    print(f"first record after {first_record:.2f} s; {records:,} records in {wall:.1f} s "
          f"({records / wall:.0f}/s); exit code {process.returncode}")
    print("t (s)   coordinator RSS (MB)   output (MB)")
    for t, rss, size in curve:
        print(f"{t:6.0f}   {rss / 1024:20.1f}   {size / 1e6:11.1f}")


if __name__ == "__main__":
    main()
