"""A 4 GiB zip bomb in about 5 KB: time and memory to scan it.

    python benchmarks/zip_bomb.py

The member is 64 concatenated bzip2 streams of 64 MiB of zeros, declared as a 4 GiB
`data.pkl` (zip64). Prints the file size, the in-worker scan time, the growth of the
process's peak RSS, and the record's error.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from batchscan.workers.task import WorkerOptions, scan_file
from fixtures.containers import zip_bomb


def main() -> None:
    data = zip_bomb(4)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bomb.zip"
        path.write_bytes(data)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        result = scan_file(str(path), WorkerOptions())
        elapsed = time.perf_counter() - started
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    print(f"4 GiB bomb in {len(data):,} bytes: scanned in {elapsed * 1000:.1f} ms, peak RSS "
          f"grew {grown / 1024:.1f} MB; error: {result.error}")


if __name__ == "__main__":
    main()
