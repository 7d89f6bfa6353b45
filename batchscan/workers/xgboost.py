"""XGBoost models: JSON (`.json`) and Universal Binary JSON (`.ubj`) model files.

Layout. One object `{"learner": {...}, "version": [major, minor, patch]}`; the learner holds
`attributes` (free string key/values set with `Booster.set_attr`; the scikit-learn wrapper
stores a JSON string under `scikit_learn`), `feature_names`, `feature_types`,
`gradient_booster` (`{"name": "gbtree"|"dart"|"gblinear", "model": {"trees": [...]}}`),
`learner_model_param` (numbers as strings) and `objective` (`{"name": "binary:logistic",
...}`). UBJSON is the same document in binary (big-endian; markers `{ } [ ] Z N T F i U I l L
d D H C S`, optimised containers `$type #count`). The legacy binary format (`binf` magic,
XGBoost < 2) is recognised in workers/magic.py and reported as not scanned.

Attack surface. XGBoost stores no code: the loader looks objectives and boosters up in its
native registry by name (an unknown name is refused) and custom objectives or metrics are
Python callables that are never saved. What a file can steer is data the native code indexes
with (tree child, parent and split-feature indices used without bounds checks at prediction)
and free strings (attributes, feature names) that downstream code may evaluate or
unpickle. Hostile UBJSON counts make naive parsers allocate without limit.

What is checked. The document is parsed with bounds (JSON <= 256 MiB; UBJSON counts and
lengths bounded by the bytes left, nesting <= 64); the structure must be an XGBoost model
(else `error`); objective and booster names against XGBoost's registry (XGB001); every tree's
child/parent/split indices against its node count and the feature count (XGB002); attribute
values, feature names and the scikit-learn metadata through the config checks (code,
templates, encoded pickles: CFG005/CFG006/CFG010).

Rules
| id     | name              | severity | CWE     |
|--------|-------------------|----------|---------|
| XGB001 | unknown-objective | info     | CWE-20  |
| XGB002 | tree-bounds       | warning  | CWE-129 |
| CFG005/CFG006/CFG010 | see workers/configs.py | | |
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from typing import Any

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source
from batchscan.workers.configs import CONFIG_RULES, walk_config

FORMAT = "xgboost"

UNKNOWN_OBJECTIVE = rules.XGB001
TREE_BOUNDS = rules.XGB002
RULES: tuple[Rule, ...] = (UNKNOWN_OBJECTIVE, TREE_BOUNDS, *CONFIG_RULES)

MAX_BYTES = 256 * 1024 * 1024
MAX_DEPTH = 64
MAX_TREE_FINDINGS = 20

# XGBoost 1.x-3.x objective and booster registries (src/objective/*.cc, src/gbm/*.cc).
OBJECTIVES = frozenset({
    "reg:squarederror", "reg:squaredlogerror", "reg:logistic", "reg:pseudohubererror",
    "reg:absoluteerror", "reg:quantileerror", "reg:expectileerror", "reg:gamma",
    "reg:tweedie", "reg:linear", "binary:logistic", "binary:logitraw", "binary:hinge",
    "count:poisson", "survival:cox", "survival:aft", "multi:softmax", "multi:softprob",
    "rank:ndcg", "rank:map", "rank:pairwise", "reg:linear_gpu",
})
BOOSTERS = frozenset({"gbtree", "gblinear", "dart"})

# A tree's fields (src/tree/tree_model.cc SaveModel); `tree_param` is checked in _tree_problems.
_TREE_FIELDS = frozenset({
    "tree_param", "id", "loss_changes", "sum_hessian", "base_weights", "leaf_weights",
    "left_children", "right_children", "parents", "split_indices", "split_conditions",
    "split_type", "default_left", "categories", "categories_nodes", "categories_segments",
    "categories_sizes",
})
_JSON_START = re.compile(rb'\A\s*\{\s*"(?:learner|version)"\s*:\s*[\{\[]')
_UBJ_LENGTH = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q"}
_UBJ_NUMBER = {b"i": "b", b"U": "B", b"I": "h", b"l": "i", b"L": "q", b"d": "f", b"D": "d"}


def sniff(head: bytes, name: str) -> bool:
    if _JSON_START.match(head[:64]):
        return b'"learner"' in head[:4096]
    # UBJSON: `{`, a length marker, the key "learner" (its first key) or "version".
    return (head[:1] == b"{" and head[1:2] in _UBJ_LENGTH
            and (b"learner" in head[2:24] or b"version" in head[2:24]))


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.size > MAX_BYTES:
        raise LimitExceeded("XGBoost model bytes", MAX_BYTES, source.size, ctx.member)
    raw = source.read_at(0, MAX_BYTES)
    if raw[:1] == b"{" and raw[1:2] in _UBJ_LENGTH:
        document = _Ubj(raw).document()
    else:
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"not valid JSON: {getattr(exc, 'msg', 'bad UTF-8')}") from None
        except RecursionError:
            raise FormatError("JSON nests too deeply") from None
    yield from check_model(document, ctx)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not an object")
    return value


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise FormatError(f"{what} is not an integer") from None


def check_model(document: Any, ctx: ScanContext) -> Iterator[Finding]:
    """Findings for one parsed XGBoost model document (JSON or UBJSON)."""
    yield from _structure(document, ctx)
    # The loaders that read a JSON document as configuration (Hydra's `instantiate`, Keras)
    # walk every key whatever its first key says: the whole document gets the config checks
    # (tree arrays of numbers pruned: inert, and they would only count against the walk).
    _prune_numbers(document)
    yield from walk_config(document, ctx)


def _prune_numbers(document: Any) -> None:
    """Drop what cannot matter to the config checks, so that a model of 100k trees stays far
    under the walk's node bound: lists of numbers, and a tree's own fields once checked."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict) and isinstance(node.get("tree_param"), dict):
            for key in _TREE_FIELDS.intersection(node):
                value = node[key]
                if key == "tree_param" or not isinstance(value, dict | list | str) or (
                        isinstance(value, list) and _numbers(value)):
                    del node[key]
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            if isinstance(value, list) and _numbers(value):
                node[key] = []
            elif isinstance(value, dict | list):
                stack.append(value)


