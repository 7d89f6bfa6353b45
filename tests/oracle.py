"""The differential oracle: CPython's own unpicklers, run so that nothing real is imported.

`loader_runs(data)` runs the C unpickler (`_pickle`) over an in-memory file (`io.BytesIO`,
"c-bytes"), an unbuffered raw file without `peek` ("c-file") and a `BufferedReader` with
`peek` ("c-buffered"), whose FRAME reading differs, with the default ASCII and with latin-1
decoding of Python 2 strings, and the pure-Python unpickler (`pickle._Unpickler`). Their
`find_class` is overridden: it records the (module, name) the loader asked for and returns
an inert stub class (calling it, its instances or any attribute of them gives another stub;
`__setstate__`, `__setitem__`, `extend`, `append`, `add` accept anything), so every opcode
that would import or call runs against stubs only. `persistent_load` and out-of-band
`buffers` are supplied, so the oracle follows the stream as far as the most permissive real
loader would.

`batchscan_result(data, name)` scans the same bytes the way a worker does (content detection,
the format module, the record's status), and `divergence(data)` states the property of issue
13: every global a loader resolves that the policy denies is reported at WARNING or above, and
such a file is never `clean`.

Used by tests/test_pickle_differential.py (bounded) and benchmarks/differential.py (long runs).
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import io
import itertools
import os
import pickle
import pickletools
import random
import resource
import sys
import tempfile
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from batchscan.records import Severity
from batchscan.workers import pickle_policy
from batchscan.workers.jobs import WorkerOptions
from batchscan.workers.task import scan_file


# --- inert stubs --------------------------------------------------------------------------
class _StubMeta(type):
    """Stub classes: any public attribute is another stub; item assignment does nothing."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return new_stub()

    def __setitem__(cls, key: object, value: object) -> None:
        pass


class _Stub(metaclass=_StubMeta):
    """What find_class returns: a type (NEWOBJ requires one) whose instances are inert too."""

    def __new__(cls, *args: object, **kwargs: object) -> Any:
        return object.__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> Any:
        return new_stub()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return new_stub()

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def __setstate__(*args: object) -> None:  # works on the class and on instances
        pass


def new_stub() -> Any:
    return _StubMeta("Stub", (_Stub,), {})


