"""Static pickle analysis: an opcode-level emulation of CPython's unpickler that never imports.

Layout. A pickle is a program for a stack machine: ~70 opcodes (protocols 0-5) that push
literals, build containers, memoise values (PUT/BINPUT/LONG_BINPUT/MEMOIZE, read back with
GET/BINGET/LONG_BINGET), import globals (GLOBAL, STACK_GLOBAL, INST, EXT1/2/4) and call them
(REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ, BUILD via `__setstate__`, APPEND/SETITEM/ADDITEMS on
non-container objects). STOP ends one pickle; files may hold several back to back (legacy torch
saves five). Protocol 4 adds FRAME, protocol 5 out-of-band buffers.

Attack surface (attacks.md section 2): any importable callable can be called with attacker
arguments on load. Scanners are bypassed by hiding the import (memo indirection, computed
STACK_GLOBAL names, dotted attribute paths, EXT codes, Python 2 aliases), by hiding the call
(OBJ/INST/NEWOBJ/BUILD/`__setstate__` injection instead of REDUCE, a popped result), by parser
differentials (FRAME straddling, data after STOP, a pickle in front of a zip), by damage
(nullifAI: payload, then garbage) and by size (a 150 MB bytes field before the payload).

What is checked. The walker follows the opcode stream exactly as `_pickle.c` reads it: the
mark fence and stack-underflow rules, memo semantics, protocol-dependent name resolution,
`_compat_pickle` mapping, and the C unpickler's frame buffering (a fixed-size read that
straddles a frame end is re-read after the frame when the loader reads from a file; such a
stream is walked both ways). Any failure of an opcode is damage at its offset: the loader
stops there after running everything before it, and every finding so far is kept. Where
loaders differ (C or `pickle._Unpickler`, `encoding=`, `buffers=`, `persistent_load`), the walk
goes as far as the most permissive one (tests/oracle.py checks this against CPython's own
unpicklers). Every import is classified by `workers/pickle_policy.py`; every
call is recorded with its static arguments as evidence. Pure helpers used to compute names
(`codecs.decode(.., 'rot13')`, base64, `getattr` on a known global, `importlib.import_module`,
name resolvers) are folded so that the real target is judged. Bytes handed to a second-stage
loader (`pickle.loads`, `torch.storage._load_from_bytes`, after base64/hex decoding) and bytes
values that are themselves complete pickles are analysed recursively within the budget.
Large byte payloads are skipped by length and never read.

Not checked: what an allowed class does in its own `__setstate__` (the allow-list vouches for
it); values that only exist at run time (e.g. names read from the environment).

References: pickletools and `Modules/_pickle.c` (CPython 3.11); picklescan/fickling/modelscan
advisories; ReversingLabs nullifAI; JFrog CVE-2025-10155/10156/10157.

Rules
| id     | name                      | severity | CWE     |
|--------|---------------------------|----------|---------|
| PKL001 | dangerous-global          | error    | CWE-502 |
| PKL002 | unknown-callable          | warning  | CWE-502 |
| PKL003 | unknown-global            | info     | CWE-502 |
| PKL004 | malformed-stream          | warning  | CWE-20  |
| PKL005 | computed-import           | error    | CWE-502 |
| PKL006 | object-mutation-gadget    | error    | CWE-502 |
| PKL007 | extension-registry-import | warning  | CWE-502 |
| PKL008 | parser-differential       | error    | CWE-436 |
| PKL009 | trailing-data             | info     | CWE-436 |
| PKL010 | nested-pickle             | warning  | CWE-502 |
| PKL011 | blacklisted-global        | error    | CWE-502 |
| PKL012 | analysis-limit            | warning  | CWE-400 |
| PKL013 | computed-callable         | warning  | CWE-502 |
"""

from __future__ import annotations

import _compat_pickle
import base64
import binascii
import codecs
import contextlib
import io
import re
import struct
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from batchscan import rules
from batchscan.records import Finding, Severity
from batchscan.rules import Rule
from batchscan.workers import pickle_policy as policy
from batchscan.workers.base import (
    HEAD_BYTES,
    LimitExceeded,
    Readable,
    ScanContext,
    SliceStream,
    Source,
    dtype_code_size,
)

FORMAT = "pickle"

DANGEROUS_GLOBAL = rules.PKL001
UNKNOWN_CALLABLE = rules.PKL002
UNKNOWN_GLOBAL = rules.PKL003
MALFORMED = rules.PKL004
COMPUTED_IMPORT = rules.PKL005
MUTATION_GADGET = rules.PKL006
EXTENSION_IMPORT = rules.PKL007
PARSER_DIFFERENTIAL = rules.PKL008
TRAILING_DATA = rules.PKL009
NESTED_PICKLE = rules.PKL010
BLACKLISTED_GLOBAL = rules.PKL011
ANALYSIS_LIMIT = rules.PKL012

COMPUTED_CALLABLE = rules.PKL013

RULES: tuple[Rule, ...] = (
    DANGEROUS_GLOBAL, UNKNOWN_CALLABLE, UNKNOWN_GLOBAL, MALFORMED, COMPUTED_IMPORT,
    MUTATION_GADGET, EXTENSION_IMPORT, PARSER_DIFFERENTIAL, TRAILING_DATA, NESTED_PICKLE,
    BLACKLISTED_GLOBAL, ANALYSIS_LIMIT, COMPUTED_CALLABLE,
)

HIGHEST_PROTOCOL = 5
_CHUNK = 8 * 1024 * 1024  # bytes held in memory while walking a large stream
_INLINE_MAX = 1024 * 1024  # longer string/bytes payloads are skipped by length, not read
_MAX_LINE = 64 * 1024 * 1024
_CONTAINER_CAP = 64  # container items kept for evidence and gadget detection
_EVIDENCE_CHARS = 400
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C


# --- values on the emulated stack -----------------------------------------------------------
class Ref:
    """A resolved import: what `find_class(module, name)` would return."""

    __slots__ = ("module", "name", "offset")

    def __init__(self, module: str, name: str, offset: int):
        self.module = module
        self.name = name
        self.offset = offset

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


class ModuleRef:
    """A module object obtained at load time (`importlib.import_module('os')`)."""

    __slots__ = ("module",)

    def __init__(self, module: str):
        self.module = module


class Call:
    """The result of calling `func` with `args` (REDUCE, INST, OBJ, NEWOBJ, ...)."""

    __slots__ = ("args", "func", "kind", "offset", "setstate", "state")

    def __init__(self, func: object, args: object, offset: int, kind: str):
        self.func = func
        self.args = args
        self.offset = offset
        self.kind = kind
        self.setstate: object = None  # a callable injected as __setstate__ by a BUILD
        self.state: object = None  # the last BUILD state (numpy dtypes keep their size there)


class Blob:
    """A string or bytes payload too large to keep: only where it lies."""

    __slots__ = ("kind", "length", "offset")

    def __init__(self, kind: str, offset: int, length: int):
        self.kind = kind
        self.offset = offset
        self.length = length


class PDict(list):  # type: ignore[type-arg]
    """A pickled dict: its first `_CONTAINER_CAP` keys and values, flat (k0, v0, k1, v1...).

    A list subclass, because it is created once per pickled dict: cheap matters.
    """

    __slots__ = ()

    def add(self, key: object, value: object) -> None:
        if len(self) < 2 * _CONTAINER_CAP:
            self.append(key)
            self.append(value)

    def pairs(self) -> list[tuple[object, object]]:
        return list(zip(self[0::2], self[1::2], strict=False))


class PList(list):  # type: ignore[type-arg]
    """A pickled list, set or frozenset: its first `_CONTAINER_CAP` items."""

    __slots__ = ()

    def add_all(self, values: list[object]) -> None:
        room = _CONTAINER_CAP - len(self)
        if room > 0:
            self.extend(values[:room])


class Opaque:
    """A value we do not model (persistent ids, out-of-band buffers, extension results)."""

    __slots__ = ("label",)

    def __init__(self, label: str):
        self.label = label


class _Damage(Exception):
    def __init__(self, offset: int, reason: str):
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


# --- what one walk learns --------------------------------------------------------------------
@dataclass(slots=True)
class _Use:
    module: str
    name: str
    verdict: policy.Classification
    first_offset: int
    count: int = 0
    called: bool = False
    constructed: bool = False
    call_offset: int | None = None
    evidence: str | None = None
    calls: int = 0
    vetted_calls: int = 0  # calls whose arguments make them data-building (`_vetted_call`)
    # Function rebuild (`_rebuild_part`): the imports (Ref ids) and calls of this global that
    # only serve to rebuild a pickled function, and whether it was also used any other way.
    rebuild_refs: set[int] = field(default_factory=set)
    rebuild_calls: int = 0
    other_use: bool = False

    def only_rebuilds(self) -> bool:
        """Every import and every call of this global rebuilds a function: WARNING, not ERROR."""
        return (not self.other_use and self.rebuild_calls == self.calls
                and len(self.rebuild_refs) >= self.count and bool(self.rebuild_refs))


@dataclass(slots=True)
class _Walk:
    """Findings and facts of one stream (one or several concatenated pickles)."""

    uses: dict[tuple[str, str], _Use] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    end: int = 0
    pickles: int = 0
    opcodes: int = 0
    straddle: int | None = None
    joblib_arrays: int = 0
    values: list[object] = field(default_factory=list)  # each pickle's result (first few)
    storages: dict[str, tuple[str, int]] = field(default_factory=dict)  # torch: key -> type
    damage: int | None = None  # where the stream broke (the loader stops there)
    damage_reason: str = ""
    appended_zip: int | None = None  # a zip archive follows the last STOP here
    denied: bool = False  # some import so far is denied (function-rebuild accounting needed)
    code_built: bool = False  # some call so far rebuilt code (`_Walker.code_consumer` checks)
    rebuild_unsure: bool = False  # a structure too large to follow: no use is downgraded


Walk = _Walk  # what callers pass to `findings` to learn what the walk saw


def render(value: object, depth: int = 0) -> str:
    """Short, safe text for evidence: literal values, globals and nested calls."""
    if depth > 4:
        return "..."
    if isinstance(value, str):
        return repr(value[:200] + ("..." if len(value) > 200 else ""))
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value[:64])) + ("..." if len(value) > 64 else "")
    if isinstance(value, Ref):
        return value.qualname
    if isinstance(value, ModuleRef):
        return f"<module {value.module}>"
    if isinstance(value, Call):
        args = value.args
        inner = (
            ", ".join(render(a, depth + 1) for a in args)
            if isinstance(args, tuple)
            else render(args, depth + 1)
        )
        return f"{render(value.func, depth + 1)}({inner})"
    if isinstance(value, tuple):
        return "(" + ", ".join(render(v, depth + 1) for v in value[:8]) + ")"
    if isinstance(value, Blob):
        return f"<{value.kind} of {value.length} bytes at offset {value.offset}>"
    if isinstance(value, PDict):
        shown = ", ".join(
            f"{render(k, depth + 1)}: {render(v, depth + 1)}" for k, v in value.pairs()[:4]
        )
        return "{" + shown + (", ..." if len(value) > 8 else "") + "}"
    if isinstance(value, PList):
        return "[" + ", ".join(render(v, depth + 1) for v in value[:4]) + "]"
    if isinstance(value, Opaque):
        return f"<{value.label}>"
    return repr(value)[:100]


# --- reading the stream ----------------------------------------------------------------------
class _Reader:
    """A window over the stream: whole small inputs, 8 MiB chunks of big ones."""

    __slots__ = ("base", "buf", "eof", "limit", "stream")

    def __init__(self, stream: Readable, start: int, limit: int, data: bytes | None = None):
        self.stream = stream
        self.limit = limit  # absolute end of the readable region
        if data is not None:
            self.buf = data
            self.base = 0
            self.eof = True
        else:
            self.base = start
            self.buf = b""
            self.eof = False
            self.fill(start, 0)

    def fill(self, absolute: int, need: int) -> None:
        """Make `buf` start at `absolute` and hold at least `need` bytes if the data has them."""
        if self.eof and self.base <= absolute and absolute + need <= self.base + len(self.buf):
            return
        want = min(max(_CHUNK, need), max(0, self.limit - absolute))
        self.stream.seek(absolute)
        data = self.stream.read(want)
        self.buf = data
        self.base = absolute
        # A short read is the end too: decompressed members do not know their size.
        self.eof = len(data) < want or absolute + len(data) >= self.limit


def _decode_line_int(line: bytes) -> int:
    text = line.strip()
    if text.endswith(b"L"):
        text = text[:-1]
    return int(text, 0) if text[:2] in (b"0x", b"0X") else int(text)


def _string_line(line: bytes, offset: int) -> str:
    """Protocol-0 STRING: a quoted Python 2 repr, decoded like `load_string` (ASCII)."""
    text = line.rstrip()
    if len(text) < 2 or text[0] != text[-1] or text[:1] not in (b"'", b'"'):
        raise _Damage(offset, "the STRING opcode argument must be quoted")
    raw = codecs.escape_decode(text[1:-1])[0]
    return raw.decode("latin-1")


