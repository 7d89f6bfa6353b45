"""Red team of issue 20's format modules: sniff hijacks, fail-open variants, resource use.

Every fixture is generated here with a harmless payload (`os.system("true")`) and only
scanned, never loaded. The shapes were confirmed with the real loaders in a throwaway
subprocess (a marker under /tmp).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchscan.records import FileResult, Severity
from batchscan.workers.task import WorkerOptions, scan_file

_ORDER = [Severity.DEBUG, Severity.INFO, Severity.WARNING, Severity.ERROR]
TARGET = {"_target_": "os.system", "_args_": ["true"]}


def scan(tmp_path: Path, data: bytes, name: str) -> FileResult:
    path = tmp_path / name
    path.write_bytes(data)
    return scan_file(str(path), WorkerOptions())


def worst(result: FileResult) -> Severity | None:
    return max((f.severity for f in result.findings), key=_ORDER.index, default=None)


# --- sniff hijack: JSON whose first key names an inert format ------------------------------
# xgboost, orbax and skops_schema sit before json_config and claim a JSON document by its first
# key; each then checked only the keys its format defines. Hydra's `instantiate` (1.3.2) of the
# same document walks every key and ran the nested `_target_` (marker file created); batchscan
# said `clean`. Fixed: these modules also give the whole document the config checks.
XGBOOST_MODEL: dict[str, Any] = {
    "learner": {
        "attributes": {}, "feature_names": [], "feature_types": [],
        "gradient_booster": {"name": "gbtree", "model": {
            "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "1"},
            "iteration_indptr": [0, 1], "tree_info": [0],
            "trees": [{"tree_param": {"num_nodes": "1", "size_leaf_vector": "1",
                                      "num_feature": "1", "num_deleted": "0"},
                       "id": 0, "left_children": [-1], "right_children": [-1],
                       "parents": [2147483647], "split_indices": [0],
                       "split_conditions": [0.5], "split_type": [0], "default_left": [0],
                       "base_weights": [0.5], "loss_changes": [0.0], "sum_hessian": [1.0],
                       "categories": [], "categories_nodes": [], "categories_segments": [],
                       "categories_sizes": []}]}},
        "learner_model_param": {"base_score": "5E-1", "num_class": "0", "num_feature": "1",
                                "num_target": "1", "boost_from_average": "1"},
        "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}},
    },
    "version": [2, 0, 0],
}
HIJACKS: dict[str, tuple[str, dict[str, Any]]] = {
    "xgboost_top": ("xgboost", {**XGBOOST_MODEL, "model": TARGET}),
    "xgboost_in_tree": ("xgboost", json.loads(json.dumps(XGBOOST_MODEL).replace(
        '"id": 0', '"id": 0, "hook": ' + json.dumps(TARGET)))),
    "orbax_tree": ("orbax", {"tree_metadata": {}, "model": TARGET}),
    "orbax_checkpoint": ("orbax", {"item_handlers": {}, "model": TARGET}),
    "skops": ("skops", {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
                        "content": {}, "protocol": 2, "model": TARGET}),
}


@pytest.mark.parametrize("case", sorted(HIJACKS))
def test_json_first_key_hijack_gets_config_checks(tmp_path: Path, case: str) -> None:
    fmt, document = HIJACKS[case]
    result = scan(tmp_path, json.dumps(document).encode(), "config.json")
    assert result.format == fmt  # still claimed by the format module...
    assert worst(result) is Severity.ERROR, result.findings  # ...and the target is seen
    assert any("os.system" in f.message for f in result.findings)


def test_json_first_key_benign_twins_stay_clean(tmp_path: Path) -> None:
    for case, (fmt, document) in HIJACKS.items():
        document = json.loads(json.dumps(document).replace('"os.system"', '"builtins.dict"')
                              .replace(', "_args_": ["true"]', ""))
        document.pop("model", None)
        result = scan(tmp_path, json.dumps(document).encode(), f"{case}.json")
        assert result.format == fmt, case
        assert worst(result) in (None, Severity.DEBUG, Severity.INFO), (case, result.findings)


# --- sniff hijack: a pickle wearing a PE header ---------------------------------------------
# `MZ` is BININT2 and a SHORT_BINBYTES argument can hold `e_lfanew` and `PE\0\0`: the
# executable module (before pickle) claimed the file and reported only EXE001 (WARNING);
# pickle.load and joblib.load ran the os.system call (marker file created). Fixed: an
# executable head the unpickler runs is scanned as a pickle too.
def pe_pickle(command: bytes) -> bytes:
    header = bytearray(0x80 - 5 + 4)  # bytes 5..0x84 of the file
    header[0x3C - 5 : 0x3C - 1] = (0x80).to_bytes(4, "little")
    header[0x80 - 5 :] = b"PE\x00\x00"
    return (b"MZ\x90" + b"C" + bytes([len(header)]) + bytes(header) + b"00"
            + b"cos\nsystem\n(X" + len(command).to_bytes(4, "little") + command + b"tR.")


def test_pickle_with_pe_header_is_scanned_as_pickle(tmp_path: Path) -> None:
    result = scan(tmp_path, pe_pickle(b"true"), "model.pkl")
    assert result.format == "executable"
    assert worst(result) is Severity.ERROR, result.findings
    assert any("os.system" in f.message for f in result.findings)


def test_real_pe_header_is_not_a_pickle(tmp_path: Path) -> None:
    header = bytearray(0x84)
    header[:4] = b"MZ\x90\x00"  # what linkers write: 0x00 is no opcode
    header[0x3C:0x40] = (0x80).to_bytes(4, "little")
    header[0x80:] = b"PE\x00\x00"
    result = scan(tmp_path, bytes(header) + bytes(256), "tool.exe")
    assert result.format == "executable"
    assert result.error is None and worst(result) is Severity.WARNING, result.findings


# --- XML: XXE the reader did not see ---------------------------------------------------------
# A parameter entity whose replacement text declares the external one: expat with parameter
# entities off never sees `b` (XML003 WARNING only); a parser that expands parameter entities
# (expat with XML_PARAM_ENTITY_PARSING_ALWAYS, Java's default SAX) fetched http://x.
# UTF-16 documents (Java, libxml2 and pugixml read them) were not recognised at all:
# `unsupported`, no finding. Fixed: the sniff decodes UTF-16/32/EBCDIC heads, and a parameter
# entity whose text holds SYSTEM/PUBLIC is XML001.
PMML = '<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/><DataDictionary/></PMML>'
NET = '<net name="m" version="11"><layers/></net>'
EXTERNAL_DTD = '<!DOCTYPE {root} SYSTEM "http://127.0.0.1/e.dtd">\n'


def test_parameter_entity_declaring_an_external_entity_is_xxe(tmp_path: Path) -> None:
    doc = ('<?xml version="1.0"?>\n<!DOCTYPE PMML [<!ENTITY % a "<!ENTITY &#x25; b SYSTEM '
           "'http://127.0.0.1/x'>\"> %a; %b;]>\n" + PMML)
    result = scan(tmp_path, doc.encode(), "model.pmml")
    assert result.format == "pmml"
    assert worst(result) is Severity.ERROR, result.findings


@pytest.mark.parametrize(("codec", "declared", "root", "body", "fmt"), [
    ("utf-16", "UTF-16", "PMML", PMML, "pmml"),
    ("utf-16-le", "UTF-16LE", "PMML", PMML, "pmml"),
    ("utf-16-be", "UTF-16BE", "net", NET, "openvino"),
    ("utf-16", "UTF-16", "net", NET, "openvino"),
])
def test_utf16_xml_is_recognised_and_checked(tmp_path: Path, codec: str, declared: str,
                                             root: str, body: str, fmt: str) -> None:
    prolog = f'<?xml version="1.0" encoding="{declared}"?>\n'
    hostile = scan(tmp_path, (prolog + EXTERNAL_DTD.format(root=root) + body).encode(codec),
                   f"bad.{fmt}.xml")
    assert hostile.format == fmt and worst(hostile) is Severity.ERROR, hostile
    benign = scan(tmp_path, (prolog + body).encode(codec), f"good.{fmt}.xml")
    assert benign.format == fmt and benign.error is None, benign
    assert worst(benign) in (None, Severity.DEBUG, Severity.INFO), benign.findings


@pytest.mark.parametrize("codec", ["utf-32", "cp037"])
def test_xml_in_an_encoding_the_reader_lacks_is_an_error(tmp_path: Path, codec: str) -> None:
    doc = (f'<?xml version="1.0" encoding="{codec.upper()}"?>\n'
           + EXTERNAL_DTD.format(root="PMML") + PMML)
    result = scan(tmp_path, doc.encode(codec), "model.pmml")
    assert result.format == "pmml" and result.error is not None, result  # not unsupported/clean


# --- fail-open: CatBoost InfoMap entries past the bound --------------------------------------
# Entries past MAX_INFO were dropped silently: a template in entry MAX_INFO+1 was never checked
# and the model was `clean`. Fixed: the record says the InfoMap was not fully checked (error).
def test_catboost_infomap_past_the_bound_is_not_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batchscan.workers import catboost
    from tests.fixtures.formats3 import tree

    monkeypatch.setattr(catboost, "MAX_INFO", 0)  # the bound scaled down: the template is past it
    result = scan(tmp_path, tree.catboost_malicious()["ssti.cbm"], "ssti.cbm")
    assert result.format == "catboost"
    assert result.error is not None and "InfoMap" in result.error, result


# --- resource: UBJSON zero-byte typed containers ---------------------------------------------
# `[$Z#l<n>` is n nulls in 4 bytes (each count only had to fit the bytes left), and a typed
# container of such containers multiplies: a 114 KB .ubj ran past the 10 s timeout (quadratic
# values). Fixed: a document holds at most as many values as it has bytes.
def ubj_null_bomb(inner: int) -> bytes:
    head = b"{U\x07learner[$[#l" + inner.to_bytes(4, "big")
    out = bytearray(head)
    for index in range(inner):
        left = 8 * (inner - index - 1)  # bytes after this inner container's header
        out += b"$Z#l" + left.to_bytes(4, "big")
    return bytes(out)


def test_ubjson_zero_byte_values_are_bounded(tmp_path: Path) -> None:
    import time

    data = ubj_null_bomb(14_000)
    started = time.monotonic()
    result = scan(tmp_path, data, "model.ubj")
    assert time.monotonic() - started < 5
    assert result.format == "xgboost" and result.error is not None
    assert "more values than" in result.error


# --- resource: TFLite operators sharing one large Flex options vector ------------------------
# Every operator's custom options (up to 16 MiB) were read and searched, and the operator
# vector may name one operator table 20,000 times: a 1 MB .tflite ran past the 10 s timeout
# (20 GB searched). Fixed: the Flex options bytes searched are bounded per model, and
# options of custom ops that are not Flex ops are not read at all.
def tflite_shared_ops(copies: int, options: int, code: str = "FlexAddV2") -> bytes:
    from tests.fixtures.binformats import FlatBuilder

    b = FlatBuilder()
    codes = [b.table([("i8", 32), ("ref", b.string(code)), ("i32", 1), ("i32", 32)])]
    op = b.table([("u32", 0), ("ref", b.scalar_vector("i", [0])),
                  ("ref", b.scalar_vector("i", [0])), None, None,
                  ("ref", b.bytes_vector(b"A" * options))])
    tensor = b.table([("ref", b.scalar_vector("i", [2])), ("i8", 0), ("u32", 0),
                      ("ref", b.string("x"))])
    subgraph = b.table([("ref", b.ref_vector([tensor])), ("ref", b.scalar_vector("i", [0])),
                        ("ref", b.scalar_vector("i", [0])), ("ref", b.ref_vector([op] * copies)),
                        ("ref", b.string("main"))])
    fields: list[Any] = [("u32", 3), ("ref", b.ref_vector(codes)),
                         ("ref", b.ref_vector([subgraph])), ("ref", b.string("t")),
                         ("ref", b.ref_vector([b.table([])]))]
    return b.finish(b.table(fields), b"TFL3")


def test_tflite_shared_flex_options_are_bounded(tmp_path: Path) -> None:
    import time

    started = time.monotonic()
    result = scan(tmp_path, tflite_shared_ops(2_000, 64 * 1024), "model.tflite")
    assert time.monotonic() - started < 5
    assert result.format == "tflite" and result.error is not None
    assert "Flex custom options" in result.error


def test_tflite_shared_non_flex_options_are_not_read(tmp_path: Path) -> None:
    result = scan(tmp_path, tflite_shared_ops(2_000, 64 * 1024, "MyCustomOp"), "model.tflite")
    assert result.format == "tflite" and result.error is None, result.error
    assert worst(result) is Severity.WARNING  # the custom op is still reported


# --- resource: flatbuffer vectors of references to one shared table --------------------------
# A .pte whose plan vector names one plan 5,000 times, the plan naming one operator 5,000
# times: 25 M operator reads from a 40 KB file, past the 10 s timeout (the instruction bound
# was per plan). Fixed (workers/flatbuf.py): the references walked are bounded by the size.
def pte_shared_plans(plans: int, ops: int) -> bytes:
    from tests.fixtures.binformats import FlatBuilder

    b = FlatBuilder()
    op = b.table([("ref", b.string("aten::add")), ("ref", b.string("out"))])
    plan = b.table([("ref", b.string("forward")), None, ("ref", b.ref_vector([])),
                    ("ref", b.scalar_vector("i", [])), ("ref", b.scalar_vector("i", [])),
                    ("ref", b.ref_vector([])), ("ref", b.ref_vector([op] * ops)),
                    ("ref", b.ref_vector([]))])
    program = b.table([("u32", 0), ("ref", b.ref_vector([plan] * plans)),
                       ("ref", b.ref_vector([])), ("ref", b.ref_vector([])),
                       ("ref", b.ref_vector([]))])
    body = bytearray(b.finish(program, b"ET12", b"\0" * 32))
    body[8:40] = b"eh00" + (32).to_bytes(4, "little") + len(body).to_bytes(8, "little") + (
        (len(body) + (-len(body)) % 128).to_bytes(8, "little")) + bytes(8)
    return bytes(body)


def test_flatbuffer_shared_tables_are_bounded(tmp_path: Path) -> None:
    import time

    started = time.monotonic()
    result = scan(tmp_path, pte_shared_plans(3_000, 3_000), "model.pte")
    assert time.monotonic() - started < 5
    assert result.format == "executorch" and result.error is not None
    assert "references walked" in result.error


def test_flatbuffer_unshared_twin_is_scanned(tmp_path: Path) -> None:
    result = scan(tmp_path, pte_shared_plans(1, 3_000), "model.pte")
    assert result.format == "executorch" and result.error is None, result.error


# Paddle's PIR JSON program (`{"base_code": {"magic": "pir"...`) is claimed the same way; the
# keys PIR does not define now get the config checks too (the program is walked for ops).
def test_paddle_pir_json_extra_keys_get_config_checks(tmp_path: Path) -> None:
    document = {"base_code": {"magic": "pir", "trainable": True, "version": 1},
                "program": {"regions": []}, "model": TARGET}
    result = scan(tmp_path, json.dumps(document).encode(), "config.json")
    assert result.format == "paddle"
    assert worst(result) is Severity.ERROR, result.findings
    document.pop("model")
    benign = scan(tmp_path, json.dumps(document).encode(), "model.json")
    assert benign.format == "paddle" and not benign.findings, benign.findings


def test_xgboost_many_trees_stay_under_the_config_walk_bound(tmp_path: Path) -> None:
    document = json.loads(json.dumps(XGBOOST_MODEL))
    model = document["learner"]["gradient_booster"]["model"]
    model["trees"] = [dict(model["trees"][0], id=i) for i in range(120_000)]
    model["tree_info"] = [0] * 120_000
    result = scan(tmp_path, json.dumps(document).encode(), "model.json")
    assert result.format == "xgboost" and result.error is None, result.error
    assert not result.findings, result.findings


# --- TensorRT: Ultralytics metadata that AutoBackend evaluates ------------------------------
# `[u32 length][JSON][ftrt...]`: Ultralytics 8.0-8.3 AutoBackend runs eval() on the string
# values of imgsz/names/kpt_shape when it loads the engine. The prefix was only checked to be
# JSON (the engine came out `error` - opaque plan - with TRT002 info, the code unnamed). Now:
# TRT003 (ERROR) for a value that is not a Python literal; the metadata gets the config checks.
def engine(metadata: dict[str, Any]) -> bytes:
    raw = json.dumps(metadata).encode()
    return len(raw).to_bytes(4, "little") + raw + b"ftrt" + bytes(64)


def test_tensorrt_metadata_eval_is_flagged(tmp_path: Path) -> None:
    hostile = scan(tmp_path, engine({"stride": 32, "task": "detect", "batch": 1,
                                     "imgsz": [640, 640],
                                     "names": "__import__('os').system('true')"}), "m.engine")
    assert hostile.format == "tensorrt"
    assert any(f.rule_id == "TRT003" and f.severity is Severity.ERROR
               for f in hostile.findings), hostile.findings
    benign = scan(tmp_path, engine({"stride": 32, "task": "detect", "batch": 1,
                                    "imgsz": "[640, 640]", "names": "{0: 'person'}"}),
                  "ok.engine")
    assert benign.format == "tensorrt" and benign.error is not None  # opaque plan: never clean
    assert not any(f.rule_id == "TRT003" for f in benign.findings), benign.findings


# A pickle that starts `J\0\0\0{` (BININT) reads as a 74-byte Ultralytics prefix, with `ftrt`
# inside a SHORT_BINBYTES argument at offset 78: the tensorrt module claimed it and said only
# "metadata prefix is not JSON" (error); pickle.load ran os.system (marker file created).
# Fixed: the tensorrt sniff leaves a stream the unpickler runs to the pickle module.
def trt_pickle(command: bytes) -> bytes:
    body = b"J\x00\x00\x00{" + b"0"
    start = len(body) + 2
    arg = bytearray(82 - start)
    arg[78 - start :] = b"ftrt"
    return (body + b"C" + bytes([len(arg)]) + bytes(arg) + b"0"
            + b"cos\nsystem\n(X" + len(command).to_bytes(4, "little") + command + b"tR.")


def test_pickle_shaped_like_an_engine_prefix_is_a_pickle(tmp_path: Path) -> None:
    result = scan(tmp_path, trt_pickle(b"true"), "model.pkl")
    assert result.format == "pickle"
    assert worst(result) is Severity.ERROR, result
