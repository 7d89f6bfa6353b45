"""Detection equals the real loaders (issue 13): regressions and a bounded differential run.

The oracle (tests/oracle.py) is CPython's own unpicklers (C from bytes and from an unbuffered
file, ASCII and latin-1; pure Python) with a `find_class` that records and returns inert
stubs: nothing real is imported or called. The property: every global a loader resolves that
the policy denies is reported at WARNING or above, and such a file is never `clean`.
Every divergence the fuzzer found is a named case below.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import pickle
import random
import struct
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import oracle
from batchscan.records import FileResult, Severity
from batchscan.workers import pickle as pickle_format
from batchscan.workers.base import Limits, Source
from batchscan.workers.registry import context
from batchscan.workers.task import WorkerOptions, scan_file
from conftest import rules, scan_pickle
from fixtures.generate import glob0, s4

# The first case: CPython resolves os.system and calls it, then fails on `PUT 0x`.
BAD_PUT = b"cos\nsystem\n(Vtrue\ntRp0x\n."
# ... and on a bad \u escape in a later UNICODE argument
BAD_UNICODE = b"cos\nsystem\n(Vtrue\ntRV\\u12\n."
BAD_STRING = b"cos\nsystem\n(Vtrue\ntRS'\\x4'\n."
CALL_SYSTEM = glob0("os", "system") + b"X\x04\x00\x00\x00true\x85R"


def scan(tmp_path: Path, name: str, data: bytes, **options: object) -> FileResult:
    path = tmp_path / name
    path.write_bytes(data)
    return scan_file(str(path), WorkerOptions(**options))  # type: ignore[arg-type]


def names_system(result: FileResult | list[object]) -> bool:
    findings = result.findings if isinstance(result, FileResult) else result
    return any(
        f.rule_id == "PKL001" and "system`" in f.message  # type: ignore[attr-defined]
        and f.severity is Severity.ERROR  # type: ignore[attr-defined]
        for f in findings
    )


def torch_zip(pkl: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pkl)
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/byteorder", "little")
    return buffer.getvalue()


# --- damaged streams: what ran before the damage is reported, whatever the name --------------
@pytest.mark.parametrize("data", [BAD_PUT, BAD_UNICODE, BAD_STRING],
                         ids=["bad_put", "bad_unicode_escape", "bad_string_escape"])
@pytest.mark.parametrize("wrap", ["plain", "torch_zip", "gzip"])
def test_damaged_stream_after_the_call_is_reported(tmp_path: Path, data: bytes,
                                                   wrap: str) -> None:
    packed = {"plain": data, "torch_zip": torch_zip(data), "gzip": gzip.compress(data)}[wrap]
    result = scan(tmp_path, "hparams", packed)
    assert names_system(result), result
    assert oracle.divergence(data) is None


@pytest.mark.parametrize("data", [
    b"\x80\x02" + glob0("os", "system") + b"p0x\n",  # non-numeric PUT
    b"\x80\x02" + glob0("os", "system") + b"g\n",  # empty GET
    b"\x80\x02" + glob0("os", "system") + b"S'\\x4'\n",  # bad STRING escape
    b"\x80\x02" + glob0("os", "system") + b"V\\u12\n",  # bad UNICODE escape
    b"\x80\x02" + glob0("os", "system") + b"I12ab\n",  # bad INT literal
    b"\x80\x02" + glob0("os", "system") + b"Fx\n",  # bad FLOAT literal
    b"\x80\x02" + glob0("os", "system") + b"\x8c\x02\xff\xfe",  # bad UTF-8
], ids=["put", "get", "string", "unicode", "int", "float", "utf8"])
def test_parse_failures_are_damage_with_findings_kept(data: bytes) -> None:
    findings = scan_pickle(data)  # raised ValueError/UnicodeDecodeError before the fix
    assert names_system(findings), findings
    assert "PKL004" in rules(findings)


def test_long_binput_index_above_2_31_is_accepted_like_cpython() -> None:
    """pickle._Unpickler accepts any index; C reads it unsigned (and may run out of memory
    growing its memo table to it): the walk goes on, as the permissive loader does."""
    data = b"\x80\x02N" + b"r\xff\xff\xff\xff" + b"0" + CALL_SYSTEM + b"."
    assert {r.loader: r.error for r in oracle.loader_runs(data)}["py-bytes"] is None
    findings = scan_pickle(data)
    assert names_system(findings), findings
    assert "PKL004" not in rules(findings), findings


@pytest.mark.parametrize("proto", [0, 2, 3, 4])
def test_stack_global_maps_python2_names_below_protocol_3(proto: int) -> None:
    data = (b"\x80" + bytes([proto]) + s4("commands") + s4("getoutput") + b"\x93"
            + s4("true") + b"\x85R.")
    findings = scan_pickle(data)
    expected = "subprocess.getoutput" if proto < 3 else "commands.getoutput"
    assert any(f"`{expected}`" in f.message for f in findings), findings
    assert oracle.divergence(data) is None


@pytest.mark.parametrize("op", [b"e", b"u", b"\x90"], ids=["appends", "setitems", "additems"])
def test_empty_batch_on_an_imported_object_calls_nothing(op: bytes) -> None:
    data = b"\x80\x04" + s4("collections") + s4("OrderedDict") + b"\x93(" + op + b"."
    findings = scan_pickle(data)
    assert "PKL006" not in rules(findings), findings
    nonempty = b"\x80\x04" + s4("collections") + s4("OrderedDict") + b"\x93(NN" + op + b"."
    assert "PKL006" in rules(scan_pickle(nonempty))


def test_opcode_budget_counts_inline_opcodes() -> None:
    data = b"\x80\x02(" + b"K\x01" * 1000 + b"l."
    ctx = context(limits=Limits(max_opcodes=100))
    findings = list(pickle_format.scan(Source.from_bytes(data, "x.pkl"), ctx))
    assert "PKL012" in rules(findings), findings
    _, walk = pickle_format.analyse(io.BytesIO(data), len(data), context(), data=data)
    assert walk.opcodes == 1004


@pytest.mark.parametrize("prefix", [
    b"U\x02\xff\xfe0",  # SHORT_BINSTRING not ASCII: C stops with the default encoding
    b"I010\n0",  # C's strtol base 0 reads 8; pickle._Unpickler rejects it
    b"F1_0\n0",  # float() accepts underscores, C does not
    b"F1e999\n0",  # C raises OverflowError, float() gives inf
    b"\x970",  # NEXT_BUFFER: only with buffers=
    b"P12\n0",  # PERSID: only with persistent_load
], ids=["binstring_latin1", "int_base0", "float_underscore", "float_overflow", "next_buffer",
        "persid"])
def test_leniency_never_stops_before_a_loader_does(prefix: bytes) -> None:
    """Where loaders differ (encoding=, buffers=, persistent_load, C or Python), the walk goes
    on as the most permissive one does: it never stops earlier than any of them."""
    data = b"\x80\x02" + prefix + CALL_SYSTEM + b"."
    findings = scan_pickle(data)
    assert names_system(findings), findings
    assert oracle.divergence(data) is None


# --- findings are never lost ------------------------------------------------------------------
def test_findings_survive_a_failing_appended_container(tmp_path: Path) -> None:
    evil = pickle.dumps(oracle._Reduce(os.system, "true"), 2)
    bad_zip = b"PK\x03\x04" + b"\x14\x00" + b"\x00" * 20 + b"\xff" * 8
    result = scan(tmp_path, "m.pkl", evil + bad_zip)
    assert names_system(result), result


def test_damaged_pickle_followed_by_a_zip_is_scanned_as_both(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inner.pkl", pickle.dumps(oracle._Reduce(eval, "1"), 2))
    result = scan(tmp_path, "model.bin", BAD_PUT + buffer.getvalue())
    assert names_system(result), result  # the pickle in front (scanned as a zip only before)
    assert any("`builtins.eval`" in f.message for f in result.findings), result  # the zip


# --- the differential property ----------------------------------------------------------------
def test_oracle_stubs_never_import() -> None:
    runs = oracle.loader_runs(pickle.dumps(oracle._Reduce(os.system, "true"), 2))
    assert all(("posix", "system") in [g[:2] for g in run.globals] for run in runs)
    assert all(run.error is None for run in runs)


def test_every_seed_agrees() -> None:
    bad = {name: why for name, data in oracle.seeds().items()
           if (why := oracle.divergence(data)) is not None}
    assert not bad


def test_truncated_and_corrupted_at_every_opcode_boundary() -> None:
    bad = {}
    for name, data in oracle.systematic():
        why = oracle.divergence(data)
        if why is not None:
            bad[name] = why
    assert not bad, dict(list(bad.items())[:10])


def test_random_mutants_agree_with_the_loaders() -> None:
    """A seeded mutation run bounded by time (the long run is benchmarks/differential.py)."""
    rng = random.Random(13)
    deadline = time.monotonic() + 12
    bad: dict[bytes, str] = {}
    count = 0
    for data in oracle.mutants(rng):
        if time.monotonic() > deadline:
            break
        count += 1
        why = oracle.divergence(data)
        if why is not None:
            bad[data] = why
    assert count > 200
    assert not bad, dict(list(bad.items())[:10])


# --- regressions found by the fuzzer (benchmarks/differential.py) -----------------------------
FOUND: dict[str, bytes] = {
    # pickle._Unpickler takes the last byte of a GLOBAL name line at EOF for its newline
    "global_name_line_at_eof_py": b"\x80\x05ccodecs\nopenJ",
    # a GLOBAL name no importer accepts, then the payload: sniffing stopped at the name
    "non_identifier_global_then_payload": (
        b"(lp0\nc_co`ecs\nencode\np5\n(Vy\ntRa" + glob0("posix", "system") + b"(Vtrue\ntRa."),
    # INST imports before it looks for its MARK (the stream did not start like a pickle)
    "inst_without_mark": b"ios\nsystem\n.",
    # a FRAME straddle in a cut stream: the C file loader runs the hidden program
    "frame_straddle_truncated": (
        b"\x80\x04\x95\x04\x00\x00\x00\x00\x00\x00\x00]B\x19\x00\x00\x00\x00\x00cos\nsystem"
        b"\n(S'true'\ntR0"),
    # pickle._Unpickler spreads a list as NEWOBJ/REDUCE arguments (C wants a tuple)
    "newobj_list_args_py": (
        b"\x80\x04" + glob0("pkgutil", "resolve_name") + b"]\x81" + s4("posix") + s4("system")
        + b"\x93" + s4("true") + b"\x85R."),
    # a zip local header with no archive behind it is a PERSID line to pickle.load
    "zip_magic_without_end_record": b"PK\x03\x04" + bytes(30) + b"(lp0\n" + glob0(
        "posix", "system") + b"(Vtrue\ntRa.",
    # a first text argument longer than the sniffed head, then the payload
    "long_first_line_1k": b"V" + b"a" * 2000 + b"\n0" + CALL_SYSTEM + b".",
    "long_first_line_100k": b"S'" + b"a" * 100_000 + b"'\n0" + CALL_SYSTEM + b".",
    "reduce_list_args_py": b"\x80\x04" + glob0("posix", "system") + b"]" + s4("true") + b"aR.",
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_fuzzer_found_divergence(name: str) -> None:
    assert oracle.divergence(FOUND[name]) is None


def test_struct_is_used() -> None:
    assert struct.calcsize("<I") == 4


# --- the same property through the real loaders' entry points ---------------------------------
def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


requires_torch = pytest.mark.skipif(
    not _installed("torch"), reason="torch is not installed (pip install -e '.[fixtures]'); "
    "the CPython unpickler oracle above covers the pickle streams")


def _data_pkl_mutants() -> list[tuple[str, bytes]]:
    """Seeds of every protocol, cut at every opcode boundary and corrupted there."""
    out = []
    for name, seed in oracle.seeds().items():
        if name.startswith("dumps_") and len(seed) < 2048:
            for at in oracle.boundaries(seed)[1::2]:
                out.append((f"{name}[:{at}]", seed[:at]))
                out.append((f"{name}@{at}+put", seed[:at] + b"p0x\n" + seed[at:]))
    return out


def _entry_divergences(run: Callable[[bytes], oracle.LoaderRun],
                       files: list[tuple[str, bytes]], name: str) -> dict[str, str]:
    bad = {}
    for label, data in files:
        why = oracle.verdict(oracle.denied([run(data)]), oracle.batchscan_result(data, name))
        if why is not None:
            bad[label] = why
    return bad


def _legacy(main: bytes) -> bytes:
    header = (pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2)
              + pickle.dumps({"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 8}}, 2))
    return header + main + pickle.dumps([], 2)


@requires_torch
def test_torch_load_zip_and_legacy_agree() -> None:
    mutants = _data_pkl_mutants()
    files = [(f"zip:{n}", torch_zip(d)) for n, d in mutants]
    files += [(f"legacy:{n}", _legacy(d)) for n, d in mutants]
    files += [("zip:bad_put", torch_zip(BAD_PUT)), ("legacy:bad_put", _legacy(BAD_PUT))]
    assert "posix.system" in str(oracle.denied([oracle.torch_load_run(torch_zip(BAD_PUT))])) \
        or "os.system" in str(oracle.denied([oracle.torch_load_run(torch_zip(BAD_PUT))]))
    bad = _entry_divergences(oracle.torch_load_run, files, "model.pt")
    assert not bad, dict(list(bad.items())[:10])


@pytest.mark.skipif(not _installed("joblib"), reason="joblib is not installed")
def test_joblib_load_agrees() -> None:
    import joblib

    files = []
    for compress in (0, ("zlib", 3), ("gzip", 3), ("xz", 1)):
        buffer = io.BytesIO()
        joblib.dump({"model": oracle._Reduce(os.system, "true"), "w": [1.5] * 10}, buffer,
                    compress=compress)
        files.append((f"dump-{compress}", buffer.getvalue()))
    files += [(f"raw:{n}", d) for n, d in _data_pkl_mutants()]
    assert oracle.denied([oracle.joblib_load_run(files[1][1])])
    bad = _entry_divergences(oracle.joblib_load_run, files, "model.joblib")
    assert not bad, dict(list(bad.items())[:10])


@pytest.mark.skipif(not _installed("numpy"), reason="numpy is not installed")
def test_numpy_load_allow_pickle_agrees() -> None:
    import numpy

    buffer = io.BytesIO()
    array = numpy.empty(2, dtype=object)
    array[0] = oracle._Reduce(os.system, "true")
    numpy.save(buffer, array, allow_pickle=True)
    npy = buffer.getvalue()
    start = npy.index(b"\x80")  # the pickle after the .npy header
    files = [("npy", npy)]
    files += [(f"npy[:{at}]", npy[: start + at]) for at in oracle.boundaries(npy[start:])]
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w") as archive:
        archive.writestr("weights.npy", npy)
    files.append(("npz", npz.getvalue()))
    files += [(f"pickle:{n}", d) for n, d in _data_pkl_mutants() if d[:1] == b"\x80"]
    assert oracle.denied([oracle.numpy_load_run(npy)])
    bad = _entry_divergences(oracle.numpy_load_run, files, "weights.npy")
    assert not bad, dict(list(bad.items())[:10])


def test_a_failure_late_in_the_walk_keeps_the_findings(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Findings were collected and yielded at the end: a later exception discarded them."""
    def explode(self: object, offset: int) -> None:
        raise RecursionError("late failure")

    monkeypatch.setitem(pickle_format._HANDLERS, 0x2E, explode)
    monkeypatch.setattr(pickle_format, "_DISPATCH", tuple(
        pickle_format._HANDLERS.get(code, pickle_format._Machine.op_invalid)
        for code in range(256)))
    result = scan(tmp_path, "m.pkl", b"\x80\x02" + CALL_SYSTEM + b".")
    assert result.error is not None
    assert names_system(result), result


def test_every_divergence_the_fuzzer_ever_found_stays_fixed() -> None:
    """tests/fixtures/differential_regressions.hex: the inputs of every divergence the long
    runs reported on earlier code (the pre-fix one-minute run and the development runs)."""
    path = Path(__file__).parent / "fixtures" / "differential_regressions.hex"
    lines = [line for line in path.read_text().splitlines() if line and line[0] != "#"]
    assert len(lines) > 100
    bad = {}
    for number, line in enumerate(lines, 1):
        why = oracle.divergence(bytes.fromhex(line))
        if why is not None:
            bad[number] = why
    assert not bad, dict(list(bad.items())[:10])
