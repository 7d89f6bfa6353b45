"""Pickled functions handed to something on load (issue 16's allow-list blind spots, red team).

A function or class that cloudpickle or dill rebuilds from pickled code is WARNING by the
severity contract: it runs when called. The pickle itself can call it, though, through any
callee that calls its argument: `functools.reduce(f, [1, 2])`, `iter(f, None)` consumed by
`tuple`, `itertools.accumulate`, `cmp_to_key(f)` objects that `sorted` compares, a library
helper that applies its argument. Those load-time calls are ERROR whatever the callee's own
verdict (`functools.reduce` alone is only "not on the allow-list").

The twins are the real library pickles in tests/fixtures/pickled_code/ with a few opcodes
appended: the function (top of the stack at the end) is put in the memo and handed to a
callee. They are scanned, never loaded.
"""

from __future__ import annotations

import pickle
import pickletools
import struct
from pathlib import Path

import pytest

from batchscan.records import FileResult, Severity
from batchscan.workers.task import WorkerOptions, scan_file

FIXTURES = Path(__file__).parent / "fixtures" / "pickled_code"
SLOT = 9999


def g(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def lit(value: object) -> bytes:
    """A literal's opcodes (protocol 2, without PROTO, memo puts and STOP)."""
    stream = pickle.dumps(value, 2)
    ops = list(pickletools.genops(stream))
    out = bytearray()
    for index, (op, _, pos) in enumerate(ops):
        end = ops[index + 1][2] if index + 1 < len(ops) else len(stream)
        if op.name not in ("PROTO", "STOP", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            out += stream[pos:end]
    return bytes(out)


FN = b"j" + struct.pack("<I", SLOT)  # LONG_BINGET of the function


def with_tail(fixture: str, tail: bytes) -> bytes:
    """The fixture without its FRAMEs and STOP, the function put in memo slot SLOT, then
    `tail`, then STOP."""
    stream = (FIXTURES / fixture).read_bytes()
    ops = list(pickletools.genops(stream))
    out = bytearray()
    for index, (op, _, pos) in enumerate(ops):
        end = ops[index + 1][2] if index + 1 < len(ops) else len(stream)
        if op.name in ("FRAME", "STOP"):
            continue
        out += stream[pos:end]
    return bytes(out) + b"r" + struct.pack("<I", SLOT) + tail + b"."


def scan(tmp_path: Path, data: bytes) -> FileResult:
    path = tmp_path / "twin.pkl"
    path.write_bytes(data)
    return scan_file(str(path), WorkerOptions())


def worst(result: FileResult) -> Severity | None:
    order = [Severity.DEBUG, Severity.INFO, Severity.WARNING, Severity.ERROR]
    return max((f.severity for f in result.findings), key=order.index, default=None)


def call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


ON_LOAD = {
    "reduce": call(g("functools", "reduce"), FN, lit([1, 2])),
    "iter-sentinel": call(g("builtins", "tuple"), call(g("builtins", "iter"), FN, b"N")),
    "accumulate": call(g("builtins", "list"), call(g("itertools", "accumulate"), lit([1, 2]),
                                                   FN)),
    "filterfalse": call(g("builtins", "list"), call(g("itertools", "filterfalse"), FN,
                                                    lit([1]))),
    "takewhile": call(g("builtins", "list"), call(g("itertools", "takewhile"), FN, lit([1]))),
    "cmp-to-key-sorted": g("builtins", "sorted") + b"((" + call(
        g("functools", "cmp_to_key"), FN) + b"K\x01\x85R" + call(
        g("functools", "cmp_to_key"), FN) + b"K\x02\x85RltR",
    "library-helper": call(g("somepkg.util", "apply_fn"), FN),
    "vectorize": call(g("numpy", "vectorize"), FN) + lit((1,)) + b"R",
    "partial-then-called": call(g("functools", "partial"), FN, lit(1)) + b")R",
    "in-a-list-to-a-helper": call(g("somepkg.util", "apply_all"), b"]" + FN + b"a"),
    "direct": FN + lit((1,)) + b"R",
}


def nested_partials(depth: int) -> bytes:
    """`partial(partial(...partial(f)...))` `depth` levels around the function."""
    inner = FN
    for _ in range(depth):
        inner = call(g("functools", "partial"), inner)
    return inner


# Deeper or wider than the walk looking for rebuilt code follows: what it could not look
# into is taken as holding that code, never as holding none.
ON_LOAD["reduce-nested-partials-12"] = call(g("functools", "reduce"), nested_partials(12),
                                            lit([1, 2]))
ON_LOAD["reduce-wide-then-nested"] = call(
    g("functools", "reduce"),
    call(g("functools", "partial"), b"(" + b"".join(lit((i,)) for i in range(300)) + b"t",
         nested_partials(3)), lit([1, 2]))
ON_LOAD["partial-12-called"] = nested_partials(12) + b")R"

KEPT = {
    "plain": b"",
    "in-a-dict": call(g("builtins", "dict"), b"}" + lit("f") + FN + b"s"),
    "partial-not-called": call(g("functools", "partial"), FN, lit(1)),
    "in-a-list": b"]" + FN + b"a",
}

CODE = ("cloudpickle_lambda.pkl", "dill_lambda_p4.pkl", "dill_function_with_closure_p4.pkl")


@pytest.mark.parametrize("fixture", CODE)
@pytest.mark.parametrize("shape", sorted(ON_LOAD))
def test_pickled_code_called_on_load_is_error(tmp_path: Path, fixture: str, shape: str) -> None:
    result = scan(tmp_path, with_tail(fixture, ON_LOAD[shape]))
    assert result.error is None, result.error
    assert worst(result) is Severity.ERROR, [f.message for f in result.findings]


@pytest.mark.parametrize("fixture", CODE)
@pytest.mark.parametrize("shape", sorted(KEPT))
def test_pickled_code_only_kept_stays_warning(tmp_path: Path, fixture: str, shape: str) -> None:
    result = scan(tmp_path, with_tail(fixture, KEPT[shape]))
    assert result.error is None, result.error
    assert worst(result) is Severity.WARNING, [
        (f.severity, f.message) for f in result.findings if f.severity is Severity.ERROR]


def test_the_twins_are_what_the_unpickler_would_run() -> None:
    """The appended opcodes are well formed: pickletools reads every twin to its STOP."""
    for fixture in CODE:
        for tail in (*ON_LOAD.values(), *KEPT.values()):
            ops = list(pickletools.genops(with_tail(fixture, tail)))
            assert ops[-1][0].name == "STOP"


def test_a_deeply_nested_function_only_kept_stays_warning(tmp_path: Path) -> None:
    """Only kept, however deep: no callee, so no ERROR (cloudpickle: no graded-by-use global
    is involved; dill's `__dict__` grading gives up past its depth and stays ERROR)."""
    result = scan(tmp_path, with_tail("cloudpickle_lambda.pkl", nested_partials(12)))
    assert worst(result) is Severity.WARNING, [f.message for f in result.findings]
