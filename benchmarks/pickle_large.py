"""Large pickles: the opcode walker against a bare `pickletools.genops` pass.

    python benchmarks/pickle_large.py [--dir bench-data/pickles]

1. A ~55 MB pickle of 2 million small records: wall time of `genops` (iterate only) and of
   batchscan's analysis, their ratio, and opcodes/s.
2. A 150 MB bytes field followed by `os.system("true")` (ModelAudit stops reading at 100 MiB
   and misses it): is the call found, how long it takes, and the worker's peak RSS, measured
   end to end with the CLI so the sandbox and the skip-by-length path are what is timed.
"""

from __future__ import annotations

import argparse
import json
import pickle
import pickletools
import struct
import sys
import time
from pathlib import Path

import measure

from batchscan.workers import pickle as pickle_format
from batchscan.workers.base import Source
from batchscan.workers.registry import context


def records_pickle(path: Path) -> None:
    if path.exists():
        return
    data = [(i, f"r{i % 1000}", i * 0.5, i % 7 == 0, i % 250) for i in range(2_000_000)]
    path.write_bytes(pickle.dumps(data, protocol=4))


def big_bytes_pickle(path: Path, size: int = 150 * 1024 * 1024) -> None:
    if path.exists():
        return
    with path.open("wb") as out:
        out.write(b"\x80\x04]")
        out.write(b"\x8e" + struct.pack("<Q", size))
        chunk = bytes(1024 * 1024)
        for _ in range(size // len(chunk)):
            out.write(chunk)
        out.write(b"a" + b"cos\nsystem\n" + b"\x8c\x04true\x85Ra.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="bench-data/pickles")
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)

    records = folder / "records-2m.pkl"
    records_pickle(records)
    data = records.read_bytes()
    start = time.perf_counter()
    ops = sum(1 for _ in pickletools.genops(data))
    genops_s = time.perf_counter() - start
    start = time.perf_counter()
    findings = list(pickle_format.scan(Source.from_bytes(data, records.name), context()))
    walk_s = time.perf_counter() - start
    print(f"records pickle: {len(data) / 1e6:.1f} MB, {ops:,} opcodes")
    print(f"  pickletools.genops   {genops_s:6.2f} s  {ops / genops_s / 1e6:5.2f} M opcodes/s")
    print(f"  batchscan analysis   {walk_s:6.2f} s  {ops / walk_s / 1e6:5.2f} M opcodes/s"
          f"  ratio {walk_s / genops_s:.2f}x genops  findings: {len(findings)}")

    big = folder / "bytes-150mb-then-system.pkl"
    big_bytes_pickle(big)
    result = measure.run([sys.executable, "-m", "batchscan", "scan", str(big), "-f", "jsonl",
                          "-j", "1", "--no-progress"])
    record = json.loads(result.stdout.splitlines()[0])
    found = [f for f in record["findings"] if "os.system" in f["message"]]
    print(f"150 MB bytes field then os.system: {big.stat().st_size / 1e6:.0f} MB file,"
          f" exit {result.returncode}, os.system found: {bool(found)}"
          f" (offset {found[0]['offset'] if found else None}),"
          f" wall {result.wall:.2f} s incl. start-up and sha256;"
          f" peak RSS coordinator {result.peak_root_kib / 1024:.0f} MB,"
          f" worker {result.peak_other_kib / 1024:.0f} MB")


if __name__ == "__main__":
    main()
