"""Checks shared by configuration formats (JSON, YAML, Keras configs, safetensors metadata).

Not a format module: `workers/json_config.py`, `yaml_config.py`, `keras_h5.py` and others
walk their parsed documents with `walk_config`, which knows the conventions that turn a
config into code: Hugging Face `auto_map` (trust_remote_code), Hydra/OmegaConf `_target_`
(instantiate any callable; CVE-2025-23304, CVE-2026-22584), chat templates (Jinja2 SSTI),
Keras layer configs (Lambda bytecode, `module`/`registered_name` references, function
references such as `keras.utils.get_file`), and base64/hex strings that decode to pickles.

Encoded pickles are decoded and handed to the registry like container members, so the report
says what they contain (the inner pickle's own findings, graded by the pickle policy);
CFG010 only records that a blob was decoded and where. stable-baselines3 stores every
non-JSON attribute of a saved model as `{":type:": ..., ":serialized:": base64(cloudpickle)}`
in its `data` member and `load()` unpickles each one: such a value is decoded whatever its
first bytes (any pickle protocol) and scanned as member `<key>/:serialized:`; one that does
not decode, is not a pickle or is over the nested-pickle budget leaves the file incomplete
(never clean).

`_target_` callables are graded like globals in a pickle (shared `pickle_policy`): deny-listed
-> CFG003 ERROR; not on the allow-list and called as a function -> CFG011 WARNING (we cannot
classify what it does with its arguments: `sympy.sympify("...")` evaluates them); an
unknown class (CamelCase) -> CFG004 INFO, like PKL003.

Rules
| id     | name                      | severity | CWE      |
|--------|---------------------------|----------|----------|
| CFG001 | remote-code-auto-map      | warning  | CWE-94   |
| CFG002 | cross-repo-remote-code    | error    | CWE-829  |
| CFG003 | dangerous-target          | error    | CWE-94   |
| CFG004 | unknown-target            | info     | CWE-94   |
| CFG005 | template-injection        | error    | CWE-1336 |
| CFG006 | suspicious-template       | warning  | CWE-1336 |
| CFG007 | keras-lambda              | error    | CWE-94   |
| CFG008 | keras-foreign-module      | warning  | CWE-470  |
| CFG009 | keras-dangerous-reference | error    | CWE-470  |
| CFG010 | encoded-pickle            | info     | CWE-502  |
| CFG011 | unknown-callable-target   | warning  | CWE-94   |
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import pickle_policy as policy
from batchscan.workers import textscan
from batchscan.workers.base import LimitExceeded, ScanContext, Source

AUTO_MAP = rules.CFG001
CROSS_REPO = rules.CFG002
TARGET_DANGEROUS = rules.CFG003
TARGET_UNKNOWN = rules.CFG004
TEMPLATE_INJECTION = rules.CFG005
TEMPLATE_SUSPICIOUS = rules.CFG006
KERAS_LAMBDA = rules.CFG007
KERAS_MODULE = rules.CFG008
KERAS_DANGEROUS = rules.CFG009
ENCODED_PICKLE = rules.CFG010
TARGET_UNKNOWN_CALL = rules.CFG011
CONFIG_RULES: tuple[Rule, ...] = (AUTO_MAP, CROSS_REPO, TARGET_DANGEROUS, TARGET_UNKNOWN,
                                  TEMPLATE_INJECTION, TEMPLATE_SUSPICIOUS, KERAS_LAMBDA,
                                  KERAS_MODULE, KERAS_DANGEROUS, ENCODED_PICKLE,
                                  TARGET_UNKNOWN_CALL)

_KERAS_MODULES = ("keras", "tensorflow", "tf_keras", "keras_nlp", "keras_hub", "keras_cv",
                  "builtins")
_B64_PICKLE = re.compile(r"\A(?:gA[A-Za-z0-9+/=\s]{10,})\Z")
_HEX_PICKLE = re.compile(r"\A80(?:0[2-5])[0-9a-fA-F]{8,}\Z")
_MAX_NODES = 2_000_000
SERIALIZED = ":serialized:"  # stable-baselines3's key for a base64 cloudpickle


def split_target(target: str) -> tuple[str, str]:
    module, _, name = target.replace(":", ".").rpartition(".")
    return module, name


def target_verdict(target: str) -> policy.Classification:
    """How `_target_` resolves: Hydra's `_locate` imports the first component and reaches
    every later one by attribute access (importing a submodule only when the attribute is
    missing), so `sklearn.datasets._base.os.system` is `os.system` even though no module of
    that name exists. Each component is judged as the object it may name: a deny verdict
    for any suffix after a component wins over the allow-list entry of the whole path."""
    module, name = split_target(target)
    verdict = policy.classify(module, name) if module else policy.classify("builtins", name)
    if verdict.verdict is policy.Verdict.DENY:
        return verdict
    parts = target.replace(":", ".").split(".")
    for i in range(1, len(parts) - 1):
        inner = policy.classify(parts[i], ".".join(parts[i + 1:]))
        if inner.verdict is policy.Verdict.DENY and (
            parts[i] in policy.DANGEROUS_MODULES or parts[i] in policy.DANGEROUS_CALLABLES
        ):
            return policy.Classification(
                policy.Verdict.DENY, f"reaches module `{parts[i]}` by attribute access: "
                f"{inner.reason}")
    return verdict


def walk_config(document: Any, ctx: ScanContext, where: str = "") -> Iterator[Finding]:
    """Findings for one parsed configuration document (dicts, lists, strings).

    A node's path (`a.b[3].c`) is only spelled out for a node that can give a finding
    (`_mapping_may_matter`, `_string_may_matter`); the others carry a (parent, key, is_index)
    chain. A container's strings are checked as the container is opened; numbers, booleans
    and nulls cost nothing more than being counted.
    """
    stack: list[tuple[Any, Any]] = [(document, where)]
    nodes = 1  # each node is counted once: the root here, the others in their parent's len
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            if _mapping_may_matter(node):
                yield from _mapping(node, _spell(path), ctx)
            children: Any = node.items()
            if isinstance(node.get(SERIALIZED), str):  # decoded and scanned by `_mapping`
                children = [(key, value) for key, value in children if key != SERIALIZED]
            is_index = False
        elif isinstance(node, list):
            children = enumerate(node)
            is_index = True
        else:
            if isinstance(node, str) and _string_may_matter(node):
                yield from _string(node, _spell(path), ctx)
            continue
        nodes += len(node)
        if nodes > _MAX_NODES:
            ctx.note_incomplete(f"config has more than {_MAX_NODES} nodes")
            return
        for key, value in children:
            if isinstance(value, str):
                if _string_may_matter(value):
                    yield from _string(value, _spell((path, key, is_index)), ctx)
            elif isinstance(value, dict | list):
                stack.append((value, (path, key, is_index)))


def _spell(path: Any) -> str:
    """`a.b[3].c` from a (parent, key, is_index) chain ending in the walk's root string."""
    chain: list[tuple[Any, bool]] = []
    while not isinstance(path, str):
        path, key, is_index = path
        chain.append((key, is_index))
    spelled: str = path
    for key, is_index in reversed(chain):
        if is_index:
            spelled = f"{spelled}[{key}]"
            continue
        spelled = f"{spelled}.{key}" if spelled else str(key)
    return spelled