# --- folding pure helpers so computed names resolve --------------------------------------
_TEXT_CODECS = {"rot13", "rot_13"}
_BYTES_DECODERS = {
    ("base64", "b64decode"),
    ("base64", "standard_b64decode"),
    ("base64", "urlsafe_b64decode"),
    ("base64", "b32decode"),
    ("base64", "b16decode"),
    ("base64", "a85decode"),
    ("base64", "b85decode"),
    ("base64", "decodebytes"),
    ("binascii", "a2b_base64"),
    ("binascii", "unhexlify"),
    ("binascii", "a2b_hex"),
}
_NAME_RESOLVERS = {
    ("pkgutil", "resolve_name"),
    ("logging.config", "_resolve"),
    ("torch._utils", "_import_dotted_name"),
    ("pydoc", "locate"),
    ("numpy.compat", "npy_load_module"),
}
_IMPORTERS = {
    ("importlib", "import_module"),
    ("builtins", "__import__"),
    ("importlib", "__import__"),
    ("importlib._bootstrap", "_gcd_import"),
}


def _literal(value: object) -> object:
    """The static value of a stack item when it is a plain literal or a folded call."""
    if isinstance(value, Call):
        return fold(value)
    return value


def fold(call: Call) -> object:
    """Evaluate calls of pure helpers statically; anything else stays a `Call`."""
    func = call.func
    if isinstance(func, Call):
        func = fold(func)
    args = call.args if isinstance(call.args, tuple) else ()
    if not isinstance(func, Ref):
        return call
    key = (func.module, func.name)
    vals = [_literal(a) for a in args]
    try:
        if key in _BYTES_DECODERS and vals and isinstance(vals[0], (str, bytes)):
            module = base64 if func.module == "base64" else binascii
            decoded: bytes = getattr(module, func.name)(vals[0])
            return decoded
        if key in {("codecs", "decode"), ("_codecs", "decode")} and len(vals) >= 2:
            data, codec = vals[0], vals[1]
            if isinstance(codec, str) and isinstance(data, (str, bytes)):
                name = codec.lower().replace("-", "_")
                if name in _TEXT_CODECS and isinstance(data, str):
                    return codecs.decode(data, "rot13")
                if name in {"base64", "base_64", "hex", "hex_codec", "base64_codec"}:
                    raw = data.encode("latin-1") if isinstance(data, str) else data
                    return codecs.decode(raw, name.replace("_codec", ""))
        if key in {("builtins", "bytes.fromhex")} and vals and isinstance(vals[0], str):
            return bytes.fromhex(vals[0])
        if key in _IMPORTERS and vals and isinstance(vals[0], str):
            return ModuleRef(vals[0])
        if key in _NAME_RESOLVERS and vals and isinstance(vals[0], str):
            target = vals[0].replace(":", ".")
            if "." in target:
                mod, _, name = target.rpartition(".")
                return Ref(mod, name, call.offset)
            return ModuleRef(target)
        if key == ("builtins", "getattr") and len(vals) >= 2 and isinstance(vals[1], str):
            owner = vals[0]
            if isinstance(owner, Ref):
                return Ref(owner.module, f"{owner.name}.{vals[1]}", call.offset)
            if isinstance(owner, ModuleRef):
                return Ref(owner.module, vals[1], call.offset)
        if key in {("operator", "getitem"), ("_operator", "getitem")} and len(vals) >= 2:
            owner, item = vals[0], vals[1]
            if isinstance(item, str) and isinstance(owner, Call):
                inner = _literal(owner)
                if isinstance(inner, Call) and isinstance(inner.func, Ref):
                    ref = inner.func
                    iargs = inner.args if isinstance(inner.args, tuple) else ()
                    if ref.qualname == "builtins.vars" and iargs:
                        module_value = _literal(iargs[0])
                        if isinstance(module_value, ModuleRef):
                            return Ref(module_value.module, item, call.offset)
        if key in {("builtins", "str"), ("builtins", "bytes")} and len(vals) == 1 and isinstance(
            vals[0], (str, bytes)
        ):
            return vals[0]
        if key == ("builtins", "str.join") and len(vals) == 2:
            sep, parts = vals
            if isinstance(sep, str) and isinstance(parts, PList):
                items = [_literal(p) for p in parts]
                if all(isinstance(p, str) for p in items) and len(items) < _CONTAINER_CAP:
                    return sep.join(str(p) for p in items)
    except (ValueError, TypeError, binascii.Error, UnicodeError, LookupError):
        return call
    return call


