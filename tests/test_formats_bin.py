"""Formats III, binary model formats: TFLite, ExecuTorch, Core ML, TF MetaGraph, PaddlePaddle,
MXNet.

Per format: the benign files written by the format's own library (tests/fixtures/formats3/,
generators beside them) scan clean; malicious twins built from the specification
(tests/fixtures/binformats.py, harmless payloads) are flagged; truncated or corrupted files end
as `error` with a message in the format's terms; fuzzed mutants end quickly.
"""

from __future__ import annotations

import json
import random
import struct
import time
from pathlib import Path

import pytest

from batchscan.records import FileResult, Severity
from batchscan.workers.task import WorkerOptions, scan_file
from fixtures import binformats as bf
from fixtures.fuzz import INTERNAL, mutate

REAL = Path(__file__).parent / "fixtures" / "formats3"


def scan(tmp_path: Path, name: str, data: bytes) -> FileResult:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return scan_file(str(path), WorkerOptions())


def rules(result: FileResult) -> set[str]:
    return {f.rule_id for f in result.findings}


def assert_clean(result: FileResult, fmt: str) -> None:
    assert result.format == fmt, result
    assert result.error is None, result.error
    assert not result.findings, result.findings


def assert_format_error(result: FileResult, fmt: str, words: str) -> None:
    """Not fully parsed (the record's status is `error`): the format named, no internal
    exception name."""
    assert result.format == fmt
    assert result.error is not None and words in result.error, result.error
    assert not INTERNAL.search(result.error), result.error


def fuzz(tmp_path: Path, name: str, data: bytes, count: int = 60) -> None:
    """Mutants scan in bounded time and never leak an internal exception name."""
    rng = random.Random(20)
    for i in range(count):
        mutant = mutate(data, rng)
        started = time.perf_counter()
        result = scan(tmp_path / str(i), name, mutant)
        assert time.perf_counter() - started < 5.0, (i, name)
        assert result.error is None or not INTERNAL.search(result.error), result.error


# --- TFLite ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dense.tflite", "tile.tflite"])
def test_tflite_real_converter_output_is_clean(tmp_path: Path, name: str) -> None:
    assert_clean(scan(tmp_path, name, (REAL / "tflite" / name).read_bytes()), "tflite")


def test_tflite_spec_built_benign_twin_is_clean(tmp_path: Path) -> None:
    assert_clean(scan(tmp_path, "m.tflite", bf.tflite()), "tflite")
    # A runtime-provided custom op and a harmless Flex op need no finding.
    result = scan(tmp_path, "d.tflite", bf.tflite([("TFLite_Detection_PostProcess", b""),
                                                   ("FlexRFFT", b"")]))
    assert_clean(result, "tflite")


def test_tflite_custom_op_is_named(tmp_path: Path) -> None:
    result = scan(tmp_path, "m.tflite", bf.tflite([("EvilKernel", b"os.system('true')")] * 2))
    [finding] = result.findings
    assert finding.rule_id == "TFL001" and finding.evidence == "EvilKernel"
    assert finding.severity is Severity.WARNING and "2 uses" in finding.message


@pytest.mark.parametrize("op", ["FlexWriteFile", "FlexReadFile", "FlexPyFunc",
                                "FlexEagerPyFunc"])
def test_tflite_flex_op_that_touches_files_or_python(tmp_path: Path, op: str) -> None:
    result = scan(tmp_path, "m.tflite", bf.tflite([(op, b"")]))
    assert rules(result) == {"TFL002"}
    assert {f.severity for f in result.findings} == {Severity.ERROR}


def test_tflite_flex_print_only_when_it_writes_a_file(tmp_path: Path) -> None:
    assert_clean(scan(tmp_path, "p.tflite", bf.tflite([("FlexPrintV2", b"stderr")])), "tflite")
    result = scan(tmp_path, "f.tflite", bf.tflite([("FlexPrintV2", b"file:///tmp/x")]))
    assert rules(result) == {"TFL002"}


def test_tflite_out_of_bounds_buffer_and_indexes(tmp_path: Path) -> None:
    result = scan(tmp_path, "b.tflite", bf.tflite(buffer_offset=1 << 40, buffer_size=16))
    assert rules(result) == {"TFL003"} and "buffer 2" in result.findings[0].message
    result = scan(tmp_path, "i.tflite", bf.tflite([("X", b"")], opcode_index=7,
                                                  tensor_buffer=99))
    messages = " ".join(f.message for f in result.findings)
    assert "operator code 7 of 2" in messages and "buffer 99 of 3" in messages