def _mapping_may_matter(node: dict[Any, Any]) -> bool:
    """Whether `_mapping` can report anything: it reads only these keys (keep in step)."""
    return ("auto_map" in node or "_target_" in node or "class_name" in node
            or SERIALIZED in node)


def _mapping(node: dict[Any, Any], path: str, ctx: ScanContext) -> Iterator[Finding]:
    member = ctx.member
    auto_map = node.get("auto_map")
    if isinstance(auto_map, dict):
        for key, value in auto_map.items():
            for ref in value if isinstance(value, list) else [value]:
                if not isinstance(ref, str):
                    continue
                if "--" in ref:
                    yield CROSS_REPO.finding(f"auto_map {key} -> {ref!r} loads code from "
                                             "another repository", member=member, evidence=ref)
                else:
                    yield AUTO_MAP.finding(f"auto_map {key} -> {ref!r} (runs with "
                                           "trust_remote_code=True)", member=member, evidence=ref)
    target = node.get("_target_")
    if isinstance(target, str) and target:
        verdict = target_verdict(target)
        name = split_target(target)[1]
        where = f"{path}._target_" if path else "_target_"
        if verdict.verdict is policy.Verdict.DENY:
            yield TARGET_DANGEROUS.finding(f"{where} = {target!r}: {verdict.reason}",
                                           member=member, evidence=target)
        elif verdict.verdict is policy.Verdict.UNKNOWN:
            if policy.looks_like_class(name):
                yield TARGET_UNKNOWN.finding(f"{where} = {target!r}: constructs a class that is "
                                             "not on the allow-list", member=member,
                                             evidence=target)
            else:
                yield TARGET_UNKNOWN_CALL.finding(
                    f"{where} = {target!r}: instantiate() calls a function that is not on the "
                    "allow-list with the config's arguments", member=member, evidence=target)
    serialized = node.get(SERIALIZED)
    if isinstance(serialized, str):
        yield from _serialized(serialized, path, ctx)
    yield from _keras(node, path, member)