# --- the walker ------------------------------------------------------------------------------
class _Walker:
    """Walks one stream from `start`; `divergent` follows the C file loader's FRAME reading."""

    def __init__(
        self, reader: _Reader, ctx: ScanContext, walk: _Walk, *, divergent: bool, budget: int
    ):
        self.r = reader
        self.ctx = ctx
        self.walk = walk
        self.divergent = divergent
        self.budget = budget
        self.nested: list[tuple[bytes, int, str]] = []
        self.lenient = False  # ignore FRAME lengths that overrun the data (salvage pass)
        self.sniffing = False  # reject names no importer accepts (content sniffing)
        self.binary_text = False  # sniffing met a text argument with control characters
        # Function rebuild bookkeeping (`account`): `getattr(dill._dill, '_setattr', setattr)`
        # results waiting to be seen filling a cell, and module `__dict__` imports handed to
        # a function builder as its globals (they must not also sit in the memo or be DUP'd).
        self.pending_setattr: dict[int, tuple[Call, list[Ref]]] = {}
        self.namespaces: list[Ref] = []
        self.duplicated: set[int] = set()

    # classification bookkeeping ---------------------------------------------------------
    def use(self, module: str, name: str, offset: int) -> Ref:
        key = (module, name)
        entry = self.walk.uses.get(key)
        if entry is None:
            entry = _Use(module, name, _classify(module, name), offset)
            self.walk.uses[key] = entry
            if entry.verdict.verdict is policy.Verdict.DENY:
                self.walk.denied = True
        entry.count += 1
        return Ref(module, name, offset)

    def called(self, func: object, args: object, offset: int, kind: str) -> Call:
        """Record a call of `func` (the heart of the analysis) and return its result."""
        call = Call(func, args, offset, kind)
        resolved = func
        if isinstance(resolved, Call):
            resolved = fold(resolved)
        if self.walk.denied:
            self.account(func, resolved, args, call)
        if self.walk.code_built and isinstance(args, tuple) and args:
            self.code_consumer(resolved, args, call)
        if isinstance(resolved, Call) and isinstance(args, tuple):
            # attrgetter('system')(os) and methodcaller('system', cmd)(os) call os.system
            getter = resolved.func
            gargs = resolved.args if isinstance(resolved.args, tuple) else ()
            if isinstance(getter, Ref) and gargs and len(args) == 1:
                attr = _literal(gargs[0])
                owner = _literal(args[0])
                if getter.name in ("attrgetter", "methodcaller") and isinstance(attr, str):
                    target: Ref | None = None
                    if isinstance(owner, ModuleRef):
                        target = Ref(owner.module, attr, offset)
                    elif isinstance(owner, Ref):
                        target = Ref(owner.module, f"{owner.name}.{attr}", offset)
                    if target is not None and getter.name == "attrgetter":
                        return Call(target, (), offset, "attribute")
                    if target is not None:
                        return self.called(target, gargs[1:], offset, kind)
        if isinstance(resolved, Ref):
            entry = self.walk.uses.get((resolved.module, resolved.name))
            if entry is None:  # a name produced by folding (getattr, resolvers)
                entry = _Use(resolved.module, resolved.name,
                             _classify(resolved.module, resolved.name), offset, count=1)
                self.walk.uses[(resolved.module, resolved.name)] = entry
            if kind in ("newobj", "newobj_ex"):
                entry.constructed = True
            else:
                entry.called = True
            entry.calls += 1
            if _vetted_call(resolved, call):
                entry.vetted_calls += 1
                if qual_is_getattr(resolved):
                    # `getattr(<global>, 'name')` imports `<global>.name`: judged as that
                    attribute = fold(call)
                    if isinstance(attribute, Ref):
                        self.use(attribute.module, attribute.name, offset)
            if entry.verdict.code:
                self.walk.code_built = True
            if entry.verdict.code and resolved.name in (
                "_class_setstate", "_make_skeleton_class", "_create_type"
            ):
                # dill's `_create_type(metaclass, name, bases, dict)` is `type(...)` with the
                # class dict: a base's `__init_subclass__` runs as the subclass is created.
                cargs = args if isinstance(args, tuple) else ()
                hooks = _load_time_hooks(tuple(_literal(a) for a in cargs[1:]))
                if hooks:
                    self.flag(DANGEROUS_GLOBAL, f"a class rebuilt from pickled code defines "
                              f"{', '.join(hooks[:6])}, which run while loading", offset,
                              evidence=render(call)[:_EVIDENCE_CHARS])
                if resolved.name != "_class_setstate" and cargs and (
                    _rebuilt_code(cargs[0]) is not None
                ):
                    self.flag(DANGEROUS_GLOBAL, "a class is created with a metaclass rebuilt "
                              "from pickled code: its methods run while loading", offset,
                              evidence=render(call)[:_EVIDENCE_CHARS])
            if entry.call_offset is None:
                entry.call_offset = offset
                entry.evidence = render(call)[:_EVIDENCE_CHARS]
            qual = (resolved.module, resolved.name)
            if qual in (("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"),
                        ("copyreg", "__newobj__"), ("copyreg", "__newobj_ex__")):
                cls = args[0] if isinstance(args, tuple) and args else None
                if isinstance(cls, Ref):
                    inner = self.walk.uses.get((cls.module, cls.name))
                    if inner is not None:
                        inner.constructed = True
            if entry.verdict.loader or qual in policy.SECOND_STAGE_LOADERS:
                self.second_stage(args, offset, resolved.qualname)
        elif isinstance(resolved, ModuleRef):
            self.flag(MUTATION_GADGET, f"calls module object `{resolved.module}`", offset)
        elif isinstance(resolved, Call) and resolved.kind == "attribute":
            return self.called(resolved.func, args, offset, kind)
        elif (builder := _rebuilt_code(resolved)) is not None and not (
            kind in ("newobj", "newobj_ex") and builder.rsplit(".", 1)[-1] in _CLASS_BUILDERS
        ):
            # NEWOBJ of a rebuilt class is `cls.__new__(cls)`: its own `__new__` is a
            # load-time hook, flagged where the class is rebuilt.
            self.flag(DANGEROUS_GLOBAL, f"calls code rebuilt from the pickle (by `{builder}`) "
                      "while loading", offset, evidence=render(call)[:_EVIDENCE_CHARS])
        elif isinstance(resolved, Call) and isinstance(resolved.func, Ref) and (
            resolved.func.module, resolved.func.name) in policy.TYPE_LOADERS and _vetted_call(
                resolved.func, resolved):
            pass  # `_load_type('bytes')()`: constructs a known type
        elif self.walk.code_built and _rebuilt_code(resolved) is None and (
            builder := _code_within((resolved,))
        ) is not None:
            # `partial(<rebuilt function>, ...)()`: the rebuilt code runs now.
            self.flag(DANGEROUS_GLOBAL, f"calls a value holding code rebuilt from the pickle "
                      f"(by `{builder}`) while loading", offset,
                      evidence=render(call)[:_EVIDENCE_CHARS])
        elif not isinstance(resolved, Opaque):
            # Calling something that is not an import: a value produced at load time.
            self.flag(COMPUTED_CALLABLE, f"calls a value computed at load time: "
                      f"{render(resolved)[:200]}", offset,
                      evidence=render(call)[:_EVIDENCE_CHARS])
        return call

    def code_consumer(self, resolved: object, args: tuple[object, ...], call: Call) -> None:
        """A function or class rebuilt from pickled code, handed to a call while loading.

        Rebuilt code runs when called (WARNING by the severity contract), and nothing in the
        pickle calls it as long as it only goes to the rebuild helpers themselves, into
        containers, or into `functools.partial`. Handed to anything else, the callee may call
        it right away: `functools.reduce(f, [1, 2])`, `iter(f, None)` consumed by `tuple`,
        `itertools.accumulate`, `cmp_to_key(f)` objects then sorted, a library function that
        applies its argument. Which callees call their arguments is not knowable by name, so
        every other consumer is ERROR.
        """
        if isinstance(resolved, Ref):
            qual = (resolved.module, resolved.name)
            if _classify(resolved.module, resolved.name).code or qual in _PARTIALS or (
                qual in _CELL_SETTERS and _fills_cell(args)
            ):
                return
            # An object of a rebuilt class handed to a callee: `len(obj)`, `sorted([a, b])`,
            # `list(obj)` run its `__len__`/`__lt__`/`__iter__` now (holders only iterate
            # their direct argument: an object inside a list given to them is only kept).
            holder = qual in _CODE_HOLDERS
            cls = _rebuilt_instance(args, direct=holder)
            if cls is not None:
                self.flag(DANGEROUS_GLOBAL, f"passes an object of a class rebuilt from the "
                          f"pickle (by `{cls}`) to `{resolved.qualname}`, which can run its "
                          "methods while loading" if cls is not _UNFOLLOWED else
                          f"passes {_UNFOLLOWED} to `{resolved.qualname}` after code was "
                          "rebuilt from this pickle: it may hold that code, and the callee "
                          "can run it while loading", call.offset,
                          evidence=render(call)[:_EVIDENCE_CHARS])
                return
            if holder:
                return
        builder = _code_within(args)
        if builder is None or (
            call.kind in ("newobj", "newobj_ex") and _rebuilt_code(resolved) is not None
        ):
            return
        target = resolved.qualname if isinstance(resolved, Ref) else render(resolved)[:120]
        self.flag(DANGEROUS_GLOBAL, f"passes code rebuilt from the pickle (by `{builder}`) to "
                  f"`{target}`, which can call it while loading" if builder is not _UNFOLLOWED
                  else f"passes {_UNFOLLOWED} to `{target}` after code was rebuilt from this "
                  "pickle: it may hold that code, and the callee can call it while loading",
                  call.offset, evidence=render(call)[:_EVIDENCE_CHARS])

    # function rebuild: graded by use ----------------------------------------------------
    def account(self, func: object, resolved: object, args: object, call: Call) -> None:
        """Note which denied imports this call uses, and whether only to rebuild a function.

        dill rebuilds a function as `_create_function(code, <module>.__dict__, ...)` and fills
        its closure with `getattr(dill._dill, '_setattr', builtins.setattr)(_create_cell(..),
        'cell_contents', value)`. Those imports are denied for what they can do elsewhere (a
        module namespace handed to a getter, `setattr` of `__reduce__` on an object); used
        only this way they build a function that runs when called, which is WARNING by the
        severity contract. Any other use of the same global keeps it ERROR (`_Use.other_use`).
        """
        fargs = args if isinstance(args, tuple) else ()
        uses = self.walk.uses
        pending = self.pending_setattr.pop(id(func), None) if isinstance(func, Call) else None
        if pending is not None and pending[0] is not func:
            pending = None
        if _function_builder(resolved) and len(fargs) > 1 and _module_namespace(fargs[1]):
            namespace = fargs[1]
            assert isinstance(namespace, Ref)
            self._excuse(namespace)
            self.namespaces.append(namespace)
            self._note_other(fargs[:1] + fargs[2:])
            return
        if _setattr_lookup(func, fargs):
            refs = [item for item in (func, *fargs) if isinstance(item, Ref)]
            self.pending_setattr[id(call)] = (call, refs)
            return
        if _fills_cell(fargs):
            if pending is not None:
                for ref in pending[1]:
                    self._excuse(ref)
                getattr_use = uses.get(("builtins", "getattr"))
                if getattr_use is not None:
                    getattr_use.rebuild_calls += 1
                if isinstance(resolved, Ref):  # the `_setattr` the lookup resolved to
                    entry = uses.get((resolved.module, resolved.name))
                    if entry is None:
                        entry = _Use(resolved.module, resolved.name,
                                     _classify(resolved.module, resolved.name), call.offset,
                                     count=1)
                        uses[(resolved.module, resolved.name)] = entry
                    entry.rebuild_calls += 1
                    entry.rebuild_refs.add(id(call))
                self._note_other(fargs[2:])
                return
            if isinstance(func, Ref) and (func.module, func.name) in _CELL_SETTERS:
                self._excuse(func)
                entry = uses.get((func.module, func.name))
                if entry is not None:
                    entry.rebuild_calls += 1
                self._note_other(fargs[2:])
                return
        if pending is not None:
            self._note_other(pending[1])
        self._note_other((func, *fargs))

    def _excuse(self, ref: Ref) -> None:
        entry = self.walk.uses.get((ref.module, ref.name))
        if entry is not None:
            entry.rebuild_refs.add(id(ref))
            if id(ref) in self.duplicated:
                entry.other_use = True

    def _note_other(self, values: Sequence[object]) -> None:
        """Denied imports used as anything but a function rebuild part (containers and call
        arguments too, `_REBUILD_SCAN_DEPTH` deep). Each shared object is visited once, and a
        structure beyond `_REBUILD_SCAN_NODES` gives up the grading: nothing is downgraded."""
        uses = self.walk.uses
        seen: set[int] = set()
        todo: list[tuple[object, int]] = [(value, 0) for value in values]
        while todo:
            value, depth = todo.pop()
            if isinstance(value, Ref):
                entry = uses.get((value.module, value.name))
                if entry is not None and entry.verdict.verdict is policy.Verdict.DENY:
                    entry.other_use = True
                continue
            if id(value) in seen:
                continue
            if depth >= _REBUILD_SCAN_DEPTH:
                deeper = _items(value)
                if deeper and any(isinstance(item, Ref) or not isinstance(item, _LEAVES)
                                  for item in deeper):
                    self.walk.rebuild_unsure = True  # a denied import may sit deeper
                continue
            if isinstance(value, (tuple, PList, PDict)):
                items: Sequence[object] = value
            elif isinstance(value, Call) and _rebuilt_code(value) is not None:
                continue  # a rebuilt function or cell: its parts were judged at its own call
            elif isinstance(value, Call):
                inner = value.args if isinstance(value.args, tuple) else ()
                pend = self.pending_setattr.get(id(value))
                items = (value.func, *inner, *(pend[1] if pend and pend[0] is value else ()))
            else:
                continue
            seen.add(id(value))
            if len(seen) > _REBUILD_SCAN_NODES:
                self.walk.rebuild_unsure = True
                return
            todo.extend((item, depth + 1) for item in items)

    def settle(self, memo: dict[int, object]) -> None:
        """End of one pickle: a module namespace kept in the memo may have been used again."""
        if not self.namespaces:
            return
        held = {id(value) for value in memo.values()}
        for ref in self.namespaces:
            if id(ref) in held:
                entry = self.walk.uses.get((ref.module, ref.name))
                if entry is not None:
                    entry.other_use = True
        self.namespaces.clear()

    def second_stage(self, args: object, offset: int, loader: str) -> None:
        if not isinstance(args, tuple) or not args:
            return
        payload = _literal(args[0])
        if isinstance(payload, str):
            payload = payload.encode("latin-1", "replace")
        if isinstance(payload, bytes):
            self.nested.append((payload, offset, loader))
        elif isinstance(payload, Blob):
            if payload.length <= self.ctx.limits.max_nested_pickle_bytes:
                data = self.r_read(payload.offset, payload.length)
                self.nested.append((data, offset, loader))
            else:
                self.flag(ANALYSIS_LIMIT, f"payload passed to {loader} is too large to "
                          f"analyse ({payload.length} bytes)", offset)

    def encoded_pickle(self, text: str, offset: int) -> None:
        """A base64 (`gA...`) or hex (`800...`) string that decodes to a whole pickle."""
        try:
            if text[:2] == "80":
                raw = bytes.fromhex(text.strip())
            else:
                raw = base64.b64decode(text.strip(), validate=True)
        except (ValueError, binascii.Error):
            return
        if len(raw) >= 8 and _is_complete_pickle(raw):
            self.nested.append((raw, offset, ""))

    def r_read(self, offset: int, length: int) -> bytes:
        stream = self.r.stream
        here = stream.tell()
        stream.seek(offset)
        data = stream.read(length)
        stream.seek(here)
        return data

    def flag(self, rule: Rule, message: str, offset: int, *,
             severity: Severity | None = None, evidence: str | None = None) -> None:
        self.walk.findings.append(
            rule.finding(message, severity=severity, member=self.ctx.member, offset=offset,
                         evidence=evidence)
        )

    # the opcode loop --------------------------------------------------------------------
    def run(self, start: int) -> int:
        """Walk one pickle from `start`; return the offset after its STOP."""
        machine = _Machine(self, start)
        try:
            return machine.run()
        finally:
            self.settle(machine.memo)

    # helpers of the loop ----------------------------------------------------------------
    def text_line(self, text: bytes, offset: int) -> bytes:
        """When sniffing, note a UNICODE/PERSID line that is not text (random binary data
        parses that way for a while); the loader accepts it, so the walk goes on."""
        if self.sniffing and _CONTROL.search(text):
            self.binary_text = True
        return text

    def resolve(self, module: str, name: str, proto: int, offset: int) -> Ref:
        """`find_class`: Python 2 names are mapped under protocol < 3, like the unpickler."""
        if self.sniffing and not (_IDENTIFIER.match(module) and _IDENTIFIER.match(name)):
            # No importer accepts it (random data parses that way for a while): not evidence
            # of a pickle, but the loader goes on, and so does the trial walk.
            self.binary_text = True
            return Ref(module, name, offset)
        if proto < 3:
            mapped = _compat_pickle.NAME_MAPPING.get((module, name))
            if mapped is not None:
                module, name = mapped
            else:
                module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        pattern = self.ctx.blacklisted(f"{module}.{name}")
        if pattern is not None:
            self.flag(BLACKLISTED_GLOBAL, f"global `{module}.{name}` matches blacklist pattern "
                      f"{pattern!r}", offset)
        return self.use(module, name, offset)

    def stack_global(self, module: object, name: object, proto: int, offset: int) -> Ref:
        module_v, name_v = _literal(module), _literal(name)
        computed = isinstance(module, Call) or isinstance(name, Call)
        if not isinstance(module_v, str) or not isinstance(name_v, str):
            if computed:
                self.flag(COMPUTED_IMPORT,
                          f"STACK_GLOBAL imports a name computed at load time: "
                          f"{render(module)[:150]} . {render(name)[:150]}", offset)
                return Ref("<computed>", "<computed>", offset)
            raise _Damage(offset, "STACK_GLOBAL requires str operands")
        if computed:
            self.flag(COMPUTED_IMPORT,
                      f"STACK_GLOBAL name is computed at load time and resolves to "
                      f"`{module_v}.{name_v}`", offset,
                      evidence=f"{render(module)} . {render(name)}"[:_EVIDENCE_CHARS])
        # find_class maps Python 2 names under protocol < 3 whichever opcode asked.
        return self.resolve(module_v, name_v, proto, offset)

    def build(self, inst: object, state: object, offset: int) -> tuple[int, bool, bool] | None:
        """BUILD: `inst.__setstate__(state)` if it has one, else a `__dict__`/slot update.

        Returns (array bytes, nested pickle, alignment byte) when `inst` is a joblib
        NumpyArrayWrapper, whose array data joblib's unpickler reads right after the BUILD.
        """
        if isinstance(inst, (Ref, ModuleRef)):
            self.flag(MUTATION_GADGET,
                      f"BUILD sets attributes on the imported object {render(inst)}",
                      offset, evidence=render(state)[:_EVIDENCE_CHARS])
            return None
        if self.walk.denied and not _rebuilt_code(inst):
            self._note_other((state,))  # a denied import handed to `__setstate__`
        if isinstance(inst, Call) and inst.setstate is not None:
            self.called(inst.setstate, (state,), offset, "setstate")
            return None
        if isinstance(inst, Call):
            inst.state = state
            func = inst.func
            if isinstance(func, Ref) and (func.module, func.name) == _JOBLIB_WRAPPER:
                return _joblib_array(state, offset)
        dicts: list[PDict] = []
        if isinstance(state, PDict):
            dicts.append(state)
        elif isinstance(state, tuple) and len(state) == 2:
            dicts.extend(part for part in state if isinstance(part, PDict))
        for d in dicts:
            for key, value in d.pairs():
                # Only a value that can be called is a hook: a string `__module__` or
                # `__doc__` (fastai's losses copy them from the wrapped class) is inert.
                if not isinstance(value, (Ref, ModuleRef, Call, Opaque)):
                    continue
                if key == "__setstate__" or (isinstance(key, str) and key in
                                             policy.DANGEROUS_ATTRIBUTES - {"__dict__"}):
                    later = ("a later BUILD calls it" if key == "__setstate__"
                             else "Python calls it on later use of the object")
                    self.flag(MUTATION_GADGET,
                              f"BUILD installs `{key}` = {render(value)[:150]} on an object; "
                              f"{later}", offset)
                    if isinstance(inst, Call) and key == "__setstate__":
                        inst.setstate = value
        return None

    def mutation(self, target: object, method: str, items: list[object], offset: int) -> None:
        """SETITEM/APPEND/ADDITEMS on something that is not a plain container calls a method."""
        if isinstance(target, (Ref, ModuleRef)):
            self.flag(MUTATION_GADGET,
                      f"calls `{method}` on the imported object {render(target)}", offset,
                      evidence=render(tuple(items[:4]))[:_EVIDENCE_CHARS])