@pytest.mark.parametrize("path", ["/etc/passwd", "../../weights.bin", "C:\\w.bin"])
def test_tflite_external_buffer_group_escape(tmp_path: Path, path: str) -> None:
    result = scan(tmp_path, "e.tflite", bf.tflite(group=path))
    assert rules(result) == {"TFL004"}
    assert_clean(scan(tmp_path, "ok.tflite", bf.tflite(group="weights.bin")), "tflite")


def test_tflite_truncated_and_corrupted_are_errors(tmp_path: Path) -> None:
    data = (REAL / "tflite" / "dense.tflite").read_bytes()
    assert_format_error(scan(tmp_path, "t.tflite", data[:300]), "tflite", "TFLite flatbuffer")
    broken = data[:4] + b"TFL3" + data[8:]
    broken = (0xFFFFFF00).to_bytes(4, "little") + broken[4:]
    assert_format_error(scan(tmp_path, "c.tflite", broken), "tflite", "TFLite flatbuffer")


def test_tflite_fuzzed_mutants_are_bounded(tmp_path: Path) -> None:
    fuzz(tmp_path, "m.tflite", (REAL / "tflite" / "dense.tflite").read_bytes())
    fuzz(tmp_path, "x.tflite", bf.tflite([("EvilKernel", b"x")], group="w.bin"))


# --- ExecuTorch --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["add.pte", "xnnpack.pte"])
def test_executorch_real_exporter_output_is_clean(tmp_path: Path, name: str) -> None:
    assert_clean(scan(tmp_path, name, (REAL / "executorch" / name).read_bytes()), "executorch")


def test_executorch_spec_built_benign_twin_is_clean(tmp_path: Path) -> None:
    assert_clean(scan(tmp_path, "p.pte", bf.pte(delegates=["XnnpackBackend"])), "executorch")


def test_executorch_custom_operator_and_unknown_backend(tmp_path: Path) -> None:
    data = bf.pte([("aten::add", "out"), ("evil::system", "out")], ["EvilBackend"])
    result = scan(tmp_path, "p.pte", data)
    assert {(f.rule_id, f.evidence) for f in result.findings} == {
        ("PTE002", "evil::system"), ("PTE001", "EvilBackend")}


def test_executorch_segment_and_call_out_of_bounds(tmp_path: Path) -> None:
    result = scan(tmp_path, "p.pte", bf.pte(delegates=["XnnpackBackend"],
                                            segment=(0, 1 << 40), op_index=9))
    messages = " ".join(f.message for f in result.findings)
    assert rules(result) == {"PTE003"}
    assert "segment 0 lies at bytes" in messages and "calls operator 9 of 1" in messages


def test_executorch_truncated_and_corrupted_are_errors(tmp_path: Path) -> None:
    data = (REAL / "executorch" / "xnnpack.pte").read_bytes()
    assert_format_error(scan(tmp_path, "t.pte", data[:600]), "executorch", "ExecuTorch program")
    corrupted = data[:0x44] + b"\xff\xff\xff\x7f" + data[0x48:]
    result = scan(tmp_path, "c.pte", corrupted)
    assert result.error is not None and "ExecuTorch program" in result.error


def test_executorch_fuzzed_mutants_are_bounded(tmp_path: Path) -> None:
    fuzz(tmp_path, "m.pte", (REAL / "executorch" / "xnnpack.pte").read_bytes())
    fuzz(tmp_path, "x.pte", bf.pte([("evil::x", "out")], ["EvilBackend"]))


# --- TF MetaGraph --------------------------------------------------------------------------------

def test_tf_metagraph_real_saver_output_is_clean(tmp_path: Path) -> None:
    data = (REAL / "tf_metagraph" / "model.ckpt.meta").read_bytes()
    assert b"SaveV2" in data and b"RestoreV2" in data  # the checkpoint ops stay quiet
    assert_clean(scan(tmp_path, "model.ckpt.meta", data), "tf_metagraph")
    assert_clean(scan(tmp_path, "b.meta", bf.metagraph(["Placeholder", "MatMul"])),
                 "tf_metagraph")


@pytest.mark.parametrize(("op", "rule"), [("PyFunc", "TFG001"), ("EagerPyFunc", "TFG001"),
                                          ("WriteFile", "TFG002"), ("ReadFile", "TFG002"),
                                          ("WholeFileReaderV2", "TFG003")])
def test_tf_metagraph_dangerous_ops(tmp_path: Path, op: str, rule: str) -> None:
    result = scan(tmp_path, "model.ckpt.meta", bf.metagraph(["Placeholder", op]))
    assert result.format == "tf_metagraph" and rules(result) == {rule}


