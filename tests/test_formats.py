"""Formats II: GGUF, safetensors, Keras HDF5, ONNX, TensorFlow, JSON/YAML configs, templates.

Each technique has a malicious fixture (harmless payload) and the ordinary model next to it
must stay free of WARNING/ERROR. Malformed inputs give a specific finding or error record.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchscan.records import FileResult, Severity
from batchscan.workers.task import WorkerOptions, scan_file
from fixtures.formats import (
    CHATML,
    LLAMA3,
    QWEN_TOOLS,
    SSTI,
    SSTI_OBFUSCATED,
    gguf,
    keras_config,
    keras_h5,
    onnx_model,
    safetensors,
    tf_savedmodel,
)


def scan(tmp_path: Path, name: str, data: bytes | str) -> FileResult:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return scan_file(str(path), WorkerOptions())


def worst(result: FileResult) -> Severity | None:
    return max((f.severity for f in result.findings), key=lambda s: s.rank, default=None)


def rules(result: FileResult) -> set[str]:
    return {f.rule_id for f in result.findings}


def assert_benign(result: FileResult) -> None:
    assert result.error is None, result.error
    assert all(f.severity.rank < Severity.WARNING.rank for f in result.findings), result.findings


# --- GGUF -----------------------------------------------------------------------------------
@pytest.mark.parametrize("template", [CHATML, LLAMA3, QWEN_TOOLS])
def test_gguf_with_common_chat_templates_is_clean(tmp_path: Path, template: str) -> None:
    result = scan(tmp_path, "m.gguf", gguf({"general.architecture": "llama",
                                            "tokenizer.chat_template": template}))
    assert result.format == "gguf"
    assert_benign(result)


@pytest.mark.parametrize("template", [SSTI, SSTI_OBFUSCATED])
def test_gguf_chat_template_ssti_CVE_2024_34359(tmp_path: Path, template: str) -> None:
    result = scan(tmp_path, "evil.gguf", gguf({"tokenizer.chat_template": template}))
    assert "CFG005" in rules(result) and worst(result) is Severity.ERROR


def test_gguf_hostile_counts_are_a_finding_not_an_allocation(tmp_path: Path) -> None:
    data = b"GGUF" + (3).to_bytes(4, "little") + (2**62).to_bytes(8, "little") * 2
    result = scan(tmp_path, "huge.gguf", data)
    assert "GGF001" in rules(result) and result.error is not None


def test_gguf_truncated(tmp_path: Path) -> None:
    data = gguf({"tokenizer.chat_template": CHATML})[:40]
    result = scan(tmp_path, "cut.gguf", data)
    assert "GGF001" in rules(result) and result.error is not None


# --- safetensors ----------------------------------------------------------------------------
def test_safetensors_plain_is_clean(tmp_path: Path) -> None:
    result = scan(tmp_path, "m.safetensors", safetensors({"format": "pt"}))
    assert result.format == "safetensors"
    assert_benign(result)


def test_safetensors_huge_header_length_is_rejected_without_allocating(tmp_path: Path) -> None:
    data = (2**63).to_bytes(8, "little") + b"{}"
    result = scan(tmp_path, "h.safetensors", data)
    assert "SFT001" in rules(result) and result.error is not None
    assert result.duration_ms < 100


def test_safetensors_overlapping_tensors(tmp_path: Path) -> None:
    result = scan(tmp_path, "o.safetensors", safetensors(overlap=True))
    assert "SFT002" in rules(result)


def test_safetensors_metadata_code_and_encoded_pickle(tmp_path: Path) -> None:
    import base64

    from fixtures.containers import EVIL

    meta = {"init": "import os; os.system('true')", "blob": base64.b64encode(EVIL).decode(),
            "format": "pt"}
    result = scan(tmp_path, "m.safetensors", safetensors(meta))
    assert {"SFT003", "CFG010"} <= rules(result) and worst(result) is Severity.ERROR


# --- Keras HDF5 -----------------------------------------------------------------------------
def test_keras_h5_dense_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "dense.h5"
    keras_h5(path, keras_config(lambda_deep=False))
    result = scan_file(str(path), WorkerOptions())
    assert result.format == "keras_h5"
    assert_benign(result)


def test_keras_h5_lambda_nested_in_wrapper_inside_submodel(tmp_path: Path) -> None:
    path = tmp_path / "lambda.h5"
    keras_h5(path, keras_config(lambda_deep=True))
    result = scan_file(str(path), WorkerOptions())
    hits = [f for f in result.findings if f.rule_id == "CFG007"]
    assert hits and "system" in (hits[0].evidence or "")


def test_keras_config_function_reference_get_file_and_foreign_module(tmp_path: Path) -> None:
    import json

    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"function": {
            "class_name": "function", "config": "get_file", "module": "keras.utils"}}},
        {"class_name": "Dense", "module": "evilpkg.layers", "config": {}},
    ]}}
    result = scan(tmp_path, "config.json", json.dumps(config))
    assert {"CFG009", "CFG008"} <= rules(result)


# --- ONNX -----------------------------------------------------------------------------------
def test_onnx_with_external_weights_beside_it_is_clean(tmp_path: Path) -> None:
    result = scan(tmp_path, "m.onnx", onnx_model())
    assert result.format == "onnx"
    assert_benign(result)


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd",
                                      "sub/../../../secret", "C:\\Windows\\win.ini"])
def test_onnx_external_data_escape_CVE_2022_25882(tmp_path: Path, location: str) -> None:
    result = scan(tmp_path, "m.onnx", onnx_model(location=location))
    assert "ONX001" in rules(result) and worst(result) is Severity.ERROR


def test_onnx_custom_domain_is_named(tmp_path: Path) -> None:
    result = scan(tmp_path, "m.onnx", onnx_model(location=None, domain="com.evil.ops"))
    hits = [f for f in result.findings if f.rule_id == "ONX002"]
    assert hits and "com.evil.ops" in hits[0].message


def test_onnx_initializer_size_mismatch(tmp_path: Path) -> None:
    assert_benign(scan(tmp_path, "ok.onnx", onnx_model(location=None)))
    result = scan(tmp_path, "bad.onnx", onnx_model(location=None, raw_size=15))
    assert "ONX004" in rules(result)


def test_onnx_malformed(tmp_path: Path) -> None:
    result = scan(tmp_path, "bad.onnx", onnx_model()[:-7])
    assert "ONX005" in rules(result) and result.error is not None


# --- TensorFlow -----------------------------------------------------------------------------
def test_tf_savedmodel_with_save_restore_is_clean(tmp_path: Path) -> None:
    data = tf_savedmodel(["Const", "VarHandleOp", "SaveV2", "RestoreV2", "MergeV2Checkpoints"])
    result = scan(tmp_path, "model/saved_model.pb", data)
    assert result.format == "tf_savedmodel"
    assert_benign(result)


@pytest.mark.parametrize(("ops", "library", "rule"), [
    (["PyFunc"], [], "TFG001"),
    (["Const"], ["EagerPyFunc"], "TFG001"),
    (["ReadFile"], [], "TFG002"),
    (["Const"], ["WriteFile"], "TFG002"),
    (["MatchingFiles"], [], "TFG002"),
])
def test_tf_dangerous_ops_in_graph_and_library(tmp_path: Path, ops: list[str],
                                               library: list[str], rule: str) -> None:
    result = scan(tmp_path, "saved_model.pb", tf_savedmodel(ops, library))
    assert rule in rules(result)


# --- JSON / YAML configs and templates ------------------------------------------------------
def test_hf_config_and_tokenizer_config_are_clean(tmp_path: Path) -> None:
    import json

    assert_benign(scan(tmp_path, "config.json", json.dumps(
        {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "torch_dtype": "float16"})))
    assert_benign(scan(tmp_path, "tokenizer_config.json", json.dumps(
        {"chat_template": LLAMA3, "bos_token": "<s>", "model_max_length": 4096})))


def test_auto_map_and_cross_repo_reference(tmp_path: Path) -> None:
    import json

    local = scan(tmp_path, "config.json", json.dumps(
        {"auto_map": {"AutoModel": "modeling_custom.CustomModel"}}))
    assert worst(local) is Severity.WARNING and "CFG001" in rules(local)
    remote = scan(tmp_path, "c2/config.json", json.dumps(
        {"auto_map": {"AutoModel": "someorg/somerepo--modeling.Evil"}}))
    assert "CFG002" in rules(remote) and worst(remote) is Severity.ERROR


def test_chat_template_ssti_in_any_json_field(tmp_path: Path) -> None:
    import json

    result = scan(tmp_path, "weird_name.json", json.dumps({"templates": [{"t": SSTI}]}))
    assert "CFG005" in rules(result)


def test_hydra_target_in_yaml_and_json(tmp_path: Path) -> None:
    yaml_result = scan(tmp_path, "model_config.yaml",
                       "model:\n  _target_: builtins.exec\n  _args_: ['true']\n")
    assert "CFG003" in rules(yaml_result)
    benign = scan(tmp_path, "nemo.yaml",
                  "model:\n  _target_: nemo.collections.asr.models.EncDecCTCModel\n")
    assert_benign(benign)


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['true']",
                                 "!!python/name:os.system", "!!python/object/new:os.system"])
def test_yaml_python_tags(tmp_path: Path, tag: str) -> None:
    result = scan(tmp_path, "evil.yaml", f"x: {tag}\n")
    assert "YML001" in rules(result) and worst(result) is Severity.ERROR


def test_yaml_plain_tags_are_clean(tmp_path: Path) -> None:
    assert_benign(scan(tmp_path, "ok.yml", "name: !!str demo\nlayers: [1, 2]\n"))


def test_standalone_template(tmp_path: Path) -> None:
    assert "CFG005" in rules(scan(tmp_path, "chat_template.jinja", SSTI))
    assert_benign(scan(tmp_path, "chat_template.jinja", CHATML))


def test_deeply_nested_json_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    result = scan(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)
    assert "JSN001" in rules(result)


# --- Python files shipped with models --------------------------------------------------------
def test_remote_code_with_process_call(tmp_path: Path) -> None:
    code = ("import os\nimport subprocess as sp\nfrom torch import nn\n"
            "class Model(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        os.system('true')\n        sp.run(['true'])\n")
    result = scan(tmp_path, "modeling_custom.py", code)
    assert result.format == "python" and worst(result) is Severity.ERROR
    assert {"os.system", "subprocess.run"} <= {
        f.message.split("`")[1] for f in result.findings if f.rule_id == "PYS001"}


def test_ordinary_modeling_file_is_clean(tmp_path: Path) -> None:
    code = ("import os\nimport torch\nfrom torch import nn\n\n"
            "class Model(nn.Module):\n    def __init__(self, path=None):\n"
            "        super().__init__()\n        self.fc = nn.Linear(4, 4)\n"
            "        self.name = os.path.basename(path or 'x')\n\n"
            "    def forward(self, x):\n        return torch.relu(self.fc(x))\n")
    assert_benign(scan(tmp_path, "modeling_ok.py", code))


def test_base64_zip_in_config_is_opened(tmp_path: Path) -> None:
    import base64
    import json

    from fixtures.containers import torch_zip

    blob = base64.b64encode(torch_zip()).decode()
    result = scan(tmp_path, "config.json", json.dumps({"extra": blob}))
    assert any(f.rule_id == "PKL001" for f in result.findings)