# --- the unpickler's stack machine ------------------------------------------------------------
class _Machine:
    """One pickle, PROTO to STOP: the state of `_pickle.c`'s Unpickler and one handler per opcode.

    The state is the value stack; the MARK positions, the last of which is the fence no opcode
    may pop below; the memo; the protocol (it decides Python 2 name mapping); and the read
    position with the end of the current FRAME. Each `op_<name>` method executes the opcode of
    that pickletools name and says in its docstring what CPython does; `_DISPATCH` maps opcode
    bytes to them. `run` executes the hottest data opcodes inline and hands every other
    opcode, and every inline opcode near a frame or buffer edge, to its handler.
    """

    __slots__ = ("blen", "buf", "fence", "frame_end", "marks", "memo", "pos", "proto", "r",
                 "stack", "w")

    def __init__(self, walker: _Walker, start: int):
        self.w = walker
        self.r = walker.r
        self.buf = self.r.buf
        self.blen = len(self.buf)
        self.pos = start - self.r.base  # into `buf`; `r.base + pos` is the stream offset
        self.stack: list[object] = []
        self.marks: list[int] = []
        self.fence = 0  # the last mark: pops below it are a stack underflow
        self.memo: dict[int, object] = {}
        self.proto = 0
        self.frame_end = -1  # absolute end of the current FRAME, -1 outside frames

    def run(self) -> int:
        """Walk to STOP; return the offset after it.

        The loop keeps the hot state in locals and executes inline, in measured order of
        frequency, the opcodes that dominate data pickles: BINGET, SHORT_BINUNICODE and
        BINUNICODE (with the MEMOIZE/BINPUT that follows), MEMOIZE, MARK, TUPLE, EMPTY_DICT,
        EMPTY_LIST, SETITEMS, APPENDS, BINFLOAT, LONG_BINPUT, BININT2, BININT1, BINPUT,
        LONG_BINGET, BININT, TUPLE2, TUPLE3, NEWTRUE, NEWFALSE, TUPLE1 and NONE. An inline
        block only runs when its argument lies wholly before `fast_end` and its stack and memo
        rules hold; otherwise the opcode falls through to its handler, which applies every
        rule. Each inline block does what its `op_<name>` handler does
        (tests/test_pickle_dispatch.py runs both ways). Every opcode counts against the opcode
        budget, which is checked at each handled opcode (every stream ends in one: STOP, or
        damage); an inline opcode consumes at least one byte, so the overshoot is bounded by
        the buffer.
        """
        r = self.r
        buf = self.buf
        pos = self.pos
        blen = self.blen
        stack = self.stack
        marks = self.marks
        memo = self.memo
        fence = self.fence
        ops = 0
        budget = self.w.budget
        dispatch = _DISPATCH
        decode_prefixes = _ENCODED_PICKLE_PREFIXES
        uint4 = _UINT4
        int4 = _INT4
        double = _DOUBLE
        # Arguments that end at or before `fast_end` lie inside the buffer and cannot straddle
        # a FRAME end, so the inline blocks read them directly; handlers recompute `fast_end`.
        fast_end = blen if self.frame_end < 0 else min(blen, self.frame_end - r.base)
        guard = blen if r.eof else blen - 16
        while True:
            if pos >= guard:
                if not r.eof:
                    self.refill(pos, 16)
                    buf = self.buf
                    blen = self.blen
                    pos = self.pos
                    fast_end = (blen if self.frame_end < 0
                                else min(blen, self.frame_end - r.base))
                    guard = blen if r.eof else blen - 16
                if pos >= blen:
                    raise _Damage(r.base + pos, "stream ends without STOP")
            op = buf[pos]
            pos += 1
            ops += 1

            # --- inline blocks: plain data opcodes, no frame or buffer edge in reach ----
            # Ordered by measured frequency; each does what its `op_<name>` handler does. A
            # pushed string or container is usually memoised by the very next opcode, which
            # is folded in here to save a turn.
            if op == 0x68:  # BINGET
                if pos < fast_end:
                    got = memo.get(buf[pos], _MISSING)
                    if got is not _MISSING:
                        stack.append(got)
                        pos += 1
                        continue
            elif op == 0x8C or op == 0x58:  # SHORT_BINUNICODE, BINUNICODE
                if op == 0x8C:
                    start = pos + 1
                    end = start + buf[pos] if pos < fast_end else fast_end + 1
                else:
                    start = pos + 4
                    end = start + uint4(buf, pos)[0] if start <= fast_end else fast_end + 1
                if end <= fast_end and end - start < _INLINE_MAX:
                    try:
                        text = buf[start:end].decode("utf-8", "surrogatepass")
                    except UnicodeDecodeError:
                        raise _Damage(r.base + pos - 1,
                                      "invalid UTF-8 in a unicode string") from None
                    if end - start > 15 and text[:2] in decode_prefixes:
                        self.w.encoded_pickle(text, r.base + pos - 1)
                    pos = end
                    stack.append(text)
                    if pos < fast_end:
                        nxt = buf[pos]
                        if nxt == 0x94:
                            memo[len(memo)] = text
                            pos += 1
                        elif nxt == 0x71 and pos + 1 < fast_end:
                            memo[buf[pos + 1]] = text
                            pos += 2
                    continue
            elif op == 0x94:  # MEMOIZE
                if len(stack) > fence:
                    memo[len(memo)] = stack[-1]
                    continue
            elif op == 0x28:  # MARK
                fence = len(stack)
                marks.append(fence)
                continue
            elif op == 0x74:  # TUPLE (4+ items: records)
                if marks:
                    mark = marks.pop()
                    fence = marks[-1] if marks else 0
                    tup = tuple(stack[mark:])
                    del stack[mark:]
                    stack.append(tup)
                    continue
            elif op == 0x7D or op == 0x5D:  # EMPTY_DICT, EMPTY_LIST
                fresh: list[object] = PDict() if op == 0x7D else PList()
                stack.append(fresh)
                if pos < fast_end:
                    nxt = buf[pos]
                    if nxt == 0x94:
                        memo[len(memo)] = fresh
                        pos += 1
                    elif nxt == 0x71 and pos + 1 < fast_end:
                        memo[buf[pos + 1]] = fresh
                        pos += 2
                continue
            elif op == 0x75 or op == 0x65:  # SETITEMS, APPENDS
                if marks:
                    mark = marks[-1]
                    below = marks[-2] if len(marks) > 1 else 0
                    if mark > below:
                        target = stack[mark - 1]
                        if op == 0x75:
                            if type(target) is PDict and (len(stack) - mark) % 2 == 0:
                                room = 2 * _CONTAINER_CAP - len(target)
                                if room > 0:
                                    target.extend(stack[mark : mark + room])
                                del stack[mark:]
                                marks.pop()
                                fence = below
                                continue
                        elif type(target) is PList:
                            if len(target) < _CONTAINER_CAP:
                                target.extend(stack[mark : mark + _CONTAINER_CAP - len(target)])
                            del stack[mark:]
                            marks.pop()
                            fence = below
                            continue
            elif op == 0x47:  # BINFLOAT
                if pos + 8 <= fast_end:
                    stack.append(double(buf, pos)[0])
                    pos += 8
                    continue
            elif op == 0x72:  # LONG_BINPUT
                if pos + 4 <= fast_end and len(stack) > fence:
                    memo[uint4(buf, pos)[0]] = stack[-1]
                    pos += 4
                    continue
            elif op == 0x4D:  # BININT2
                if pos + 2 <= fast_end:
                    stack.append(buf[pos] | buf[pos + 1] << 8)
                    pos += 2
                    continue
            elif op == 0x4B:  # BININT1
                if pos < fast_end:
                    stack.append(buf[pos])
                    pos += 1
                    continue
            elif op == 0x71:  # BINPUT
                if pos < fast_end and len(stack) > fence:
                    memo[buf[pos]] = stack[-1]
                    pos += 1
                    continue
            elif op == 0x6A:  # LONG_BINGET
                if pos + 4 <= fast_end:
                    got = memo.get(uint4(buf, pos)[0], _MISSING)
                    if got is not _MISSING:
                        stack.append(got)
                        pos += 4
                        continue
            elif op == 0x4A:  # BININT
                if pos + 4 <= fast_end:
                    stack.append(int4(buf, pos)[0])
                    pos += 4
                    continue
            elif op == 0x86:  # TUPLE2
                if len(stack) - 2 >= fence:
                    second = stack.pop()
                    stack[-1] = (stack[-1], second)
                    continue
            elif op == 0x87:  # TUPLE3
                if len(stack) - 3 >= fence:
                    third = stack.pop()
                    second = stack.pop()
                    stack[-1] = (stack[-1], second, third)
                    continue
            elif op == 0x88 or op == 0x89:  # NEWTRUE, NEWFALSE
                stack.append(op == 0x88)
                continue
            elif op == 0x85:  # TUPLE1
                if len(stack) > fence:
                    stack[-1] = (stack[-1],)
                    continue
            elif op == 0x4E:  # NONE
                stack.append(None)
                continue

            # --- everything else: the opcode's handler, with frame, buffer and stack rules ---
            if ops > budget:
                raise LimitExceeded("pickle opcodes on the checked path", budget, ops)
            self.pos = pos
            self.fence = fence
            try:
                dispatch[op](self, r.base + pos - 1)
            except (_Damage, LimitExceeded, MemoryError, RecursionError):
                raise
            except Exception as exc:
                # CPython stops at any failure of an opcode (a bad literal, escape or
                # index); everything before it has run.
                raise _Damage(r.base + pos - 1, f"{type(exc).__name__} in the "
                              f"{_NAMES.get(op, 'invalid')} opcode argument") from None
            if op == 0x2E:  # STOP ends this pickle
                self.w.walk.opcodes += ops
                return r.base + self.pos
            buf = self.buf
            blen = self.blen
            pos = self.pos
            fence = self.fence
            fast_end = blen if self.frame_end < 0 else min(blen, self.frame_end - r.base)
            guard = blen if r.eof else blen - 16

    # reading arguments, with the C loader's buffer and frame behaviour ------------------------
    def refill(self, at: int, need: int) -> None:
        """Move the reader's window to `buf[at]` with at least `need` bytes if there are any."""
        r = self.r
        absolute = r.base + at
        r.fill(absolute, need)
        self.buf = r.buf
        self.blen = len(r.buf)
        self.pos = absolute - r.base

    def take(self, n: int, offset: int) -> bytes:
        """A fixed-size argument, with the C loader's frame behaviour."""
        r = self.r
        pos = self.pos
        frame_end = self.frame_end
        if frame_end >= 0:
            here = r.base + pos
            if here < frame_end < here + n:
                walker = self.w
                if not walker.divergent:
                    if walker.walk.straddle is None:
                        walker.walk.straddle = offset
                else:
                    pos = frame_end - r.base  # C drops the buffered partial read
            if r.base + pos >= frame_end:
                self.frame_end = -1
        if pos + n > self.blen:
            if r.eof:
                raise _Damage(offset, "stream ends inside an opcode argument")
            self.refill(pos, n)
            pos = self.pos
            if pos + n > self.blen:
                raise _Damage(offset, "stream ends inside an opcode argument")
        self.pos = pos + n
        return self.buf[pos:pos + n]

    def line(self, offset: int) -> bytes:
        """A newline-terminated text argument (protocol 0), without the newline."""
        r = self.r
        nl = self.buf.find(b"\n", self.pos)
        while nl < 0:
            if r.eof:
                raise _Damage(offset, "stream ends inside a text argument")
            if self.blen - self.pos >= _MAX_LINE:
                raise LimitExceeded("text opcode argument bytes", _MAX_LINE, self.blen - self.pos)
            self.refill(self.pos, min(_MAX_LINE, 2 * max(self.blen - self.pos, _CHUNK)))
            nl = self.buf.find(b"\n", self.pos)
        frame_end = self.frame_end
        if frame_end >= 0:
            here = r.base + self.pos
            if here < frame_end < r.base + nl + 1:
                walker = self.w
                if not walker.divergent:
                    if walker.walk.straddle is None:
                        walker.walk.straddle = offset
                else:
                    self.pos = frame_end - r.base
                    self.frame_end = -1
                    return self.line(offset)
            if r.base + nl + 1 >= frame_end:
                self.frame_end = -1
        data = self.buf[self.pos:nl]
        self.pos = nl + 1
        return data

    def payload(self, n: int, offset: int, kind: str, straddle_safe: bool) -> object:
        """A counted string/bytes payload: kept when small, skipped by length when big."""
        if n < 0:
            raise _Damage(offset, "negative byte count")
        r = self.r
        if n <= _INLINE_MAX:
            if straddle_safe and self.frame_end >= 0:
                # C reads bytes payloads with readinto(): no divergence at a frame end.
                saved = self.frame_end
                self.frame_end = -1
                data = self.take(n, offset)
                self.frame_end = saved if r.base + self.pos < saved else -1
            else:
                data = self.take(n, offset)
            if kind == "str":
                return data.decode("utf-8", "surrogatepass")
            if kind == "latin1":
                return data.decode("latin-1")
            return data
        absolute = r.base + self.pos
        if absolute + n > r.limit:
            raise _Damage(offset, "a payload runs past the end of the data")
        blob = Blob("str" if kind != "bytes" else "bytes", absolute, n)
        if self.frame_end >= 0 and absolute + n >= self.frame_end:
            self.frame_end = -1
        if self.pos + n <= self.blen:
            self.pos += n
        else:
            self.refill(self.pos + n, 16)
        return blob

    # the stack, marks and memo -----------------------------------------------------------
    def pop_item(self, offset: int) -> object:
        if len(self.stack) <= self.fence:
            raise _Damage(offset, "unpickling stack underflow")
        return self.stack.pop()

    def top(self, offset: int) -> object:
        """The top of the stack, which must lie above the fence (`stack[-1]` in CPython)."""
        if len(self.stack) <= self.fence:
            raise _Damage(offset, "unpickling stack underflow")
        return self.stack[-1]

    def pop_mark(self, offset: int) -> list[object]:
        """CPython's `marker()`: pop the last mark and the items above it; the fence drops."""
        marks = self.marks
        if not marks:
            raise _Damage(offset, "could not find MARK")
        mark = marks.pop()
        self.fence = marks[-1] if marks else 0
        items = self.stack[mark:]
        del self.stack[mark:]
        return items

    def memoised(self, offset: int) -> object:
        """The value a PUT-family opcode stores, checked before its argument is read."""
        if len(self.stack) <= self.fence:
            raise _Damage(offset, "memoising with an empty stack")
        return self.stack[-1]

    def push_memo(self, key: int, offset: int) -> None:
        if key not in self.memo:
            raise _Damage(offset, f"memo value not found at index {key}")
        self.stack.append(self.memo[key])

    def push_tuple(self, n: int, offset: int) -> None:
        stack = self.stack
        if len(stack) - n < self.fence:
            raise _Damage(offset, "unpickling stack underflow")
        tup = tuple(stack[-n:])
        del stack[-n:]
        stack.append(tup)

    def set_items(self, items: list[object], offset: int) -> None:
        """`stack[-1][k] = v` for each pair: a dict keeps them, anything else is a call."""
        target = self.top(offset)
        if isinstance(target, PDict):
            for i in range(0, min(len(items), 2 * _CONTAINER_CAP), 2):
                target.add(items[i], items[i + 1])
        elif items:  # CPython returns early on an empty batch: nothing is called
            self.w.mutation(target, "__setitem__", items, offset)

    def add_items(self, items: list[object], method: str, offset: int) -> None:
        """Items for the list or set on top of the stack; anything else has `method` called."""
        target = self.top(offset)
        if isinstance(target, PList):
            target.add_all(items)
        elif items:  # CPython returns early on an empty batch: nothing is called
            self.w.mutation(target, method, items, offset)

    # opcode handlers, in pickletools order ------------------------------------------------
    # protocol 0 text literals and memo
    def op_int(self, offset: int) -> None:
        """INT: a decimal line; `00`/`01` are False/True (how Python 2.2 pickled bools)."""
        digits = self.line(offset)
        if digits in (b"00", b"01"):
            self.stack.append(digits == b"01")
        else:
            self.push_line_int(digits, offset)

    def op_long(self, offset: int) -> None:
        """LONG: a decimal line, with Python 2's trailing `L`."""
        self.push_line_int(self.line(offset), offset)

    def push_line_int(self, digits: bytes, offset: int) -> None:
        try:
            self.stack.append(_decode_line_int(digits))
        except ValueError as exc:
            raise _Damage(offset, "invalid literal in INT/LONG") from exc

    def op_string(self, offset: int) -> None:
        """STRING: a quoted, escaped Python 2 str repr on one line."""
        self.stack.append(_string_line(self.line(offset), offset))

    def op_unicode(self, offset: int) -> None:
        """UNICODE: a raw-unicode-escape line."""
        self.stack.append(self.w.text_line(self.line(offset), offset).decode("raw_unicode_escape"))

    def op_float(self, offset: int) -> None:
        """FLOAT: a float repr on one line."""
        try:
            self.stack.append(float(self.line(offset)))
        except ValueError as exc:
            raise _Damage(offset, "invalid literal in FLOAT") from exc

    # binary literals
    def op_binint(self, offset: int) -> None:
        """BININT: a 4-byte signed little-endian int."""
        self.stack.append(_INT4(self.take(4, offset))[0])

    def op_binint1(self, offset: int) -> None:
        """BININT1: a 1-byte unsigned int."""
        self.stack.append(self.take(1, offset)[0])

    def op_binint2(self, offset: int) -> None:
        """BININT2: a 2-byte unsigned little-endian int."""
        self.stack.append(struct.unpack_from("<H", self.take(2, offset))[0])

    def op_long1(self, offset: int) -> None:
        """LONG1: a 1-byte length, then that many bytes of little-endian two's complement."""
        self.push_long(self.take(1, offset)[0], offset)

    def op_long4(self, offset: int) -> None:
        """LONG4: as LONG1 with a 4-byte signed length (negative is an error)."""
        self.push_long(_INT4(self.take(4, offset))[0], offset)

    def push_long(self, n: int, offset: int) -> None:
        if n < 0:
            raise _Damage(offset, "LONG pickle has negative byte count")
        if n > _INLINE_MAX:
            self.stack.append(self.payload(n, offset, "bytes", False))
        else:
            self.stack.append(int.from_bytes(self.take(n, offset), "little", signed=True))

    def op_binfloat(self, offset: int) -> None:
        """BINFLOAT: an 8-byte big-endian IEEE double."""
        self.stack.append(_DOUBLE(self.take(8, offset))[0])

    # strings and bytes
    def op_binstring(self, offset: int) -> None:
        """BINSTRING: a 4-byte signed length, then a Python 2 str (decoded by the loader)."""
        self.stack.append(self.payload(_INT4(self.take(4, offset))[0], offset, "latin1", False))

    def op_short_binstring(self, offset: int) -> None:
        """SHORT_BINSTRING: a 1-byte length, then a Python 2 str."""
        self.stack.append(self.payload(self.take(1, offset)[0], offset, "latin1", False))

    def op_binbytes(self, offset: int) -> None:
        """BINBYTES: a 4-byte unsigned length, then bytes."""
        self.push_bytes(_UINT4(self.take(4, offset))[0], offset)

    def op_short_binbytes(self, offset: int) -> None:
        """SHORT_BINBYTES: a 1-byte length, then bytes."""
        self.push_bytes(self.take(1, offset)[0], offset)

    def op_binbytes8(self, offset: int) -> None:
        """BINBYTES8: an 8-byte length, then bytes."""
        self.push_bytes(struct.unpack_from("<Q", self.take(8, offset))[0], offset)

    def op_bytearray8(self, offset: int) -> None:
        """BYTEARRAY8: an 8-byte length, then a bytearray's bytes."""
        self.push_bytes(struct.unpack_from("<Q", self.take(8, offset))[0], offset)

    def push_bytes(self, n: int, offset: int) -> None:
        """A bytes value; one that is a whole pickle is kept for recursive analysis."""
        value = self.payload(n, offset, "bytes", True)
        if isinstance(value, bytes) and len(value) >= 8 and _is_complete_pickle(value):
            self.w.nested.append((value, offset, ""))
        self.stack.append(value)

    def op_binunicode(self, offset: int) -> None:
        """BINUNICODE: a 4-byte unsigned length, then UTF-8 (surrogatepass)."""
        self.push_unicode(_UINT4(self.take(4, offset))[0], offset)

    def op_short_binunicode(self, offset: int) -> None:
        """SHORT_BINUNICODE: a 1-byte length, then UTF-8."""
        self.push_unicode(self.take(1, offset)[0], offset)

    def op_binunicode8(self, offset: int) -> None:
        """BINUNICODE8: an 8-byte length, then UTF-8."""
        self.push_unicode(struct.unpack_from("<Q", self.take(8, offset))[0], offset)

    def push_unicode(self, n: int, offset: int) -> None:
        """A str value; a base64 or hex one that decodes to a pickle is analysed too."""
        try:
            decoded = self.payload(n, offset, "str", False)
        except UnicodeDecodeError as exc:
            raise _Damage(offset, "invalid UTF-8 in a unicode string") from exc
        if n >= 16 and isinstance(decoded, str) and decoded[:2] in _ENCODED_PICKLE_PREFIXES:
            self.w.encoded_pickle(decoded, offset)
        self.stack.append(decoded)

    # constants
    def op_none(self, offset: int) -> None:
        """NONE: push None."""
        self.stack.append(None)

    def op_newtrue(self, offset: int) -> None:
        """NEWTRUE: push True."""
        self.stack.append(True)

    def op_newfalse(self, offset: int) -> None:
        """NEWFALSE: push False."""
        self.stack.append(False)

    # containers
    def op_empty_list(self, offset: int) -> None:
        """EMPTY_LIST: push []."""
        self.stack.append(PList())

    def op_append(self, offset: int) -> None:
        """APPEND: pop a value and `stack[-1].append(value)` (any object's `append`)."""
        self.add_items([self.pop_item(offset)], "extend/append", offset)

    def op_appends(self, offset: int) -> None:
        """APPENDS: pop to the mark and `stack[-1].extend(items)` (or `append` each)."""
        self.add_items(self.pop_mark(offset), "extend/append", offset)

    def op_list(self, offset: int) -> None:
        """LIST: replace the items above the mark with a list of them."""
        self.stack.append(PList(self.pop_mark(offset)[:_CONTAINER_CAP]))

    def op_empty_tuple(self, offset: int) -> None:
        """EMPTY_TUPLE: push ()."""
        self.stack.append(())

    def op_tuple(self, offset: int) -> None:
        """TUPLE: replace the items above the mark with a tuple of them."""
        self.stack.append(tuple(self.pop_mark(offset)))

    def op_tuple1(self, offset: int) -> None:
        """TUPLE1: replace the top item with a 1-tuple of it."""
        self.push_tuple(1, offset)

    def op_tuple2(self, offset: int) -> None:
        """TUPLE2: replace the top two items with a 2-tuple."""
        self.push_tuple(2, offset)

    def op_tuple3(self, offset: int) -> None:
        """TUPLE3: replace the top three items with a 3-tuple."""
        self.push_tuple(3, offset)

    def op_empty_dict(self, offset: int) -> None:
        """EMPTY_DICT: push {}."""
        self.stack.append(PDict())

    def op_dict(self, offset: int) -> None:
        """DICT: replace the key/value pairs above the mark with a dict of them."""
        items = self.pop_mark(offset)
        if len(items) % 2:
            raise _Damage(offset, "odd number of items for DICT")
        d = PDict()
        for i in range(0, min(len(items), 2 * _CONTAINER_CAP), 2):
            d.add(items[i], items[i + 1])
        self.stack.append(d)

    def op_setitem(self, offset: int) -> None:
        """SETITEM: pop value and key, `stack[-1][key] = value` (any object's `__setitem__`)."""
        value = self.pop_item(offset)
        key = self.pop_item(offset)
        self.set_items([key, value], offset)

    def op_setitems(self, offset: int) -> None:
        """SETITEMS: pop the pairs above the mark and set each on `stack[-1]`."""
        items = self.pop_mark(offset)
        if len(items) % 2:
            raise _Damage(offset, "odd number of items for SETITEMS")
        self.set_items(items, offset)

    def op_empty_set(self, offset: int) -> None:
        """EMPTY_SET: push set()."""
        self.stack.append(PList())

    def op_additems(self, offset: int) -> None:
        """ADDITEMS: pop the items above the mark and `stack[-1].add` each."""
        self.add_items(self.pop_mark(offset), "add", offset)

    def op_frozenset(self, offset: int) -> None:
        """FROZENSET: replace the items above the mark with a frozenset of them."""
        self.stack.append(PList(self.pop_mark(offset)[:_CONTAINER_CAP]))

    # stack manipulation
    def op_pop(self, offset: int) -> None:
        """POP: discard the top item, or the last mark when it sits at the top."""
        marks = self.marks
        if marks and marks[-1] == len(self.stack):
            marks.pop()
            self.fence = marks[-1] if marks else 0
        else:
            self.pop_item(offset)

    def op_dup(self, offset: int) -> None:
        """DUP: push the top item again."""
        top = self.top(offset)
        if isinstance(top, Ref):
            self.w.duplicated.add(id(top))
        self.stack.append(top)

    def op_mark(self, offset: int) -> None:
        """MARK: remember the stack height; it becomes the fence."""
        self.fence = len(self.stack)
        self.marks.append(self.fence)

    def op_pop_mark(self, offset: int) -> None:
        """POP_MARK: discard the items above the mark, and the mark."""
        self.pop_mark(offset)

    # memo
    def op_get(self, offset: int) -> None:
        """GET: push memo[decimal line] (base 10: `0x1` stops the loader)."""
        self.push_memo(_memo_line(self.line(offset), offset), offset)

    def op_binget(self, offset: int) -> None:
        """BINGET: push memo[1-byte index]."""
        self.push_memo(self.take(1, offset)[0], offset)

    def op_long_binget(self, offset: int) -> None:
        """LONG_BINGET: push memo[4-byte unsigned index]."""
        self.push_memo(_UINT4(self.take(4, offset))[0], offset)

    def op_put(self, offset: int) -> None:
        """PUT: memo[decimal line] = stack[-1]."""
        value = self.memoised(offset)
        self.memo[_memo_key(_memo_line(self.line(offset), offset), offset)] = value

    def op_binput(self, offset: int) -> None:
        """BINPUT: memo[1-byte index] = stack[-1]."""
        value = self.memoised(offset)
        self.memo[self.take(1, offset)[0]] = value

    def op_long_binput(self, offset: int) -> None:
        """LONG_BINPUT: memo[4-byte unsigned index] = stack[-1] (C reads it unsigned)."""
        value = self.memoised(offset)
        self.memo[_UINT4(self.take(4, offset))[0]] = value

    def op_memoize(self, offset: int) -> None:
        """MEMOIZE: memo[len(memo)] = stack[-1]."""
        value = self.memoised(offset)
        self.memo[len(self.memo)] = value

    # extension registry, imports and calls
    def op_ext1(self, offset: int) -> None:
        """EXT1: push the global copyreg's extension registry holds for a 1-byte code."""
        self.push_extension(int.from_bytes(self.take(1, offset), "little"), offset)

    def op_ext2(self, offset: int) -> None:
        """EXT2: as EXT1 with a 2-byte code."""
        self.push_extension(int.from_bytes(self.take(2, offset), "little"), offset)

    def op_ext4(self, offset: int) -> None:
        """EXT4: as EXT1 with a 4-byte signed code."""
        self.push_extension(int.from_bytes(self.take(4, offset), "little", signed=True), offset)

    def push_extension(self, code: int, offset: int) -> None:
        self.w.flag(EXTENSION_IMPORT,
                    f"imports through copyreg extension code {code}; the target is "
                    "whatever the loading process registered", offset)
        self.stack.append(Opaque(f"extension {code}"))

    def op_global(self, offset: int) -> None:
        """GLOBAL: `find_class(module line, name line)`."""
        self.stack.append(self.import_lines(offset))

    def op_stack_global(self, offset: int) -> None:
        """STACK_GLOBAL: pop name and module (both str) and push `find_class(module, name)`."""
        name = self.pop_item(offset)
        module = self.pop_item(offset)
        self.stack.append(self.w.stack_global(module, name, self.proto, offset))

    def import_lines(self, offset: int) -> Ref:
        """The module and name lines of GLOBAL and INST, resolved like `find_class`."""
        try:
            module = self.line(offset).decode("utf-8")
            try:
                name = self.line(offset).decode("utf-8")
            except _Damage as damage:
                # At the end of the data pickle._Unpickler drops the last byte as if it were
                # the newline and imports that name before it stops.
                rest = self.buf[self.pos:]
                if self.r.eof and len(rest) > 1:
                    self.w.resolve(module, rest[:-1].decode("utf-8"), self.proto, offset)
                raise damage
        except UnicodeDecodeError as exc:
            raise _Damage(offset, "GLOBAL/INST names are not valid UTF-8") from exc
        return self.w.resolve(module, name, self.proto, offset)

    def op_reduce(self, offset: int) -> None:
        """REDUCE: pop args and a callable; push `callable(*args)`.

        C requires a tuple; pickle._Unpickler unpacks any iterable, and the walk goes on as
        the more permissive loader does.
        """
        args = _star_args(self.pop_item(offset))
        func = self.pop_item(offset)
        self.stack.append(self.w.called(func, args, offset, "reduce"))

    def op_build(self, offset: int) -> None:
        """BUILD: pop state; `stack[-1].__setstate__(state)`, or update its `__dict__`/slots.

        joblib's unpickler reads a NumpyArrayWrapper's array data (or a nested pickle) right
        after its BUILD: that region is skipped (or walked) and the walk resumes after it.
        """
        state = self.pop_item(offset)
        array = self.w.build(self.top(offset), state, offset)
        if array is None:
            return
        nbytes, nested, aligned = array
        r = self.r
        walk = self.w.walk
        here = r.base + self.pos
        if aligned:
            pad = self.w.r_read(here, 1)
            if not pad:
                raise _Damage(offset, "joblib array padding runs past the end")
            here += 1 + pad[0]
        if nested:
            walk.joblib_arrays += 1
            here = self.w.run(here)
        elif here + nbytes > r.limit:
            raise _Damage(offset, "joblib array data runs past the end")
        else:
            walk.joblib_arrays += 1
            here += nbytes
        r.fill(here, 16)
        self.buf = r.buf
        self.blen = len(r.buf)
        self.pos = here - r.base
        self.frame_end = -1

    def op_inst(self, offset: int) -> None:
        """INST: `find_class(module line, name line)(*items above the mark)`."""
        ref = self.import_lines(offset)
        self.stack.append(self.w.called(ref, tuple(self.pop_mark(offset)), offset, "inst"))

    def op_obj(self, offset: int) -> None:
        """OBJ: pop the items above the mark: `cls, *args`; push `cls(*args)`."""
        items = self.pop_mark(offset)
        if not items:
            raise _Damage(offset, "OBJ without a class")
        self.stack.append(self.w.called(items[0], tuple(items[1:]), offset, "obj"))

    def op_newobj(self, offset: int) -> None:
        """NEWOBJ: pop args and cls; push `cls.__new__(cls, *args)` (any iterable in Python)."""
        args = _star_args(self.pop_item(offset))
        cls = self.pop_item(offset)
        self.stack.append(self.w.called(cls, args, offset, "newobj"))

    def op_newobj_ex(self, offset: int) -> None:
        """NEWOBJ_EX: pop kwargs, args and cls; push `cls.__new__(cls, *args, **kwargs)`."""
        kwargs = self.pop_item(offset)
        args = self.pop_item(offset)
        cls = self.pop_item(offset)
        self.stack.append(self.w.called(cls, (args, kwargs), offset, "newobj_ex"))

    # framing, protocol, end
    def op_proto(self, offset: int) -> None:
        """PROTO: the protocol version (at most HIGHEST_PROTOCOL)."""
        self.proto = self.take(1, offset)[0]
        if self.proto > HIGHEST_PROTOCOL:
            raise _Damage(offset, f"unsupported pickle protocol: {self.proto}")

    def op_stop(self, offset: int) -> None:
        """STOP: pop the unpickled value; `run` returns after it."""
        value = self.pop_item(offset)
        walk = self.w.walk
        if len(walk.values) < 8:
            walk.values.append(value)
        walk.pickles += 1

    def op_frame(self, offset: int) -> None:
        """FRAME: an 8-byte length; the C loader reads that many bytes ahead in one go."""
        r = self.r
        n = struct.unpack_from("<Q", self.take(8, offset))[0]
        end = r.base + self.pos + n
        if end > r.limit and not self.w.lenient:
            raise _Damage(offset, _FRAME_OVERRUN)
        self.frame_end = end if end <= r.limit else -1

    # persistent ids and out-of-band buffers
    def op_persid(self, offset: int) -> None:
        """PERSID: `persistent_load(ASCII line)`."""
        text = self.w.text_line(self.line(offset), offset)
        self.stack.append(Opaque(f"persistent {text[:80]!r}"))

    def op_binpersid(self, offset: int) -> None:
        """BINPERSID: pop a pid and push `persistent_load(pid)` (torch: a storage tuple)."""
        pid = self.pop_item(offset)
        storages = self.w.walk.storages
        if (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[2], str) and len(storages) < 1_000_000):
            kind = pid[1].name if isinstance(pid[1], Ref) else "?"
            numel = pid[4] if isinstance(pid[4], int) else -1
            storages[pid[2]] = (kind, numel)
        self.stack.append(Opaque(f"persistent {render(pid)[:80]}"))

    def op_next_buffer(self, offset: int) -> None:
        """NEXT_BUFFER: push the next out-of-band buffer passed to the loader."""
        self.stack.append(Opaque("out-of-band buffer"))

    def op_readonly_buffer(self, offset: int) -> None:
        """READONLY_BUFFER: make the buffer on top of the stack read-only."""
        self.top(offset)

    def op_invalid(self, offset: int) -> None:
        """A byte that is no opcode: the unpickler stops."""
        raise _Damage(offset, f"invalid opcode 0x{self.buf[self.pos - 1]:02x}")


