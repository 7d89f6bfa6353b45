"""TensorFlow MetaGraphDef files (`.meta`, written beside TF1 checkpoints by `tf.train.Saver`
and read by `tf.compat.v1.train.import_meta_graph`), parsed with the bounded wire reader.

Layout (tensorflow/core/protobuf/meta_graph.proto). `MetaGraphDef{1: meta_info_def, 2:
graph_def GraphDef, 3: saver_def, 4: collection_def map, 5: signature_def map, 6:
asset_file_def*, 7: object_graph_def}`; the GraphDef is the one of `tf_savedmodel`
(`{1: NodeDef*, 2: FunctionDefLibrary}`). TensorFlow is never imported.

Attack surface: the same as a SavedModel's graph (attacks.md row 40): importing the graph and
running it executes ops that call Python (`PyFunc`, `EagerPyFunc`), read or write files
(`ReadFile`, `WriteFile`, `MatchingFiles`, a `PrintV2` to a `file://` stream) or open file
readers. `SaveV2`/`RestoreV2` are how every checkpoint saves: not reported.

What is checked: every node of the graph and of its function library, with the op lists and
rules of `workers/tf_savedmodel.py`.

Rules
| id     | name            | severity | CWE     |
|--------|-----------------|----------|---------|
| TFG001 | python-op       | error    | CWE-94  |
| TFG002 | file-op         | error    | CWE-73  |
| TFG003 | file-reader-op  | warning  | CWE-73  |
| TFG004 | bad-protobuf    | warning  | CWE-20  |
"""

from __future__ import annotations

from collections.abc import Iterator

from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import protobuf, tf_savedmodel
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source

FORMAT = "tf_metagraph"
RULES: tuple[Rule, ...] = tf_savedmodel.RULES
BAD = tf_savedmodel.BAD
_MAX_BYTES = 512 * 1024 * 1024


def sniff(head: bytes, name: str) -> bool:
    """A `.meta` file that starts with MetaGraphDef field 1 or 2 (both messages)."""
    return name.lower().endswith(".meta") and len(head) >= 2 and head[0] in (0x0A, 0x12)


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.size > _MAX_BYTES:
        raise LimitExceeded("protobuf bytes", _MAX_BYTES, source.size, ctx.member)
    data = source.read_at(0, _MAX_BYTES)
    try:
        graphs = list(protobuf.messages(data, 2))
        if not graphs:
            raise FormatError("no graph_def in the MetaGraphDef")
        yield from tf_savedmodel.graph_findings(graphs, ctx)
    except FormatError as exc:
        yield BAD.finding(f"malformed MetaGraphDef protobuf: {exc}", member=ctx.member)
        ctx.note_incomplete(f"malformed MetaGraphDef protobuf: {exc}")