def _serialized(text: str, path: str, ctx: ScanContext) -> Iterator[Finding]:
    """A stable-baselines3 `:serialized:` value: base64 of a cloudpickle that `load()` runs."""
    key = path or "top"
    limit = ctx.limits.max_nested_pickle_bytes
    if len(text) // 4 * 3 > limit + 3:
        raise LimitExceeded("serialized pickle bytes", limit, len(text) // 4 * 3,
                            ctx.where(f"{key}/{SERIALIZED}"))
    try:
        # Decoded exactly as stable-baselines3 does (`b64decode(s.encode())`, which drops
        # characters outside the alphabet), so the scanned bytes are the loaded bytes.
        raw = base64.b64decode(text.encode(), validate=False)
    except (ValueError, binascii.Error) as exc:
        ctx.note_incomplete(f"{key}/{SERIALIZED} is not valid base64 ({exc}); the pickle that "
                            "stable-baselines3 would load from it was not analysed")
        return
    fmt, _ = ctx.format_of(raw[:4096], "serialized.pkl")
    if fmt != "pickle":
        ctx.note_incomplete(f"{key}/{SERIALIZED} decodes to {len(raw)} bytes that are not a "
                            f"pickle (recognised as {fmt!r})")
    yield ENCODED_PICKLE.finding(
        f"`{key}` holds a stable-baselines3 cloudpickle ({len(raw)} bytes), decoded and "
        "scanned as a member", member=ctx.member, evidence=f"{key}/{SERIALIZED}")
    yield from ctx.scan_member(Source.from_bytes(raw, "serialized.pkl"), f"{key}/{SERIALIZED}")


def _keras(node: dict[Any, Any], path: str, member: str | None) -> Iterator[Finding]:
    class_name = node.get("class_name")
    if not isinstance(class_name, str):
        return
    config = node.get("config")
    if class_name == "Lambda" and isinstance(config, dict):
        function = config.get("function")
        yield KERAS_LAMBDA.finding(
            f"Lambda layer {config.get('name', '?')!r} at {path or 'top'} carries code",
            member=member, evidence=_lambda_evidence(function))
    module = node.get("module")
    registered = node.get("registered_name")
    if class_name == "function" and isinstance(config, str) and isinstance(module, str):
        yield from _reference(module, config, path, member)
    elif isinstance(module, str) and module and not module.startswith(_KERAS_MODULES):
        yield from _reference(module, class_name, path, member)
    if isinstance(registered, str) and "." in registered and not registered.startswith(
        (*_KERAS_MODULES, "Custom>")
    ):
        yield from _reference(*split_target(registered), path, member)


