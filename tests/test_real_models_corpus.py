"""The fast subset of benchmarks/real_models.py: benign files written by real ML libraries.

tests/fixtures/real_models/ holds a few tiny artefacts per false-positive class of issue 16
(and some that are clean today), copied from the benchmark's output by
`python -m benchmarks.real_artefacts.pick`; manifest.json says which library and version wrote
each and how. Every one must be fully scanned with no WARNING or ERROR. Files still in a
known false-positive class are `xfail(strict=True)` with that class as the reason: fixing the
class makes them pass unexpectedly, and the fixer then sets their `expect` to "clean".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchscan.records import Severity, Status
from batchscan.workers.task import WorkerOptions, scan_file

CORPUS = Path(__file__).parent / "fixtures" / "real_models"
MANIFEST: list[dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text())


def _params() -> list[Any]:
    params = []
    for row in MANIFEST:
        marks = []
        if row["expect"] != "clean":
            marks.append(pytest.mark.xfail(strict=True, reason=f"issue 16: {row['expect']}"))
        params.append(pytest.param(row, marks=marks, id=row["file"]))
    return params


def test_the_subset_is_small_and_described() -> None:
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.name != "manifest.json"]
    assert {p.relative_to(CORPUS).as_posix() for p in files} == {r["file"] for r in MANIFEST}
    assert all(p.stat().st_size < 200 * 1024 for p in files)
    assert sum(p.stat().st_size for p in files) < 3 * 1024 * 1024
    assert all(r["library"] and r["versions"] and r["how"] for r in MANIFEST)
    assert len({r["library"] for r in MANIFEST}) >= 10


@pytest.mark.parametrize("row", _params())
def test_real_benign_artefact_has_no_warning_or_error(row: dict[str, Any]) -> None:
    result = scan_file(str(CORPUS / row["file"]), WorkerOptions())
    # A format batchscan does not read yet (LightGBM text, CatBoost binary: issue 20) is
    # `unsupported`: never clean, but no alarm either.
    assert result.error is None or result.status is Status.UNSUPPORTED, result.error
    loud = [f for f in result.findings if f.severity.rank >= Severity.WARNING.rank]
    assert not loud, [(f.rule_id, f.message, f.evidence) for f in loud]
