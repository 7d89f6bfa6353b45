"""Benign files of the fmt-pack formats (NeMo, TorchServe .mar, RAR, OCI/Docker image tars,
llamafile, TensorRT, OpenVINO IR, PMML) for the registry benchmark tree, and their
per-format scan throughput.

    python benchmarks/formats3/fmt_pack.py DIR [--copies N] [--scan]

`write(folder, copies)` writes each benign fixture `copies` times (real library output for
OpenVINO, PMML and .mar from tests/fixtures/formats3/; the rest built from the format
specifications by tests/fixtures/formats3/pack.py). RAR and TensorRT files are never clean
by design (status `error`: not decompressed / undocumented plan). With --scan, DIR is
scanned with `batchscan scan -j 2` and the records give per-format files/s and MB/s (sum of
sizes / sum of per-file `duration_ms`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from fixtures.formats3.pack import benign_files

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def write(folder: Path, copies: int = 1) -> list[Path]:
    return common.write(benign_files, folder, copies)


if __name__ == "__main__":
    common.main(benign_files)