def _star_args(value: object) -> tuple[object, ...]:
    """`*value` as pickle._Unpickler spreads it: a tuple or list item by item, else whole."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, PList):
        return tuple(value)
    return (Opaque(f"*{render(value)[:60]}"),)


def _memo_line(line: bytes, offset: int) -> int:
    """A PUT/GET argument: `int(line)` in both loaders (base 10, underscores, blanks)."""
    if not line:
        raise _Damage(offset, "empty memo index")
    try:
        return int(line)
    except ValueError:
        raise _Damage(offset, f"invalid memo index {line[:20]!r}") from None


def _memo_key(value: int, offset: int) -> int:
    if value < 0:
        raise _Damage(offset, "negative memo index")
    return value


# Opcode byte -> handler; `tests/test_pickle_dispatch.py` checks it against pickletools.
_HANDLERS = {
    0x28: _Machine.op_mark,
    0x29: _Machine.op_empty_tuple,
    0x2E: _Machine.op_stop,
    0x30: _Machine.op_pop,
    0x31: _Machine.op_pop_mark,
    0x32: _Machine.op_dup,
    0x42: _Machine.op_binbytes,
    0x43: _Machine.op_short_binbytes,
    0x46: _Machine.op_float,
    0x47: _Machine.op_binfloat,
    0x49: _Machine.op_int,
    0x4A: _Machine.op_binint,
    0x4B: _Machine.op_binint1,
    0x4C: _Machine.op_long,
    0x4D: _Machine.op_binint2,
    0x4E: _Machine.op_none,
    0x50: _Machine.op_persid,
    0x51: _Machine.op_binpersid,
    0x52: _Machine.op_reduce,
    0x53: _Machine.op_string,
    0x54: _Machine.op_binstring,
    0x55: _Machine.op_short_binstring,
    0x56: _Machine.op_unicode,
    0x58: _Machine.op_binunicode,
    0x5D: _Machine.op_empty_list,
    0x61: _Machine.op_append,
    0x62: _Machine.op_build,
    0x63: _Machine.op_global,
    0x64: _Machine.op_dict,
    0x65: _Machine.op_appends,
    0x67: _Machine.op_get,
    0x68: _Machine.op_binget,
    0x69: _Machine.op_inst,
    0x6A: _Machine.op_long_binget,
    0x6C: _Machine.op_list,
    0x6F: _Machine.op_obj,
    0x70: _Machine.op_put,
    0x71: _Machine.op_binput,
    0x72: _Machine.op_long_binput,
    0x73: _Machine.op_setitem,
    0x74: _Machine.op_tuple,
    0x75: _Machine.op_setitems,
    0x7D: _Machine.op_empty_dict,
    0x80: _Machine.op_proto,
    0x81: _Machine.op_newobj,
    0x82: _Machine.op_ext1,
    0x83: _Machine.op_ext2,
    0x84: _Machine.op_ext4,
    0x85: _Machine.op_tuple1,
    0x86: _Machine.op_tuple2,
    0x87: _Machine.op_tuple3,
    0x88: _Machine.op_newtrue,
    0x89: _Machine.op_newfalse,
    0x8A: _Machine.op_long1,
    0x8B: _Machine.op_long4,
    0x8C: _Machine.op_short_binunicode,
    0x8D: _Machine.op_binunicode8,
    0x8E: _Machine.op_binbytes8,
    0x8F: _Machine.op_empty_set,
    0x90: _Machine.op_additems,
    0x91: _Machine.op_frozenset,
    0x92: _Machine.op_newobj_ex,
    0x93: _Machine.op_stack_global,
    0x94: _Machine.op_memoize,
    0x95: _Machine.op_frame,
    0x96: _Machine.op_bytearray8,
    0x97: _Machine.op_next_buffer,
    0x98: _Machine.op_readonly_buffer,
}
_DISPATCH = tuple(_HANDLERS.get(code, _Machine.op_invalid) for code in range(256))

_MISSING = object()
_NAMES = {code: handler.__name__.removeprefix("op_").upper() for code, handler in _HANDLERS.items()}
_JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


def _dtype_itemsize(dtype: object) -> tuple[int, bool] | None:
    """(itemsize, has objects) of a pickled `numpy.dtype(code, ...)` call plus its state."""
    if not isinstance(dtype, Call) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None
    code = dtype.args[0]
    state = dtype.state
    if isinstance(state, tuple) and len(state) >= 6 and isinstance(state[5], int) and (
        state[5] > 0
    ):
        return state[5], False
    return dtype_code_size(code) if isinstance(code, str) else None


def _joblib_array(state: object, offset: int) -> tuple[int, bool, bool]:
    if not isinstance(state, PDict):
        raise _Damage(offset, "joblib array wrapper without a state dict")
    fields = {k: v for k, v in state.pairs() if isinstance(k, str)}
    shape = fields.get("shape")
    size = _dtype_itemsize(fields.get("dtype"))
    if not isinstance(shape, tuple) or size is None or not all(
        isinstance(n, int) and n >= 0 for n in shape
    ):
        raise _Damage(offset, "joblib array wrapper with an unreadable shape or dtype")
    count = 1
    for n in shape:
        count *= n
    aligned = fields.get("numpy_array_alignment_bytes") is not None
    itemsize, has_objects = size
    return count * itemsize, has_objects, aligned and not has_objects
_UINT4 = struct.Struct("<I").unpack_from
_INT4 = struct.Struct("<i").unpack_from
_DOUBLE = struct.Struct(">d").unpack_from


_SNIFF_BYTES = 1024
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_OUT_OF_DATA = frozenset({
    "stream ends inside an opcode argument", "stream ends inside a text argument",
    "stream ends without STOP", "a payload runs past the end of the data",
})

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_FRAME_OVERRUN = "FRAME runs past the end of the data"

_CLASSIFY_CACHE: dict[tuple[str, str], policy.Classification] = {}


def _classify(module: str, name: str) -> policy.Classification:
    key = (module, name)
    hit = _CLASSIFY_CACHE.get(key)
    if hit is None:
        if len(_CLASSIFY_CACHE) > 65536:
            _CLASSIFY_CACHE.clear()
        hit = _CLASSIFY_CACHE[key] = policy.classify(module, name)
    return hit


# base64 of b"\x80\x02".."\x80\x05" starts with "gA"; hex with "80".
_ENCODED_PICKLE_PREFIXES = frozenset({"gA", "80"})


def _is_complete_pickle(data: bytes) -> bool:
    """Cheap test for bytes that are a whole pickle (PROTO 2-5 ... STOP)."""
    return data[0] == 0x80 and 2 <= data[1] <= HIGHEST_PROTOCOL and data[-1] == 0x2E


# --- public entry points ---------------------------------------------------------------------
_PROTO01_START = frozenset(
    b"(]})NIJKLMFGSTUVXcdilpqrtBCP\x80\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x95\x96\x97"
)


def sniff(head: bytes, name: str) -> bool:
    """A pickle is what the unpickler can run: a trial walk of the head must reach STOP,
    parse its first 256 bytes cleanly, or import something before it breaks (nullifAI):
    a stream that reaches an import or a call is a pickle however it ends.

    Random bytes (tensor storages, compressed data) that merely start like a pickle fail
    within a few bytes without importing anything.
    """
    if not head or head[0] not in _PROTO01_START:
        return False
    # The decision is made within the first few hundred bytes; walk no more than 1 KiB,
    # unless the very first opcode's argument is longer than that.
    cut = len(head) > _SNIFF_BYTES or len(head) >= HEAD_BYTES
    walk = _Walk()
    if _trial_walk(head[:_SNIFF_BYTES], cut=cut, walk=walk):
        return True
    return walk.damage == 0 and len(head) > _SNIFF_BYTES and _trial_walk(
        head, cut=len(head) >= HEAD_BYTES)


def first_argument_overruns(head: bytes) -> bool:
    """Whether the first opcode's argument runs past `head` (a long first line): the unpickler
    may still import something after it, which only a full walk can tell."""
    if not head or head[0] not in _PROTO01_START:
        return False
    walk = _Walk()
    _trial_walk(head, cut=True, walk=walk)
    return walk.damage == 0 and walk.damage_reason in _OUT_OF_DATA


def imports_something(head: bytes) -> bool:
    """Whether a trial walk of `head` meets an import (GLOBAL, STACK_GLOBAL, INST...)."""
    walk = _Walk()
    reader = _Reader(io.BytesIO(head), 0, len(head), head)
    walker = _Walker(reader, ScanContext(), walk, divergent=False, budget=100_000)
    walker.sniffing = True
    walker.lenient = True
    with contextlib.suppress(_Damage, LimitExceeded, RecursionError, MemoryError):
        walker.run(0)
    return bool(walk.uses)


def _trial_walk(head: bytes, cut: bool = False, walk: _Walk | None = None) -> bool:
    walk = walk if walk is not None else _Walk()
    if _trial(head, cut, walk, divergent=False):
        return True
    # A fixed-size argument straddling a FRAME end: the C loader reading a file runs
    # another program, which may be the one that imports.
    return walk.straddle is not None and _trial(head, cut, _Walk(), divergent=True)


def _trial(head: bytes, cut: bool, walk: _Walk, *, divergent: bool) -> bool:
    reader = _Reader(io.BytesIO(head), 0, len(head), head)
    walker = _Walker(reader, ScanContext(), walk, divergent=divergent, budget=100_000)
    walker.sniffing = True
    walker.lenient = True
    try:
        walker.run(0)
    except _Damage as damage:
        walk.damage = damage.offset
        walk.damage_reason = damage.reason
        # Text and random bytes fail early and import nothing; a cut or damaged pickle
        # parses for a while or has already imported or called something. When the head is
        # only a prefix of a longer input, running out of it is no evidence against a pickle
        # (a 150 MB bytes field starts in the head and ends far beyond it).
        if walk.uses or any(f.rule_id != EXTENSION_IMPORT.rule_id for f in walk.findings):
            return True
        if walker.binary_text:
            return False
        cut_short = cut and damage.reason in _OUT_OF_DATA
        return damage.offset >= 256 or (cut_short and damage.offset >= 2)
    except (LimitExceeded, RecursionError, MemoryError):
        return bool(walk.uses)
    return True


def findings(
    stream: Readable, size: int, ctx: ScanContext, *, start: int = 0, data: bytes | None = None,
    max_pickles: int | None = None, walk: _Walk | None = None,
) -> Iterator[Finding]:
    """The findings of `analyse`, then those of a container that follows the pickles.

    Nothing found is ever lost: when the analysis fails, what the walk had found so far is
    yielded before the failure propagates (an `error` record keeps every finding); the
    pickles' findings are yielded before a trailing container is opened.
    """
    walk = walk if walk is not None else _Walk()
    try:
        found, _ = analyse(stream, size, ctx, start=start, data=data, max_pickles=max_pickles,
                           walk=walk)
    except BaseException:
        yield from _use_findings(walk, ctx)
        yield from walk.findings
        raise
    yield from found
    yield from _trailing(stream, size, ctx, walk)


def _trailing(stream: Readable, size: int, ctx: ScanContext, walk: _Walk) -> Iterator[Finding]:
    """A zip after the pickles is what zipfile and numpy.load see: scan it too, after a
    clean STOP (a polyglot) or after damage (a pickle-looking prefix in front of a zip)."""
    if size >= 1 << 62:
        return
    at = walk.appended_zip
    if at is None and walk.damage is not None:
        at = _zip_after(stream, size, walk.damage)
        if at is not None:
            yield TRAILING_DATA.finding(
                f"a zip archive at offset {at} follows the damaged pickle stream; both were "
                "scanned", severity=Severity.WARNING, member=ctx.member, offset=at)
    if at is None:
        return
    rest = Source(SliceStream(stream, at, size - at), size - at, "appended.zip")
    yield from ctx.scan_member(rest, f"<appended@{at}>")


def _zip_after(stream: Readable, size: int, offset: int) -> int | None:
    """The first zip local header at or after `offset` when the data ends like a zip."""
    tail_at = max(offset, size - 65_557)
    if b"PK\x05\x06" not in stream_peek(stream, tail_at, size - tail_at):
        return None
    here = offset
    while here < size:
        chunk = stream_peek(stream, here, 1 << 20)
        found = chunk.find(b"PK\x03\x04")
        if found >= 0:
            return here + found
        if len(chunk) < 1 << 20:
            return None
        here += len(chunk) - 3
    return None


def analyse(
    stream: Readable, size: int, ctx: ScanContext, *, start: int = 0, data: bytes | None = None,
    max_pickles: int | None = None, walk: _Walk | None = None,
) -> tuple[list[Finding], _Walk]:
    """Analyse the pickles in `stream[start:size]` (all, or the first `max_pickles`).

    Returns the findings and what the walk learned (`end` is the offset after the last STOP,
    `appended_zip` and `damage` where `findings` looks for a trailing container).
    """
    walk = walk if walk is not None else _Walk()
    findings = _analyse_into(stream, size, ctx, start, data, walk, divergent=False,
                             max_pickles=max_pickles)
    if any(f.rule_id == MALFORMED.rule_id and _FRAME_OVERRUN in f.message for f in findings):
        # Edited pickles often keep a stale FRAME length; show what the frame hides.
        salvage = _Walk()
        more = _analyse_into(stream, size, ctx, start, data, salvage, divergent=False,
                             lenient=True, max_pickles=max_pickles)
        seen = {(f.rule_id, f.message) for f in findings}
        findings.extend(f for f in more if (f.rule_id, f.message) not in seen)
    if walk.straddle is not None:
        # The C loader reading a file re-reads after the frame end: walk that program too.
        other = _Walk()
        more = _analyse_into(stream, size, ctx, start, data, other, divergent=True,
                             max_pickles=max_pickles)
        findings.append(PARSER_DIFFERENTIAL.finding(
            "a fixed-size opcode argument straddles a FRAME end: pickle.loads() and "
            "pickle.load() from an unbuffered stream (torch.load of a zip member) read "
            "different programs; both were analysed",
            member=ctx.member, offset=walk.straddle))
        seen = {(f.rule_id, f.message) for f in findings}
        findings.extend(f for f in more if (f.rule_id, f.message) not in seen)
    return findings, walk


def _analyse_into(
    stream: Readable, size: int, ctx: ScanContext, start: int, data: bytes | None,
    walk: _Walk, *, divergent: bool, lenient: bool = False, max_pickles: int | None = None,
) -> list[Finding]:
    reader = _Reader(stream, start, size, data)
    walker = _Walker(reader, ctx, walk, divergent=divergent, budget=ctx.limits.max_opcodes)
    walker.lenient = lenient
    offset = start
    while True:
        try:
            offset = walker.run(offset)
        except _Damage as damage:
            walk.damage = damage.offset
            walker.flag(
                MALFORMED,
                f"stream damaged: {damage.reason}; the unpickler stops there after "
                "executing everything before it",
                damage.offset,
            )
            break
        except LimitExceeded as exc:
            walker.flag(ANALYSIS_LIMIT, f"analysis stopped: {exc}", offset)
            ctx.note_incomplete(f"pickle analysis stopped: {exc}")
            break
        walk.end = offset
        if offset >= size or (max_pickles is not None and walk.pickles >= max_pickles):
            break
        nxt = reader.buf[offset - reader.base : offset - reader.base + 2]
        if len(nxt) < 2 and not reader.eof:
            reader.fill(offset, 16)
            nxt = reader.buf[:2]
        if nxt[:1] == b"\x80" and len(nxt) == 2 and nxt[1] <= HIGHEST_PROTOCOL:
            continue  # another pickle follows (legacy torch, concatenated streams)
        tail = stream_peek(stream, offset, 512)
        if not tail:
            break
        if tail[0] in _PROTO01_START and _trial_walk(tail, cut=len(tail) >= 512):
            continue
        kind = "a zip archive" if tail.startswith(b"PK\x03\x04") else "non-pickle data"
        if tail.startswith(b"PK\x03\x04") and not divergent and not lenient:
            walk.appended_zip = offset
        amount = f"{size - offset} bytes" if size < 1 << 62 else "data"
        walker.flag(
            TRAILING_DATA,
            f"{amount} of {kind} follow the last STOP at offset {offset}",
            offset,
            severity=Severity.WARNING if tail.startswith(b"PK") else None,
        )
        break
    found = _use_findings(walk, ctx) + walk.findings
    found.extend(_nested(walker, ctx))
    return found


def stream_peek(stream: Readable, offset: int, length: int) -> bytes:
    stream.seek(offset)
    return stream.read(length)


_VETTED_BY_ARGUMENT = frozenset(
    {("builtins", "getattr"), ("functools", "partial"), ("dill._dill", "_create_array"),
     ("dill._dill", "_eval_repr")} | policy.TYPE_LOADERS
)
_RANGE_REPR = re.compile(r"(?:range|slice)\(-?\d+, -?\d+(?:, -?\d+)?\)\Z")


def _vetted_call(func: Ref, call: Call) -> bool:
    """Calls that only build data because of their arguments: `getattr(<allowed class>,
    'method')`, `partial(<allowed class>, ...)`, dill's `_create_array(<allowed>, ...)`,
    `_eval_repr('range(0, 3)')`, and the type loaders given a known type name."""
    key = (func.module, func.name)
    if key not in _VETTED_BY_ARGUMENT:
        return False
    first = _literal(call.args[0]) if isinstance(call.args, tuple) and call.args else None
    if key in policy.TYPE_LOADERS:
        return first in policy.DATA_TYPE_NAMES or first in policy.CODE_TYPE_NAMES
    if key == ("dill._dill", "_eval_repr"):
        return isinstance(first, str) and _RANGE_REPR.match(first) is not None
    target = fold(call) if key == ("builtins", "getattr") else first
    if not isinstance(target, Ref):
        return False
    verdict = _classify(target.module, target.name).verdict
    if verdict is policy.Verdict.ALLOW:
        return True
    # `getattr(<class of a third-party library>, 'method')` (fastai binds methods this way) is
    # the dotted global `module.Class.method`: not denied, it is graded like any unknown
    # global (INFO when only referenced, WARNING when called). Dunders never pass, nor
    # standard-library owners (`str.format` reads attributes; their safe methods are listed
    # in the policy's SAFE_ATTRIBUTES).
    if key != ("builtins", "getattr") or verdict is not policy.Verdict.UNKNOWN:
        return False
    owner = first
    return (isinstance(owner, Ref) and policy.looks_like_class(owner.name)
            and owner.module.split(".", 1)[0] not in sys.stdlib_module_names
            and not target.name.rsplit(".", 1)[-1].startswith("__"))


def qual_is_getattr(func: Ref) -> bool:
    return func.module == "builtins" and func.name == "getattr"


_CLASS_BUILDERS = frozenset({"_make_skeleton_class", "_make_skeleton_enum", "_create_type"})

# Function rebuild parts (`_Walker.account`). Functions are built by these from (code, globals,
# ...); cells by these; a cell's value is set by `setattr(cell, 'cell_contents', value)`.
_FUNCTION_BUILDERS = frozenset(
    {("dill._dill", "_create_function"), ("cloudpickle.cloudpickle", "_make_function"),
     ("cloudpickle.cloudpickle_fast", "_make_function"), ("types", "FunctionType"),
     ("types", "LambdaType")})
_CELL_MAKERS = frozenset(
    {("dill._dill", "_create_cell"), ("cloudpickle.cloudpickle", "_make_cell"),
     ("cloudpickle.cloudpickle", "_make_empty_cell"),
     ("cloudpickle.cloudpickle_fast", "_make_cell"),
     ("cloudpickle.cloudpickle_fast", "_make_empty_cell")})
_CELL_SETTERS = frozenset({("builtins", "setattr"), ("dill._dill", "_setattr")})
_REBUILD_SCAN_DEPTH = 4
_REBUILD_SCAN_NODES = 256  # containers and calls visited per call; beyond, grading gives up


def _function_builder(value: object) -> bool:
    if isinstance(value, Ref):
        return (value.module, value.name) in _FUNCTION_BUILDERS
    if isinstance(value, Call) and isinstance(value.func, Ref) and (
            value.func.module, value.func.name) in policy.TYPE_LOADERS:
        args = value.args if isinstance(value.args, tuple) else ()
        return bool(args) and _literal(args[0]) in ("FunctionType", "LambdaType")
    return False


def _module_namespace(value: object) -> bool:
    """`find_class(module, '__dict__')`: a module's namespace (not of a denied module)."""
    return isinstance(value, Ref) and policy.module_namespace(value.module, value.name)


