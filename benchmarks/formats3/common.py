"""What the formats3 benchmark scripts share: write benign files, scan them, per-format rates.

`fmt_tree.py` and `fmt_pack.py` are this module bound to their fixture set
(tests/fixtures/formats3/tree.py, pack.py); `registry_tree.py` calls their `write`.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

BenignFiles = Callable[[], dict[str, bytes]]


def write(benign_files: BenignFiles, folder: Path, copies: int = 1) -> list[Path]:
    """Write each benign file `copies` times under folder/c<N>/; return the paths."""
    written = []
    for index in range(copies):
        for name, data in benign_files().items():
            path = folder / f"c{index}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
    return written


def throughput(folder: Path) -> dict[str, tuple[int, float, float]]:
    """format -> (files, files per second, MB per second) from one scan's records."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "records.jsonl"
        subprocess.run([sys.executable, "-m", "batchscan", "scan", str(folder), "-j", "2",
                        "-f", "jsonl", "-o", str(out), "--no-progress"], check=False)
        records = [json.loads(line) for line in out.read_text().splitlines()]
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for record in records:
        entry = totals[record["format"]]
        entry[0] += 1
        entry[1] += record.get("duration_ms") or 0.0
        entry[2] += record.get("size") or 0
    return {fmt: (int(n), n / (ms / 1000) if ms else 0.0, size / 1e6 / (ms / 1000) if ms else 0.0)
            for fmt, (n, ms, size) in sorted(totals.items())}


def main(benign_files: BenignFiles) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--scan", action="store_true")
    args = parser.parse_args()
    paths = write(benign_files, args.dir, args.copies)
    print(f"wrote {len(paths)} files under {args.dir}")
    if args.scan:
        print(f"{'format':<16} {'files':>6} {'files/s':>10} {'MB/s':>8}")
        for fmt, (files, rate, mbs) in throughput(args.dir).items():
            print(f"{fmt:<16} {files:>6} {rate:>10.0f} {mbs:>8.1f}")
