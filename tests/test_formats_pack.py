"""Formats III (fmt-pack): NeMo, TorchServe .mar, RAR, OCI/Docker image tars, executables and
llamafiles, TensorRT engines, OpenVINO IR, PMML (and the safe XML reader they share).

Benign fixtures: REAL library output for OpenVINO IR (openvino), PMML (nyoka + scikit-learn)
and .mar (torch-model-archiver), committed under tests/fixtures/formats3/<format>/ with their
generate.py and VERSIONS; the others are built from the format specifications by
tests/fixtures/formats3/pack.py (its docstring says why for each). Malicious twins carry
`os.system("true")` and are only written, never loaded.
"""

from __future__ import annotations

import gzip
import io
import random
import shutil
import struct
import tarfile
import time
from pathlib import Path

import pytest

from batchscan.records import FileResult, Severity
from batchscan.workers import compressed
from batchscan.workers.registry import detect
from batchscan.workers.task import WorkerOptions, scan_file
from fixtures.formats3 import pack
from fixtures.fuzz import INTERNAL, mutate


def scan(tmp_path: Path, name: str, data: bytes) -> FileResult:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return scan_file(str(path), WorkerOptions())


def rules(result: FileResult) -> dict[str, Severity]:
    found: dict[str, Severity] = {}
    for f in result.findings:
        if f.rule_id not in found or f.severity.rank > found[f.rule_id].rank:
            found[f.rule_id] = f.severity
    return found


def worst(result: FileResult) -> Severity | None:
    return max((f.severity for f in result.findings), key=lambda s: s.rank, default=None)


def assert_clean(result: FileResult) -> None:
    assert result.error is None, result.error
    assert all(f.severity.rank < Severity.WARNING.rank for f in result.findings), result.findings


def assert_format_error(result: FileResult, *words: str) -> None:
    assert result.error is not None
    assert not INTERNAL.search(result.error), result.error
    for word in words:
        assert word in result.error, result.error


BENIGN = pack.benign_files()


# --- NeMo ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nemo/asr.nemo", "nemo/asr-gz.nemo"])
def test_nemo_benign_is_clean_and_every_member_is_scanned(tmp_path: Path, name: str) -> None:
    result = scan(tmp_path, "m.nemo", BENIGN[name])
    assert_clean(result)
    # the NeMo module targets are named (INFO), so the YAML was really read inside the tar
    assert any(f.rule_id == "CFG004" and "ConvASREncoder" in f.message for f in result.findings)


def test_nemo_format_is_named(tmp_path: Path) -> None:
    assert scan(tmp_path, "m.nemo", BENIGN["nemo/asr.nemo"]).format == "nemo"


@pytest.mark.parametrize(("name", "rule", "where"), [
    ("target.nemo", "CFG003", "model_config.yaml"),
    ("weights.nemo", "PKL001", "model_weights.ckpt!/"),
    ("nested.nemo", "PKL001", "submodel.nemo!/"),
])
def test_nemo_malicious_config_weights_and_nested_checkpoint(tmp_path: Path, name: str,
                                                            rule: str, where: str) -> None:
    result = scan(tmp_path, name, pack.nemo_malicious()[name])
    hits = [f for f in result.findings if f.rule_id == rule]
    assert hits and hits[0].severity is Severity.ERROR
    assert any(where in (f.member or "") for f in hits), hits