def _numbers(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) for v in values)


def _structure(document: Any, ctx: ScanContext) -> Iterator[Finding]:
    learner = _mapping(_mapping(document, "the model").get("learner"), "learner")
    attributes = learner.get("attributes", {})
    _mapping(attributes, "learner.attributes")
    meta = attributes.get("scikit_learn")
    if isinstance(meta, str):
        parsed = _loads(meta)
        if parsed is not None:  # else a plain string, already checked above
            yield from walk_config(parsed, ctx, "learner.attributes.scikit_learn")
    for key in ("feature_names", "feature_types"):
        names = learner.get(key, [])
        if not isinstance(names, list):
            raise FormatError(f"learner.{key} is not a list")
    objective = _mapping(learner.get("objective"), "learner.objective").get("name")
    if objective not in OBJECTIVES:
        yield UNKNOWN_OBJECTIVE.finding(f"objective {objective!r} is not one XGBoost registers",
                                        member=ctx.member, evidence=str(objective)[:200])
    params = _mapping(learner.get("learner_model_param", {}), "learner.learner_model_param")
    num_feature = _int(params.get("num_feature", 0), "num_feature")
    booster = _mapping(learner.get("gradient_booster"), "learner.gradient_booster")
    name = booster.get("name")
    if name not in BOOSTERS:
        yield UNKNOWN_OBJECTIVE.finding(f"booster {name!r} is not one XGBoost registers",
                                        member=ctx.member, evidence=str(name)[:200])
        return
    if name == "gblinear":
        _mapping(booster.get("model"), "gblinear model")
        return
    model = booster.get("gbtree") if name == "dart" else booster
    model = _mapping(_mapping(model, "dart booster").get("model"), "gbtree model")
    trees = model.get("trees")
    if not isinstance(trees, list):
        raise FormatError("gbtree model has no tree list")
    reported = 0
    for index, tree in enumerate(trees):
        for problem in _tree_problems(_mapping(tree, f"tree {index}"), num_feature):
            reported += 1
            if reported <= MAX_TREE_FINDINGS:
                yield TREE_BOUNDS.finding(f"tree {index}: {problem}", member=ctx.member)