def test_tf_metagraph_truncated_and_corrupted_are_errors(tmp_path: Path) -> None:
    data = (REAL / "tf_metagraph" / "model.ckpt.meta").read_bytes()
    assert_format_error(scan(tmp_path, "t.meta", data[:2000]), "tf_metagraph", "MetaGraphDef")
    assert_format_error(scan(tmp_path, "c.meta", b"\x0a\x05abc"), "tf_metagraph",
                        "MetaGraphDef")


def test_tf_metagraph_fuzzed_mutants_are_bounded(tmp_path: Path) -> None:
    fuzz(tmp_path, "m.meta", (REAL / "tf_metagraph" / "model.ckpt.meta").read_bytes())


# --- MXNet -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dense-symbol.json", "dense-0000.params", "arrays.params"])
def test_mxnet_real_export_is_clean(tmp_path: Path, name: str) -> None:
    assert_clean(scan(tmp_path, name, (REAL / "mxnet" / name).read_bytes()), "mxnet")


def test_mxnet_spec_built_benign_twins_are_clean(tmp_path: Path) -> None:
    assert_clean(scan(tmp_path, "m-symbol.json", bf.mxnet_symbol()), "mxnet")
    assert_clean(scan(tmp_path, "m-0000.params", bf.mxnet_params([("arg:w", (3, 4)),
                                                                  ("aux:b", (2,))])), "mxnet")


def test_mxnet_custom_op_and_native_callback(tmp_path: Path) -> None:
    custom = {"op": "Custom", "name": "c", "attrs": {"op_type": "evil_py_op"},
              "inputs": [[2, 0, 0]]}
    native = {"op": "_Native", "name": "n", "attrs": {"info": "140737488355328"},
              "inputs": [[2, 0, 0]]}
    result = scan(tmp_path, "m-symbol.json", bf.mxnet_symbol([custom, native]))
    assert {(f.rule_id, f.evidence) for f in result.findings} == {
        ("MXN001", "evil_py_op"), ("MXN002", "_Native")}
    nested = {"op": "_CachedOp", "name": "g", "inputs": [],
              "subgraphs": [json.loads(bf.mxnet_symbol([custom]))]}
    assert rules(scan(tmp_path, "n-symbol.json", bf.mxnet_symbol([nested]))) == {"MXN001"}


def test_mxnet_symbol_config_checks_still_apply(tmp_path: Path) -> None:
    node = {"op": "null", "name": "x", "attrs": {"_target_": "os.system"}, "inputs": []}
    result = scan(tmp_path, "m-symbol.json", bf.mxnet_symbol([node]))
    assert result.format == "mxnet" and any(f.rule_id.startswith("CFG") for f in result.findings)


def test_mxnet_truncated_and_corrupted_are_errors(tmp_path: Path) -> None:
    params = (REAL / "mxnet" / "dense-0000.params").read_bytes()
    assert_format_error(scan(tmp_path, "t.params", params[:100]), "mxnet", "MXNet parameters")
    assert_format_error(scan(tmp_path, "n.params", bf.mxnet_params(names=5)), "mxnet",
                        "5 names for 1 arrays")
    huge = bf.mxnet_params([("arg:w", (1 << 40, 1 << 20))], data=False)
    assert_format_error(scan(tmp_path, "h.params", huge), "mxnet", "run past")
    symbol = (REAL / "mxnet" / "dense-symbol.json").read_bytes()
    assert_format_error(scan(tmp_path, "t-symbol.json", symbol[:300]), "mxnet", "not valid JSON")


def test_mxnet_fuzzed_mutants_are_bounded(tmp_path: Path) -> None:
    fuzz(tmp_path, "m.params", (REAL / "mxnet" / "dense-0000.params").read_bytes())
    fuzz(tmp_path, "m-symbol.json", (REAL / "mxnet" / "dense-symbol.json").read_bytes())


# --- PaddlePaddle ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["linear.pdmodel", "linear.pdiparams", "linear_pir.json",
                                  "linear_pir.pdiparams"])
def test_paddle_real_jit_save_output_is_clean(tmp_path: Path, name: str) -> None:
    data = (REAL / "paddle" / name).read_bytes()
    # Content decides, not the name.
    assert_clean(scan(tmp_path, "renamed.bin", data), "paddle")


def test_paddle_spec_built_benign_twins_are_clean(tmp_path: Path) -> None:
    program = bf.paddle_program([bf.paddle_op("feed"), bf.paddle_op("matmul_v2"),
                                 bf.paddle_op("fetch")])
    assert_clean(scan(tmp_path, "m.pdmodel", program), "paddle")
    assert_clean(scan(tmp_path, "m.pdiparams", bf.paddle_params([(3, 4), (3,)])), "paddle")


