"""Orbax checkpoint metadata: `_METADATA` (the PyTree metadata) and `_CHECKPOINT_METADATA`.

Layout. An Orbax checkpoint is a directory (or a tar of one): `_CHECKPOINT_METADATA` (JSON:
`item_handlers` - the handler type string, or a map of item name to one - metrics,
timestamps, `custom_metadata`), per item a `_METADATA` (JSON: `tree_metadata` mapping each
leaf's key string to `key_metadata` [{key, key_type}] and `value_metadata` {value_type,
skip_deserialize}; `use_ocdbt`, `use_zarr3`, `custom_metadata`), then either OCDBT
(`manifest.ocdbt`, `ocdbt.process_N/`, `d/<hash>` B-tree and data files) or one TensorStore
zarr array directory per leaf (`<param name>/.zarray`, chunks), an optional `_sharding` JSON,
and in old checkpoints an aggregate `checkpoint` msgpack file (flax.serialization format:
scanned by workers/flax_msgpack.py).

Attack surface (orbax-checkpoint 0.11/0.12 source). Handler and value types are looked up in
registries by their type strings (an unknown one is refused: nothing is imported from the
file); no pickle is involved. A restore without a target takes the leaf names from
`_METADATA`: the param name is `'.'.join(keys)` and, without OCDBT, TensorStore opens
`os.path.join(directory, name)` - an absolute key or one with `..` components makes the
restore read a file outside the checkpoint. Free metadata (`custom_metadata`) may be
evaluated by downstream code. OCDBT manifests and B-tree nodes (magic 0x0cdb3a2a /
0x0cdb20de) hold data-file paths in zstd-compressed tables: they are recognised in
workers/magic.py and reported as not scanned (never clean).

What is checked. The JSON (<= 64 MiB); every leaf's key path against escaping the checkpoint
directory (ORB001: error without OCDBT, where the restore opens it; info with OCDBT, where the
name stays a key inside the database); handler and value type strings that are not Orbax's
(ORB002, info: refused by the loader); `custom_metadata` and metrics through the config
checks. A file named `_METADATA`/`_CHECKPOINT_METADATA` that is not Orbax metadata gets the
plain JSON checks.

Rules
| id     | name         | severity | CWE    |
|--------|--------------|----------|--------|
| ORB001 | path-escape  | error    | CWE-22 |
| ORB002 | unknown-type | info     | CWE-20 |
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from batchscan import rules
from batchscan.records import Finding, Severity
from batchscan.rules import Rule
from batchscan.workers import json_config
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source, unsafe_path
from batchscan.workers.configs import CONFIG_RULES, walk_config

FORMAT = "orbax"

PATH_ESCAPE = rules.ORB001
UNKNOWN_TYPE = rules.ORB002
RULES: tuple[Rule, ...] = (PATH_ESCAPE, UNKNOWN_TYPE, *CONFIG_RULES)

MAX_BYTES = 64 * 1024 * 1024
MAX_FINDINGS = 20
NAMES = ("_METADATA", "_CHECKPOINT_METADATA")
# Value types Orbax's type handler registry writes (metadata/value.py, type_handlers.py).
VALUE_TYPES = frozenset({
    "jax.Array", "np.ndarray", "scalar", "string", "None", "Dict", "List", "Tuple",
    "NamedTuple", "PLACEHOLDER", "jax.random.key", "jax.random.PRNGKey", "prng_key",
    "Empty", "empty",
})
_START = re.compile(rb'\A\s*\{\s*"(?:tree_metadata|item_handlers)"\s*:')


def sniff(head: bytes, name: str) -> bool:
    if _START.match(head[:128]):
        return True
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base in NAMES and head.lstrip()[:1] == b"{"


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.size > MAX_BYTES:
        raise LimitExceeded("Orbax metadata bytes", MAX_BYTES, source.size, ctx.member)
    try:
        document = json.loads(source.read_at(0, MAX_BYTES))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"metadata is not valid JSON: {getattr(exc, 'msg', 'bad UTF-8')}"
                          ) from None
    except RecursionError:
        raise FormatError("metadata nests too deeply") from None
    if isinstance(document, dict) and "tree_metadata" in document:
        yield from _tree(document, ctx)
        # A JSON reader that takes the document as configuration (Hydra's `instantiate`)
        # walks every key: the whole document gets the config checks, not only the free
        # metadata Orbax defines.
        yield from walk_config(document, ctx)
    elif isinstance(document, dict) and "item_handlers" in document:
        yield from _checkpoint(document, ctx)
        yield from walk_config(document, ctx)
    else:
        if ctx.depth == 0:
            ctx.format_hint = json_config.FORMAT
        yield from json_config.scan(source, ctx)


def _tree(document: dict[str, Any], ctx: ScanContext) -> Iterator[Finding]:
    tree = document["tree_metadata"]
    if not isinstance(tree, dict):
        raise FormatError("tree_metadata is not an object")
    ocdbt = document.get("use_ocdbt", True) is not False
    escapes = unknown = 0
    for keystr, leaf in tree.items():
        if not isinstance(leaf, dict):
            raise FormatError(f"tree_metadata entry {keystr[:80]!r} is not an object")
        keys = leaf.get("key_metadata", [])
        if not isinstance(keys, list):
            raise FormatError(f"key_metadata of {keystr[:80]!r} is not a list")
        parts = [str(k.get("key")) if isinstance(k, dict) else str(k) for k in keys]
        name = ".".join(parts)
        why = unsafe_path(name)  # the joined name is what os.path.join receives
        if why is not None:
            escapes += 1
            if escapes <= MAX_FINDINGS:
                where = ("restore opens it outside the checkpoint" if not ocdbt else
                         "a key inside the OCDBT database")
                yield PATH_ESCAPE.finding(
                    f"leaf {name[:120]!r}: {why}; {where}", member=ctx.member,
                    severity=None if not ocdbt else Severity.INFO, evidence=name[:200])
        value = leaf.get("value_metadata", {})
        kind = value.get("value_type") if isinstance(value, dict) else None
        if kind is not None and kind not in VALUE_TYPES:
            unknown += 1
            if unknown <= MAX_FINDINGS:
                yield UNKNOWN_TYPE.finding(f"leaf {name[:120]!r}: value type {str(kind)[:80]!r}",
                                           member=ctx.member, evidence=str(kind)[:200])


def _checkpoint(document: dict[str, Any], ctx: ScanContext) -> Iterator[Finding]:
    handlers = document["item_handlers"]
    named = handlers if isinstance(handlers, dict) else {"": handlers}
    for item, typestr in named.items():
        if typestr is None:
            continue
        if not isinstance(typestr, str):
            raise FormatError("item_handlers holds a value that is not a type string")
        if not typestr.startswith("orbax.checkpoint."):
            yield UNKNOWN_TYPE.finding(f"item {item!r} handler {typestr[:120]!r} is not Orbax's"
                                       " (used only if the application registered it)",
                                       member=ctx.member, evidence=typestr[:200])