def _tree_problems(tree: dict[str, Any], num_feature: int) -> Iterator[str]:
    param = _mapping(tree.get("tree_param"), "tree_param")
    nodes = _int(param.get("num_nodes"), "tree_param.num_nodes")
    arrays = {}
    for key in ("left_children", "right_children", "parents", "split_indices"):
        values = tree.get(key)
        if not isinstance(values, (list, tuple)):
            raise FormatError(f"tree has no {key} array")
        if len(values) != nodes:
            yield f"{key} has {len(values)} entries for {nodes} nodes"
            return
        arrays[key] = values
    left, right = arrays["left_children"], arrays["right_children"]
    # Multi-target trees (size_leaf_vector > 1) store a leaf as left -1 and right = the
    # leaf's slot in leaf_weights (size_leaf_vector values each).
    vector = _int(param.get("size_leaf_vector", 1) or 1, "tree_param.size_leaf_vector")
    weights = tree.get("leaf_weights", [])
    slots = len(weights) // vector if vector > 1 and isinstance(weights, (list, tuple)) else 0
    for node in range(nodes):
        lo, hi = left[node], right[node]
        if not isinstance(lo, int) or not isinstance(hi, int):
            raise FormatError("tree child index is not an integer")
        if lo == -1 and (hi == -1 or (slots and 0 <= hi < slots)):
            continue  # a leaf
        if lo == -1:
            yield f"leaf {node} names weight slot {hi} of {slots}"
            return
        if not (0 < lo < nodes and 0 < hi < nodes) or lo == node or hi == node:
            yield f"node {node} has children ({lo}, {hi}) outside 1..{nodes - 1}"
            return
        split = arrays["split_indices"][node]
        if num_feature and (not isinstance(split, int) or not 0 <= split < num_feature):
            yield f"node {node} splits on feature {split} of {num_feature}"
            return
        parent_lo, parent_hi = arrays["parents"][lo], arrays["parents"][hi]
        if parent_lo != node or parent_hi != node:
            yield f"node {node}'s children name parents ({parent_lo}, {parent_hi})"
            return


class _Ubj:
    """A bounded UBJSON reader (the subset XGBoost writes, plus the rest of the spec)."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.values = 0  # every value costs a byte, except those of a typed `Z`/`T`/`F`
        # container: counting them keeps `[$[#` of `[$Z#<bytes left>` from going quadratic

    def counted(self, n: int) -> None:
        self.values += n
        if self.values > len(self.data):
            raise FormatError(f"UBJSON holds more values than its {len(self.data)} bytes "
                              "(zero-byte typed containers)")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"UBJSON value of {n} bytes at offset {self.pos} runs past the end")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def marker(self) -> bytes:
        while True:
            mark = self.take(1)
            if mark != b"N":  # no-op
                return mark

    def length(self, mark: bytes | None = None) -> int:
        mark = mark or self.take(1)
        fmt = _UBJ_LENGTH.get(mark)
        if fmt is None:
            raise FormatError(f"UBJSON length has type {mark!r} at offset {self.pos - 1}")
        (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        if value < 0 or value > len(self.data) - self.pos:
            raise FormatError(f"UBJSON length {value} at offset {self.pos} exceeds the file")
        return int(value)

    def document(self) -> Any:
        value = self.value(self.marker(), 0)
        return value

    def value(self, mark: bytes, depth: int) -> Any:
        self.counted(1)
        if mark in _UBJ_NUMBER:
            fmt = ">" + _UBJ_NUMBER[mark]
            return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        if mark == b"S" or mark == b"H":
            return self.take(self.length()).decode("utf-8", "replace")
        if mark == b"C":
            return self.take(1).decode("latin-1")
        if mark == b"T":
            return True
        if mark == b"F":
            return False
        if mark == b"Z":
            return None
        if mark in (b"[", b"{"):
            if depth >= MAX_DEPTH:
                raise FormatError(f"UBJSON nests deeper than {MAX_DEPTH}")
            return self.container(mark, depth + 1)
        raise FormatError(f"unknown UBJSON marker {mark!r} at offset {self.pos - 1}")

    def container(self, opener: bytes, depth: int) -> Any:
        kind: bytes | None = None
        count: int | None = None
        mark = self.marker()
        if mark == b"$":
            kind = self.take(1)
            mark = self.take(1)
            if mark != b"#":
                raise FormatError("UBJSON typed container without a count")
        if mark == b"#":
            count = self.length()
            mark = b""
        if opener == b"[":
            if kind is not None and kind in _UBJ_NUMBER and count is not None:
                size = struct.calcsize(_UBJ_NUMBER[kind])
                raw = self.take(count * size)
                return list(struct.unpack(f">{count}{_UBJ_NUMBER[kind]}", raw))
            items: list[Any] = []
            while count is None or len(items) < count:
                if count is None:
                    mark = mark or self.marker()
                    if mark == b"]":
                        return items
                else:
                    mark = kind or self.marker()
                items.append(self.value(mark, depth))
                mark = b""
            return items
        result: dict[str, Any] = {}
        read = 0
        while count is None or read < count:
            if count is None:
                mark = mark or self.marker()
                if mark == b"}":
                    return result
                key_len = self.length(mark)
            else:
                key_len = self.length()
            key = self.take(key_len).decode("utf-8", "replace")
            result[key] = self.value(kind or self.marker(), depth)
            read += 1
            mark = b""
        return result
