"""The pickle walker's opcode table: one handler per pickletools opcode, and inline blocks
that agree with the handlers they shortcut."""

from __future__ import annotations

import collections
import datetime
import io
import pickle
import pickletools

import pytest

from batchscan.workers.base import ScanContext
from batchscan.workers.pickle import (
    _DISPATCH,
    Blob,
    Call,
    ModuleRef,
    Opaque,
    Ref,
    _Damage,
    _Machine,
    _Reader,
    _Walk,
    _Walker,
)
from fixtures.generate import benign_pickles, malicious_pickles, suspicious_pickles

OPCODES = {ord(op.code): op for op in pickletools.opcodes}


def test_every_opcode_has_the_handler_named_after_it() -> None:
    for code, op in OPCODES.items():
        handler = _DISPATCH[code]
        assert handler is getattr(_Machine, f"op_{op.name.lower()}"), op.name
        assert (handler.__doc__ or "").startswith(f"{op.name}:"), op.name


def test_every_other_byte_is_an_invalid_opcode() -> None:
    assert len(_DISPATCH) == 256
    for code in set(range(256)) - OPCODES.keys():
        assert _DISPATCH[code] is _Machine.op_invalid, hex(code)
    handlers = {name for name in vars(_Machine) if name.startswith("op_")}
    assert handlers == {f"op_{op.name.lower()}" for op in OPCODES.values()} | {"op_invalid"}


def _shape(value: object, depth: int = 0) -> object:
    """A comparable picture of an emulated value, down to nested containers and calls."""
    if depth > 8:
        return "..."
    if isinstance(value, (list, tuple)):  # PList and PDict are lists
        return (type(value).__name__, [_shape(v, depth + 1) for v in value])
    if isinstance(value, Ref):
        return ("ref", value.module, value.name, value.offset)
    if isinstance(value, Call):
        return ("call", _shape(value.func, depth + 1), _shape(value.args, depth + 1),
                value.offset, value.kind, _shape(value.state, depth + 1))
    if isinstance(value, (Opaque, Blob, ModuleRef)):
        return (type(value).__name__, *(getattr(value, k) for k in type(value).__slots__))
    return (type(value).__name__, repr(value))


def _outcome(data: bytes, *, inline: bool) -> tuple[object, ...]:
    """Walk one pickle with `run` (inline blocks) or through `_DISPATCH` alone."""
    walk = _Walk()
    reader = _Reader(io.BytesIO(data), 0, len(data), data)
    walker = _Walker(reader, ScanContext(), walk, divergent=False, budget=1_000_000)
    machine = _Machine(walker, 0)
    end: int | None = None
    damage = None
    try:
        if inline:
            end = machine.run()
        else:
            while end is None:
                if machine.pos >= machine.blen:
                    raise _Damage(machine.pos, "stream ends without STOP")
                op = machine.buf[machine.pos]
                machine.pos += 1
                _DISPATCH[op](machine, machine.pos - 1)
                if op == 0x2E:
                    end = machine.pos
    except _Damage as exc:
        damage = (exc.offset, exc.reason)
    uses = sorted((key, use.count, use.called, use.constructed, use.call_offset)
                  for key, use in walk.uses.items())
    findings = [(f.rule_id, f.message, f.offset) for f in walk.findings]
    memo = sorted((k, _shape(v)) for k, v in machine.memo.items())
    state = (machine.marks, machine.fence, machine.proto, machine.frame_end)
    return (end, damage, _shape(walk.values), _shape(machine.stack), memo, state, uses,
            findings, len(walker.nested))


SAMPLES = {
    **benign_pickles(), **malicious_pickles(), **suspicious_pickles(),
    **{f"records_p{proto}": pickle.dumps(
        [(i, f"r{i}", i * 0.5, i % 3 == 0, -i, 1 << 40, None, (i,), (i, i), (i, i, i),
          [i] * 3, {"k": i}, {i}, frozenset([i]), b"xy", "\u00e9")
         for i in range(300)] * 2, proto)
       for proto in range(6)},
    "odict_dates_p2": pickle.dumps(
        [collections.OrderedDict(d=datetime.date(2024, 1, 1 + i % 28)) for i in range(300)], 2),
    "nested_marks": b"\x80\x02K\x00(K\x01(K\x02t(](K\x03K\x04e}(K\x05K\x06ut.",
    "pop_to_mark": b"\x80\x02K\x00(K\x01(K\x02t000.",
    "tuple_underflow": b"\x80\x02K\x00(K\x01\x87.",
    "memo_underflow": b"\x80\x02(\x94.",
    "missing_memo": b"\x80\x02h\x05.",
    "setitems_on_list": b"\x80\x02](K\x01K\x02u.",
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_inline_blocks_agree_with_the_handlers(name: str) -> None:
    assert _outcome(SAMPLES[name], inline=True) == _outcome(SAMPLES[name], inline=False)
