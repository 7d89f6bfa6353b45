"""Apache MXNet models: the symbol graph (`*-symbol.json`) and the NDArray container
(`*.params`, `mx.nd.save`, Gluon `save_parameters`). MXNet is never imported.

Layout. Symbol: JSON `{"nodes": [{"op", "name", "attrs" (older: "attr"/"param"), "inputs",
"subgraphs"?}], "arg_nodes", "node_row_ptr", "heads", "attrs"}`. Params
(src/ndarray/ndarray.cc): uint64 0x112, uint64 reserved, uint64 array count; per array
uint32 magic (0xF993FAC9 V2, 0xF993FACA V3 numpy shapes), int32 storage type, int32 ndim +
int64 dims (V2 ndim 0 / V3 ndim -1: an empty array, nothing follows), int32 device type,
int32 device id, int32 type flag, then the dense data; after the arrays uint64 name count and
uint64-length names.

Attack surface. Loading the symbol instantiates operators by name: `Custom` runs the Python
`CustomOp` class the process registered under `op_type` (code outside the file, steered by
the graph); the legacy `_Native`/`_NDArray` operators take a raw C pointer to a callback
structure from their `info` attribute and call through it. The params file holds only
numbers, but the loader trusts its counts and shapes (huge allocations).

What is checked: every node of the graph and of nested subgraphs (`Custom` op types,
pointer-taking operators, structure), plus the configuration checks of `workers/configs.py`
on the document; the params container's structure, counts, shapes and sizes against the file
(the tensor bytes are skipped, never read).

Rules
| id     | name               | severity | CWE     |
|--------|--------------------|----------|---------|
| MXN001 | custom-op          | warning  | CWE-829 |
| MXN002 | native-callback-op | error    | CWE-822 |
| MXN003 | bad-structure      | warning  | CWE-20  |
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

FORMAT = "mxnet"

CUSTOM_OP = rules.MXN001
NATIVE_OP = rules.MXN002
BAD = rules.MXN003
RULES: tuple[Rule, ...] = (CUSTOM_OP, NATIVE_OP, BAD, *CONFIG_RULES)

POINTER_OPS = frozenset({"_Native", "_NDArray"})
_LIST_MAGIC = 0x112
_V2, _V3 = 0xF993FAC9, 0xF993FACA
# mshadow type flags: bytes per element.
_ELEMENT_BYTES = {0: 4, 1: 8, 2: 2, 3: 1, 4: 4, 5: 1, 6: 8, 7: 1, 8: 2, 9: 2, 10: 4, 11: 8,
                  12: 2}
_MAX_JSON = 256 * 1024 * 1024
_MAX_DEPTH = 32
_MAX_NDIM = 32
_SYMBOL = re.compile(rb'\A\s*\{\s*"nodes"\s*:\s*\[')


def sniff(head: bytes, name: str) -> bool:
    if head[:16] == struct.pack("<QQ", _LIST_MAGIC, 0):
        # The first array's magic follows the count (an empty list is 0x112, 0, 0, 0).
        return head[16:32] == bytes(16) or head[24:28] in (struct.pack("<I", _V2),
                                                           struct.pack("<I", _V3))
    return _SYMBOL.match(head[:64]) is not None and (b'"arg_nodes"' in head
                                                      or b'"heads"' in head
                                                      or name.lower().endswith("symbol.json"))


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    params = source.head[:8] == struct.pack("<Q", _LIST_MAGIC)
    what = "MXNet parameters file" if params else "MXNet symbol graph"
    findings: list[Finding] = []
    try:
        if params:
            _params(source, ctx)
        else:
            findings.extend(_symbol(source, ctx))
    except FormatError as exc:
        findings.append(BAD.finding(f"malformed {what}: {exc}", member=ctx.member))
        ctx.note_incomplete(f"malformed {what}: {exc}")
    yield from findings


def _symbol(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.size > _MAX_JSON:
        raise LimitExceeded("MXNet symbol bytes", _MAX_JSON, source.size, ctx.member)
    try:
        document = json.loads(source.read_at(0, _MAX_JSON).decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise FormatError("JSON nests too deeply to parse") from None
    yield from _graph(document, "graph", ctx, 0)
    yield from walk_config(document, ctx)


def _graph(graph: Any, where: str, ctx: ScanContext, depth: int) -> Iterator[Finding]:
    if depth > _MAX_DEPTH:
        raise LimitExceeded("MXNet subgraph depth", _MAX_DEPTH, depth, ctx.member)
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    if not isinstance(nodes, list):
        raise FormatError(f"{where}: no node list")
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("op"), str):
            raise FormatError(f"{where}: node {index} has no operator name")
        op, name = node["op"], str(node.get("name", "?"))
        attrs = next((a for key in ("attrs", "attr", "param")
                      if isinstance(a := node.get(key), dict)), {})
        if op == "Custom":
            op_type = str(attrs.get("op_type", "?"))
            yield CUSTOM_OP.finding(f"{where}: node {name!r} runs the Python CustomOp "
                                    f"registered as {op_type!r}", member=ctx.member,
                                    evidence=op_type)
        elif op in POINTER_OPS:
            yield NATIVE_OP.finding(f"{where}: node {name!r} ({op}) calls through the pointer "
                                    f"in its info attribute {str(attrs.get('info', '?'))!r}",
                                    member=ctx.member, evidence=op)
        for inner in _list(node.get("subgraphs"), f"{where}: node {name!r} subgraphs"):
            yield from _graph(inner, f"{where}: node {name!r} subgraph", ctx, depth + 1)
    for head in _list(graph.get("heads"), f"{where}: heads"):
        if not (isinstance(head, list) and head and isinstance(head[0], int)
                and 0 <= head[0] < len(nodes)):
            raise FormatError(f"{where}: output {head!r} names no node")


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FormatError(f"{what} is not a list")
    return value


class _Cursor:
    def __init__(self, source: Source):
        self.source = source
        self.pos = 0

    def take(self, fmt: str, what: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        raw = self.source.read_at(self.pos, size)
        if len(raw) != size:
            raise FormatError(f"truncated at byte {self.pos} ({what})")
        self.pos += size
        return struct.unpack(fmt, raw)

    def skip(self, length: int, what: str) -> None:
        if self.pos + length > self.source.size:
            raise FormatError(f"{what}: {length} bytes at byte {self.pos} run past the "
                              f"{self.source.size}-byte file")
        self.pos += length


def _params(source: Source, ctx: ScanContext) -> None:
    cursor = _Cursor(source)
    _, _, count = cursor.take("<QQQ", "header")
    if count > source.size // 24:
        raise FormatError(f"{count} arrays cannot fit in {source.size} bytes")
    for index in range(count):
        _array(cursor, index)
    (names,) = cursor.take("<Q", "name count")
    if names not in (0, count):
        raise FormatError(f"{names} names for {count} arrays")
    for index in range(names):
        (length,) = cursor.take("<Q", f"name {index} length")
        cursor.skip(length, f"name {index}")
    if cursor.pos != source.size:
        raise FormatError(f"{source.size - cursor.pos} bytes follow the last name")


def _array(cursor: _Cursor, index: int) -> None:
    what = f"array {index}"
    magic, storage = cursor.take("<Ii", what)
    if magic not in (_V2, _V3):
        raise FormatError(f"{what}: magic {magic:#x} (legacy or unknown NDArray encoding)")
    if storage != 0:
        raise FormatError(f"{what}: sparse storage type {storage} is not checked")
    (ndim,) = cursor.take("<i", f"{what} ndim")
    if (magic == _V2 and ndim == 0) or (magic == _V3 and ndim == -1):
        return  # an empty array: nothing follows
    if not 0 <= ndim <= _MAX_NDIM:
        raise FormatError(f"{what}: {ndim} dimensions")
    dims = cursor.take(f"<{ndim}q", f"{what} shape")
    _, _, type_flag = cursor.take("<iii", f"{what} context and type")
    if type_flag not in _ELEMENT_BYTES or any(d < 0 for d in dims):
        raise FormatError(f"{what}: type {type_flag}, shape {dims}")
    size = _ELEMENT_BYTES[type_flag]
    for dim in dims:
        size *= dim
        if size > cursor.source.size:
            break
    cursor.skip(size, f"{what} data")