def test_nemo_truncated_is_an_error(tmp_path: Path) -> None:
    data = BENIGN["nemo/asr.nemo"]
    result = scan(tmp_path, "t.nemo", data[: len(data) // 3])
    assert_format_error(result, "tar")


# --- TorchServe .mar ----------------------------------------------------------------------------
def test_mar_real_builtin_handler_is_clean(tmp_path: Path) -> None:
    result = scan(tmp_path, "b.mar", BENIGN["mar/builtin.mar"])
    assert_clean(result)
    assert result.format == "torchserve_mar"


def test_mar_real_custom_handler_is_a_warning_not_an_error(tmp_path: Path) -> None:
    result = scan(tmp_path, "c.mar", BENIGN["mar/custom.mar"])
    assert rules(result) == {"MAR001": Severity.WARNING}
    assert result.findings[0].member == "handler.py"


@pytest.mark.parametrize(("name", "expected"), [
    ("handler.mar", {"MAR001": Severity.WARNING, "PYS001": Severity.ERROR}),
    ("outside.mar", {"MAR002": Severity.WARNING}),
    ("requirements.mar", {"MAR003": Severity.WARNING}),
    ("pickle.mar", {"PKL001": Severity.ERROR}),
    ("nomanifest.mar", {"MAR004": Severity.WARNING}),
])
def test_mar_malicious(tmp_path: Path, name: str, expected: dict[str, Severity]) -> None:
    result = scan(tmp_path, name, pack.mar_malicious()[name])
    found = rules(result)
    for rule, severity in expected.items():
        assert found.get(rule) is severity, (rule, result.findings)


def test_mar_requirements_name_the_risky_lines(tmp_path: Path) -> None:
    result = scan(tmp_path, "r.mar", pack.mar_malicious()["requirements.mar"])
    message = next(f.message for f in result.findings if f.rule_id == "MAR003")
    assert "git+https" in message and "--extra-index-url" in message
    assert "numpy==2.0'" not in message.split(";", 1)[1]


def test_mar_real_tgz_archive_gets_the_manifest_checks(tmp_path: Path) -> None:
    data = (pack.HERE / "mar" / "custom-tgz.tar.gz").read_bytes()
    result = scan(tmp_path, "c.tar.gz", data)
    assert rules(result) == {"MAR001": Severity.WARNING}
    line = b"return torch.softmax(data, dim=1).tolist()"
    evil = gzip.decompress(data).replace(line, b'import os; os.system("true")'.ljust(len(line)))
    assert len(evil) == len(gzip.decompress(data))
    assert rules(scan(tmp_path, "e.tar", evil)).get("PYS001") is Severity.ERROR


def test_mar_truncated_is_an_error(tmp_path: Path) -> None:
    data = BENIGN["mar/custom.mar"]
    assert_format_error(scan(tmp_path, "t.mar", data[: len(data) - 30]))


# --- RAR ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rar/plain4.rar", "rar/plain5.rar"])
def test_rar_is_never_clean_but_lists_members(tmp_path: Path, name: str) -> None:
    result = scan(tmp_path, "a.rar", BENIGN[name])
    assert result.format == "rar"
    assert result.error is not None and "not decompressed" in result.error
    assert "2 member(s)" in result.error
    assert worst(result) is Severity.INFO


@pytest.mark.parametrize("name", ["traversal4.rar", "traversal5.rar"])
def test_rar_traversal_and_escaping_links_from_headers(tmp_path: Path, name: str) -> None:
    result = scan(tmp_path, name, pack.rar_malicious()[name])
    found = rules(result)
    assert found["RAR002"] is Severity.ERROR and found["RAR003"] is Severity.ERROR
    assert found["RAR005"] is Severity.INFO
    assert result.error is not None


def test_rar_link_inside_the_tree_is_not_an_escape(tmp_path: Path) -> None:
    data = pack.rar5([("model/a.txt", b"x", None), ("model/b", b"", "a.txt")])
    assert "RAR003" not in rules(scan(tmp_path, "l.rar", data))


@pytest.mark.parametrize("name", ["rar/plain4.rar", "rar/plain5.rar"])
def test_rar_truncated_headers_are_a_format_message(tmp_path: Path, name: str) -> None:
    data = BENIGN[name]
    result = scan(tmp_path, "t.rar", data[:30])
    assert_format_error(result, "headers unreadable")
    assert "RAR004" in rules(result)


def test_rar4_encrypted_headers_fail_closed(tmp_path: Path) -> None:
    data = b"Rar!\x1a\x07\x00" + pack._rar4_block(0x73, 0x0080, b"\x00" * 6)
    assert_format_error(scan(tmp_path, "e.rar", data), "encrypted")


def test_rar4_unicode_name_wins_over_the_ascii_name(tmp_path: Path) -> None:
    # flag 0x200: "safe.txt", NUL, then RAR's packed Unicode name (high byte 0, then groups
    # of four 1-byte opcodes) which unrar extracts to: "../../evil.pkl"
    target = b"../../evil.pkl"
    packed = b"\x00"
    for start in range(0, len(target), 4):
        packed += b"\x00" + target[start : start + 4]
    raw = b"safe.txt\x00" + packed
    body = struct.pack("<IIBIIBBHI", 1, 1, 3, 0, 0, 29, 0x30, len(raw), 0o100644) + raw
    data = (b"Rar!\x1a\x07\x00" + pack._rar4_block(0x73, 0, b"\x00" * 6)
            + pack._rar4_block(0x74, 0x8000 | 0x200, body) + b"x" + pack._rar4_block(0x7B, 0, b""))
    result = scan(tmp_path, "u.rar", data)
    traversal = [f for f in result.findings if f.rule_id == "RAR002"]
    assert traversal and "../../evil.pkl" in traversal[0].message


def test_rar_header_flood_is_bounded(tmp_path: Path) -> None:
    data = b"Rar!\x1a\x07\x00" + pack._rar4_block(0x75, 0, b"") * 200_000
    started = time.monotonic()
    result = scan(tmp_path, "f.rar", data)
    assert time.monotonic() - started < 10
    assert_format_error(result, "more than 100000 headers")


# --- OCI / Docker images ------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "fmt"), [("oci/image-oci.tar", "oci_image"),
                                           ("oci/image-docker.tar", "docker_image")])
