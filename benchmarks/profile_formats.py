"""Per-file cost of each format, profiled in a worker-like loop (no pool, no sandbox).

    .venv/bin/python benchmarks/profile_formats.py TREE [--formats yaml,keras_h5,...]
                                                   [--top 12] [--rounds 3]

Every regular file under TREE is detected once; for the chosen formats (default: json, yaml,
keras_h5, safetensors, gguf) the files are scanned `--rounds` times with
`batchscan.workers.task.scan_file` (what a pool worker runs per file: read, detect, scan,
sha256), the first round unprofiled (a worker's first file pays its lazy imports once; the
row says how much), the others under cProfile. Prints ms per file and the functions with the
most cumulative time per format.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

from batchscan.workers.base import Source
from batchscan.workers.jobs import WorkerOptions
from batchscan.workers.registry import detect_source
from batchscan.workers.task import scan_file

DEFAULT = ("json", "yaml", "keras_h5", "safetensors", "gguf")


def formats_of(tree: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = collections.defaultdict(list)
    for folder, _, names in os.walk(tree):
        for name in names:
            entry = Path(folder) / name
            if entry.is_symlink() or not entry.is_file():
                continue
            path = str(entry)
            try:
                with open(path, "rb") as handle:
                    fmt, _ = detect_source(Source(handle, os.fstat(handle.fileno()).st_size,
                                                  name))
            except OSError:
                continue
            found[fmt].append(path)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree")
    parser.add_argument("--formats", default=",".join(DEFAULT))
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    options = WorkerOptions()
    found = formats_of(Path(args.tree))
    for fmt in args.formats.split(","):
        paths = found.get(fmt, [])
        if not paths:
            print(f"== {fmt}: no files")
            continue
        start = time.perf_counter()
        first = scan_file(paths[0], options)
        first_ms = (time.perf_counter() - start) * 1000
        for path in paths[1:]:
            scan_file(path, options)
        profile = cProfile.Profile()
        start = time.process_time()
        profile.enable()
        for _ in range(args.rounds - 1):
            for path in paths:
                scan_file(path, options)
        profile.disable()
        cpu = (time.process_time() - start) * 1000 / max(1, (args.rounds - 1) * len(paths))
        size = sum(Path(p).stat().st_size for p in paths) / 1e6
        print(f"== {fmt}: {len(paths)} files, {size:.1f} MB; first file {first_ms:.1f} ms "
              f"(status {first.derived_status().value}); then {cpu:.2f} ms CPU per file "
              "(profiled)")
        stats = pstats.Stats(profile, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