def _setattr_lookup(func: object, args: tuple[object, ...]) -> bool:
    """dill's `getattr(dill._dill, '_setattr', builtins.setattr)`, exactly."""
    if not (isinstance(func, Ref) and (func.module, func.name) == ("builtins", "getattr")):
        return False
    if len(args) not in (2, 3) or args[1] != "_setattr":
        return False
    owner = args[0]
    if not ((isinstance(owner, Ref) and (owner.module, owner.name) == ("dill", "_dill"))
            or (isinstance(owner, ModuleRef) and owner.module == "dill._dill")):
        return False
    return len(args) == 2 or (isinstance(args[2], Ref)
                              and (args[2].module, args[2].name) == ("builtins", "setattr"))


def _fills_cell(args: tuple[object, ...]) -> bool:
    """`(cell made by a cell maker, 'cell_contents', value)`."""
    if len(args) != 3 or args[1] != "cell_contents":
        return False
    cell = args[0]
    return (isinstance(cell, Call) and isinstance(cell.func, Ref)
            and (cell.func.module, cell.func.name) in _CELL_MAKERS)


# Callees that keep a rebuilt function or class without calling it (`code_consumer`).
_CODE_HOLDERS = frozenset({
    ("builtins", "list"), ("builtins", "tuple"), ("builtins", "dict"), ("builtins", "set"),
    ("builtins", "frozenset"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("functools", "partial"), ("_functools", "partial"),
})
_CODE_SCAN_DEPTH = 6
_CODE_SCAN_NODES = 256
# What `_nested` never expands: values that cannot hold code rebuilt from the pickle.
_LEAVES = (str, bytes, int, float, bool, type(None), Ref, ModuleRef, Blob, Opaque)
_UNFOLLOWED = "a structure too deep or large to follow"
_PARTIALS = frozenset({("functools", "partial"), ("_functools", "partial")})
_NEW_OBJECT = frozenset({("copyreg", "__newobj__"), ("copyreg", "__newobj_ex__"),
                         ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor")})


def _items(value: object) -> Sequence[object] | None:
    """What a container holds, or a call's arguments; None for anything else."""
    if isinstance(value, (tuple, PList, PDict)):
        return value
    if isinstance(value, Call):
        return value.args if isinstance(value.args, tuple) else ()
    return None


def _held_values(values: tuple[object, ...], *, direct: bool = False) -> Iterator[object]:
    """`values`, then (unless `direct`) the items of containers and the arguments of calls
    among them, `_CODE_SCAN_DEPTH` deep, each shared object once, at most `_CODE_SCAN_NODES`
    expanded. A structure left unexpanded by those bounds ends the walk with `_UNFOLLOWED`:
    what it holds is unknown, and a caller looking for rebuilt code must not take it as none
    (nesting `partial(partial(...(f)))` past the depth would otherwise hide `f`)."""
    seen: set[int] = set()
    todo: list[tuple[object, int]] = [(value, 0) for value in values]
    truncated = False
    while todo:
        value, depth = todo.pop()
        yield value
        items = None if direct else _items(value)
        if items is None or id(value) in seen:
            continue
        if depth >= _CODE_SCAN_DEPTH or len(seen) >= _CODE_SCAN_NODES:
            truncated = truncated or any(not isinstance(item, _LEAVES) for item in items)
            continue
        seen.add(id(value))
        todo.extend((item, depth + 1) for item in items)
    if truncated:
        yield _UNFOLLOWED


def _rebuilt_instance(values: tuple[object, ...], *, direct: bool) -> str | None:
    """The helper that rebuilt the class of an object found in `values` (only the values
    themselves when `direct`, else as `_held_values` walks them), `_UNFOLLOWED` when the walk
    could not look everywhere, else None."""
    for value in _held_values(values, direct=direct):
        if value is _UNFOLLOWED:
            return _UNFOLLOWED
        if isinstance(value, Call):
            cls: object = value.func
            if isinstance(cls, Ref) and (cls.module, cls.name) in _NEW_OBJECT:
                cargs = value.args if isinstance(value.args, tuple) else ()
                cls = cargs[0] if cargs else None
            builder = _rebuilt_code(cls)
            if builder is not None and builder.rsplit(".", 1)[-1] in _CLASS_BUILDERS:
                return builder
    return None


def _code_within(values: tuple[object, ...]) -> str | None:
    """The helper that rebuilt a function or class found in `values` (as `_held_values`
    walks them), `_UNFOLLOWED` when the walk could not look everywhere, else None."""
    for value in _held_values(values):
        if value is _UNFOLLOWED:
            return _UNFOLLOWED
        builder = _rebuilt_code(value)
        if builder is not None and not _is_cell(value):
            return builder
    return None


def _is_cell(value: object) -> bool:
    """A closure cell (`_make_cell(...)`): holds a value, is not code (its contents are
    looked at like any other argument)."""
    return isinstance(value, Call) and isinstance(value.func, Ref) and (
        value.func.module, value.func.name) in _CELL_MAKERS


def _rebuilt_code(value: object) -> str | None:
    """The helper that built `value`, when it is a function or class rebuilt from code
    (`_make_function(...)`, `_builtin_type('FunctionType')(...)`); a type that a type loader
    returns (`_builtin_type('CodeType')`) is not: calling it constructs."""
    if not isinstance(value, Call):
        return None
    func = value.func
    if isinstance(func, Ref):
        return func.qualname if _classify(func.module, func.name).code else None
    if isinstance(func, Call) and isinstance(func.func, Ref) and (
        func.func.module, func.func.name) in policy.TYPE_LOADERS:
        args = func.args if isinstance(func.args, tuple) else ()
        if args and _literal(args[0]) in ("FunctionType", "LambdaType", "MethodType"):
            return func.func.qualname
    return None


def _load_time_hooks(state: object) -> list[str]:
    """Hooks a rebuilt class defines that run while the pickle loads (`__setstate__`...)."""
    parts: list[object] = []
    for item in state if isinstance(state, tuple) else (state,):
        parts.extend(item if isinstance(item, tuple) else (item,))
    return sorted({key for part in parts if isinstance(part, PDict) for key, _ in part.pairs()
                   if isinstance(key, str) and key in policy.LOAD_TIME_HOOKS})


def _use_findings(walk: _Walk, ctx: ScanContext) -> list[Finding]:
    out: list[Finding] = []
    for use in walk.uses.values():
        if use.calls and use.vetted_calls == use.calls and (use.module, use.name) in (
            _VETTED_BY_ARGUMENT
        ):
            continue
        qual = f"{use.module}.{use.name}"
        where = use.call_offset if use.call_offset is not None else use.first_offset
        if use.verdict.code:
            how = "calls" if use.called else ("constructs" if use.constructed else "imports")
            out.append(DANGEROUS_GLOBAL.finding(
                f"{how} `{qual}`: {use.verdict.reason}", severity=Severity.WARNING,
                member=ctx.member, offset=where, evidence=use.evidence or qual))
            continue
        verdict = use.verdict.verdict
        if verdict is policy.Verdict.DENY and not walk.rebuild_unsure and use.only_rebuilds():
            how = "calls" if use.called else "imports"
            out.append(DANGEROUS_GLOBAL.finding(
                f"{how} `{qual}` only to rebuild a pickled function (it runs when called): "
                f"{use.verdict.reason} elsewhere", severity=Severity.WARNING,
                member=ctx.member, offset=where, evidence=use.evidence or qual))
            continue
        if verdict is policy.Verdict.DENY:
            how = "calls" if use.called else ("constructs" if use.constructed else "imports")
            out.append(DANGEROUS_GLOBAL.finding(
                f"{how} `{qual}`: {use.verdict.reason}", member=ctx.member, offset=where,
                evidence=use.evidence or qual))
        elif verdict is policy.Verdict.UNKNOWN:
            if use.called and not policy.looks_like_class(use.name):
                out.append(UNKNOWN_CALLABLE.finding(
                    f"calls `{qual}`, which is not on the allow-list", member=ctx.member,
                    offset=where, evidence=use.evidence or qual))
            else:
                how = "constructs" if (use.called or use.constructed) else "imports"
                out.append(UNKNOWN_GLOBAL.finding(
                    f"{how} `{qual}`, which is not on the allow-list", member=ctx.member,
                    offset=where, evidence=use.evidence or qual))
    return out


def _nested(walker: _Walker, ctx: ScanContext) -> list[Finding]:
    out: list[Finding] = []
    loaded = {data for data, _, loader in walker.nested if loader}
    for data, offset, loader in walker.nested:
        if not data or (not loader and data in loaded):
            continue  # reported once, where a loader takes it
        try:
            child = ctx.child(f"pickle@{offset}")
        except LimitExceeded as exc:
            out.append(ANALYSIS_LIMIT.finding(f"nested pickle not analysed: {exc}",
                                              member=ctx.member, offset=offset))
            continue
        inner_walk = _Walk()
        inner: list[Finding] = []
        try:
            inner.extend(findings(io.BytesIO(data), len(data), child, data=data,
                                  walk=inner_walk))
        except (LimitExceeded, RecursionError, MemoryError) as exc:
            # What the nested analysis found before it failed is kept (`extend` keeps it).
            reason = f"nested pickle at offset {offset} not fully analysed: {exc!r}"
            inner.append(ANALYSIS_LIMIT.finding(reason, member=ctx.member, offset=offset))
            ctx.note_incomplete(reason)
        if not loader and (
            inner_walk.pickles == 0 or any(f.rule_id == MALFORMED.rule_id for f in inner)
        ):
            continue  # data that merely starts like a pickle: not a second stage
        how = f"loaded by `{loader}`" if loader else "stored as data for a later loader"
        out.append(NESTED_PICKLE.finding(
            f"a {len(data)}-byte pickle is embedded at offset {offset}, {how}",
            severity=Severity.INFO if loader else None, member=ctx.member, offset=offset))
        out.extend(inner)
    return out


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    data = source.head if len(source.head) >= source.size else None
    yield from findings(source.stream, source.size, ctx, data=data)


__all__ = ["FORMAT", "RULES", "analyse", "findings", "scan", "sniff"]