def test_image_tars_benign_are_clean(tmp_path: Path, name: str, fmt: str) -> None:
    result = scan(tmp_path, "i.tar", BENIGN[name])
    assert_clean(result)
    assert result.format == fmt


@pytest.mark.parametrize("name", ["evil-oci.tar", "evil-docker.tar"])
def test_image_layer_members_are_checked(tmp_path: Path, name: str) -> None:
    result = scan(tmp_path, name, pack.oci_malicious()[name])
    found = rules(result)
    assert found["PKL001"] is Severity.ERROR  # a pickle inside a gzip layer inside the image
    assert found["TAR007"] is Severity.WARNING  # setuid
    assert found["TAR008"] is Severity.INFO  # whiteout
    assert found["TAR003"] is Severity.WARNING  # device
    assert found["TAR001"] is Severity.ERROR  # traversal
    whiteout = next(f for f in result.findings if f.rule_id == "TAR008")
    assert "'etc/passwd'" in whiteout.message


@pytest.mark.skipif(compressed._zstd is None, reason="no zstd decoder installed in this venv")
def test_zstd_layer_blob_is_decompressed_and_scanned(tmp_path: Path) -> None:
    blob = compressed._zstd.compress(pack.layer(evil=True))
    result = scan(tmp_path, "blobs/sha256/abc", blob)
    assert {"PKL001", "TAR007"} <= set(rules(result))


def test_image_layout_directory_walks_blobs(tmp_path: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(pack.oci_image(evil=True))) as archive:
        archive.extractall(tmp_path / "img", filter="data")
    blobs = sorted((tmp_path / "img" / "blobs" / "sha256").iterdir())
    results = [scan_file(str(b), WorkerOptions()) for b in blobs]
    assert any("PKL001" in rules(r) for r in results)


# --- executables, llamafiles --------------------------------------------------------------------
def test_llamafile_is_a_warning_and_its_weights_are_scanned(tmp_path: Path) -> None:
    benign = scan(tmp_path, "t.llamafile", BENIGN["exe/tiny.llamafile"])
    assert benign.format == "llamafile"
    assert rules(benign) == {"EXE001": Severity.WARNING}
    evil = scan(tmp_path, "s.llamafile", pack.executable_malicious()["ssti.llamafile"])
    assert rules(evil)["CFG005"] is Severity.ERROR
    assert any(f.member == "tiny.gguf" for f in evil.findings if f.rule_id == "CFG005")


def test_real_system_executable_is_a_warning(tmp_path: Path) -> None:
    true = shutil.which("true")
    assert true is not None, "coreutils `true` is part of every Linux image this runs on"
    result = scan_file(true, WorkerOptions())
    assert result.format == "executable"
    assert rules(result) == {"EXE001": Severity.WARNING}


@pytest.mark.parametrize("name", ["plugin.so", "tool.exe"])
def test_elf_and_pe_under_any_name(tmp_path: Path, name: str) -> None:
    data = pack.executable_malicious()[name]
    result = scan(tmp_path, "weights.bin", data)
    assert rules(result) == {"EXE001": Severity.WARNING}


def test_executable_member_of_a_mar_is_flagged(tmp_path: Path) -> None:
    data = pack.mar(pack._manifest(handler="image_classifier"),
                    [("model.pt", b"x"), ("libops.so", pack.elf())])
    result = scan(tmp_path, "x.mar", data)
    assert any(f.rule_id == "EXE001" and f.member == "libops.so" for f in result.findings)