def test_paddle_python_and_file_ops_in_program(tmp_path: Path) -> None:
    program = bf.paddle_program([bf.paddle_op("feed"), bf.paddle_op("py_func"),
                                 bf.paddle_op("save_combine", [("file_path", "/tmp/x")]),
                                 bf.paddle_op("load", [("file_path", "../../etc/passwd")])])
    result = scan(tmp_path, "m.pdmodel", program)
    assert {(f.rule_id, f.evidence) for f in result.findings} == {
        ("PDL001", "py_func"), ("PDL002", "/tmp/x"), ("PDL002", "../../etc/passwd")}


def test_paddle_python_and_file_ops_in_pir_json(tmp_path: Path) -> None:
    document = json.loads((REAL / "paddle" / "linear_pir.json").read_bytes())
    ops = document["program"]["regions"][0]["blocks"][0]["ops"]
    inner = {"#": "1.save_combine", "A": [{"AT": {"#": "0.a_str", "D": "/tmp/x"},
                                           "N": "file_path"}]}
    ops.append({"#": "1.if", "A": [], "regions": [{"blocks": [{"ops": [inner]}]}]})
    ops.append({"#": "1.py_func", "A": []})
    result = scan(tmp_path, "m.json", json.dumps(document).encode())
    assert {(f.rule_id, f.evidence) for f in result.findings} == {
        ("PDL001", "py_func"), ("PDL002", "/tmp/x")}


def test_paddle_truncated_and_corrupted_are_errors(tmp_path: Path) -> None:
    params = (REAL / "paddle" / "linear.pdiparams").read_bytes()
    assert_format_error(scan(tmp_path, "t.pdiparams", params[:80]), "paddle",
                        "PaddlePaddle parameters file")
    program = (REAL / "paddle" / "linear.pdmodel").read_bytes()
    assert_format_error(scan(tmp_path, "t.pdmodel", program[:3000]), "paddle",
                        "PaddlePaddle program")
    pir = (REAL / "paddle" / "linear_pir.json").read_bytes()
    assert_format_error(scan(tmp_path, "t.json", pir[:500]), "paddle", "not valid JSON")


def test_paddle_fuzzed_mutants_are_bounded(tmp_path: Path) -> None:
    for name in ("linear.pdmodel", "linear.pdiparams", "linear_pir.json"):
        fuzz(tmp_path / name, name, (REAL / "paddle" / name).read_bytes(), count=40)


# --- Core ML -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dense.mlmodel", "pipeline.mlmodel", "program.mlmodel"])
def test_coreml_real_coremltools_output_is_clean(tmp_path: Path, name: str) -> None:
    data = (REAL / "coreml" / name).read_bytes()
    assert_clean(scan(tmp_path, name, data), "coreml")
    assert_clean(scan(tmp_path, "renamed.bin", data), "coreml")  # content decides


def test_coreml_spec_built_benign_twins_are_clean(tmp_path: Path) -> None:
    assert_clean(scan(tmp_path, "m.mlmodel", bf.coreml()), "coreml")
    linked = bf.coreml(linked=("Encoder.mlmodelc", "$BUNDLE_MAIN:$BUNDLE_IDENTIFIER(x)"))
    assert_clean(scan(tmp_path, "l.mlmodel", linked), "coreml")


def test_coreml_custom_layers_and_models_wherever_they_nest(tmp_path: Path) -> None:
    nested = bf.coreml([bf.coreml_layer("a"), bf.coreml_layer(
        "b", branch=[bf.coreml_layer("c", custom_class="EvilLayer")])])
    pipeline = bf.coreml(pipeline=[bf.coreml(), bf.coreml(custom_model="EvilModel")])
    for name, data, cls in (("n.mlmodel", nested, "EvilLayer"),
                            ("p.mlmodel", pipeline, "EvilModel")):
        result = scan(tmp_path, name, data)
        assert {(f.rule_id, f.evidence) for f in result.findings} == {("CML001", cls)}


@pytest.mark.parametrize(("file_name", "search", "path"), [
    ("../../secret.mlmodelc", "$BUNDLE_MAIN", "../../secret.mlmodelc"),
    ("Encoder.mlmodelc", "$BUNDLE_MAIN:/private/var/tmp", "/private/var/tmp")])
