"""ONNX models (`.onnx`), parsed with the bounded wire reader (onnx is never imported).

Layout. `ModelProto{7: GraphProto, 8: opset_import*, 25: FunctionProto*}`;
`GraphProto{1: NodeProto*, 5: initializer TensorProto*}`; `NodeProto{4: op_type,
5: AttributeProto*, 7: domain}`; attributes may hold subgraphs (`6: g`, `11: graphs`);
`TensorProto{1: dims*, 2: data_type, 8: name, 9: raw_data, 13: external_data, 14:
data_location}` with external data as `{key, value}` pairs (`location`, `offset`, `length`).

Attack surface: external data locations that are absolute or contain `..` read arbitrary
files into tensors (CVE-2022-25882, CVE-2024-27318) or overwrite them on save
(CVE-2025-51480); so does a plain relative location whose file in the model's folder is a
symlink out of it (`weights.bin -> /etc/passwd`, `-> /proc/self/environ`), or a folder on
the way that is one; a device or FIFO there blocks or floods the loader; custom operator
domains load native code from an op library; Python
operators (onnxruntime-extensions `PyOp`); oversized or inconsistent initializers.

What is checked: every graph, subgraph and function; external data locations (as strings,
and for a model file on disk, where they resolve: symlinks are resolved with lstat/readlink,
never opened; a target outside the model's folder or a special file is ONX006); operator
domains outside the standard ones (named); initializers whose raw data does not match their
dims and type.

Rules
| id     | name                  | severity | CWE     |
|--------|-----------------------|----------|---------|
| ONX001 | external-data-escape  | error    | CWE-22  |
| ONX002 | custom-op-domain      | warning  | CWE-829 |
| ONX003 | python-op             | error    | CWE-94  |
| ONX004 | initializer-size      | warning  | CWE-20  |
| ONX005 | bad-protobuf          | warning  | CWE-20  |
| ONX006 | external-data-link    | error    | CWE-59  |

Not checked: external data of a model inside an archive (its siblings are members, not
files), and of files scanned under another name than their folder's (hub downloads).
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import protobuf
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source

FORMAT = "onnx"

ESCAPE = rules.ONX001
CUSTOM_DOMAIN = rules.ONX002
PYTHON_OP = rules.ONX003
SIZE = rules.ONX004
BAD = rules.ONX005
LINK = rules.ONX006
RULES: tuple[Rule, ...] = (ESCAPE, CUSTOM_DOMAIN, PYTHON_OP, SIZE, BAD, LINK)

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training",
                              "ai.onnx.preview.training", "com.microsoft",
                              "com.microsoft.nchwc", "com.microsoft.experimental"})
_ELEMENT_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8,
                  14: 8, 15: 16, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1}
_DRIVE = re.compile(r"\A[A-Za-z]:|\A\\\\")
_MAX_BYTES = 2 * 1024 * 1024 * 1024
_MAX_DEPTH = 64


def sniff(head: bytes, name: str) -> bool:
    if len(head) < 3 or head[0] != 0x08:
        return False
    lowered = name.lower()
    if lowered.endswith(".onnx"):
        return True
    if lowered.endswith((".pb", ".pbtxt", ".mlmodel")):
        return False
    return 1 <= head[1] <= 12 and head[2] in (0x12, 0x1A) and _text_field(head, 3)


def _text_field(head: bytes, at: int) -> bool:
    """ONNX's field 2/3 is a producer name/version (text); Core ML's field 2 at the same
    place is a ModelDescription message (it starts with a 0x0a tag), not text."""
    length = head[at] if at < len(head) else 0
    if length & 0x80 or length == 0:
        return False
    text = head[at + 1 : at + 1 + min(length, 64)]
    return bool(text) and all(0x20 <= ch < 0x7F or ch >= 0x80 for ch in text)


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.known_size is not None and source.known_size > _MAX_BYTES:
        raise LimitExceeded("ONNX bytes", _MAX_BYTES, source.known_size, ctx.member)
    data = source.read_at(0, _MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:  # a stream of unknown length: one byte past the limit tells
        raise LimitExceeded("ONNX bytes", _MAX_BYTES, len(data), ctx.member)
    try:
        for graph in protobuf.messages(data, 7):
            yield from _graph(graph, "graph", ctx, 0)
        for function in protobuf.messages(data, 25):
            name = protobuf.text(function, 1) or "?"
            for node in protobuf.messages(function, 7):
                yield from _node(node, f"function {name}", ctx, 0)
    except FormatError as exc:
        yield BAD.finding(f"malformed protobuf: {exc}", member=ctx.member)
        ctx.note_incomplete(f"malformed protobuf: {exc}")


def _graph(graph: memoryview, where: str, ctx: ScanContext, depth: int) -> Iterator[Finding]:
    if depth > _MAX_DEPTH:
        raise LimitExceeded("ONNX subgraph depth", _MAX_DEPTH, depth, ctx.member)
    for tensor in protobuf.messages(graph, 5):
        yield from _tensor(tensor, where, ctx)
    for node in protobuf.messages(graph, 1):
        yield from _node(node, where, ctx, depth)


def _node(node: memoryview, where: str, ctx: ScanContext, depth: int) -> Iterator[Finding]:
    op = protobuf.text(node, 4) or "?"
    domain = protobuf.text(node, 7) or ""
    label = f"{where}: node {protobuf.text(node, 3) or '?'!r} ({domain or 'ai.onnx'}::{op})"
    if op.lower() in ("pyop", "pyfunc", "python") or domain.endswith(".pyop"):
        yield PYTHON_OP.finding(label, member=ctx.member, evidence=f"{domain}::{op}")
    elif domain not in STANDARD_DOMAINS:
        yield CUSTOM_DOMAIN.finding(f"{label} uses custom domain {domain!r}",
                                    member=ctx.member, evidence=f"{domain}::{op}")
    for attribute in protobuf.messages(node, 5):
        for sub in protobuf.messages(attribute, 6):
            yield from _graph(sub, f"{label} subgraph", ctx, depth + 1)
        for sub in protobuf.messages(attribute, 11):
            yield from _graph(sub, f"{label} subgraph", ctx, depth + 1)
        for tensor in protobuf.messages(attribute, 5):
            yield from _tensor(tensor, label, ctx)


def _on_disk(directory: str, location: str) -> str | None:
    """What is wrong with the file a relative location names in the model's folder: a
    symlink (of the file or of a folder on the way) resolving outside the folder, or a
    device, FIFO or socket. Resolved with lstat/readlink (os.path.realpath); the file is
    never opened. None when it is a plain file inside, or absent (nothing to read)."""
    try:
        folder = Path(directory).resolve()
        target = (Path(directory) / location).resolve()
        if not target.is_relative_to(folder):
            return f"which resolves to {str(target)!r}, outside the model's folder"
        mode = target.stat().st_mode
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop
        return None  # absent, unreadable or a name the OS refuses: the loader fails too
    for test, kind in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return f"which is {kind}"
    return None


def _tensor(tensor: memoryview, where: str, ctx: ScanContext) -> Iterator[Finding]:
    name = protobuf.text(tensor, 8) or "?"
    for entry in protobuf.messages(tensor, 13):
        if protobuf.text(entry, 1) != "location":
            continue
        location = protobuf.text(entry, 2) or ""
        normal = location.replace("\\", "/")
        if normal.startswith("/") or _DRIVE.match(location) or ".." in normal.split("/"):
            yield ESCAPE.finding(f"{where}: initializer {name!r} reads external data from "
                                 f"{location!r}", member=ctx.member, evidence=location)
        elif ctx.directory is not None and location:
            problem = _on_disk(ctx.directory, normal)
            if problem is not None:
                yield LINK.finding(f"{where}: initializer {name!r} reads external data from "
                                   f"{location!r}, {problem}", member=ctx.member,
                                   evidence=location)
    raw = next(protobuf.messages(tensor, 9), None)
    data_type = protobuf.integer(tensor, 2)
    if raw is None or data_type not in _ELEMENT_BYTES:
        return
    count = 1
    for field, wire, value in protobuf.fields(tensor):
        if field == 1 and wire == protobuf.VARINT and isinstance(value, int):
            count *= value
        elif field == 1 and wire == protobuf.LENGTH and isinstance(value, memoryview):
            pos = 0
            while pos < len(value):
                dim, pos = protobuf.read_varint(value, pos)
                count *= dim
    expected = count * _ELEMENT_BYTES[data_type]
    if len(raw) != expected:
        yield SIZE.finding(f"{where}: initializer {name!r} has {len(raw)} raw bytes, its dims "
                           f"and type need {expected}", member=ctx.member)
