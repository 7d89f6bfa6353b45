"""Benign TFLite, ExecuTorch, Core ML, TF MetaGraph, PaddlePaddle and MXNet files for the
registry benchmark tree, and a per-format throughput measurement of their scanners.

    python benchmarks/formats3/fmt_bin.py DIR [--copies N] [--measure]

`write(dir, copies)` writes the real fixtures (written by each format's own library, see
tests/fixtures/formats3/*/make_*.py) and spec-built twins (tests/fixtures/binformats.py),
`copies` times each, under DIR/<format>/. `--measure` then scans DIR with the CLI and prints
files, bytes and files/s per format from the JSONL records (the wall time of the run is
shared in proportion to each format's summed `duration_ms`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from fixtures import binformats as bf  # noqa: E402

REAL = ROOT / "tests" / "fixtures" / "formats3"
FORMATS = ("tflite", "executorch", "coreml", "tf_metagraph", "paddle", "mxnet")


def _spec_built() -> dict[str, bytes]:
    return {
        "tflite/spec.tflite": bf.tflite(),
        "executorch/spec.pte": bf.pte(delegates=["XnnpackBackend"]),
        "coreml/spec.mlmodel": bf.coreml(),
        "tf_metagraph/spec.meta": bf.metagraph(["Placeholder", "MatMul", "SaveV2"]),
        "paddle/spec.pdmodel": bf.paddle_program([bf.paddle_op("feed"),
                                                  bf.paddle_op("matmul_v2")]),
        "paddle/spec.pdiparams": bf.paddle_params([(64, 64), (64,)]),
        "mxnet/spec-symbol.json": bf.mxnet_symbol(),
        "mxnet/spec-0000.params": bf.mxnet_params([("arg:w", (64, 64))]),
    }


def write(folder: Path, copies: int = 1) -> list[Path]:
    """Write `copies` of every benign file under folder/<format>/; return the paths."""
    written: list[Path] = []
    files: dict[str, bytes] = {f"{p.parent.name}/{p.name}": p.read_bytes()
                               for fmt in FORMATS for p in sorted((REAL / fmt).iterdir())
                               if p.is_file() and p.suffix != ".py"}
    files.update(_spec_built())
    for name, data in files.items():
        fmt, base = name.split("/")
        for copy in range(copies):
            path = folder / fmt / f"c{copy}" / base
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
    return written


def measure(folder: Path) -> None:
    output = folder.parent / (folder.name + ".jsonl")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "batchscan", "scan", str(folder), "-f", "jsonl",
                    "-o", str(output), "-j", "2", "--no-progress"], check=False)
    wall = time.perf_counter() - started
    files: dict[str, int] = defaultdict(int)
    size: dict[str, int] = defaultdict(int)
    busy: dict[str, float] = defaultdict(float)
    statuses: dict[str, set[str]] = defaultdict(set)
    for line in output.read_text().splitlines():
        record = json.loads(line)
        fmt = record["format"]
        files[fmt] += 1
        size[fmt] += record["size"] or 0
        busy[fmt] += record["duration_ms"] or 0.0
        statuses[fmt].add(record["status"])
    total_busy = sum(busy.values()) or 1.0
    print(f"{sum(files.values())} files in {wall:.2f} s wall")
    print(f"{'format':<14}{'files':>7}{'bytes':>10}{'ms/file':>9}{'files/s (share)':>17}  status")
    for fmt in sorted(files):
        share = wall * busy[fmt] / total_busy
        rate = files[fmt] / share if share else float("inf")
        print(f"{fmt:<14}{files[fmt]:>7}{size[fmt]:>10}{busy[fmt] / files[fmt]:>9.3f}"
              f"{rate:>17.0f}  {','.join(sorted(statuses[fmt]))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--measure", action="store_true")
    args = parser.parse_args()
    if args.dir.exists():
        shutil.rmtree(args.dir)
    paths = write(args.dir, args.copies)
    print(f"wrote {len(paths)} files under {args.dir}")
    if args.measure:
        measure(args.dir)


if __name__ == "__main__":
    main()
