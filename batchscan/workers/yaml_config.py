"""YAML configs: Hydra/NeMo/OmegaConf model configs, `model_config.yaml`, MLflow files
(`MLmodel`, which has no extension, `conda.yaml`, `python_env.yaml`).

Layout. YAML 1.1 documents. They are *composed* (nodes with tags) with PyYAML's safe
composer and never constructed, so no tag can create an object here.

Attack surface. Python tags run code under `yaml.unsafe_load`/`UnsafeLoader`, `full_load`
before 5.4 (CVE-2020-14343) and `yaml.load` before 5.1 (CVE-2017-18342):
`!!python/object/apply:os.system`, `!!python/name:`, `!!python/object/new:`,
`!!python/module:`; Hydra `_target_` calls any callable on `instantiate()`; chat templates
in YAML configs (attacks.md rows 44, 45).

What is checked: every `python/` tag that imports or calls something (`name`, `module`,
`object`, `object/new`, `object/apply`: ERROR, with its value); `python/` tags that build
plain data only (`tuple`, `complex`, `bytes`, `str`, ...: INFO, YML004 - PyYAML's
constructors for them import and call nothing); other non-standard tags (INFO); the shared
config rules of `workers/configs.py` on the plain data; MLflow `MLmodel` documents and
environment files through `workers/mlflow_env.py`. Aliases are followed once (no
billion-laughs expansion).

Rules
| id     | name          | severity | CWE     |
|--------|---------------|----------|---------|
| YML001 | python-tag    | error    | CWE-502 |
| YML002 | custom-tag    | info     | CWE-502 |
| YML003 | invalid-yaml  | warning  | CWE-20  |
| YML004 | python-data-tag | info   | CWE-502 |
| MLF001, MLF002, MLF003 | see workers/mlflow_env.py | | |
| CFG001-CFG010 | see workers/configs.py | | |
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import mlflow_env
from batchscan.workers.base import LimitExceeded, ScanContext, Source
from batchscan.workers.configs import CONFIG_RULES, walk_config

FORMAT = "yaml"

PYTHON_TAG = rules.YML001
CUSTOM_TAG = rules.YML002
INVALID = rules.YML003
PYTHON_DATA_TAG = rules.YML004
RULES: tuple[Rule, ...] = (PYTHON_TAG, CUSTOM_TAG, INVALID, PYTHON_DATA_TAG, *CONFIG_RULES,
                           *mlflow_env.RULES)

_MAX_BYTES = 32 * 1024 * 1024
# libyaml's composer when PyYAML was built with it; it reports nesting past 1,000 levels as
# an error instead of recursing.
_FAST: Any = getattr(yaml, "CSafeLoader", None)
# What PyYAML's reader refuses and libyaml lets through: such text goes to PyYAML directly.
_NON_PRINTABLE = re.compile(
    "[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010ffff]")
_STANDARD = "tag:yaml.org,2002:"
_PYTHON = "tag:yaml.org,2002:python/"
_NULL = "tag:yaml.org,2002:null"
# Tags whose constructors (FullConstructor/UnsafeConstructor) build plain values only.
_PYTHON_DATA = frozenset(f"{_PYTHON}{kind}" for kind in (
    "none", "bool", "str", "unicode", "bytes", "int", "long", "float", "complex", "list",
    "tuple", "dict"))
# MLflow's `MLmodel` has no extension: its name and a YAML mapping line start decide.
_MLMODEL_START = re.compile(
    rb"\A(?:\xef\xbb\xbf)?(?:\s*#[^\n]*\n)*\s*[A-Za-z_][\w-]*:(?:[ \t]|\r?\n)")


def sniff(head: bytes, name: str) -> bool:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base == "MLmodel":
        return b"\x00" not in head[:4096] and _MLMODEL_START.match(head[:4096]) is not None
    if not name.lower().endswith((".yaml", ".yml")):
        return False
    return b"\x00" not in head[:4096]


def _plain(node: yaml.Node, findings: list[Finding], ctx: ScanContext,
           seen: dict[int, Any]) -> Any:
    """Plain data from a composed node; python/ and custom tags are reported, not built."""
    if id(node) in seen:
        return seen[id(node)]
    tag = node.tag or ""
    if tag in _PYTHON_DATA:
        findings.append(PYTHON_DATA_TAG.finding(
            f"tag !!{tag[len(_STANDARD):]} at line {node.start_mark.line + 1} builds plain data",
            member=ctx.member, evidence=f"!!{tag[len(_STANDARD):]}"))
    elif tag.startswith(_PYTHON):
        value = node.value if isinstance(node, yaml.ScalarNode) else "..."
        if isinstance(node, yaml.SequenceNode):
            value = [getattr(child, "value", "...") for child in node.value][:8]
        findings.append(PYTHON_TAG.finding(
            f"tag !!{tag[len(_STANDARD):]} at line {node.start_mark.line + 1}",
            member=ctx.member, evidence=f"!!{tag[len(_STANDARD):]} {value!r}"[:400]))
    elif not tag.startswith(_STANDARD) and tag.startswith("!"):
        findings.append(CUSTOM_TAG.finding(f"tag {tag} at line {node.start_mark.line + 1}",
                                           member=ctx.member))
    result: Any
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, Any] = {}
        seen[id(node)] = mapping
        for key, value in node.value:
            plain_key = _plain(key, findings, ctx, seen)
            mapping[plain_key if isinstance(plain_key, str) else str(plain_key)] = _plain(
                value, findings, ctx, seen)
        result = mapping
    elif isinstance(node, yaml.SequenceNode):
        items: list[Any] = []
        seen[id(node)] = items
        items.extend(_plain(child, findings, ctx, seen) for child in node.value)
        result = items
    elif tag == _NULL:
        result = None  # `code: null` in MLmodel is no code path
    else:
        result = node.value
        seen[id(node)] = result
    return result


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.known_size is not None and source.known_size > _MAX_BYTES:
        raise LimitExceeded("YAML bytes", _MAX_BYTES, source.known_size, ctx.member)
    raw = source.read_at(0, _MAX_BYTES + 1)
    if len(raw) > _MAX_BYTES:  # a stream of unknown length: one byte past the limit tells
        raise LimitExceeded("YAML bytes", _MAX_BYTES, len(raw), ctx.member)
    text = raw.decode("utf-8", "replace")
    findings: list[Finding] = []
    if _FAST is not None and _NON_PRINTABLE.search(text) is None:
        # libyaml composes the same nodes 15x faster; anything it refuses (syntax, its
        # nesting cap) is composed again by PyYAML's own composer, whose verdict and
        # messages stand, so the result is the pure-Python loader's (what `yaml.safe_load`
        # and OmegaConf run).
        noted = len(ctx.incomplete)
        try:
            _documents(text, _FAST, findings, ctx)
        except (yaml.YAMLError, RecursionError):
            findings = []
            del ctx.incomplete[noted:]
        else:
            yield from findings
            return
    try:
        _documents(text, yaml.SafeLoader, findings, ctx)
    except yaml.YAMLError as exc:
        findings.append(INVALID.finding(f"not valid YAML: {str(exc)[:200]}", member=ctx.member))
    except RecursionError:
        findings.append(INVALID.finding("YAML nests too deeply to parse", member=ctx.member))
        ctx.note_incomplete("YAML nests too deeply to parse")
    yield from findings


def _documents(text: str, loader: Any, findings: list[Finding], ctx: ScanContext) -> None:
    """Compose every document with `loader` and add what each one gives to `findings` (the
    one place both composers' results come from)."""
    for node in yaml.compose_all(text, Loader=loader):
        document = _plain(node, findings, ctx, {})
        findings.extend(walk_config(document, ctx))
        findings.extend(mlflow_env.mlmodel_findings(document, ctx))
        findings.extend(mlflow_env.environment_findings(document, ctx))
