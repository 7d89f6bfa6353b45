"""Red team of issue 16's downgrades: malicious files the scanner must grade ERROR.

Every fixture is generated here with a harmless payload and only scanned, never loaded. The
shapes were confirmed with the real loaders in a throwaway subprocess (a marker under /tmp).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchscan.records import FileResult, Severity
from batchscan.workers.task import WorkerOptions, scan_file

_ORDER = [Severity.DEBUG, Severity.INFO, Severity.WARNING, Severity.ERROR]


def g(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def pickle_of(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def scan(tmp_path: Path, data: bytes, name: str = "model.pkl") -> FileResult:
    path = tmp_path / name
    path.write_bytes(data)
    return scan_file(str(path), WorkerOptions())


def worst(result: FileResult) -> Severity | None:
    return max((f.severity for f in result.findings), key=_ORDER.index, default=None)


def loud(result: FileResult) -> list[tuple[str, str, str]]:
    return [(f.rule_id, f.severity.name, f.message) for f in result.findings]


# --- pickle: re-exports inside packages the allow-list admits by wildcard ----------------------
# `sklearn.*` is allowed as a whole, so any name a sklearn module imports from a denied module
# was ALLOW (clean): `sklearn.datasets._olivetti_faces.remove` is `os.remove`. Confirmed with
# pickle.load in a subprocess: the file is deleted, the directory and temp file are created.
REEXPORT_TWINS = {
    "os_remove": call(g("sklearn.datasets._olivetti_faces", "remove"), text("/tmp/victim")),
    "os_makedirs": call(g("sklearn.datasets._rcv1", "makedirs"), text("/tmp/rt16-dir")),
    "tempfile": call(g("sklearn.datasets._base", "NamedTemporaryFile"), text("w"),
                     b"J\xff\xff\xff\xff", text("utf-8"), b"N", text(".x"), text("rt16_"),
                     text("/tmp"), b"\x89"),
    "tempfile_lightgbm": call(g("lightgbm.basic", "NamedTemporaryFile")),
    "joblib_memory": call(g("sklearn.datasets._lfw", "Memory"), text("/tmp/rt16-mem")),
    "listener": call(g("sklearn.callback._transport", "Listener"),
                     call(g("builtins", "tuple"), b"(" + text("0.0.0.0") + b"M\x90\x1fl")),
    "attrgetter": call(call(g("lightgbm.engine", "attrgetter"), text("system")),
                       g("sklearn", "base")),
    "tempfile_elsewhere": call(g("somepkg.util", "mkdtemp")),
}


@pytest.mark.parametrize("body", REEXPORT_TWINS.values(), ids=REEXPORT_TWINS.keys())
def test_reexport_under_wildcard_allow_is_error(tmp_path: Path, body: bytes) -> None:
    result = scan(tmp_path, pickle_of(body))
    assert worst(result) is Severity.ERROR, loud(result)


def test_wildcard_allow_still_admits_real_classes(tmp_path: Path) -> None:
    """The benign half: sklearn classes stay clean."""
    body = call(g("sklearn.linear_model._base", "LinearRegression"))
    assert loud(scan(tmp_path, pickle_of(body))) == []


# --- configs: Hydra `_target_` reached by attribute access ---------------------------------------
# Hydra's `_locate` imports `sklearn`, then reaches `datasets`, `_base`, `os`, `system` by
# getattr: `os.system` (hydra-core 1.3.2 runs it; 1.3.8 names it "resolved from" the path
# and blocks it). The module `sklearn.datasets._base.os` does not exist, so the wildcard
# allow of `sklearn` admitted the whole path: no finding.
@pytest.mark.parametrize("target", [
    "sklearn.datasets._base.os.system",
    "sklearn.datasets._base.builtins.exec",
    "lightgbm.basic.os.remove",
])
def test_hydra_target_through_attribute_chain_is_error(tmp_path: Path, target: str) -> None:
    data = f"_target_: {target}\n_args_: ['true']\n".encode()
    result = scan(tmp_path, data, "config.yaml")
    assert worst(result) is Severity.ERROR, loud(result)
    assert any(f.rule_id == "CFG003" for f in result.findings), loud(result)


def test_hydra_allowed_targets_stay_clean(tmp_path: Path) -> None:
    data = (b"optim:\n  _target_: torch.optim.Adam\nmodel:\n"
            b"  _target_: sklearn.linear_model.LogisticRegression\n")
    assert loud(scan(tmp_path, data, "config.yaml")) == []


# --- pickle: an object of a class rebuilt from pickled code, handed to a builtin ----------------
# `len(obj)`, `list(obj)`, `sorted([a, b])`, `repr(obj)` run the rebuilt class's `__len__`,
# `__iter__`, `__lt__`, `__repr__` while loading. Those dunders are not load-time hooks on
# their own (real local Dataset classes define them), and the allow-listed builtins were no
# consumer of rebuilt code: WARNING only. Confirmed with a cloudpickled class whose `__len__`
# creates a marker: `pickle.load` of class + NEWOBJ + `builtins.len` runs it.
_PICKLED_CODE = Path(__file__).parent / "fixtures" / "pickled_code"
_SLOT = 9999
_OBJ = b"j" + _SLOT.to_bytes(4, "little")  # LONG_BINGET of the rebuilt object


def with_tail(fixture: str, tail: bytes) -> bytes:
    """The real fixture (its result, an object of a cloudpickled class, put in memo slot
    `_SLOT` and popped), then `tail`, then STOP."""
    import pickletools

    stream = (_PICKLED_CODE / fixture).read_bytes()
    ops = list(pickletools.genops(stream))
    out = bytearray()
    for index, (op, _, pos) in enumerate(ops):
        end = ops[index + 1][2] if index + 1 < len(ops) else len(stream)
        if op.name not in ("FRAME", "STOP"):
            out += stream[pos:end]
    return bytes(out) + b"r" + _SLOT.to_bytes(4, "little") + b"0" + tail + b"."


INSTANCE_TWINS = {
    "len": call(g("builtins", "len"), _OBJ),
    "list_iterates": call(g("builtins", "list"), _OBJ),
    "sorted_compares": call(g("builtins", "sorted"), b"(" + _OBJ + _OBJ + b"l"),
    "repr": call(g("builtins", "repr"), _OBJ),
    "unknown_callee": call(g("somepkg.util", "apply"), _OBJ),
}


@pytest.mark.parametrize("tail", INSTANCE_TWINS.values(), ids=INSTANCE_TWINS.keys())
def test_rebuilt_class_object_handed_to_callee_is_error(tmp_path: Path, tail: bytes) -> None:
    result = scan(tmp_path, with_tail("mlflow_python_model.pkl", tail))
    assert worst(result) is Severity.ERROR, loud(result)


@pytest.mark.parametrize("tail", [
    call(g("builtins", "list"), b"(" + _OBJ + b"l"),  # kept in a list, not iterated
    call(g("functools", "partial"), g("builtins", "print"), _OBJ),
    b"(" + _OBJ + b"l",
])
def test_rebuilt_class_object_only_kept_stays_warning(tmp_path: Path, tail: bytes) -> None:
    result = scan(tmp_path, with_tail("mlflow_python_model.pkl", tail))
    assert worst(result) is Severity.WARNING, loud(result)


# --- shipped Python: the coding cookie decides what the interpreter runs -------------------------
# Read as UTF-8, `x = +ACIAIgAi-` then `< 1` looks like no Python at all (PYS004 INFO, "cannot
# run"); Python decodes the file as UTF-7 (`+ACIAIgAi-` is `"""`), so `< 1` sits in a string
# and `os.system` runs (confirmed: `python3 file.py` creates the marker).
def test_utf7_cookie_hides_code(tmp_path: Path) -> None:
    data = (b"# -*- coding: utf-7 -*-\nx = +ACIAIgAi-\n< 1\n+ACIAIgAi-\n"
            b"import os; os.system('true')\n")
    result = scan(tmp_path, data, "modeling_evil.py")
    assert worst(result) is Severity.ERROR, loud(result)
    assert any("os.system" in f.message for f in result.findings), loud(result)


def test_utf8_and_latin1_cookies_still_parse(tmp_path: Path) -> None:
    for data in (b"# coding: latin-1\nname = '\xe9'\n", b"\xef\xbb\xbfx = 1\n",
                 b"# coding: no-such-codec\nx = 1\n"):
        assert loud(scan(tmp_path, data, "plain.py")) == [], data


def _stack_global(module: str, name: str) -> bytes:
    def unicode(value: str) -> bytes:
        raw = value.encode()
        return b"\x8c" + bytes([len(raw)]) + raw
    return unicode(module) + unicode(name) + b"\x93"


# Protocol 4 reaches the same re-exports as a dotted name under the package: `find_class`
# imports `sklearn` and walks `datasets._lfw.Memory` by attribute access (confirmed with
# pickle.load: the directory is created, the file deleted). Was clean / WARNING.
@pytest.mark.parametrize("module, name", [
    ("sklearn", "datasets._lfw.Memory"),
    ("sklearn", "datasets._olivetti_faces.remove"),
    ("sklearn.datasets", "_base.NamedTemporaryFile"),
])
def test_reexport_reached_by_dotted_name_is_error(tmp_path: Path, module: str,
                                                  name: str) -> None:
    data = b"\x80\x04" + _stack_global(module, name) + b"(" + text("/tmp/x") + b"tR."
    result = scan(tmp_path, data)
    assert worst(result) is Severity.ERROR, loud(result)


def test_dotted_allowed_class_stays_clean(tmp_path: Path) -> None:
    data = b"\x80\x04" + _stack_global("sklearn", "linear_model._base.LinearRegression") + (
        b")\x81.")
    assert loud(scan(tmp_path, data)) == []


# --- pickle: dill classes whose creation runs rebuilt code ---------------------------------------
# `_create_type(type, 'A', (), {'__init_subclass__': <rebuilt function>})`, then a subclass
# `_create_type(type, 'B', (A,), {})`: `type()` runs A.__init_subclass__ while loading
# (confirmed with dill.loads and a hook that creates a marker). Only cloudpickle's class
# builders were checked for load-time hooks: WARNING. A rebuilt class used as the metaclass
# runs its `__init__` the same way.
_FN = b"j" + _SLOT.to_bytes(4, "little")  # the rebuilt function of the dill fixture


def _create_type(meta: bytes, name: str, bases: bytes, namespace: bytes) -> bytes:
    return call(g("dill._dill", "_create_type"), meta, text(name), bases, namespace)


_BASE = _create_type(g("builtins", "type"), "A", b")",
                     b"}" + text("__init_subclass__") + _FN + b"s")
DILL_CLASS_TWINS = {
    "init_subclass": _create_type(g("builtins", "type"), "B", b"(" + _BASE + b"t", b"}"),
    "rebuilt_metaclass": _create_type(
        _create_type(g("builtins", "type"), "Meta", b"(" + g("builtins", "type") + b"t",
                     b"}" + text("__init__") + _FN + b"s"), "B", b")", b"}"),
}


@pytest.mark.parametrize("tail", DILL_CLASS_TWINS.values(), ids=DILL_CLASS_TWINS.keys())
def test_dill_class_creation_running_rebuilt_code_is_error(tmp_path: Path, tail: bytes) -> None:
    result = scan(tmp_path, with_tail("dill_lambda_p4.pkl", tail))
    assert worst(result) is Severity.ERROR, loud(result)


def test_dill_class_with_plain_methods_stays_warning(tmp_path: Path) -> None:
    tail = _create_type(g("builtins", "type"), "A", b")", b"}" + text("forward") + _FN + b"s")
    result = scan(tmp_path, with_tail("dill_lambda_p4.pkl", tail))
    assert worst(result) is Severity.WARNING, loud(result)


# --- configs: stable-baselines3 `data` that the JSON sniff did not recognise --------------------
# Without a .json name a document counted as JSON only when its first key was 1-256 plain
# characters: `{"": 0, ...}` or a key with `\"` was no format at all and the archive came
# out clean, while `load_from_zip_file` (json.loads, then cloudpickle.loads of every
# `:serialized:`) runs the payload (confirmed with stable-baselines3 and a marker).
@pytest.mark.parametrize("first_key", ['""', '"a\\"b"', '"' + "k" * 2000 + '"'])
def test_sb3_data_with_unusual_first_key_is_scanned(tmp_path: Path, first_key: str) -> None:
    import base64
    import zipfile

    payload = pickle_of(call(g("os", "system"), text("true")))
    serialized = base64.b64encode(payload).decode()
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        policy = '{":type:": "x", ":serialized:": "' + serialized + '"}'
        zf.writestr("data", "{" + first_key + ': 0, "policy_class": ' + policy + "}")
    result = scan_file(str(archive), WorkerOptions())
    assert worst(result) is Severity.ERROR, loud(result)
