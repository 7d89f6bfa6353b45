"""The results cache: a first run and a rerun over an unchanged tree of 5,000 pickles.

    python benchmarks/cache_rerun.py [--dir bench-data/cache] [--files 5000]

Prints both wall times (whole process, -j 2, sha256 on), the speed-up, whether every record
of the rerun says `cached`, and the time of a third run after one file changed.
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
from pathlib import Path

import measure


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="bench-data/cache")
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args()
    root = Path(args.dir) / "tree"
    cache = Path(args.dir) / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    if not (root / f".complete-{args.files}").exists():
        records = [{"id": j, "label": f"c{j % 17}", "p": j / 3} for j in range(900)]
        for i in range(args.files):
            folder = root / f"d{i % 50:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{i:05d}.pkl").write_bytes(pickle.dumps([i, *records], 4))
        (root / f".complete-{args.files}").touch()
    command = [sys.executable, "-m", "batchscan", "scan", str(root), "-f", "jsonl", "-j", "2",
               "--cache", str(cache), "--no-progress"]
    first = measure.run(command)
    second = measure.run(command)
    cached = [json.loads(line)["cached"] for line in second.stdout.splitlines()]
    (root / "d00" / "f00000.pkl").write_bytes(pickle.dumps({"changed": True}, 4))
    third = measure.run(command)
    print(f"{args.files} pickles: first run {first.wall:.2f} s, unchanged rerun "
          f"{second.wall:.2f} s ({first.wall / second.wall:.1f}x faster, "
          f"{sum(cached)}/{len(cached)} records cached), one file changed {third.wall:.2f} s")


if __name__ == "__main__":
    main()
