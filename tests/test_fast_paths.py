"""Fast paths of the config scanners give the slow paths' results (issue 18).

YAML: libyaml composes; what it refuses goes to PyYAML's composer. Every document here is
scanned both ways (the fast composer switched off by monkeypatch) and the findings must be
the same, payloads included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchscan.records import FileResult
from batchscan.workers import yaml_config
from batchscan.workers.task import WorkerOptions, scan_file


def scan(tmp_path: Path, name: str, data: bytes | str) -> FileResult:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return scan_file(str(path), WorkerOptions())


def summary(result: FileResult) -> tuple[object, ...]:
    return (result.format, result.derived_status(), result.error,
            sorted((f.rule_id, f.severity.value, f.message) for f in result.findings))


DEEP_TAG = "".join(f"{'  ' * i}k{i}:\n" for i in range(60)) + \
    "  " * 60 + "run: !!python/object/apply:os.system [\"true\"]\n"
YAML_CASES = {
    "tag": "x: !!python/object/apply:os.system [\"true\"]\n",
    "deep_tag": DEEP_TAG,
    "target_in_list": "layers:\n- {a: 1}\n- nested:\n    _target_: os.system\n    _args_: [true]\n",
    "template": "chat_template: \"{{ cycler.__init__.__globals__.os.popen('true') }}\"\n",
    "alias": "a: &x {_target_: subprocess.run}\nb: *x\nc: [*x, *x]\n",
    "multi_doc": "a: 1\n---\nb: !!python/name:os.system\n",
    "custom_tag": "x: !MyTag 3\n",
    "invalid": "a: [1, 2\nb: {\n",
    "control_char": "a: \"x\x07y\"\nb: !!python/object/apply:os.system [\"true\"]\n",
    "nested_flow_2000": "a: " + "[" * 2000 + "]" * 2000 + "\n",
    # deeper than the plain-data walk recurses: not fully scanned on either path
    "nested_flow_600": "a: " + "[" * 600 + "!!python/name:os.system x" + "]" * 600 + "\n",
    "benign_hydra": "model:\n  _target_: torch.nn.Linear\n  in_features: 4\n",
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_yaml_fast_composer_agrees_with_pyyaml(tmp_path: Path, case: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fast = scan(tmp_path / "fast", "c.yaml", YAML_CASES[case])
    monkeypatch.setattr(yaml_config, "_FAST", None)
    slow = scan(tmp_path / "slow", "c.yaml", YAML_CASES[case])
    assert summary(fast) == summary(slow)


@pytest.mark.parametrize("case", ["tag", "deep_tag", "target_in_list", "template", "alias",
                                  "multi_doc"])
def test_yaml_payloads_are_found(tmp_path: Path, case: str) -> None:
    result = scan(tmp_path, "c.yaml", YAML_CASES[case])
    assert any(f.severity.value == "error" for f in result.findings), result.findings


def test_yaml_fast_composer_is_used_when_available() -> None:
    """The speed-up is real only if this PyYAML has libyaml (the wheel does)."""
    assert yaml_config._FAST is not None


# --- JSON: orjson, lazy paths, and the tokenizer bulk checked in place -------------------------
import base64  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

from batchscan.records import Finding  # noqa: E402
from batchscan.workers import configs, json_config, jsonbulk  # noqa: E402
from batchscan.workers.base import ScanContext  # noqa: E402
from batchscan.workers.registry import context  # noqa: E402
from fixtures.formats import SSTI  # noqa: E402

EVIL_PICKLE = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."  # never loaded


def reference_walk(document: Any, ctx: ScanContext, where: str = "") -> Iterator[Finding]:
    """The walk before issue 18 (verbatim, with main's `:serialized:` skip): every node,
    every path spelled. The oracle."""
    stack: list[tuple[Any, str]] = [(document, where)]
    nodes = 0
    while stack:
        node, path = stack.pop()
        nodes += 1
        if nodes > configs._MAX_NODES:
            ctx.note_incomplete(f"config has more than {configs._MAX_NODES} nodes")
            return
        if isinstance(node, dict):
            yield from configs._mapping(node, path, ctx)
            serialized = isinstance(node.get(configs.SERIALIZED), str)
            stack.extend((value, f"{path}.{key}" if path else str(key))
                         for key, value in node.items()
                         if not (serialized and key == configs.SERIALIZED))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(node))
        elif isinstance(node, str):
            yield from configs._string(node, path, ctx)


def findings_set(findings: list[Finding]) -> list[tuple[str, str, str | None]]:
    return sorted((f.rule_id, f.message, f.evidence) for f in findings)


def tokenizer(vocab: int = 12_000, merges_as_pairs: bool = True, unigram: bool = False,
              seed: int = 3) -> dict[str, Any]:
    """The layout `tokenizers` writes (version, added_tokens, ..., model.vocab/merges)."""
    rng = random.Random(seed)
    words = [f"tok{''.join(rng.choice('abcdefghij') for _ in range(6))}{i}" for i in
             range(vocab)]
    model: dict[str, Any]
    if unigram:
        model = {"type": "Unigram", "unk_id": 0, "vocab": [[w, -rng.random() * 10]
                                                           for w in words]}
    else:
        pairs = [[words[i], words[i + 1]] for i in range(0, vocab - 1, 2)]
        model = {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
                 "byte_fallback": False, "vocab": {w: i for i, w in enumerate(words)},
                 "merges": pairs if merges_as_pairs else [" ".join(p) for p in pairs]}
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": 0, "content": "<s>", "special": True}],
            "normalizer": None, "pre_tokenizer": {"type": "ByteLevel"},
            "post_processor": None, "decoder": {"type": "ByteLevel"}, "model": model}


def dump(document: Any) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def scan_json(tmp_path: Path, raw: bytes, name: str = "tokenizer.json") -> FileResult:
    return scan(tmp_path, name, raw)


def reference_scan(tmp_path: Path, raw: bytes, monkeypatch: pytest.MonkeyPatch,
                   name: str = "tokenizer.json") -> FileResult:
    """The scan as before issue 18: standard json, every node walked with its path."""
    with monkeypatch.context() as patch:
        patch.setattr(json_config, "parse_without_bulk", lambda raw: None)
        patch.setattr(json_config.orjson, "loads", _refuse)
        patch.setattr(json_config, "walk_config", reference_walk)
        return scan(tmp_path / "reference", name, raw)


def _refuse(raw: bytes) -> Any:
    raise json_config.orjson.JSONDecodeError("refused", "", 0)


def assert_same(tmp_path: Path, raw: bytes, monkeypatch: pytest.MonkeyPatch) -> FileResult:
    fast = scan_json(tmp_path / "fast", raw)
    slow = reference_scan(tmp_path, raw, monkeypatch)
    assert (fast.derived_status(), fast.error) == (slow.derived_status(), slow.error)
    assert findings_set(list(fast.findings)) == findings_set(list(slow.findings))
    return fast


def test_a_tokenizer_has_bulk_and_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    for shape in ({}, {"merges_as_pairs": False}, {"unigram": True}):
        raw = dump(tokenizer(**shape))  # type: ignore[arg-type]
        regions = jsonbulk._regions(raw)
        assert regions and all(end - start >= jsonbulk.MIN_REGION for start, end, _ in regions)
        result = assert_same(tmp_path / str(len(shape)) / str(shape), raw, monkeypatch)
        assert result.format == "json" and result.derived_status().value == "clean"


def _payload_cases() -> dict[str, Any]:
    """A tokenizer with a payload deep in its bulk or in an odd place (name -> document)."""
    cases: dict[str, Any] = {}
    b64 = base64.b64encode(EVIL_PICKLE).decode()

    def with_merge(value: Any, at: int = 2500, pairs: bool = True) -> Any:
        doc = tokenizer(merges_as_pairs=pairs)
        doc["model"]["merges"][at] = value
        return doc

    cases["ssti_in_merge_pair"] = with_merge([SSTI, "x"])
    cases["ssti_in_merge_string"] = with_merge(SSTI + " x", pairs=False)
    cases["ssti_in_last_merge"] = with_merge([SSTI, "x"], at=-1)
    # markers before any quote, colon or backslash in the string
    cases["plain_ssti_merge"] = with_merge(["{{ cycler.__init__.__globals__.os.popen('true') }}",
                                            "x"])
    cases["plain_ssti_merge_right"] = with_merge(
        ["x", "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}"])
    cases["b64_pickle_merge"] = with_merge([b64, "x"])
    cases["hex_pickle_merge"] = with_merge([EVIL_PICKLE.hex(), "x"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", EVIL_PICKLE)
    cases["b64_zip_merge"] = with_merge([base64.b64encode(buffer.getvalue()).decode(), "x"])
    cases["target_dict_in_merges"] = with_merge({"_target_": "os.system", "_args_": ["true"]})
    cases["auto_map_in_merges"] = with_merge({"auto_map": {"AutoModel": "evil/repo--m.M"}})
    doc = tokenizer(unigram=True)
    doc["model"]["vocab"][4000][0] = SSTI
    cases["ssti_in_unigram_piece"] = doc
    doc = tokenizer()
    doc["model"]["vocab"][SSTI] = 5  # a key: never walked, on either path
    cases["ssti_as_vocab_key"] = doc
    doc = tokenizer()
    doc["model"]["vocab"]["evil"] = SSTI  # a string value: not a number table
    cases["ssti_as_vocab_value"] = doc
    doc = tokenizer()
    doc["model"]["auto_map"] = {"AutoTokenizer": ["evil/repo--tok.T", None]}
    doc["model"]["_target_"] = "subprocess.run"
    cases["keys_beside_the_bulk"] = doc
    doc = tokenizer()
    doc["post_processor"] = {"policy": {":type:": "<class 'x'>", ":serialized:": b64}}
    cases["sb3_serialized_beside_bulk"] = doc  # stable-baselines3's cloudpickle blob
    doc = tokenizer()
    inner: Any = {"_target_": "os.system"}
    for _ in range(200):
        inner = {"layer": [inner]}
    doc["post_processor"] = inner
    cases["target_at_depth_200"] = doc
    doc = tokenizer()
    doc["decoder"] = {"template": SSTI, "note": json.dumps(tokenizer(vocab=400))}
    cases["tokenizer_inside_a_string"] = doc
    return cases


PAYLOADS = _payload_cases()


@pytest.mark.parametrize("case", sorted(PAYLOADS))
def test_payloads_in_and_around_the_bulk_are_found_as_before(
        tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = dump(PAYLOADS[case])
    result = assert_same(tmp_path, raw, monkeypatch)
    if case != "ssti_as_vocab_key":
        assert any(f.severity.value == "error" for f in result.findings), result.findings


@pytest.mark.parametrize("escaped", [
    "\\u007b\\u007b cycler.__init__.__globals__.os.popen('true') }}",  # {{ spelled escaped
    "{\\u007b cycler.__init__.__globals__.os.popen('true') }}",
    "\\u0067A" + base64.b64encode(EVIL_PICKLE).decode()[2:],  # gA... spelled escaped
    "\\u0038003" + EVIL_PICKLE.hex()[4:],  # 8003... spelled escaped
])
def test_escaped_payload_in_merges_is_found(tmp_path: Path, escaped: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tokenizer()
    raw = dump(doc)
    at = raw.index(b'"merges"')  # the merge's left part, not the same token in the vocab
    first = json.dumps(doc["model"]["merges"][1000][0]).encode()
    raw = raw[:at] + raw[at:].replace(first, b'"' + escaped.encode() + b'"', 1)
    assert b'"' + escaped.encode() + b'"' in raw
    result = assert_same(tmp_path, raw, monkeypatch)
    assert any(f.severity.value in ("error", "warning") for f in result.findings), result.findings


def test_code_tokens_with_template_markers_stay_bulk(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Real BPE vocabularies have `{{`, `{%` tokens: each such string is checked on its own
    and the region stays bulk (not a full walk); a payload next to them is still found."""
    doc = tokenizer()
    merges = doc["model"]["merges"]
    for i in range(0, 4000, 100):
        merges[i] = ["{{", "{%"] if i % 200 else ["{%-", " }}"]
    raw = dump(doc)
    regions = jsonbulk._regions(raw)
    assert len(regions) == 2  # vocab and merges
    assert_same(tmp_path / "benign", raw, monkeypatch)
    merges[2050] = [SSTI, "x"]
    raw = dump(doc)
    assert len(jsonbulk._regions(raw)) == 1  # the merges now need the walk
    result = assert_same(tmp_path / "evil", raw, monkeypatch)
    assert "CFG005" in {f.rule_id for f in result.findings}


def test_duplicate_bulk_keys_fall_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `vocab` keys: the parsers keep the last; a splice must not change which."""
    clean = dump(tokenizer(unigram=True)["model"]["vocab"])
    evil_doc = tokenizer(unigram=True, seed=9)
    evil_doc["model"]["vocab"][10][0] = SSTI
    evil = dump(evil_doc["model"]["vocab"])
    for first, last, found in ((clean, evil, True), (evil, clean, False)):
        doc = tokenizer(unigram=True)
        doc["model"]["vocab"] = "@@vocab@@"
        raw = dump(doc).replace(b'"@@vocab@@"', first + b', "vocab": ' + last, 1)
        assert raw.count(b'"vocab"') == 2
        result = assert_same(tmp_path / str(found), raw, monkeypatch)
        assert ("CFG005" in {f.rule_id for f in result.findings}) is found


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.999])
def test_truncated_tokenizer_is_invalid_json_as_before(tmp_path: Path, cut: float,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    raw = dump(tokenizer())
    result = assert_same(tmp_path, raw[:int(len(raw) * cut)], monkeypatch)
    assert "JSN001" in {f.rule_id for f in result.findings}


@pytest.mark.parametrize("text", [
    '{"a": NaN, "chat_template": "' + SSTI.replace('"', '\\"') + '"}',  # orjson refuses NaN
    '{"a": "\\ud800", "_target_": "os.system"}',  # lone surrogate: orjson refuses
    '{"a": 1}\n{"_target_": "os.system"}\n',  # JSON Lines
    '{"big": 123456789012345678901234567890, "_target_": "os.system"}',
])
def test_what_orjson_refuses_takes_the_standard_path(tmp_path: Path, text: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    result = assert_same(tmp_path, text.encode(), monkeypatch)
    assert any(f.severity.value == "error" for f in result.findings)


def test_mutated_tokenizers_agree_with_the_reference(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Random byte edits (brackets, quotes, backslashes, digits) in a bulk-bearing file: the
    fast path gives the reference's result every time, in bounded time."""
    doc = tokenizer(vocab=6000)
    doc["model"]["merges"][1500] = [SSTI, "x"]
    base = dump(doc)
    rng = random.Random(18)
    alphabet = b'[]{}",:\\0123456789 gAu'
    for i in range(25):
        raw = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            raw[rng.randrange(len(raw))] = rng.choice(alphabet)
        start = time.monotonic()
        assert_same(tmp_path / str(i), bytes(raw), monkeypatch)
        assert time.monotonic() - start < 30


def test_hostile_bulk_is_linear(tmp_path: Path) -> None:
    """Shapes that would make a backtracking regex explode finish quickly."""
    hostile = [
        b'{"model": {"vocab": {' + b'"a": 1, ' * 200_000 + b'"b": "x"}}}',
        b'{"model": {"merges": [' + b'"a b", ' * 200_000 + b'"c" "d"]}}',
        b'{"model": {"merges": [' + b'["a", ' * 100_000 + b']}}',
        b'{"model": {"merges": ["' + b'\\' * 999_999 + b'"]}}',
        b'{"model": {"vocab": ' + b'{"vocab": ' * 50_000 + b'}}',
    ]
    for i, raw in enumerate(hostile):
        start = time.process_time()
        jsonbulk.parse_without_bulk(raw)
        scan(tmp_path / str(i), "t.json", raw)
        assert time.process_time() - start < 10, i


def test_walk_paths_are_spelled_as_before() -> None:
    document = {"a": [{"b": {"_target_": "os.system"}}, "x", [SSTI]],
                "3": {"auto_map": {"AutoModel": "m.M"}}, "[0]": SSTI}
    fast = list(configs.walk_config(document, context()))
    slow = list(reference_walk(document, context()))
    assert findings_set(fast) == findings_set(slow)
    assert {f.message.split(" ")[0] for f in fast} >= {"a[0].b._target_", "template"}


def test_string_may_matter_covers_what_string_reports() -> None:
    """`_string_may_matter` is the gate of `_string`: every string `_string` reports on
    passes it, and `string_matters` agrees with `_string` on these examples."""
    b64 = base64.b64encode(EVIL_PICKLE).decode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.pkl", EVIL_PICKLE)
    zipped = base64.b64encode(buffer.getvalue()).decode()
    reporting = [SSTI, "{% for x in ().__class__.__mro__ %}{% endfor %}", b64,
                 EVIL_PICKLE.hex(), zipped, pickle.dumps(1, protocol=2).hex() + "00" * 8]
    quiet = ["plain", "{{ messages }}", "gAtext", "8080", "{x}", "a" * 100]
    for text in reporting + quiet:
        reports = bool(list(configs._string(text, "p", context())))
        assert configs.string_matters(text) == reports, text
        if reports:
            assert configs._string_may_matter(text), text
