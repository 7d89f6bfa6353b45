"""skops model files (`.skops`): the `schema.json` member of the zip `skops.io.dump` writes.

Layout. A `.skops` file is a zip: `schema.json` (the object tree) plus one member per array
(`<id>.npy`, `<id>.npz` for sparse matrices, raw bytes). The zip module scans the container
(traversal, bombs, every `.npy` member); this module is chosen for the schema by content:
every node is an object with `__class__`, `__module__` and `__loader__` (the node kind:
ObjectNode, FunctionNode, MethodNode, OperatorFuncNode, ReduceNode, TypeNode, ...) plus
`content`, `__reduce__`, `attrs`, `file`...; the root also carries `protocol` and
`_skops_version`.

Attack surface. `skops.io.load` audits the tree against trusted types: each loader has a
default trusted list (sklearn estimators for ObjectNode, numpy/scipy ufuncs for
FunctionNode, nothing for MethodNode, OperatorFuncNode, PartialNode, ReduceNode...), and any
other type must be passed in `trusted=`. Users routinely pass
`get_untrusted_types(file=...)` back, so the names a file shows decide what runs:
FunctionNode/TypeNode import any callable, ObjectNode/ReduceNode construct any class (its
`__reduce__` constructor with attacker arguments), MethodNode resolves `getattr(obj, name)`
and OperatorFuncNode calls `operator.<name>`. CVE-2025-54412 (skops <= 0.11): an
OperatorFuncNode audited as `<__module__>.<__class__>` but constructed as
`operator.<__class__>` (e.g. `operator.call`), hiding the call behind a harmless-looking
trusted name. CVE-2025-54413 (skops <= 0.11): MethodNode's `func` with dots (`__init__.
__globals__...`) walked arbitrary attributes at load. (CVE-2025-54886, `Card.get_model`
falling back to joblib for non-skops files, is a property of the caller: a `.skops` name on
a pickle is caught by content dispatch.)

What is checked. The schema is JSON (<= 64 MiB, depth-bounded walk, <= 2 M nodes); every
node's `<module>.<class>` against skops' default trusted list of its loader (generated from
the installed skops into workers/skops_trusted.py) -> SKO001 (warning; info for a type the
pickle policy knows as safe to construct, e.g. sklearn's Tree, which skops leaves untrusted
because of unchecked indices); callables and classes the pickle
policy denies (os.system, builtins.eval, subprocess...) -> SKO002; OperatorFuncNodes other
than attrgetter/itemgetter, or naming a module other than `operator`, or getting dunder
attributes -> SKO003; MethodNodes with dotted or dunder method names, or whose type differs
from their object's -> SKO004; loaders skops does not define -> SKO005; JSON string contents
through the config checks.

Rules
| id     | name                   | severity | CWE     |
|--------|------------------------|----------|---------|
| SKO001 | untrusted-type         | warning  | CWE-502 |
| SKO002 | dangerous-callable     | error    | CWE-502 |
| SKO003 | hidden-operator        | error    | CWE-351 |
| SKO004 | method-attribute-chain | error    | CWE-915 |
| SKO005 | unknown-loader         | info     | CWE-20  |
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from typing import Any

from batchscan import rules
from batchscan.records import Finding, Severity
from batchscan.rules import Rule
from batchscan.workers import json_config
from batchscan.workers import pickle_policy as policy
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source
from batchscan.workers.configs import CONFIG_RULES, walk_config
from batchscan.workers.skops_trusted import DEFAULT_TRUSTED

FORMAT = "skops"

UNTRUSTED = rules.SKO001
DANGEROUS = rules.SKO002
HIDDEN_OPERATOR = rules.SKO003
METHOD_CHAIN = rules.SKO004
UNKNOWN_LOADER = rules.SKO005
RULES: tuple[Rule, ...] = (UNTRUSTED, DANGEROUS, HIDDEN_OPERATOR, METHOD_CHAIN, UNKNOWN_LOADER,
                           *CONFIG_RULES)

MAX_BYTES = 64 * 1024 * 1024
MAX_NODES = 2_000_000
MAX_DEPTH = 200
MAX_FINDINGS_PER_RULE = 50

LOADERS = frozenset({
    "BytesNode", "BytearrayNode", "CachedNode", "ConstructorFromReduceNode", "DTypeNode",
    "DefaultDictNode", "DictNode", "FunctionNode", "JsonNode", "ListNode", "LossNode",
    "MaskedArrayNode", "MethodNode", "NdArrayNode", "ObjectNode", "OperatorFuncNode",
    "PartialNode", "RandomGeneratorNode", "RandomStateNode", "ReduceNode", "SetNode",
    "SgdLossNode", "SliceNode", "SparseMatrixNode", "TreeNode", "TupleNode", "TypeNode",
    "QuantileForestNode", "_DictWithDeprecatedKeysNode",
})
# Loaders that hold no type of their own to audit.
_NO_TYPE = frozenset({"CachedNode"})
# Loaders that call something with the type (a bound method, an operator function).
_CALLS = frozenset({"MethodNode", "OperatorFuncNode", "PartialNode"})
# Operator functions that only read attributes or items of their argument.
_GETTERS = frozenset({"attrgetter", "itemgetter"})

_SCHEMA_START = re.compile(rb'\A\s*\{\s*"__(?:class|module|loader)__"\s*:')


def sniff(head: bytes, name: str) -> bool:
    if _SCHEMA_START.match(head[:256]) is not None and b'"__loader__"' in head[:4096]:
        return True
    # skops reads schema.json whatever its key order: the member name decides too, and a
    # schema.json that is not a skops tree gets the plain JSON checks (see `scan`).
    return name.replace("\\", "/").rsplit("/", 1)[-1] == "schema.json" and (
        head.lstrip()[:1] == b"{")


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.size > MAX_BYTES:
        raise LimitExceeded("skops schema bytes", MAX_BYTES, source.size, ctx.member)
    try:
        schema = json.loads(source.read_at(0, MAX_BYTES))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"schema.json is not valid JSON: {getattr(exc, 'msg', 'bad UTF-8')}"
                          ) from None
    except RecursionError:
        raise FormatError("schema.json nests too deeply") from None
    if not isinstance(schema, dict) or "__loader__" not in schema:
        if ctx.depth == 0:
            ctx.format_hint = json_config.FORMAT
        yield from json_config.scan(source, ctx)  # a JSON document that is not a skops tree
        return
    if not isinstance(schema.get("protocol", 0), int):
        raise FormatError("schema.json protocol is not an integer")
    counts: dict[str, int] = {}
    for finding in _walk(schema, ctx):
        counts[finding.rule_id] = counts.get(finding.rule_id, 0) + 1
        if counts[finding.rule_id] <= MAX_FINDINGS_PER_RULE:
            yield finding
    # A JSON reader that takes the document as configuration (Hydra's `instantiate`) walks
    # every key, skops or not: the whole document gets the config checks too.
    yield from walk_config(schema, ctx)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"node {what} is not a string")
    return value


def _walk(root: dict[str, Any], ctx: ScanContext) -> Iterator[Finding]:
    stack: list[tuple[Any, str, int]] = [(root, "", 0)]
    nodes = 0
    member = ctx.member
    while stack:
        value, path, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise LimitExceeded("skops schema nodes", MAX_NODES, nodes, member)
        if depth > MAX_DEPTH:
            raise FormatError(f"schema nests deeper than {MAX_DEPTH} at {path}")
        if isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
            continue
        if not isinstance(value, dict):
            continue
        if "__loader__" in value:
            yield from _node(value, path or "root", ctx)
        for key, item in value.items():
            if key == "content" and value.get("__loader__") == "JsonNode":
                if isinstance(item, str):
                    yield from _json_content(item, f"{path}.content", ctx)
                continue
            if isinstance(item, (dict, list)):
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))


def _node(node: dict[str, Any], path: str, ctx: ScanContext) -> Iterator[Finding]:
    member = ctx.member
    loader = _text(node.get("__loader__"), "__loader__")
    if loader not in LOADERS:
        yield UNKNOWN_LOADER.finding(f"{path}: loader {loader!r}", member=member,
                                     evidence=loader[:200])
        return
    if loader in _NO_TYPE:
        return
    module = _text(node.get("__module__"), "__module__")
    name = _text(node.get("__class__"), "__class__")
    full = f"{module}.{name}"
    if loader == "OperatorFuncNode":
        yield from _operator(module, name, path, member)
    elif loader == "MethodNode":
        yield from _method(node, module, name, path, member)
    elif loader in ("ReduceNode", "TreeNode", "LossNode", "SgdLossNode", "QuantileForestNode"):
        constructor = node.get("__reduce__", {})
        constructor = constructor.get("constructor") if isinstance(constructor, dict) else None
        if isinstance(constructor, dict):
            yield from _callable(str(constructor.get("__module__", "")),
                                 str(constructor.get("__class__", "")),
                                 f"{path}.__reduce__.constructor", member)
    if loader == "JsonNode":
        return  # skops always accepts JSON primitives
    denied = yield from _callable(module, name, path, member)
    if full not in DEFAULT_TRUSTED.get(loader, frozenset()):
        # skops also refuses types it trusts nobody with by default (sklearn's Tree and
        # TreePredictor: their arrays are indexed unchecked); a type the pickle policy knows
        # as safe to construct is reported, but as INFO - unless the node calls a method or
        # an operator with it.
        known = (not denied and loader not in _CALLS
                 and policy.classify(module or "builtins", name).verdict is policy.Verdict.ALLOW)
        yield UNTRUSTED.finding(
            f"{path}: {loader} {full} is not trusted by default"
            + (" (a known-safe type to the pickle policy)" if known else ""),
            severity=Severity.INFO if known else None, member=member, evidence=full[:200])


def _callable(module: str, name: str, path: str,
              member: str | None) -> Generator[Finding, None, bool]:
    """SKO002 when the pickle policy denies the callable; returns whether it did."""
    verdict = policy.classify(module or "builtins", name)
    if verdict.verdict is policy.Verdict.DENY:
        yield DANGEROUS.finding(f"{path}: {module}.{name}: {verdict.reason}", member=member,
                                evidence=f"{module}.{name}"[:200])
        return True
    return False


def _operator(module: str, name: str, path: str, member: str | None) -> Iterator[Finding]:
    if module != "operator":
        yield HIDDEN_OPERATOR.finding(
            f"{path}: OperatorFuncNode shows {module}.{name} but calls operator.{name} "
            "(CVE-2025-54412)", member=member, evidence=f"{module}.{name}"[:200])
    elif name not in _GETTERS:
        yield HIDDEN_OPERATOR.finding(
            f"{path}: OperatorFuncNode calls operator.{name} with arguments from the file",
            member=member, evidence=f"operator.{name}"[:200])


def _method(node: dict[str, Any], module: str, name: str, path: str,
            member: str | None) -> Iterator[Finding]:
    content = node.get("content")
    if not isinstance(content, dict):
        raise FormatError(f"{path}: MethodNode without content")
    func = _text(content.get("func"), "MethodNode func")
    owner = content.get("obj")
    if "." in func or (func.startswith("__") and func.endswith("__")):
        yield METHOD_CHAIN.finding(f"{path}: MethodNode resolves {func!r} on "
                                   f"{module}.{name} (CVE-2025-54413)", member=member,
                                   evidence=func[:200])
    elif isinstance(owner, dict) and (owner.get("__module__"), owner.get("__class__")) != (
            module, name):
        yield METHOD_CHAIN.finding(
            f"{path}: MethodNode shows {module}.{name} but its object is "
            f"{owner.get('__module__')}.{owner.get('__class__')}", member=member,
            evidence=f"{module}.{name}.{func}"[:200])


def _json_content(text: str, path: str, ctx: ScanContext) -> Iterator[Finding]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise FormatError(f"{path}: JsonNode content is not JSON") from None
    yield from walk_config(value, ctx, path)
