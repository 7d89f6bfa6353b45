"""PaddlePaddle inference models: the program (`.pdmodel` ProgramDesc protobuf, or the PIR
JSON program `.json` of Paddle 3) and the combined parameters (`.pdiparams`). Paddle is never
imported.

Layout (paddle/fluid/framework/framework.proto). `ProgramDesc{1: blocks BlockDesc*, 4:
version}`; `BlockDesc{1: idx, 2: parent_idx, 3: vars, 4: ops OpDesc*}`; `OpDesc{3: type, 4:
attrs Attr*}`; `Attr{1: name, 2: type, 5: s (string)...}`; sub-blocks of control flow are
blocks of the same program. PIR JSON: `{"base_code": {"magic": "pir"}, "program": {"regions":
[{"blocks": [{"ops": [{"#": "<dialect>.<op>", "A": [{"N": name, "AT": {"D": value}}],
"regions": [...]}]}]}]}}`. `.pdiparams` (save_combine): per tensor uint32 version, uint64 LoD
level (+ each level's uint64 size and bytes), uint32 version, int32 TensorDesc size,
`TensorDesc{1: data_type, 2: dims}`, then the tensor data.

Attack surface. Running the program executes its operators: `py_func` and `pylayer` call
Python functions; `save`/`save_combine` write and `load`/`load_combine`/`read_file` read the
file named in their `file_path`/`filename` attribute (inference programs never hold them).
The parameters file holds only numbers, but its sizes are trusted by the loader.

What is checked: every op of every block (both program encodings) against those operator
lists, with the path attribute in the finding; the parameters file's structure, shapes and
sizes against the file (the tensor bytes are skipped, never read). Custom operators
(`paddle.utils.cpp_extension`) are not told apart from built-in ones: that needs Paddle's
operator registry.

Rules
| id     | name          | severity | CWE     |
|--------|---------------|----------|---------|
| PDL001 | python-op     | error    | CWE-94  |
| PDL002 | file-op       | error    | CWE-73  |
| PDL003 | bad-structure | warning  | CWE-20  |
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
from batchscan.workers import protobuf
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source
from batchscan.workers.configs import CONFIG_RULES, walk_config

FORMAT = "paddle"

PYTHON_OP = rules.PDL001
FILE_OP = rules.PDL002
BAD = rules.PDL003
RULES: tuple[Rule, ...] = (PYTHON_OP, FILE_OP, BAD, *CONFIG_RULES)

PYTHON_OPS = frozenset({"py_func", "pylayer"})
FILE_OPS = frozenset({"save", "save_combine", "load", "load_combine", "read_file"})
_PATH_ATTRS = ("file_path", "filename")
# VarType.Type -> bytes per element.
_ELEMENT_BYTES = {0: 1, 1: 2, 2: 4, 3: 8, 4: 2, 5: 4, 6: 8, 19: 8, 20: 1, 21: 1, 22: 2,
                  23: 8, 24: 16, 32: 1, 33: 1, 36: 2, 37: 4, 38: 8}
_MAX_BYTES = 512 * 1024 * 1024
_MAX_OPS = 5_000_000
# The root block: idx 0, parent_idx -1 (a ten-byte varint).
_ROOT_BLOCK = b"\x08\x00\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
_PIR = re.compile(rb'\A\s*\{\s*"base_code"\s*:\s*\{\s*"magic"\s*:\s*"pir"')


def sniff(head: bytes, name: str) -> bool:
    if name.lower().endswith(".pdmodel") and head[:1] == b"\x0a":
        return True
    return _pdmodel(head) or _pdiparams(head) or _PIR.match(head[:128]) is not None


def _pdmodel(head: bytes) -> bool:
    if head[:1] != b"\x0a":
        return False
    try:
        _, at = protobuf.read_varint(memoryview(head), 1)
    except FormatError:
        return False
    return head[at : at + len(_ROOT_BLOCK)] == _ROOT_BLOCK


def _pdiparams(head: bytes) -> bool:
    """A first tensor header: zero versions, no LoD, then a TensorDesc that parses exactly
    (tensor storages inside other containers that start with zeros do not)."""
    if len(head) < 22 or head[:16] != bytes(16):
        return False  # versions 0 and no LoD: inference parameters carry none
    (desc,) = struct.unpack_from("<i", head, 16)
    if not 2 <= desc <= 4096 or len(head) < 20 + desc or head[20] != 0x08:
        return False
    try:
        fields = list(protobuf.fields(head[20 : 20 + desc]))
    except FormatError:
        return False
    return (fields[0][2] in _ELEMENT_BYTES
            and all(field == 2 and wire in (protobuf.VARINT, protobuf.LENGTH)
                    for field, wire, _ in fields[1:]))


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    head = source.head
    what = ("PaddlePaddle parameters file" if _pdiparams(head) and not _pdmodel(head)
            else "PaddlePaddle program")
    findings: list[Finding] = []
    try:
        if what.endswith("parameters file"):
            _params(source, ctx)
        elif _PIR.match(head[:128]):
            findings.extend(_pir(source, ctx))
        else:
            findings.extend(_program(source, ctx))
    except FormatError as exc:
        findings.append(BAD.finding(f"malformed {what}: {exc}", member=ctx.member))
        ctx.note_incomplete(f"malformed {what}: {exc}")
    yield from findings


def _read(source: Source, ctx: ScanContext) -> bytes:
    if source.size > _MAX_BYTES:
        raise LimitExceeded("PaddlePaddle program bytes", _MAX_BYTES, source.size, ctx.member)
    return source.read_at(0, _MAX_BYTES)


def _op(op_type: str, attrs: dict[str, str], where: str, ctx: ScanContext) -> Iterator[Finding]:
    if op_type in PYTHON_OPS:
        yield PYTHON_OP.finding(f"{where}: op {op_type!r} calls Python", member=ctx.member,
                                evidence=op_type)
    elif op_type in FILE_OPS:
        path = next((attrs[name] for name in _PATH_ATTRS if name in attrs), "")
        yield FILE_OP.finding(f"{where}: op {op_type!r} touches the file {path!r}",
                              member=ctx.member, evidence=path or op_type)


def _program(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    data = _read(source, ctx)
    ops = 0
    for number, block in enumerate(protobuf.messages(data, 1)):
        for op in protobuf.messages(block, 4):
            ops += 1
            if ops > _MAX_OPS:
                raise LimitExceeded("PaddlePaddle ops", _MAX_OPS, ops, ctx.member)
            op_type = protobuf.text(op, 3) or ""
            attrs: dict[str, str] = {}
            if op_type in FILE_OPS:
                for attr in protobuf.messages(op, 4):
                    attrs[protobuf.text(attr, 1) or ""] = protobuf.text(attr, 5) or ""
            yield from _op(op_type, attrs, f"block {number}", ctx)


def _pir(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    try:
        document = json.loads(_read(source, ctx).decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise FormatError("JSON nests too deeply to parse") from None
    program = document.get("program") if isinstance(document, dict) else None
    if not isinstance(program, dict) or not isinstance(program.get("regions"), list):
        raise FormatError("no program regions")
    # A JSON reader that takes the file as configuration (Hydra's `instantiate`) walks keys
    # PIR does not define: they get the config checks (the program itself is walked below).
    yield from walk_config({k: v for k, v in document.items() if k != "program"}, ctx)
    stack: list[Any] = [program]
    ops = 0
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for op in _list(node.get("ops"), "ops"):
            ops += 1
            if ops > _MAX_OPS:
                raise LimitExceeded("PaddlePaddle ops", _MAX_OPS, ops, ctx.member)
            if not isinstance(op, dict) or not isinstance(op.get("#"), str):
                raise FormatError(f"op {ops} has no name")
            op_type = op["#"].rpartition(".")[2]
            attrs: dict[str, str] = {}
            for attr in _list(op.get("A"), f"op {op_type!r} attributes"):
                value = attr.get("AT") if isinstance(attr, dict) else None
                if isinstance(value, dict) and isinstance(attr.get("N"), str):
                    attrs[attr["N"]] = str(value.get("D", ""))
            yield from _op(op_type, attrs, "program", ctx)
            stack.append(op.get("regions"))
        stack.extend((node.get("regions"), node.get("blocks")))


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FormatError(f"{what} is not a list")
    return value


def _params(source: Source, ctx: ScanContext) -> None:
    pos = 0
    index = 0

    def take(fmt: str, what: str) -> tuple[int, ...]:
        nonlocal pos
        size = struct.calcsize(fmt)
        raw = source.read_at(pos, size)
        if len(raw) != size:
            raise FormatError(f"tensor {index}: truncated at byte {pos} ({what})")
        pos += size
        return struct.unpack(fmt, raw)

    def skip(length: int, what: str) -> None:
        nonlocal pos
        if length > source.size - pos:
            raise FormatError(f"tensor {index}: {what} of {length} bytes at byte {pos} runs "
                              f"past the {source.size}-byte file")
        pos += length

    while pos < source.size:
        version, levels = take("<IQ", "header")
        if version != 0 or levels > 64:
            raise FormatError(f"tensor {index}: version {version}, LoD level {levels}")
        for _ in range(levels):
            (size,) = take("<Q", "LoD level size")
            skip(size, "LoD level")
        version, desc_size = take("<Ii", "tensor header")
        if version != 0 or not 0 < desc_size <= 1 << 20:
            raise FormatError(f"tensor {index}: version {version}, description of {desc_size} "
                              f"bytes")
        desc = source.read_at(pos, desc_size)
        skip(desc_size, "description")
        dtype, dims = _desc(desc, index)
        size = _ELEMENT_BYTES[dtype]
        for dim in dims:
            size *= dim
            if size > source.size:
                break
        skip(size, "data")
        index += 1
        if index > ctx.limits.max_members * 100:
            raise LimitExceeded("PaddlePaddle tensors", ctx.limits.max_members * 100, index,
                                ctx.member)


def _desc(desc: bytes, index: int) -> tuple[int, list[int]]:
    dtype: int | None = None
    dims: list[int] = []
    for field, _wire, value in protobuf.fields(desc):
        if field == 1 and isinstance(value, int):
            dtype = value
        elif field == 2 and isinstance(value, int):
            dims.append(value)
        elif field == 2 and isinstance(value, memoryview):
            at = 0
            while at < len(value):
                dim, at = protobuf.read_varint(value, at)
                dims.append(dim)
    if dtype not in _ELEMENT_BYTES:
        raise FormatError(f"tensor {index}: data type {dtype} is not a dense numeric type")
    if any(dim >= 1 << 62 for dim in dims):  # a negative int64 as a varint
        raise FormatError(f"tensor {index}: negative dimension in {dims}")
    return dtype, dims
