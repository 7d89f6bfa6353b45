"""TensorFlow Lite / LiteRT models (`.tflite`), read with the bounded flatbuffer reader.

Layout (tensorflow/lite/schema/schema.fbs, file identifier `TFL3` at byte 4).
`Model{0: version, 1: operator_codes [OperatorCode], 2: subgraphs [SubGraph], 4: buffers
[Buffer], 6: metadata [Metadata], 8: external_buffer_groups [ExternalBufferGroup], 9:
external_buffers}`; `OperatorCode{0: deprecated_builtin_code, 1: custom_code, 3:
builtin_code}` (the code is the larger of the two; 32 = CUSTOM); `SubGraph{0: tensors, 3:
operators}`; `Operator{0: opcode_index, 5: custom_options [ubyte], 9/10: large custom
options offset/size}`; `Tensor{2: buffer index}`; `Buffer{0: data, 1: offset, 2: size}`
(models over 2 GiB keep buffer data after the flatbuffer, at an offset from the file start;
offsets 0 and 1 mean "none"); `ExternalBufferGroup{0: name}` names a weights file beside the
model.

Attack surface. The interpreter runs no code from the file, but a CUSTOM operator makes it
call a native kernel registered by whoever runs the model (code outside the file, steered by
the custom options bytes); `Flex` operators run full TensorFlow kernels, including ones that
read or write files (`FlexReadFile`, `FlexWriteFile`) or call Python (`FlexPyFunc`); an
external buffer group is a path the loader opens; buffer and custom-option offsets are
trusted by the runtime (out-of-bounds reads, CVE-2020-15211/15212 and kin).

What is checked: every operator code (custom names; Flex ops mapped to the TensorFlow op
lists of `tf_savedmodel`, by their code and by the NodeDef in their custom options, which is
what the delegate runs), every operator's opcode index and custom-option span, every
tensor's buffer index, every buffer's offset/size, metadata buffer indexes, external buffer
group paths. Weight bytes are never read.

Rules
| id     | name                  | severity | CWE     |
|--------|-----------------------|----------|---------|
| TFL001 | custom-op             | warning  | CWE-829 |
| TFL002 | flex-dangerous-op     | error    | CWE-94  |
| TFL003 | buffer-bounds         | warning  | CWE-125 |
| TFL004 | external-buffer-escape| error    | CWE-22  |
| TFL005 | bad-flatbuffer        | warning  | CWE-20  |
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import flatbuf, tf_savedmodel
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source, unsafe_path

FORMAT = "tflite"

CUSTOM_OP = rules.TFL001
FLEX_OP = rules.TFL002
BOUNDS = rules.TFL003
ESCAPE = rules.TFL004
BAD = rules.TFL005
RULES: tuple[Rule, ...] = (CUSTOM_OP, FLEX_OP, BOUNDS, ESCAPE, BAD)

CUSTOM = 32
# Custom operators the TFLite runtime registers itself (kernels/register.cc): no code
# beyond the interpreter's own.
RUNTIME_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "Mfcc", "AudioSpectrogram"})
_DANGEROUS_OP = re.compile(
    rb"(?<![A-Za-z0-9_])("
    + b"|".join(re.escape(op.encode()) for op in sorted(
        tf_savedmodel.PYTHON_OPS | tf_savedmodel.FILE_OPS | tf_savedmodel.READER_OPS,
        key=len, reverse=True))
    + rb")(?![A-Za-z0-9_])")
_MAX_OPERATORS = 10_000_000
_MAX_OPTIONS = 16 * 1024 * 1024
_MAX_OPTIONS_TOTAL = 64 * 1024 * 1024  # Flex options bytes searched per model


def sniff(head: bytes, name: str) -> bool:
    return len(head) >= 8 and head[4:8] == b"TFL3"


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    findings: list[Finding] = []
    try:
        _scan(flatbuf.Buffer(source), source.size, ctx, findings)
    except FormatError as exc:
        findings.append(BAD.finding(f"malformed TFLite flatbuffer: {exc}", member=ctx.member))
        ctx.note_incomplete(f"malformed TFLite flatbuffer: {exc}")
    yield from findings


def _scan(buf: flatbuf.Buffer, file_size: int, ctx: ScanContext,
          findings: list[Finding]) -> None:
    model = buf.root()
    codes: list[str | None] = []  # custom name per opcode index, None for builtins
    for code in model.tables(1, "operator code"):
        builtin = max(code.i8(0), code.i32(3))
        codes.append((code.string(1, "custom code") or "") if builtin == CUSTOM else None)
    buffer_count = 0
    for index, buffer in enumerate(model.tables(4, "buffer")):
        buffer_count += 1
        buffer.vector(0, 1, f"buffer {index} data")  # inline data must fit the flatbuffer
        offset, size = buffer.u64(1), buffer.u64(2)
        if offset > 1 and offset + size > file_size:
            findings.append(BOUNDS.finding(
                f"buffer {index} points at bytes {offset}..{offset + size} of a "
                f"{file_size}-byte file", member=ctx.member, evidence=f"buffer {index}"))
    for metadata in model.tables(6, "metadata"):
        if metadata.u32(1) >= buffer_count:
            name = metadata.string(0, "metadata name") or "?"
            findings.append(BOUNDS.finding(
                f"metadata {name!r} names buffer {metadata.u32(1)} of {buffer_count}",
                member=ctx.member, evidence=name))
    for group in model.tables(8, "external buffer group"):
        path = group.string(0, "external buffer group name") or ""
        why = unsafe_path(path)
        if why is not None:
            findings.append(ESCAPE.finding(
                f"external weights are read from {path!r} ({why})", member=ctx.member,
                evidence=path))
    uses: Counter[str] = Counter()
    operators = options_read = 0
    for number, subgraph in enumerate(model.tables(2, "subgraph")):
        for tensor in subgraph.tables(0, f"subgraph {number} tensor"):
            if tensor.u32(2) >= max(buffer_count, 1):
                name = tensor.string(3, "tensor name") or "?"
                findings.append(BOUNDS.finding(
                    f"subgraph {number}: tensor {name!r} names buffer {tensor.u32(2)} of "
                    f"{buffer_count}", member=ctx.member, evidence=name))
        for operator in subgraph.tables(3, f"subgraph {number} operator"):
            operators += 1
            if operators > _MAX_OPERATORS:
                raise LimitExceeded("TFLite operators", _MAX_OPERATORS, operators, ctx.member)
            index = operator.u32(0)
            if index >= len(codes):
                findings.append(BOUNDS.finding(
                    f"subgraph {number}: an operator names operator code {index} of "
                    f"{len(codes)}", member=ctx.member))
                continue
            custom = codes[index]
            if custom is None:
                continue
            flex = custom.startswith("Flex")
            options = _custom_options(operator, file_size, number, ctx, findings, read=flex)
            # Operators can share (or overlap) one options vector: bound the bytes searched
            # over the whole model, not per operator (1 MB of refs x 1 MB of options).
            options_read += len(options)
            if options_read > _MAX_OPTIONS_TOTAL:
                raise LimitExceeded("TFLite Flex custom options bytes", _MAX_OPTIONS_TOTAL,
                                    options_read, ctx.member)
            uses[custom] += 1
            findings.extend(_flex(custom, options, number, ctx))
    for custom, count in sorted(uses.items()):
        if custom.startswith("Flex") or custom in RUNTIME_CUSTOM_OPS:
            continue
        findings.append(CUSTOM_OP.finding(
            f"custom operator {custom!r} ({count} use{'s' if count > 1 else ''}) runs a "
            f"native kernel that the application must register", member=ctx.member,
            evidence=custom))


def _custom_options(operator: flatbuf.Table, file_size: int, number: int, ctx: ScanContext,
                    findings: list[Finding], read: bool = True) -> bytes:
    """The custom options bytes (inline, or after the flatbuffer for >2 GiB models); their
    bounds are always checked, the bytes only read when `read`."""
    start, count = operator.vector(5, 1, "custom options")
    if count:
        if not read:
            return b""
        return operator.buf.read(start, min(count, _MAX_OPTIONS), "custom options")
    offset, size = operator.u64(9), operator.u64(10)
    if offset > 1:
        if offset + size > file_size:
            findings.append(BOUNDS.finding(
                f"subgraph {number}: custom options at bytes {offset}..{offset + size} of a "
                f"{file_size}-byte file", member=ctx.member))
            return b""
        return operator.buf.source.read_at(offset, min(size, _MAX_OPTIONS)) if read else b""
    return b""


def _flex(custom: str, options: bytes, number: int, ctx: ScanContext) -> Iterator[Finding]:
    """A Flex op's custom options are a flexbuffer of the op name and the serialised NodeDef
    the delegate builds its kernel from: the op it runs is the NodeDef's, whatever the
    custom code says ("FlexAddV2" can carry a WriteFile NodeDef). Every TensorFlow op name
    of the lists that appears as a word in the options counts, besides the name's."""
    if not custom.startswith("Flex"):
        return
    ops = dict.fromkeys([custom[4:], *(m.decode() for m in _DANGEROUS_OP.findall(options))])
    for op in ops:
        yield from _flex_op(custom, op, options, number, ctx)


def _flex_op(custom: str, op: str, options: bytes, number: int,
             ctx: ScanContext) -> Iterator[Finding]:
    label = f"subgraph {number}: Flex operator {custom!r} runs TensorFlow's {op}"
    if op in tf_savedmodel.PYTHON_OPS:
        yield FLEX_OP.finding(f"{label} (Python)", member=ctx.member, evidence=custom)
    elif op in tf_savedmodel.FILE_OPS:
        if op in ("Print", "PrintV2", "DebugIdentityV2", "DebugIdentityV3") and (
            b"file://" not in options
        ):
            return
        yield FLEX_OP.finding(f"{label} (files)", member=ctx.member, evidence=custom)
    elif op in tf_savedmodel.READER_OPS:
        yield FLEX_OP.finding(f"{label} (reads files)", member=ctx.member, evidence=custom,
                              severity=tf_savedmodel.READER_OP.severity)
