"""Red team of issue 18's fast paths (orjson, tokenizer bulk checked in place, lazy walk,
libyaml composer): files whose payload the slow path finds must be found the same way.

Every fixture is generated here with a harmless payload and never loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_fast_paths import SSTI, assert_same, reference_walk, scan, scan_json

from batchscan.workers import configs, jsonbulk
from batchscan.workers.registry import context

# Enough merge-shaped padding to make a region jsonbulk cuts (64 KiB): pairs are not code
# references (`configs._mapping` reads only the strings of an auto_map list).
PAIRS = [[f"t{i}", f"u{i}"] for i in range(6000)]


def automap_bulk(key: str = "merges") -> bytes:
    """`config.json` whose auto_map entry is named like a tokenizer table and holds a
    cross-repo reference among merge-shaped pairs."""
    return json.dumps({"auto_map": {key: ["attacker/repo--modeling_evil.Model", *PAIRS]}},
                      separators=(",", ":")).encode()


def test_auto_map_entry_named_like_bulk_keeps_its_references(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Miss 1: `"auto_map": {"merges": [...]}` was cut as inert merges (64 KiB of strings
    and pairs), so the CFG002 reference in it vanished; the reference walk reports it.
    (`vocab` shapes hold no bare strings: [piece, score] lists are not references.)"""
    key = "merges"
    raw = automap_bulk(key)
    assert len(raw) >= jsonbulk.MIN_REGION
    result = assert_same(tmp_path, raw, monkeypatch)
    assert [(f.rule_id, f.severity.value) for f in result.findings] == [("CFG002", "error")]
    # the same region under a plain key is still cut (the speed-up stays)
    plain = json.dumps({"model": {key: ["attacker/repo--x.Y", *PAIRS]}}).encode()
    assert jsonbulk.parse_without_bulk(plain) == {"model": {key: []}}


def test_chat_template_list_of_dicts_is_checked(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """tokenizer_config.json's named templates (`[{"name", "template"}]`): checked."""
    raw = json.dumps({"chat_template": [{"name": "default", "template": "{{ messages }}"},
                                        {"name": "tool_use", "template": SSTI}],
                      "model": {"merges": [f"a{i} b{i}" for i in range(9000)]}}).encode()
    result = assert_same(tmp_path, raw, monkeypatch)
    assert any(f.rule_id == "CFG005" for f in result.findings)


@pytest.mark.parametrize("payload", [
    "\\u007b\\u007b cycler.__init__.__globals__.os.popen('true') }}",  # escaped braces
    "{\\u0025 set x = cycler.__init__.__globals__.os.popen('true') %}",
    "\\/{{ cycler.__init__.__globals__.os.popen('true') }}",
])
def test_escaped_template_in_merges_is_found(tmp_path: Path, payload: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Escapes in bulk strings spell triggers: the region is walked, the template found."""
    merges = ",".join(f'"a{i} b{i}"' for i in range(9000))
    raw = ('{"model":{"merges":[' + merges + ',"' + payload + '"]}}').encode()
    result = assert_same(tmp_path, raw, monkeypatch)
    assert any(f.severity.value == "error" for f in result.findings), result.findings


def test_yaml_merge_key_target_is_found(tmp_path: Path) -> None:
    """`<<` is not applied by the composer; the merged mapping is still walked."""
    result = scan(tmp_path, "c.yaml", "base: &b {_target_: os.system}\nx:\n  <<: *b\n")
    assert any(f.rule_id == "CFG003" for f in result.findings)


def test_scan_json_helper_is_the_fast_path(tmp_path: Path) -> None:
    """The comparisons above mean something only if the fast scan cuts regions."""
    raw = json.dumps({"model": {"merges": [f"a{i} b{i}" for i in range(9000)]}}).encode()
    assert jsonbulk._regions(raw)
    assert not scan_json(tmp_path, raw).findings


def test_yaml_named_file_in_json_flow_style_is_composed_as_yaml(tmp_path: Path) -> None:
    """Miss 2 (routing, older than issue 18): a `.yaml` starting `{"` was claimed by the JSON
    scanner, which refused `{"a":!!python/name:os.system x}` (JSN001 WARNING); PyYAML
    reads the JSON-like key and constructs the tag (YML001 ERROR)."""
    result = scan(tmp_path, "config.yaml", '{"a":!!python/name:os.system x}\n')
    assert result.format == "yaml"
    assert [(f.rule_id, f.severity.value) for f in result.findings] == [("YML001", "error")]
    # JSON in a .yml is still walked as a config (YAML composes JSON the same)
    twin = scan(tmp_path, "b.yml", json.dumps({"m": {"_target_": "os.system"}}))
    assert [f.rule_id for f in twin.findings] == ["CFG003"]
    benign = scan(tmp_path, "c.yaml", json.dumps({"model": {"hidden": 4, "names": ["a"]}}))
    assert (benign.format, list(benign.findings)) == ("yaml", [])
    # a .json name keeps the JSON scanner
    assert scan(tmp_path, "d.json", '{"a": 1}').format == "json"


@pytest.mark.parametrize("size", [700_000, 999_999, 1_000_000])
def test_node_budget_counts_each_node_once(size: int) -> None:
    """Miss 3 (the other way: a false "not fully scanned"): the lazy walk counted every
    container twice (in its parent's len and again when opened), so 700,000 one-item lists
    (1.4 M nodes) were over the 2 M budget for it and not for the reference walk."""
    document = {"data": [[0]] * size}  # 2 * size + 2 nodes: over the budget at 1,000,000
    verdicts = []
    for walk in (configs.walk_config, reference_walk):
        ctx = context()
        list(walk(document, ctx))
        verdicts.append(bool(ctx.incomplete))
    assert verdicts == [size >= 1_000_000] * 2
