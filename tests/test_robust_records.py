"""Issue 14, records and parsers: nothing a file or a name does can stop the run or lose a
record. Each test failed on the code before the fix (the coordinator died in orjson, a
parser exception named its class, a small file held a worker, a read allocated 2 GiB).
Malicious fixtures call `os.system("true")` and are only written, never loaded.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from batchscan import schema
from batchscan.records import Finding, ScanRecord, Severity, Status
from batchscan.workers import textscan
from batchscan.workers.jobs import WorkerOptions
from batchscan.workers.task import scan_file
from fixtures import containers, formats
from fixtures.fuzz import INTERNAL, build_tree, run_once

VALIDATOR = jsonschema.Draft202012Validator(schema.load_json_schema())


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "batchscan", *args, "--no-progress",
                           "-j", "2", "-t", "60"], capture_output=True, timeout=300,
                          check=False, cwd=cwd)


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _legacy_torch_huge_storage() -> bytes:
    """A legacy torch file whose storage count puts the next offset past 2^64."""
    ident = (b"(X\x07\x00\x00\x00storagectorch\nComplexDoubleStorage\nX\x01\x00\x00\x00k"
             b"X\x03\x00\x00\x00cpuK\x01tQ")
    main = b"\x80\x02" + ident + b"."
    keys = pickle.dumps(["k"], 2)
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True}, 2)
    return (containers.LEGACY_MAGIC + pickle.dumps(1001, 2) + sys_info + main + keys
            + struct.pack("<q", 2**63 - 1) + bytes(16))


def _surrogate_tree(root: Path) -> dict[str, bytes]:
    """Every place a lone surrogate reached orjson, plus the 2^64 offset."""
    template = "{{ x.__class__ }} \\ud800 {{ '\\ud800' }}"
    files = {
        "config.json": json.dumps({"chat_template": template, "_target_": "os.system\ud800",
                                   "auto_map": {"AutoModel": "a/b--m.\ud800"}}).encode(),
        "config.yaml": b'a: "\\ud800"\nb: !!python/object/apply:os.system ["\\ud800"]\n',
        "chat.jinja": template.encode(),
        "model.gguf": formats.gguf({"tokenizer.chat_template": template}),
        "model.safetensors": formats.safetensors({"code\ud800": "import os \ud800",
                                                  "_target_": "os.system"}),
        "legacy.pt": _legacy_torch_huge_storage(),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


def test_surrogates_and_huge_offsets_cost_nothing_but_are_recorded(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    files = _surrogate_tree(tree)
    out = tmp_path / "out.jsonl"
    proc = _cli("scan", str(tree), "-f", "jsonl", "-o", str(out))
    assert proc.returncode == 1, proc.stderr.decode()[-2000:]
    records = _records(out)
    assert sorted(Path(str(r["path"])).name for r in records) == sorted(files)
    for record in records:
        assert not list(VALIDATOR.iter_errors(record)), record
    by_name = {Path(str(r["path"])).name: r for r in records}
    assert by_name["chat.jinja"]["max_severity"] == "error"
    assert "\\ud800" in json.dumps(by_name["chat.jinja"]["findings"])  # escaped, kept
    legacy = by_name["legacy.pt"]
    assert legacy["status"] == "findings" and legacy["findings"]
    assert all(f["offset"] is None or f["offset"] < 2**63 for f in legacy["findings"])
    for fmt in ("json", "sarif", "text"):
        proc = _cli("scan", str(tree), "-f", fmt)
        assert proc.returncode == 1, (fmt, proc.stderr.decode()[-2000:])


def test_sanitize_bounds_every_field() -> None:
    findings = tuple(
        Finding("PKL00" + str(1 + i % 2), Severity.ERROR if i == 77_777 else Severity.WARNING,
                "m\ud800" * 2000, member="x" * 5000, offset=2**70 if i % 2 else i,
                evidence="e")
        for i in range(100_000))
    record = ScanRecord(run_id="r", path="a/b\udcffc.pkl", source="file", size=2**65,
                        sha256="nothex", format="Bad Format", status=Status.FINDINGS,
                        findings=findings, error=None, scanned_at=schema.utc_now(),
                        duration_ms=float("nan"), scanner_version="0.1.0")
    clean = schema.sanitize(record)
    line = schema.dumps_record(clean)
    assert len(line) <= schema.MAX_RECORD_BYTES
    data = json.loads(line)
    assert not list(VALIDATOR.iter_errors(data))
    assert data["findings_dropped"] == 100_000 - len(data["findings"]) > 0
    assert data["max_severity"] == "error"  # the worst finding is kept
    assert data["path"] == "a/b\\xffc.pkl"
    assert base64.b64decode(data["path_bytes"]) == b"a/b\xffc.pkl"
    assert schema.record_from_dict(data).path == "a/b\udcffc.pkl"


@pytest.mark.parametrize(("sha256", "kept"), [
    ("a" * 64, True), ("0123456789abcdef" * 4, True), ("A" * 64, False), ("a" * 63, False),
    ("a" * 64 + "\n", False), ("a" * 65, False), ("g" * 64, False), ("\u0661" * 64, False),
    (b"a" * 64, False), (None, False)])
def test_sanitize_keeps_only_a_lowercase_hex_sha256(sha256: object, kept: bool) -> None:
    record = ScanRecord(run_id="r", path="p", source="file", size=1, sha256=sha256,  # type: ignore[arg-type]
                        format="pickle", status=Status.CLEAN, findings=(), error=None,
                        scanned_at=schema.utc_now(), duration_ms=1.0, scanner_version="0")
    assert schema.sanitize(record).sha256 == (sha256 if kept else None)


@pytest.mark.parametrize(("fmt", "kept"), [
    ("pickle", True), ("keras_h5", True), ("tf_metagraph", True), ("", False),
    ("Pickle", False), ("pickle\n", False), ("pick le", False), ("\u00e9t\u00e9", False),
    ("\u0661", False), ("x" * 10_000, False), (7, False)])
def test_sanitize_keeps_only_a_plain_format_id(fmt: object, kept: bool) -> None:
    record = ScanRecord(run_id="r", path="p", source="file", size=1, sha256=None,
                        format=fmt, status=Status.CLEAN, findings=(), error=None,  # type: ignore[arg-type]
                        scanned_at=schema.utc_now(), duration_ms=1.0, scanner_version="0")
    assert schema.sanitize(record).format == (fmt if kept else "unknown")


def test_clean_text_keeps_text_and_escapes_what_utf8_cannot_carry() -> None:
    assert schema.clean_text("plain ascii", 100) == "plain ascii"
    assert schema.clean_text("caf\u00e9 \u4e2d", 100) == "caf\u00e9 \u4e2d"
    assert schema.clean_text("a\ud800b", 100) == "a\\ud800b"
    assert schema.clean_text("x" * 50, 10) == "x" * 10 + "...[40 characters cut]"


def test_a_broken_worker_result_becomes_that_files_error_record() -> None:
    from batchscan.config import ScanConfig
    from batchscan.coordinator import Engine
    from batchscan.records import FileResult
    from batchscan.sources import Item

    engine = Engine(ScanConfig(jobs=1))
    hostile = FileResult(format="pickle", size=1, sha256=None,
                         findings=(Finding("PKL001", Severity.ERROR, "m"), object()),  # type: ignore[arg-type]
                         error=None)
    record = engine._record(Item(path="p", display="p"), hostile)
    data = json.loads(schema.dumps_record(record))
    assert not list(VALIDATOR.iter_errors(data))
    assert data["max_severity"] == "error"  # nothing found is lost
    bad = FileResult(format="pickle", size=1, sha256=None, findings=None,  # type: ignore[arg-type]
                     error=None)
    data = json.loads(schema.dumps_record(engine._record(Item(path="p", display="p"), bad)))
    assert data["status"] == "error" and not list(VALIDATOR.iter_errors(data))


def test_million_globals_pickle_is_one_bounded_record(tmp_path: Path) -> None:
    body = b"".join(b"c" + f"evilmod{i}\nfn{i}\n".encode() + b"0" for i in range(200_000))
    path = tmp_path / "many.pkl"
    # the one call that matters comes last, after 200,000 unknown imports
    path.write_bytes(b"\x80\x02" + body + b"cposix\nsystem\n(X\x04\x00\x00\x00truetR.")
    out = tmp_path / "out.jsonl"
    proc = _cli("scan", str(path), "-f", "jsonl", "-o", str(out))
    assert proc.returncode == 1, proc.stderr.decode()[-2000:]
    line = out.read_bytes()
    assert len(line) <= schema.MAX_RECORD_BYTES
    (record,) = _records(out)
    assert record["findings_dropped"] > 0
    assert record["max_severity"] == "error"
    assert any(f["rule_id"] == "PKL001" for f in record["findings"])  # type: ignore[index, union-attr]
    assert len(record["findings"]) <= schema.MAX_FINDINGS


def test_names_that_are_not_utf8_in_every_output_resume_and_file_lists(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    raw = os.fsencode(tree) + b"/bad\xffname.pkl"
    with open(raw, "wb") as handle:
        handle.write(containers.EVIL)
    for fmt in ("jsonl", "json", "sarif", "text"):
        proc = _cli("scan", str(tree), "-f", fmt)
        assert proc.returncode == 1, (fmt, proc.stderr.decode()[-2000:])
        assert b"bad\\\\xffname.pkl" in proc.stdout or b"bad%FFname.pkl" in proc.stdout or (
            b"bad\\xffname.pkl" in proc.stdout and fmt == "text"), fmt
    out = tmp_path / "out.jsonl"
    assert _cli("scan", str(tree), "-f", "jsonl", "-o", str(out)).returncode == 1
    (record,) = _records(out)
    assert base64.b64decode(str(record["path_bytes"])) == raw
    # --resume reads the name back: nothing is scanned twice
    proc = _cli("scan", str(tree), "-f", "jsonl", "-o", str(out), "--resume")
    assert proc.returncode in (0, 1), proc.stderr.decode()
    assert len(_records(out)) == 1
    # an @FILE list holding the name's bytes
    listing = tmp_path / "targets.txt"
    listing.write_bytes(raw + b"\n")
    out2 = tmp_path / "out2.jsonl"
    proc = _cli("scan", f"@{listing}", "-f", "jsonl", "-o", str(out2))
    assert proc.returncode == 1, proc.stderr.decode()[-2000:]
    (record,) = _records(out2)
    assert base64.b64decode(str(record["path_bytes"])) == raw
    assert record["status"] == "findings"


def _scan_bytes(tmp_path: Path, name: str, data: bytes,
                options: WorkerOptions | None = None) -> tuple[object, float]:
    path = tmp_path / name
    path.write_bytes(data)
    started = time.perf_counter()
    result = scan_file(str(path), options or WorkerOptions())
    return result, time.perf_counter() - started


def test_parser_exceptions_are_format_errors_in_the_formats_words(tmp_path: Path) -> None:
    import lz4.frame

    cases = {
        "model.pkl.lz4": lz4.frame.compress(containers.EVIL)[:-9] + b"\x00" * 9,
        "broken.h5": b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4,
        "bad.safetensors": struct.pack("<Q", 9000) + b'{"a": {"shape": [' + b"9" * 8980
                           + b"]}}",
    }
    try:
        from backports import zstd
    except ImportError:
        zstd = None  # type: ignore[assignment]
    if zstd is not None:
        cases["model.pkl.zst"] = zstd.compress(containers.EVIL)[:-6] + b"\xff" * 6
    for name, data in cases.items():
        result, _ = _scan_bytes(tmp_path, name, data)
        text = (result.error or "") + " ".join(f.message for f in result.findings)  # type: ignore[attr-defined]
        assert not INTERNAL.search(text), (name, text)
        assert result.error or result.findings, name  # type: ignore[attr-defined]


def test_findings_made_before_a_parser_exception_are_kept(tmp_path: Path) -> None:
    # A gzip of a malicious pickle whose stream breaks after the payload: PKL001 is found
    # before the decompressor fails, and stays on the record.
    import gzip

    data = gzip.compress(containers.EVIL + b"\x00" * 200_000)
    damaged = data[:len(data) // 2] + b"\xff" * 64
    result, _ = _scan_bytes(tmp_path, "model.pkl.gz", damaged)
    assert result.error  # type: ignore[attr-defined]
    assert any(f.rule_id == "PKL001" for f in result.findings)  # type: ignore[attr-defined]


def test_quadratic_template_is_linear(tmp_path: Path) -> None:
    started = time.perf_counter()
    textscan.template_hits("{{" * 35_000)
    textscan.template_hits("{{ " + "|join" * 20_000 + " }}")
    assert time.perf_counter() - started < 2.0
    _, seconds = _scan_bytes(tmp_path, "chat.jinja", ("{{" * 35_000).encode())
    assert seconds < 3.0


def test_hdf5_hard_link_diamonds_are_walked_once(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "diamond.h5"
    with h5py.File(path, "w") as h5:
        groups = [h5.create_group(f"g{i}") for i in range(40)]
        for a, b in itertools.pairwise(groups):
            a["x"] = b
            a["y"] = b
        groups[-1]["loop"] = h5["/"]
        h5.attrs["model_config"] = b"{}"
    started = time.perf_counter()
    result = scan_file(str(path), WorkerOptions())
    assert time.perf_counter() - started < 5.0
    assert result.error is None


def test_safetensors_huge_shapes_are_bounded(tmp_path: Path) -> None:
    header = json.dumps({"a": {"dtype": "F32", "shape": [10**4000] * 200,
                               "data_offsets": [0, 16]}}).encode()
    data = struct.pack("<Q", len(header)) + header + bytes(16)
    result, seconds = _scan_bytes(tmp_path, "x.safetensors", data)
    assert seconds < 2.0
    assert any(f.rule_id.startswith("SFT") for f in result.findings)  # type: ignore[attr-defined]


@pytest.mark.sandbox
def test_reads_are_sized_by_the_file_not_the_format_limit(tmp_path: Path) -> None:
    """A 2 MiB ONNX model and a 2 MiB .pb scan under a 256 MiB memory limit."""
    onnx = formats.onnx_model(location=None, raw_size=2 * 1024 * 1024)
    (tmp_path / "model.onnx").write_bytes(onnx)
    (tmp_path / "saved_model.pb").write_bytes(
        formats.tf_savedmodel(["Const"] * 1000) + formats.field(9, bytes(2 * 1024 * 1024)))
    out = tmp_path / "out.jsonl"
    proc = _cli("scan", str(tmp_path / "model.onnx"), str(tmp_path / "saved_model.pb"),
                "-f", "jsonl", "-o", str(out), "--memory-limit", "256MiB")
    statuses = {Path(str(r["path"])).name: r["status"] for r in _records(out)}
    assert statuses["model.onnx"] != "oom" and statuses["saved_model.pb"] != "oom", (
        statuses, proc.stderr.decode()[-1000:])


def test_fuzz_one_run_of_mutants_and_hostile_names(tmp_path: Path) -> None:
    """Mutants of every format's fixtures plus hostile names, one CLI run (bounded)."""
    root = tmp_path / "tree"
    expected = build_tree(root, random.Random(14), mutants_per_seed=3, names=30)
    outcome = run_once(root, expected, timeout=10.0)
    assert outcome.records == outcome.inputs
    assert outcome.failures == []
    assert outcome.internal_names == 0 and outcome.over_caps == 0
