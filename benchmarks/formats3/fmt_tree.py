"""Benign files of the fmt-tree formats (XGBoost JSON/UBJSON, LightGBM, skops, Flax msgpack,
R .rds/.RData) for the registry benchmark tree, and their per-format scan throughput.

    python benchmarks/formats3/fmt_tree.py DIR [--copies N] [--scan]

`write(folder, copies)` writes each benign fixture `copies` times (real library output from
tests/fixtures/formats3/, R streams built from the specification). With --scan, DIR is
scanned with `batchscan scan -j 2` and the records give per-format files/s and MB/s
(sum of sizes / sum of per-file `duration_ms`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from fixtures.formats3.tree import benign_files

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def write(folder: Path, copies: int = 1) -> list[Path]:
    return common.write(benign_files, folder, copies)


if __name__ == "__main__":
    common.main(benign_files)
