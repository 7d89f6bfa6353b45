"""Real files made by torch, numpy, scikit-learn, pandas, joblib, onnx and keras give no
WARNING/ERROR and are recognised by content.

The files under tests/fixtures/real are written by tests/fixtures/make_real.py (committed so
that CI checks them without installing torch or scikit-learn).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from batchscan.records import Severity, Status
from batchscan.workers.task import WorkerOptions, scan_file
from conftest import scan_pickle

REAL = Path(__file__).parent / "fixtures" / "real"
FILES = sorted(p for p in REAL.iterdir() if p.is_file())


def test_the_real_fixture_set_is_complete() -> None:
    names = {p.name for p in FILES}
    for expected in ("torch_state_dict.pt", "torch_full_module.pt", "torchscript_tiny.pt",
                     "torch_training_checkpoint.pt", "torch_state_dict.legacy.pt",
                     "sklearn_pipeline.lz4.joblib", "arrays.npz", "objects.npy",
                     "torch_state_dict.data.pkl", "torch_full_module.data.pkl",
                     "torch_training_checkpoint.data.pkl", "sklearn_pipeline_p4.pkl",
                     "sklearn_pipeline.joblib", "pandas_dataframe.pkl", "numpy_arrays_p5.pkl"):
        assert expected in names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_real_benign_file_is_fully_scanned_without_warning(path: Path) -> None:
    result = scan_file(str(path), WorkerOptions())
    if path.name == "onnx_mlp.weights":  # raw ONNX external tensor data: nothing to parse
        assert result.status is Status.UNSUPPORTED, result
    else:
        assert result.error is None, result.error
    assert all(f.severity.rank < Severity.WARNING.rank for f in result.findings), result.findings


@pytest.mark.parametrize(("name", "expected"), [
    ("torch_state_dict.pt", "pytorch_zip"), ("torchscript_tiny.pt", "torchscript"),
    ("torch_state_dict.legacy.pt", "pytorch_legacy"), ("arrays.npz", "npz"),
    ("numeric.npy", "numpy"), ("sklearn_pipeline.xz.joblib", "compressed"),
    ("sklearn_pipeline_p4.pkl", "pickle"), ("keras_dense.keras", "keras_zip"),
    ("keras_dense.h5", "keras_h5"), ("onnx_mlp.onnx", "onnx"),
])
def test_real_files_are_recognised_by_content(name: str, expected: str) -> None:
    assert scan_file(str(REAL / name), WorkerOptions()).format == expected


def _joblib_with_payload_after_arrays() -> bytes:
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, ("true",))

    buffer = io.BytesIO()
    joblib.dump({"weights": np.arange(10_000, dtype=np.float32),
                 "objects": np.array(["a", 1], dtype=object),
                 "strings": np.array(["abc", "d"]),
                 "after": Payload()}, buffer)
    return buffer.getvalue()


def test_joblib_payload_after_array_bytes_is_found() -> None:
    findings = scan_pickle(_joblib_with_payload_after_arrays())
    assert any(f.rule_id == "PKL001" and "system" in f.message and "true" in (f.evidence or "")
               for f in findings)
    assert not any(f.rule_id == "PKL004" for f in findings)


# --- benchmarks/real_models.py: shipped code is not a false positive, an ERROR on it still is --
def _real_models_module() -> object:
    import importlib.util
    import sys

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "real_models.py"
    spec = importlib.util.spec_from_file_location("real_models_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_models_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_report_excludes_only_warnings_on_artefacts_labelled_ships_code(tmp_path: Path) -> None:
    import json

    bench = _real_models_module()
    files = tmp_path / "files" / "lib"
    files.mkdir(parents=True)
    rows = []
    records = []
    cases = {"code_warn.pkl": (True, "warning"), "code_error.pkl": (True, "error"),
             "data_warn.pkl": (False, "warning"), "clean.pkl": (False, None)}
    for name, (code, worst) in cases.items():
        (files / name).write_bytes(b"x")
        row: dict[str, object] = {"path": name, "how": "test", "size": "1"}
        if code:
            row["ships_code"] = True
        rows.append(row)
        findings = [] if worst is None else [
            {"rule_id": "PKL001", "severity": worst, "message": f"{worst} here"}]
        records.append({"path": str(files / name), "status": "findings" if worst else "clean",
                        "max_severity": worst, "findings": findings})
    (tmp_path / "manifest").mkdir()
    (tmp_path / "manifest" / "lib.json").write_text(json.dumps(
        {"library": "lib", "versions": {"lib": "1"}, "status": "written", "reason": "",
         "artefacts": rows}))
    results = tmp_path / "scan.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = bench.report(tmp_path, results, None)  # type: ignore[attr-defined]
    assert summary["warning_rate"] == 2 / 4 and summary["error_rate"] == 1 / 4  # raw
    assert summary["fp_warning_rate"] == 1 / 4  # data_warn only
    assert summary["fp_error_rate"] == 1 / 4  # an ERROR on shipped code still counts
    assert summary["ships_code_warning"] == 1
