"""TensorFlow SavedModel (`saved_model.pb`), frozen GraphDefs (`.pb`) and text graphs.

Layout. `SavedModel{1: schema version, 2: MetaGraphDef*}`; `MetaGraphDef{2: GraphDef}`;
`GraphDef{1: NodeDef*, 2: FunctionDefLibrary}`; `NodeDef{1: name, 2: op, 5: attr}`;
`FunctionDefLibrary{1: FunctionDef*}`; `FunctionDef{3: NodeDef*}`. A frozen graph is a bare
GraphDef. Parsed with the bounded wire reader of `workers/protobuf.py`; TensorFlow is never
imported.

Attack surface (attacks.md row 40): ops that run Python (`PyFunc`, `EagerPyFunc`,
`PyFuncStateless`), touch files (`ReadFile`, `WriteFile`, `MatchingFiles`,
`ImmutableConst`, file readers), or print to a file (`PrintV2` with a `file://`
output_stream) execute when the graph runs. `SaveV2`/`RestoreV2`/`MergeV2Checkpoints` are
how every SavedModel saves its variables: not reported (ModelAudit's false positive).

What is checked: every node of every graph and of every library function.

Rules
| id     | name            | severity | CWE     |
|--------|-----------------|----------|---------|
| TFG001 | python-op       | error    | CWE-94  |
| TFG002 | file-op         | error    | CWE-73  |
| TFG003 | file-reader-op  | warning  | CWE-73  |
| TFG004 | bad-protobuf    | warning  | CWE-20  |
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import protobuf
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source

FORMAT = "tf_savedmodel"

PYTHON_OP = rules.TFG001
FILE_OP = rules.TFG002
READER_OP = rules.TFG003
BAD = rules.TFG004
RULES: tuple[Rule, ...] = (PYTHON_OP, FILE_OP, READER_OP, BAD)

PYTHON_OPS = frozenset({"PyFunc", "EagerPyFunc", "PyFuncStateless"})
FILE_OPS = frozenset({"ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst",
                      "DebugIdentityV2", "DebugIdentityV3", "Print", "PrintV2"})
READER_OPS = frozenset({"WholeFileReader", "WholeFileReaderV2", "TextLineReader",
                        "TextLineReaderV2", "FixedLengthRecordReader",
                        "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2",
                        "LMDBReader", "IdentityReader"})
_MAX_BYTES = 512 * 1024 * 1024
_MAX_NODES = 5_000_000
_TEXT_OP = re.compile(r'\bop:\s*"([A-Za-z0-9_]+)"')


def sniff(head: bytes, name: str) -> bool:
    lowered = name.lower()
    if lowered.endswith(".pbtxt"):
        return b"node" in head or b"op:" in head
    return lowered.endswith(".pb") and len(head) >= 2 and head[0] in (0x08, 0x0A, 0x12)


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.known_size is not None and source.known_size > _MAX_BYTES:
        raise LimitExceeded("protobuf bytes", _MAX_BYTES, source.known_size, ctx.member)
    data = source.read_at(0, _MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:  # a stream of unknown length: one byte past the limit tells
        raise LimitExceeded("protobuf bytes", _MAX_BYTES, len(data), ctx.member)
    if source.name.lower().endswith(".pbtxt"):
        for op in _TEXT_OP.findall(data.decode("utf-8", "replace")):
            yield from _op(op, "", ctx)
        return
    graphs: list[memoryview] = []
    try:
        first = next(protobuf.fields(data), None)
        if first is not None and first[0] == 1 and first[1] == protobuf.LENGTH:
            graphs.append(memoryview(data))  # a bare GraphDef (frozen graph)
        else:
            for meta in protobuf.messages(data, 2):
                graphs.extend(protobuf.messages(meta, 2))
        nodes = 0
        for graph in graphs:
            for node, where in _nodes(graph):
                nodes += 1
                if nodes > _MAX_NODES:
                    raise LimitExceeded("graph nodes", _MAX_NODES, nodes, ctx.member)
                op = protobuf.text(node, 2) or ""
                yield from _op(op, f"{where}{protobuf.text(node, 1) or '?'}", ctx, node)
    except FormatError as exc:
        yield BAD.finding(f"malformed protobuf: {exc}", member=ctx.member)
        ctx.note_incomplete(f"malformed protobuf: {exc}")


def _nodes(graph: memoryview) -> Iterator[tuple[memoryview, str]]:
    for node in protobuf.messages(graph, 1):
        yield node, ""
    for library in protobuf.messages(graph, 2):
        for function in protobuf.messages(library, 1):
            signature = next(protobuf.messages(function, 1), None)
            name = protobuf.text(signature, 1) if signature is not None else "?"
            for node in protobuf.messages(function, 3):
                yield node, f"function {name}: "


def _op(op: str, where: str, ctx: ScanContext,
        node: memoryview | None = None) -> Iterator[Finding]:
    label = f"node {where!r} runs {op}" if where else f"graph runs {op}"
    if op in PYTHON_OPS:
        yield PYTHON_OP.finding(label, member=ctx.member, evidence=op)
    elif op in FILE_OPS:
        if op in ("Print", "PrintV2", "DebugIdentityV2", "DebugIdentityV3") and (
            node is None or b"file://" not in bytes(node)
        ):
            return  # printing to stdout/stderr is harmless
        yield FILE_OP.finding(label, member=ctx.member, evidence=op)
    elif op in READER_OPS:
        yield READER_OP.finding(label, member=ctx.member, evidence=op)