def _reference(module: str, name: str, path: str, member: str | None) -> Iterator[Finding]:
    verdict = policy.classify(module, name)
    qualname = f"{module}.{name}"
    if verdict.verdict is policy.Verdict.DENY:
        yield KERAS_DANGEROUS.finding(f"{path or 'config'} references `{qualname}`: "
                                      f"{verdict.reason}", member=member, evidence=qualname)
    elif not module.startswith(_KERAS_MODULES):
        yield KERAS_MODULE.finding(f"{path or 'config'} references `{qualname}` outside Keras",
                                   member=member, evidence=qualname)


def _lambda_evidence(function: Any) -> str:
    raw = function
    if isinstance(function, dict):
        raw = function.get("config", {}).get("code") if isinstance(function.get("config"),
                                                                   dict) else None
    if isinstance(raw, list) and raw:
        raw = raw[0]
    if not isinstance(raw, str):
        return repr(function)[:300]
    try:
        code = base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError):
        return raw[:300]
    names = re.findall(rb"[A-Za-z_][A-Za-z0-9_.]{2,}", code)
    return "bytecode names: " + ", ".join(n.decode() for n in names[:20])


def _string_may_matter(text: str) -> bool:
    """Whether `_string` can report anything for `text`: the walk spells the path and calls
    it only then. Keep in step with `_string` (and `jsonbulk._TRIGGERS`)."""
    return len(text) >= 4 and ("{{" in text or "{%" in text or (
        len(text) >= 16 and text[:2] in _ENCODED_STARTS))


_ENCODED_STARTS = ("gA", "80", "UE")  # base64 pickle, hex pickle, base64 zip ("UEsDB")


def string_matters(text: str) -> bool:
    """Whether `_string` would report something for `text` (a template with hits, or an
    encoded pickle or zip start): decides whether bulk strings need the full walk."""
    if not _string_may_matter(text):
        return False
    if ("{{" in text or "{%" in text) and textscan.template_hits(text):
        return True
    if len(text) >= 16 and text[:5] == "UEsDB":
        return True
    return len(text) >= 16 and text[:2] in ("gA", "80") and _decode_pickle(text) is not None


def _string(text: str, path: str, ctx: ScanContext) -> Iterator[Finding]:
    member = ctx.member
    if len(text) >= 4 and textscan.looks_like_template(text):
        for hit in textscan.template_hits(text):
            rule = TEMPLATE_INJECTION if hit.error else TEMPLATE_SUSPICIOUS
            yield rule.finding(f"template at {path or 'top'} {hit.reason}", member=member,
                               evidence=hit.excerpt)
    if len(text) >= 16 and text[:5] == "UEsDB":  # base64 of a zip local header
        try:
            archive = base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            archive = b""
        if archive.startswith(b"PK\x03\x04"):
            yield ENCODED_PICKLE.finding(f"{path or 'value'} decodes to a zip archive",
                                         member=member)
            yield from ctx.scan_member(Source.from_bytes(archive, "decoded.zip"),
                                       f"{path or 'value'}|decoded")
    if len(text) >= 16 and (text[:2] == "gA" or text[:2] == "80"):
        raw = _decode_pickle(text)
        if raw is not None:
            yield ENCODED_PICKLE.finding(f"{path or 'value'} decodes to a {len(raw)}-byte "
                                         "pickle, scanned as a member", member=member)
            yield from ctx.scan_member(Source.from_bytes(raw, "decoded.pkl"),
                                       f"{path or 'value'}|decoded")


def _decode_pickle(text: str) -> bytes | None:
    try:
        if _HEX_PICKLE.match(text):
            raw = bytes.fromhex(text)
        elif _B64_PICKLE.match(text):
            raw = base64.b64decode(text, validate=False)
        else:
            return None
    except (ValueError, binascii.Error):
        return None
    if len(raw) >= 4 and raw[0] == 0x80 and 2 <= raw[1] <= 5 and raw.rstrip()[-1:] == b".":
        return raw
    return None