def test_mz_text_is_not_an_executable() -> None:
    assert detect(b"MZ is a postal code\n" + b" " * 100, "notes.txt")[0] != "executable"


# --- TensorRT -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["trt/model.engine", "trt/yolo.engine"])
def test_tensorrt_is_never_clean(tmp_path: Path, name: str) -> None:
    result = scan(tmp_path, "m.engine", BENIGN[name])
    assert result.format == "tensorrt"
    assert result.error is not None and "undocumented" in result.error
    assert worst(result) is Severity.INFO


def test_tensorrt_plugins_and_embedded_library(tmp_path: Path) -> None:
    result = scan(tmp_path, "p.engine", pack.tensorrt_malicious()["plugin.engine"])
    messages = " ".join(f.message for f in result.findings if f.rule_id == "TRT001")
    assert "libcustom_nms_plugin.so" in messages and "MyNMS_TRT" in messages
    assert "embedded ELF" in messages


def test_tensorrt_search_is_linear_on_long_letter_runs(tmp_path: Path) -> None:
    # a name-first pattern would retry up to 120 bytes at every letter: quadratic
    data = pack.engine(b"A" * 4_000_000 + b"Plugin" + b"B" * 4_000_000 + b".so\x00")
    started = time.monotonic()
    result = scan(tmp_path, "r.engine", data)
    assert time.monotonic() - started < 5
    assert result.error is not None


def test_tensorrt_random_weights_name_no_plugin(tmp_path: Path) -> None:
    # weights look random: short accidental "x.so" / "_TRT" runs must not become findings
    body = random.Random(7).randbytes(64 * 1024 * 1024)
    result = scan(tmp_path, "w.engine", pack.engine(body))
    assert rules(result) == {"TRT002": Severity.INFO}, result.findings


def test_tensorrt_damaged_metadata_prefix_is_a_format_message(tmp_path: Path) -> None:
    data = bytearray(BENIGN["trt/yolo.engine"])
    data[10] = ord("}")
    assert_format_error(scan(tmp_path, "d.engine", bytes(data)), "TensorRT")


# --- OpenVINO IR --------------------------------------------------------------------------------
def test_openvino_real_ir_is_clean(tmp_path: Path) -> None:
    result = scan(tmp_path, "model.xml", BENIGN["openvino/model.xml"])
    assert result.format == "openvino"
    assert_clean(result)
    assert not result.findings


@pytest.mark.parametrize(("name", "expected"), [
    ("custom.xml", {"OVN001": Severity.WARNING}),
    ("library.xml", {"OVN002": Severity.WARNING, "OVN003": Severity.WARNING}),
    ("xxe.xml", {"XML001": Severity.ERROR}),
])
def test_openvino_malicious(tmp_path: Path, name: str, expected: dict[str, Severity]) -> None:
    result = scan(tmp_path, name, pack.openvino_malicious()[name])
    assert rules(result) == expected, result.findings


def test_openvino_custom_layer_inside_a_loop_body(tmp_path: Path) -> None:
    xml = BENIGN["openvino/model.xml"].decode()
    body = ('<layer id="9" name="loop" type="Loop" version="opset5"><body><layers>'
            '<layer id="0" name="p" type="Parameter" version="opset1"/>'
            '<layer id="1" name="e" type="EvilOp" version="my_extension"/>'
            "</layers><edges/></body></layer>\n\t</layers>")
    nested = xml.replace("</layers>", body, 1)
    result = scan(tmp_path, "n.xml", nested.encode())
    assert rules(result) == {"OVN001": Severity.WARNING}
    assert "'EvilOp'" in result.findings[0].message


def test_openvino_model_optimizer_extensions_directory(tmp_path: Path) -> None:
    xml = BENIGN["openvino/model.xml"].decode()
    default = xml.replace("</net>", '<meta_data><cli_parameters><extensions value="DIR"/>'
                          "</cli_parameters></meta_data></net>")
    assert rules(scan(tmp_path, "d.xml", default.encode())) == {}
    custom = default.replace('value="DIR"', 'value="/opt/ext/user_ops"')
    found = scan(tmp_path, "c.xml", custom.encode())
    assert rules(found) == {"OVN002": Severity.WARNING}
    assert "/opt/ext/user_ops" in found.findings[0].message


