"""ExecuTorch programs (`.pte`), read with the bounded flatbuffer reader.

Layout (executorch/schema/program.fbs, file identifier `ET12` at byte 4). An extended header
follows the identifier at byte 8: `eh00`, uint32 length, uint64 program size, uint64 segment
base offset, uint64 segment data size. `Program{1: execution_plan [ExecutionPlan], 2:
constant_buffer, 3: backend_delegate_data [inline blob], 4: segments [DataSegment{offset,
size}], 5: constant_segment}`; `ExecutionPlan{0: name, 5: chains, 6: operators
[Operator{name, overload}], 7: delegates [BackendDelegate{0: id, 1: processed{location,
index}, 2: compile_specs}]}`; a chain's instructions are a union (1 = KernelCall{op_index},
2 = DelegateCall{delegate_index}). Segment offsets count from the segment base offset.

Attack surface. The runtime runs no code from the file: it calls kernels by operator name
(ATen/portable kernels, or custom kernels a linked library registers) and hands each delegate
blob to the backend registered under the delegate id. A custom operator or an unknown backend
id is code outside the file that the program steers; segment offsets and indexes are trusted
by the runtime when it maps data (out-of-bounds reads).

What is checked: the extended header against the file; every segment; every plan's
operators (names outside the ATen/ExecuTorch namespaces), delegates (backend ids outside
ExecuTorch's own backends, blob references), kernel and delegate call indexes. Constant data
and delegate blobs are never read.

Rules
| id     | name              | severity | CWE     |
|--------|-------------------|----------|---------|
| PTE001 | unknown-delegate  | warning  | CWE-829 |
| PTE002 | custom-operator   | warning  | CWE-829 |
| PTE003 | segment-bounds    | warning  | CWE-125 |
| PTE004 | bad-flatbuffer    | warning  | CWE-20  |
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import flatbuf
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source

FORMAT = "executorch"

DELEGATE = rules.PTE001
CUSTOM_OP = rules.PTE002
BOUNDS = rules.PTE003
BAD = rules.PTE004
RULES: tuple[Rule, ...] = (DELEGATE, CUSTOM_OP, BOUNDS, BAD)

# Operator namespaces of ATen and of ExecuTorch's own kernel libraries.
STANDARD_NAMESPACES = frozenset({"aten", "dim_order_ops", "quantized_decomposed",
                                 "executorch_prim", "executorch_utils", "et_copy", "torchao",
                                 "quantized", "llama", "prim"})
# BackendDetails subclasses shipped in ExecuTorch's backends/ tree (1.5).
STANDARD_BACKENDS = frozenset({"XnnpackBackend", "CoreMLBackend", "CoreAIBackend",
                               "MPSBackend", "VulkanBackend", "QnnBackend", "EthosUBackend",
                               "TOSABackend", "VgfBackend", "NeutronBackend", "MLXBackend",
                               "EnnBackend", "NeuropilotBackend", "OpenvinoBackend",
                               "CudaBackend", "MetalBackend", "CadenceExecutorchBackend",
                               "TensorRTBackend", "NativeBackend"})
_IDENT = re.compile(rb"ET\d\d")
_MAX_INSTRUCTIONS = 10_000_000


def sniff(head: bytes, name: str) -> bool:
    return len(head) >= 8 and _IDENT.fullmatch(head[4:8]) is not None


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    findings: list[Finding] = []
    try:
        _scan(source, ctx, findings)
    except FormatError as exc:
        findings.append(BAD.finding(f"malformed ExecuTorch program: {exc}", member=ctx.member))
        ctx.note_incomplete(f"malformed ExecuTorch program: {exc}")
    yield from findings


def _header(source: Source) -> tuple[int, int | None]:
    """(program size, segment base offset or None without an extended header)."""
    raw = source.read_at(8, 32)
    if raw[:4] != b"eh00":
        return source.size, None
    if len(raw) < 24:
        raise FormatError("truncated extended header")
    length, program_size, base = struct.unpack_from("<IQQ", raw, 4)
    if length < 24:
        raise FormatError(f"extended header of {length} bytes")
    if program_size > source.size:
        raise FormatError(f"the header declares a {program_size}-byte program in a "
                          f"{source.size}-byte file (truncated)")
    return program_size, base


def _scan(source: Source, ctx: ScanContext, findings: list[Finding]) -> None:
    program_size, base = _header(source)
    program = flatbuf.Buffer(source, 0, program_size).root()
    segments = 0
    for index, segment in enumerate(program.tables(4, "segment")):
        segments += 1
        offset, size = segment.u64(0), segment.u64(1)
        if base is None:
            findings.append(BOUNDS.finding(f"segment {index} without an extended header",
                                           member=ctx.member))
        elif base + offset + size > source.size:
            findings.append(BOUNDS.finding(
                f"segment {index} lies at bytes {base + offset}..{base + offset + size} of a "
                f"{source.size}-byte file", member=ctx.member, evidence=f"segment {index}"))
    inline = program.vector(3, 4, "inline delegate data")[1]
    constant = program.table(5, "constant segment")
    if constant is not None and constant.u32(0) >= max(segments, 1):
        findings.append(BOUNDS.finding(f"constant data names segment {constant.u32(0)} of "
                                       f"{segments}", member=ctx.member))
    for plan in program.tables(1, "execution plan"):
        _plan(plan, segments, inline, ctx, findings)


def _plan(plan: flatbuf.Table, segments: int, inline: int, ctx: ScanContext,
          findings: list[Finding]) -> None:
    name = plan.string(0, "plan name") or "?"
    operators = [op.string(0, "operator name") or ""
                 for op in plan.tables(6, f"plan {name!r} operator")]
    customs = Counter(op for op in operators if op.partition("::")[0] not in
                      STANDARD_NAMESPACES)
    for op, count in sorted(customs.items()):
        findings.append(CUSTOM_OP.finding(
            f"plan {name!r}: operator {op!r} ({count} entr{'ies' if count > 1 else 'y'}) needs "
            f"a kernel from a custom library", member=ctx.member, evidence=op))
    delegates = 0
    for index, delegate in enumerate(plan.tables(7, f"plan {name!r} delegate")):
        delegates += 1
        backend = delegate.string(0, "delegate id") or ""
        if backend not in STANDARD_BACKENDS:
            findings.append(DELEGATE.finding(
                f"plan {name!r}: delegate {index} is processed by backend {backend!r}",
                member=ctx.member, evidence=backend))
        processed = delegate.table(1, "delegate data reference")
        if processed is not None:
            location, ref = processed.u8(0), processed.u32(1)
            limit = segments if location == 1 else inline
            if ref >= limit:
                where = "segment" if location == 1 else "inline blob"
                findings.append(BOUNDS.finding(
                    f"plan {name!r}: delegate {index} ({backend}) names {where} {ref} of "
                    f"{limit}", member=ctx.member, evidence=backend))
    count = 0
    for chain in plan.tables(5, f"plan {name!r} chain"):
        for instruction in chain.tables(2, "instruction"):
            count += 1
            if count > _MAX_INSTRUCTIONS:
                raise LimitExceeded("ExecuTorch instructions", _MAX_INSTRUCTIONS, count,
                                    ctx.member)
            kind = instruction.u8(0)
            if kind not in (1, 2):
                continue
            call = instruction.table(1, "instruction arguments")
            target = call.i32(0) if call is not None else 0
            limit = len(operators) if kind == 1 else delegates
            if not 0 <= target < limit:
                what = "operator" if kind == 1 else "delegate"
                findings.append(BOUNDS.finding(
                    f"plan {name!r}: instruction {count - 1} calls {what} {target} of {limit}",
                    member=ctx.member))
