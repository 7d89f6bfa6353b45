"""Small-file throughput: 20,000 pickles of 1-50 KB, batchscan -j 2 next to two floors.

    python benchmarks/small_files.py [--files 20000] [--dir bench-data/small] [--jobs 2]

Prints files/s, MB/s and peak RSS for:
- `cat` of every byte (the I/O floor), one `cat` process fed by xargs;
- `pickletools.genops` over every pickle, in 2 processes (the parse floor);
- `batchscan scan DIR -f jsonl -j 2` (whole process: start-up, walk, pool, sha256, output).
Runs on a warm page cache (one untimed read first). The tree is generated once and reused.
"""

from __future__ import annotations

import argparse
import pickle
import random
import subprocess
import sys
import time
from pathlib import Path

import measure

GENOPS_WORKER = r"""
import os, pickletools, sys
paths = sys.argv[1:]
n = 0
for path in paths:
    with open(path, "rb") as handle:
        for _ in pickletools.genops(handle):
            n += 1
print(n)
"""


def make_tree(root: Path, count: int) -> None:
    marker = root / f".complete-{count}"
    if marker.exists():
        return
    rng = random.Random(1234)
    for i in range(count):
        folder = root / f"org{i % 40:02d}" / f"model{i % 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        target = rng.randint(1_000, 50_000)
        kind = i % 3
        if kind == 0:  # a state-dict-like mapping of float blobs
            obj: object = {f"layer{j}.weight": rng.randbytes(max(1, target // 4))
                           for j in range(4)}
        elif kind == 1:  # records: many small opcodes
            obj = [{"id": j, "label": f"c{j % 17}", "p": j / 3} for j in range(target // 40)]
        else:  # mixed config-like values
            obj = {"name": f"m{i}", "vocab": [f"tok{j}" for j in range(target // 12)],
                   "shape": (3, 224, 224)}
        (folder / f"f{i:05d}.pkl").write_bytes(pickle.dumps(obj, protocol=rng.choice([2, 4, 5])))
    marker.touch()


def files_under(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.pkl"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--dir", default="bench-data/small")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    make_tree(root, args.files)
    paths = files_under(root)
    total = sum(Path(p).stat().st_size for p in paths)
    list_file = root.parent / "small-files.txt"
    list_file.write_text("\n".join(paths) + "\n")
    subprocess.run(f"xargs cat < {list_file} > /dev/null", shell=True, check=True)  # warm

    rows: list[tuple[str, float, str]] = []
    cat = measure.run(["sh", "-c", f"xargs cat < {list_file} > /dev/null"])
    rows.append(("cat (read every byte)", cat.wall, "-"))
    half = len(paths) // 2
    start = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", GENOPS_WORKER, *chunk], stdout=subprocess.DEVNULL)
        for chunk in (paths[:half], paths[half:])
    ]
    for proc in procs:
        proc.wait()
    rows.append(("pickletools.genops, 2 processes", time.perf_counter() - start, "-"))
    out = root.parent / "small-files.jsonl"
    result = measure.run(
        [sys.executable, "-m", "batchscan", "scan", str(root), "-f", "jsonl", "-o", str(out),
         "-j", str(args.jobs), "--no-progress"])
    if result.returncode not in (0, 1):
        raise SystemExit(f"batchscan failed: {result.returncode} {result.stderr.decode()[-500:]}")
    records = sum(1 for _ in out.open("rb"))
    rss = f"{result.peak_root_kib / 1024:.0f}/{result.peak_other_kib / 1024:.0f} MB"
    rows.append((f"batchscan -j {args.jobs} (sha256 on)", result.wall, rss))

    print(f"tree: {len(paths)} pickles, {total / 1e6:.1f} MB; batchscan records: {records}")
    print(f"{'what':38} {'wall s':>8} {'files/s':>9} {'MB/s':>8} {'peak RSS':>14}")
    for name, seconds, rss_text in rows:
        print(f"{name:38} {seconds:8.2f} {len(paths) / seconds:9.0f} "
              f"{total / 1e6 / seconds:8.1f} {rss_text:>14}")
    print("peak RSS: coordinator / largest worker, sampled from /proc every 20 ms")


if __name__ == "__main__":
    main()