def test_openvino_truncated_is_a_format_message(tmp_path: Path) -> None:
    data = BENIGN["openvino/model.xml"]
    assert_format_error(scan(tmp_path, "t.xml", data[: len(data) // 2]),
                        "OpenVINO IR XML is malformed")


# --- PMML ---------------------------------------------------------------------------------------
def test_pmml_real_nyoka_export_is_clean(tmp_path: Path) -> None:
    result = scan(tmp_path, "tree.pmml", BENIGN["pmml/tree.pmml"])
    assert result.format == "pmml"
    assert_clean(result)
    assert not result.findings


@pytest.mark.parametrize(("name", "expected"), [
    ("xxe.pmml", {"XML001": Severity.ERROR}),
    ("dtd.pmml", {"XML002": Severity.ERROR}),
    ("laughs.pmml", {"XML003": Severity.WARNING}),
    ("extension.pmml", {"PMM001": Severity.WARNING}),
])
def test_pmml_malicious(tmp_path: Path, name: str, expected: dict[str, Severity]) -> None:
    result = scan(tmp_path, name, pack.pmml_malicious()[name])
    assert rules(result) == expected, result.findings


def test_xxe_is_detected_without_being_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-CANARY")
    data = pack.pmml_malicious()["xxe.pmml"].replace(b"file:///etc/passwd",
                                                     secret.as_uri().encode())
    result = scan(tmp_path, "x.pmml", data)
    assert "XML001" in rules(result)
    assert "TOPSECRET" not in repr(result.findings)


def test_billion_laughs_is_reported_in_bounded_time(tmp_path: Path) -> None:
    started = time.monotonic()
    result = scan(tmp_path, "l.pmml", pack.pmml_malicious()["laughs.pmml"])
    assert time.monotonic() - started < 5
    assert "expansion bomb" in next(f.message for f in result.findings)


def test_xxe_in_an_attribute_still_reported_when_expat_rejects_it(tmp_path: Path) -> None:
    data = (b'<?xml version="1.0"?>\n<!DOCTYPE PMML [<!ENTITY x SYSTEM "http://example.invalid/">]>'
            b'\n<PMML version="4.4"><Header description="&x;"/></PMML>')
    result = scan(tmp_path, "a.pmml", data)
    assert "XML001" in rules(result)
    assert_format_error(result, "PMML XML is malformed")


def test_pmml_wrong_root_and_truncation(tmp_path: Path) -> None:
    data = BENIGN["pmml/tree.pmml"]
    assert_format_error(scan(tmp_path, "t.pmml", data[: len(data) // 2]), "PMML XML is malformed")
    # the root element decides, after the prolog; a mention of <PMML> deeper does not
    assert detect(b'<?xml version="1.0"?><html><PMML>', "x.pmml")[0] != "pmml"
    prolog = (b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- a ] comment > -->\n'
              b'<!DOCTYPE PMML [<!ENTITY a "]>">\n<!ENTITY b "x">]>\n<pmml:PMML version="4.4"/>')
    assert detect(prolog, "x.bin")[0] == "pmml"
    assert detect(b'<net name="n" version="11"><layers/></net>', "x")[0] == "openvino"
    assert detect(b'<net name="n"><layers/></net>', "x")[0] != "openvino"


def test_deep_xml_is_bounded(tmp_path: Path) -> None:
    data = b'<PMML version="4.4">' + b"<Extension>" * 5000 + b"</Extension>" * 5000 + b"</PMML>"
    result = scan(tmp_path, "d.pmml", data)
    assert result.error is not None and "depth" in result.error


# --- fuzzing ------------------------------------------------------------------------------------
SEEDS: dict[str, bytes] = {**BENIGN, **pack.mar_malicious(), **pack.rar_malicious(),
                           **pack.tensorrt_malicious(), **pack.openvino_malicious(),
                           **pack.pmml_malicious(), **pack.executable_malicious()}
SEEDS["layer.tar.gz"] = gzip.compress(pack.layer(evil=True), mtime=0)
SEEDS.pop("openvino/model.bin")


def test_fuzzed_mutants_end_in_bounded_time_with_format_messages(tmp_path: Path) -> None:
    rng = random.Random(20)
    slowest = 0.0
    for name, data in sorted(SEEDS.items()):
        for index in range(10):
            mutant = mutate(data, rng)
            started = time.monotonic()
            result = scan(tmp_path, f"{index}-{Path(name).name}", mutant)
            slowest = max(slowest, time.monotonic() - started)
            if result.error is not None:
                assert not INTERNAL.search(result.error), (name, result.error)
    assert slowest < 5, slowest