def test_coreml_linked_model_escape(tmp_path: Path, file_name: str, search: str,
                                    path: str) -> None:
    result = scan(tmp_path, "l.mlmodel", bf.coreml(linked=(file_name, search)))
    assert {(f.rule_id, f.evidence) for f in result.findings} == {("CML002", path)}


@pytest.mark.parametrize("path", [b"/" * 20 + b"etc/passwd", b"@model_path/../../../../../x.b"])
def test_coreml_ml_program_weight_blob_escape(tmp_path: Path, path: bytes) -> None:
    """The real ML Program's blob file name, rewritten in place (same length, so the
    protobuf stays valid), is reported once per path."""
    data = (REAL / "coreml" / "program.mlmodel").read_bytes()
    original = b"@model_path/weights/weight.bin"
    assert data.count(original) >= 1 and len(path) == len(original)
    result = scan(tmp_path, "p.mlmodel", data.replace(original, path))
    assert [(f.rule_id, f.evidence) for f in result.findings] == [("CML002", path.decode())]


def test_coreml_truncated_is_an_error(tmp_path: Path) -> None:
    data = (REAL / "coreml" / "pipeline.mlmodel").read_bytes()
    assert_format_error(scan(tmp_path, "t.mlmodel", data[:120]), "coreml", "Core ML protobuf")


def test_coreml_fuzzed_mutants_are_bounded(tmp_path: Path) -> None:
    fuzz(tmp_path, "m.mlmodel", (REAL / "coreml" / "pipeline.mlmodel").read_bytes())


@pytest.mark.parametrize("document", [
    {"nodes": [{"op": "null", "name": "x", "subgraphs": 5}]},
    {"nodes": [{"op": "null", "name": "x"}], "heads": 7},
    {"nodes": [{"op": "null", "name": "x"}], "heads": [["a"]]}])
def test_mxnet_wrongly_typed_graph_is_a_format_error(tmp_path: Path,
                                                    document: dict[str, object]) -> None:
    result = scan(tmp_path, "m-symbol.json", json.dumps(document).encode())
    assert_format_error(result, "mxnet", "MXNet symbol graph")


@pytest.mark.parametrize(("op", "error"), [({"#": "1.x", "A": 5}, "attributes is not a list"),
                                           ({"#": "1.x", "A": [{"N": "a", "AT": []}]}, None),
                                           (7, "op 1 has no name")])
def test_paddle_wrongly_typed_pir_is_handled(tmp_path: Path, op: object,
                                             error: str | None) -> None:
    document = {"base_code": {"magic": "pir"},
                "program": {"regions": [{"blocks": [{"ops": [op]}]}]}}
    result = scan(tmp_path, "m.json", json.dumps(document).encode())
    if error is None:
        assert_clean(result, "paddle")
    else:
        assert_format_error(result, "paddle", error)


def test_weak_signatures_do_not_claim_tensor_storages(tmp_path: Path) -> None:
    """Raw tensor bytes (zip members of torch checkpoints are sniffed too) that start like a
    save_combine header or the NDArray list magic are not taken for Paddle or MXNet files."""
    from batchscan.workers.registry import detect

    int32_indices = struct.pack("<8i", 0, 0, 0, 0, 5, 8, 3, 9) + bytes(64)
    int64_tokens = struct.pack("<6q", 0x112, 0, 7, 11, 13, 17) + bytes(64)
    assert detect(int32_indices, "archive/data/0")[0] not in ("paddle", "mxnet")
    assert detect(int64_tokens, "archive/data/1")[0] not in ("paddle", "mxnet")
    assert detect(bf.paddle_params(), "archive/data/2")[0] == "paddle"
    assert detect(bf.mxnet_params(), "archive/data/3")[0] == "mxnet"


def test_tflite_flex_node_def_decides_the_op_not_the_custom_code(tmp_path: Path) -> None:
    """The Flex delegate builds its kernel from the NodeDef in the custom options: a harmless
    custom code carrying a WriteFile NodeDef is still a file op."""
    node_def = bf.pb(1, "x") + bf.pb(2, "WriteFile")  # NodeDef{name, op}
    options = b"AddV2\x00" + bytes([len(node_def)]) + node_def  # name, then the NodeDef
    result = scan(tmp_path, "m.tflite", bf.tflite([("FlexAddV2", options)]))
    assert {(f.rule_id, f.message.rsplit(" ", 2)[-2]) for f in result.findings} == {
        ("TFL002", "WriteFile")}
    # Op names inside longer words are not ops.
    assert_clean(scan(tmp_path, "ok.tflite", bf.tflite([("FlexAddV2", b"MyReadFileX")])),
                 "tflite")
