"""Files no scanner understands are never `clean` (issue 13): status `unsupported`, with the
cheap content checks of workers/unknown.py (YAML python tags, template markers, a pickle
PROTO at offset 0 under any name)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from batchscan.records import FileResult, Status
from batchscan.workers.registry import detect
from batchscan.workers.task import WorkerOptions, scan_file

YAML_PAYLOAD = b"model:\n  hidden: 128\nrun: !!python/object/apply:os.system [\"true\"]\n"


def scan(tmp_path: Path, name: str, data: bytes) -> FileResult:
    path = tmp_path / name
    path.write_bytes(data)
    return scan_file(str(path), WorkerOptions())


@pytest.mark.parametrize("name", ["hparams", "cfg.yaml.bak", "config.txt"])
def test_yaml_python_tag_under_any_name(tmp_path: Path, name: str) -> None:
    result = scan(tmp_path, name, YAML_PAYLOAD)
    assert result.derived_status() is Status.UNSUPPORTED
    assert any(f.rule_id == "YML001" and f.severity.value == "error" for f in result.findings)


def test_python_tag_in_text_that_is_not_yaml_is_a_warning(tmp_path: Path) -> None:
    data = b"{{{ not yaml: [\n  x: !!python/name:os.system\n"
    result = scan(tmp_path, "notes", data)
    assert any(f.rule_id == "YML001" and f.severity.value == "warning" for f in result.findings)


def test_template_injection_markers_under_any_name(tmp_path: Path) -> None:
    data = b"{{ cycler.__init__.__globals__.os.popen('true').read() }}\n"
    result = scan(tmp_path, "prompt", data)
    assert result.derived_status() is Status.UNSUPPORTED
    assert any(f.rule_id == "CFG005" for f in result.findings), result.findings


def test_damaged_pickle_at_offset_0_under_any_name(tmp_path: Path) -> None:
    result = scan(tmp_path, "weights.dat", b"\x80\x04\xff\xff\xff\xff")
    assert [(f.rule_id, f.severity.value) for f in result.findings] == [("PKL004", "info")]


def test_a_storage_member_starting_like_proto_is_not_a_finding(tmp_path: Path) -> None:
    """int64 128 is `80 00 ...`: a tensor storage is no damaged pickle."""
    import io
    import pickle
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": 1}, 2))
        archive.writestr("archive/data/0", (128).to_bytes(8, "little") + bytes(56))
    result = scan(tmp_path, "model.pt", buffer.getvalue())
    assert result.error is None and not result.findings, result


def test_unknown_binary_is_unsupported_never_clean(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(5000)
    result = scan(tmp_path, "shape_predictor.dat", b"dlib" + data)
    assert result.derived_status() is Status.UNSUPPORTED
    assert result.error and "not recognised" in result.error
    assert not result.findings


def test_core_ml_model_is_not_taken_for_onnx() -> None:
    feature = b"\x0a\x05input"  # FeatureDescription.name
    description = b"\x0a" + bytes([len(feature)]) + feature  # ModelDescription.input
    coreml = b"\x08\x04\x12" + bytes([len(description)]) + description
    assert detect(coreml, "model.mlmodel")[0] == "coreml"
    assert detect(coreml, "model.bin")[0] == "coreml"
    onnx_like = b"\x08\x07\x12\x07pytorch\x1a\x032.1"
    assert detect(onnx_like, "model.bin")[0] == "onnx"


def test_cached_results_of_an_older_analysis_are_not_reused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the old walker called `clean` (a damaged pickle, an unknown file) must be
    rescanned: the results cache keys on the analysis revision."""
    from batchscan import cache

    before = cache.ruleset_version()
    monkeypatch.setattr(cache, "ANALYSIS_REVISION", 1)
    assert cache.ruleset_version() != before