def _mapped(module: str, name: str) -> tuple[str, str]:
    """What `find_class` looks up under protocol < 3 (fix_imports), as `_compat_pickle` says."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _Unbuffered:
    """A file object without `peek`: the C unpickler reads FRAMEs from it piece by piece.

    A plain object (not `io.RawIOBase`, whose `read` goes through a bytearray and a
    memoryview that the C unpickler's error paths leave exported)."""

    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._pos + size
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def readline(self, size: int | None = -1) -> bytes:
        end = self._data.find(b"\n", self._pos)
        end = len(self._data) if end < 0 else end + 1
        line = self._data[self._pos : end]
        self._pos = end
        return line


def _recording(base: type[Any], seen: list[tuple[str, str, int | None]]) -> type[Any]:
    class Recording(base):  # type: ignore[misc, valid-type]
        def find_class(self, module: str, name: str) -> Any:
            # The C unpickler does not expose its protocol (None: either spelling).
            seen.append((module, name, getattr(self, "proto", None)))
            return new_stub()

        def persistent_load(self, pid: object) -> Any:
            return new_stub()

    return Recording


@dataclass
class LoaderRun:
    """What one unpickler did with a stream: the globals it resolved and how it stopped."""

    loader: str
    globals: list[tuple[str, str, int | None]] = field(default_factory=list)  # + protocol
    error: str | None = None

    def resolved(self) -> list[frozenset[tuple[str, str]]]:
        """Each `find_class` call as the names it may have imported: under protocol < 3 the
        Python 2 names are mapped (`_compat_pickle`), and the C unpickler hides its protocol."""
        out = []
        for module, name, proto in self.globals:
            if not all(part.isidentifier() for part in f"{module}.{name}".split(".")):
                # Not a Python name: only a module planted under that very name would
                # import (ModuleNotFoundError otherwise); sniffing rejects such streams.
                continue
            names = set()
            if proto is None or proto >= 3:
                names.add((module, name))
            if proto is None or proto < 3:
                names.add(_mapped(module, name))
            out.append(frozenset(names))
        return out


@contextlib.contextmanager
def memory_cap(extra: int = 1 << 30) -> Iterator[None]:
    """Cap this process's address space at its current size plus `extra` for the duration.

    A mutated LONG_BINPUT index makes the C unpickler grow (and zero) its memo table to that
    size: gigabytes, in the test process. With the cap it gets a MemoryError, and stops.
    """
    try:
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status
                        if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = size + extra
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (OSError, StopIteration, ValueError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def _quiet_unraisable() -> Iterator[None]:
    """CPython 3.11's C unpickler leaves a bytearray export behind on the error path of a
    BYTEARRAY8 it cannot fill (`SystemError: deallocated bytearray object has exported
    buffers`, reported through `sys.unraisablehook`): harmless here, and slow under pytest."""
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _run(loader: str, data: bytes) -> LoaderRun:
    run = LoaderRun(loader)
    buffers = itertools.repeat(b"")
    if loader.startswith("c-"):
        cls = _recording(pickle.Unpickler, run.globals)
    else:
        cls = _recording(pickle._Unpickler, run.globals)  # type: ignore[attr-defined]
    encoding = "latin1" if loader.endswith("latin1") else "ASCII"
    stream: Any = io.BytesIO(data)
    if "file" in loader:
        stream = _Unbuffered(data)
    elif "buffered" in loader:
        stream = io.BufferedReader(io.BytesIO(data))  # has peek(): C prefetches frames
    try:
        cls(stream, encoding=encoding, buffers=buffers).load()
    except RecursionError:
        run.error = "RecursionError"
    except MemoryError:
        run.error = "MemoryError"
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {str(exc)[:120]}"
    return run


LOADERS = ("c-bytes", "c-bytes-latin1", "c-file", "c-buffered", "py-bytes")


def loader_runs(data: bytes) -> list[LoaderRun]:
    """Each CPython unpickler variant run over `data` with recording stubs."""
    with memory_cap(), _quiet_unraisable():
        return [_run(loader, data) for loader in LOADERS]


def denied(runs: list[LoaderRun]) -> set[frozenset[str]]:
    """The imports of `runs` that the policy denies, each as its possible qualified names."""
    out = set()
    for run in runs:
        for names in run.resolved():
            if any(pickle_policy.classify(m, n).verdict is pickle_policy.Verdict.DENY
                   for m, n in names):
                out.add(frozenset(f"{m}.{n}" for m, n in names))
    return out


# --- the same oracle through the real loaders' entry points --------------------------------
def _stub_pickle_module(seen: list[tuple[str, str, int | None]]) -> types.ModuleType:
    """A `pickle_module` for torch.load: its Unpickler records and returns stubs."""
    recording = _recording(pickle.Unpickler, seen)
    module = types.ModuleType("stub_pickle")
    module.Unpickler = recording  # type: ignore[attr-defined]
    module.load = lambda f, **kw: recording(f, **kw).load()  # type: ignore[attr-defined]
    return module


def _entry(loader: str, call: Callable[[list[tuple[str, str, int | None]]], object]) -> LoaderRun:
    run = LoaderRun(loader)
    try:
        with memory_cap(), _quiet_unraisable():
            call(run.globals)
    except (RecursionError, MemoryError) as exc:
        run.error = type(exc).__name__
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {str(exc)[:120]}"
    return run


def torch_load_run(data: bytes) -> LoaderRun:
    """`torch.load(weights_only=False)` (zip or legacy) with the stub `pickle_module`."""
    import torch

    def call(seen: list[tuple[str, str, int | None]]) -> object:
        return torch.load(io.BytesIO(data), weights_only=False, map_location="cpu",
                          pickle_module=_stub_pickle_module(seen))

    return _entry("torch.load", call)


def joblib_load_run(data: bytes) -> LoaderRun:
    """`joblib.load` (its pure-Python NumpyUnpickler, decompressing by magic) with the
    recording `find_class` patched onto its unpickler class for the call."""
    import joblib
    from joblib import numpy_pickle

    def call(seen: list[tuple[str, str, int | None]]) -> object:
        recording = _recording(numpy_pickle.NumpyUnpickler, seen)
        with mock.patch.object(numpy_pickle.NumpyUnpickler, "find_class",
                               recording.find_class):
            return joblib.load(io.BytesIO(data))

    return _entry("joblib.load", call)


def numpy_load_run(data: bytes) -> LoaderRun:
    """`numpy.load(allow_pickle=True)` (a pickle file, an object .npy, every .npz member)
    with `pickle.load` in numpy's modules replaced by the recording unpickler."""
    import numpy

    def call(seen: list[tuple[str, str, int | None]]) -> object:
        stub = _stub_pickle_module(seen)
        targets = [m for name, m in list(sys.modules.items())
                   if name.startswith("numpy.lib") and getattr(m, "pickle", None) is pickle]
        with contextlib.ExitStack() as stack:
            for module in targets:
                stack.enter_context(mock.patch.object(module, "pickle", stub))
            loaded = numpy.load(io.BytesIO(data), allow_pickle=True)
            if hasattr(loaded, "files"):  # npz: members load on access
                return [loaded[key] for key in loaded.files]
            return loaded

    return _entry("numpy.load", call)


# --- batchscan's view ---------------------------------------------------------------------
@dataclass
class Scanned:
    format: str
    status: str
    findings: list[tuple[str, str, str]]  # (rule_id, severity, message)
    error: str | None


_TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None


def batchscan_result(data: bytes, name: str = "model.bin") -> Scanned:
    """Scan `data` exactly as a worker scans a file (`task.scan_file`), status as recorded."""
    with tempfile.TemporaryDirectory(dir=_TMP) as folder:
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            handle.write(data)
        result = scan_file(path, WorkerOptions(hash=False))
    findings = [(f.rule_id, f.severity.value, f.message) for f in result.findings]
    if result.status is not None:
        status = result.status.value
    elif result.error is not None:
        status = "error"
    elif any(f.severity is not Severity.DEBUG for f in result.findings):
        status = "findings"
    else:
        status = (getattr(result, "unsupported", None) and "unsupported") or "clean"
    return Scanned(result.format, status, findings, result.error)


_SERIOUS = {Severity.WARNING.value, Severity.ERROR.value}


def divergence(data: bytes, name: str = "model.bin") -> str | None:
    """Why batchscan disagrees with the loaders on `data`, or None when it agrees.

    Returns a reason when a loader resolved a denied global that batchscan does not name at
    WARNING+, when such a file is `clean`, or when the scanner itself raised.
    """
    return verdict(denied(loader_runs(data)), batchscan_result(data, name))


def verdict(resolved: set[frozenset[str]], scanned: Scanned) -> str | None:
    """The property for one input: the denied globals the loaders resolved, and the scan."""
    if scanned.error and "internal error" in scanned.error:
        return f"scanner raised: {scanned.error}"
    if not resolved:
        return None
    shown = sorted(min(names) for names in resolved)
    if scanned.status == "clean":
        return f"clean although the loader resolved {shown}"
    serious = " ".join(msg for _, sev, msg in scanned.findings if sev in _SERIOUS)
    missing = sorted(min(names) for names in resolved
                     if not any(f"`{q}`" in serious for q in names))
    if missing:
        return f"{scanned.status}: {missing} resolved by the loader, not reported at WARNING+"
    return None


# --- seeds and mutants --------------------------------------------------------------------
class _Reduce:
    def __init__(self, func: Any, *args: object):
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[object, ...]:
        return (self.func, self.args)


def seeds() -> dict[str, bytes]:
    """Pickles of every protocol (FRAME from 4, memo, nesting) reaching a denied global."""
    from fixtures.generate import malicious_pickles  # tests/ is on sys.path

    out = dict(malicious_pickles())
    payload = _Reduce(os.system, "true")
    data = {"weights": [1.5, 2, "x" * 40, b"y" * 10], "cfg": (None, True, 3 ** 70)}
    for proto in range(6):
        out[f"dumps_nested_p{proto}"] = pickle.dumps([data, {"run": payload}, data], proto)
        out[f"dumps_eval_p{proto}"] = pickle.dumps(_Reduce(eval, "1"), proto)
        out[f"dumps_memo_p{proto}"] = pickle.dumps([payload, payload, data], proto)
    out["dumps_big_frame_p5"] = pickle.dumps([list(range(20_000)), payload], 5)
    return out


_OPCODES = bytes(sorted({op.code.encode("latin-1")[0] for op in pickletools.opcodes}))


def boundaries(data: bytes) -> list[int]:
    """Opcode offsets of a valid pickle (and its end)."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # genops decodes escapes of mutated STRING arguments
        try:
            for _op, _arg, pos in pickletools.genops(data):
                out.append(pos)
        except Exception:
            pass
    out.append(len(data))
    return out


def _filler(rng: random.Random) -> bytes:
    choices = (
        b"0", b"N", b"(", b"t", b"\x94", b"q\x05", b"p99\n", b"g0\n", b"h\x00", b"I010\n",
        b"F1_0\n", b"S'\\x4'\n", b"V\\u12\n", b"Vtrue\n", b"U\x04true", b"T\x04\x00\x00\x00\xfftr",
        b"r\xff\xff\xff\xff", b"j\xff\xff\xff\xff", b"\x95\x02\x00\x00\x00\x00\x00\x00\x00",
        b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x06", b"\x97", b"\x98", b"P0\n",
        b"e", b"u", b"\x90", b"a", b"s", b"b", b"R", b"\x81", b"\x92", b"\x85", b"\x86", b".",
        b"c__builtin__\neval\n", b"\x8c\x0b__builtin__\x8c\x04eval\x93", b"\xff",
        b"\x8c\x02os\x8c\x06system\x93",
    )
    if rng.random() < 0.3:
        return bytes([rng.choice(_OPCODES)])
    return rng.choice(choices)


def mutate(seed: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """One mutant of `seed`: cut, corrupt, insert, delete, splice or append at a boundary."""
    marks = boundaries(seed)
    at = rng.choice(marks)
    kind = rng.randrange(9)
    if kind == 0:
        return seed[:at]
    if kind == 1:
        return seed[:at] + bytes([rng.randrange(256)]) + seed[at + 1 :]
    if kind == 2:
        return seed[:at] + _filler(rng) + seed[at:]
    if kind == 3:
        later = [m for m in marks if m > at] or [len(seed)]
        return seed[:at] + seed[rng.choice(later) :]
    if kind == 4 and others:
        other = rng.choice(others)
        return seed[:at] + other[rng.choice(boundaries(other)) :]
    if kind == 5:
        tail = rng.choice((b"PK\x03\x04" + bytes(30), b"\xff\xfe garbage", b"\x00" * 8,
                           rng.choice(others) if others else b""))
        return seed[:at] + tail
    if kind == 6 and seed[:1] == b"\x80" and len(seed) > 1:
        return b"\x80" + bytes([rng.randrange(7)]) + seed[2:]
    if kind == 7 and seed:
        pos = rng.randrange(len(seed))
        return seed[:pos] + bytes([seed[pos] ^ (1 << rng.randrange(8))]) + seed[pos + 1 :]
    data = seed
    for _ in range(rng.randrange(1, 4)):
        data = mutate(data, rng, others)
    return data


def mutants(rng: random.Random) -> Iterator[bytes]:
    """An endless stream of mutants of the seeds."""
    pool = list(seeds().values())
    while True:
        yield mutate(rng.choice(pool), rng, pool)


def systematic() -> Iterator[tuple[str, bytes]]:
    """Every seed truncated and corrupted at every opcode boundary (deterministic)."""
    for name, seed in seeds().items():
        if len(seed) > 4096:
            continue
        for at in boundaries(seed):
            yield f"{name}[:{at}]", seed[:at]
            for junk in (b"\xff", b"p0x\n", b"Vtrue\\u12\n", b"S'\\x4'\n"):
                yield f"{name}@{at}+{junk!r}", seed[:at] + junk + seed[at:]


__all__ = ["LOADERS", "batchscan_result", "divergence", "loader_runs", "mutants", "seeds",
           "systematic"]
