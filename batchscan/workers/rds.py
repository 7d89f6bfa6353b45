"""R serialized objects: `.rds` (saveRDS/serialize) and `.rda`/`.RData` workspaces (save).

Layout (R Internals, "Serialization Formats"; src/main/serialize.c). A workspace starts with
`RDX2\\n`/`RDX3\\n` (XDR; `RDB`/`RDA` for native binary/ASCII); an `.rds` has no such line.
Both are usually gzip (or bzip2/xz) compressed - the compressed module decompresses and hands
the payload here. The stream: a format byte and newline (`X` big-endian XDR, `B` native
little-endian, `A` ASCII), version (2 or 3), writer and minimal reader R versions, (v3) the
native encoding, then one item. An item is a 32-bit flags word - type in the low 8 bits,
is-object (bit 8), has-attributes (9), has-tag (10), gp "levels" in the top 20 bits - and a
type-specific body: pairlists (LISTSXP, LANGSXP = a call, CLOSXP = a function, PROMSXP = a
promise, DOTSXP) read attributes, tag, CAR and CDR; environments read a lock word, enclosure,
frame, hash table and attributes; vectors a length and elements; byte code (BCODESXP) a
table of shared cells and a code vector with its constants; references (REFSXP) index the
table of symbols, environments and namespaces read so far.

Attack surface. Loading rebuilds objects, and some objects are code: a promise is evaluated
when its value is first used - CVE-2024-27322 (R < 4.4.0): a deserialized unbound promise
runs its expression as soon as the loaded value is accessed, i.e. on readRDS()/load() in
practice. An active binding in a serialized environment runs a function whenever the variable
is read. A workspace defining `.First`/`.Last` has them called by R at start/exit when it is
restored. Closures, byte code and calls (e.g. a model's predict function, a formula's
environment) run when the model is used. Namespace references make R load (and run the
`.onLoad` of) installed packages. Hostile lengths and nesting exhaust naive parsers.

What is checked. Every item is walked (nothing is evaluated): promises -> RDS001 (error),
active bindings and `.First`/`.Last` hooks -> RDS002 (error), closures, byte code and
language objects -> RDS003 (warning) with the functions they call as evidence (system,
eval, parse, download.file... first). Bounded: nesting <= 400, items <= 20 M, a vector length
must fit the rest of the input, references must point at read entries; truncated or
malformed streams are an `error`. ASCII serializations are recognised and reported as not
scanned.

Rules
| id     | name                   | severity | CWE     |
|--------|------------------------|----------|---------|
| RDS001 | promise                | error    | CWE-502 |
| RDS002 | active-binding-or-hook | error    | CWE-94  |
| RDS003 | closure                | warning  | CWE-94  |
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source

FORMAT = "rds"

PROMISE = rules.RDS001
HOOK = rules.RDS002
CLOSURE = rules.RDS003
RULES: tuple[Rule, ...] = (PROMISE, HOOK, CLOSURE)

MAX_DEPTH = 400
MAX_ITEMS = 20_000_000

# SEXP types (Rinternals.h) and serialization pseudo-types (serialize.c).
SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 1, 2, 3, 4, 5, 6
SPECIALSXP, BUILTINSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP = 7, 8, 9, 10, 13, 14, 15
STRSXP, DOTSXP, VECSXP, EXPRSXP, BCODESXP, EXTPTRSXP, WEAKREFSXP = 16, 17, 19, 20, 21, 22, 23
RAWSXP, S4SXP = 24, 25
REFSXP, NILVALUE, GLOBALENV, UNBOUNDVALUE, MISSINGARG, BASENAMESPACE = 255, 254, 253, 252, 251, 250
NAMESPACESXP, PACKAGESXP, PERSISTSXP, CLASSREFSXP, GENERICREFSXP = 249, 248, 247, 246, 245
BCREPDEF, BCREPREF, EMPTYENV, BASEENV, ATTRLANGSXP, ATTRLISTSXP, ALTREP = (
    244, 243, 242, 241, 240, 239, 238)

_SINGLETONS = {NILVALUE, GLOBALENV, UNBOUNDVALUE, MISSINGARG, BASENAMESPACE, EMPTYENV, BASEENV}
_PAIRLISTS = {LISTSXP, LANGSXP, CLOSXP, PROMSXP, DOTSXP}
_ELEMENT_BYTES = {LGLSXP: 4, INTSXP: 4, REALSXP: 8, CPLXSXP: 16, RAWSXP: 1}
_BC_LANG = {LANGSXP, LISTSXP, BCREPDEF, BCREPREF, ATTRLANGSXP, ATTRLISTSXP}
ACTIVE_BINDING = 1 << 15  # gp bit of a binding cell (envir.c ACTIVE_BINDING_MASK)
HOOKS = frozenset({".First", ".Last", ".First.sys", ".Last.sys", ".OptRequireMethods"})
# Calls worth naming first in the evidence of a function body.
RISKY_CALLS = frozenset({
    "system", "system2", "shell", "shell.exec", "pipe", "eval", "evalq", "parse", "source",
    "sys.source", "download.file", "url", "socketConnection", "file", "readRDS", "load",
    "dyn.load", "library.dynam", "library", "require", "requireNamespace", "loadNamespace",
    "Sys.setenv", "unlink", "file.remove", "writeLines", "writeBin", "cat", "do.call",
    "get", "match.fun", ".Call", ".External", ".Internal", ".Primitive", "makeActiveBinding",
    "delayedAssign", "reg.finalizer", "setHook", "curl", "httr", "processx",
})

_WORKSPACE = (b"RDX2\n", b"RDX3\n", b"RDB2\n", b"RDB3\n", b"RDA2\n", b"RDA3\n")
_VERSIONS = {b"X\n": (b"\x00\x00\x00\x02", b"\x00\x00\x00\x03"),
             b"B\n": (b"\x02\x00\x00\x00", b"\x03\x00\x00\x00"),
             b"A\n": (b"2\n", b"3\n")}


def sniff(head: bytes, name: str) -> bool:
    body = head[5:] if head[:5] in _WORKSPACE else head
    versions = _VERSIONS.get(body[:2])
    return versions is not None and any(body[2:].startswith(v) for v in versions)


@dataclass(slots=True)
class _Item:
    kind: int
    name: str | None = None  # symbol names and short strings


@dataclass(slots=True)
class _Report:
    promises: int = 0
    closures: int = 0
    bytecode: int = 0
    language: int = 0
    active: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)


class _Reader:
    def __init__(self, source: Source, offset: int, little: bool):
        self.stream = source.stream
        self.stream.seek(offset)
        self.pos = offset
        self.buf = b""
        self.at = 0
        self.fmt = "<i" if little else ">i"
        self.refs: list[_Item] = []
        self.items = 0
        self.report = _Report()

    def take(self, n: int) -> bytes:
        if self.at + n <= len(self.buf):
            chunk = self.buf[self.at : self.at + n]
            self.at += n
            self.pos += n
            return chunk
        parts = [self.buf[self.at :]]
        have = len(parts[0])
        while have < n:
            more = self.stream.read(max(n - have, 1 << 20))
            if not more:
                raise FormatError(f"truncated at offset {self.pos + have} (wanted {n} bytes)")
            parts.append(more)
            have += len(more)
        data = b"".join(parts)
        self.buf, self.at = data, n
        self.pos += n
        return data[:n]

    def skip(self, n: int) -> None:
        while n > 0:
            step = min(n, 1 << 20)
            self.take(step)
            n -= step
            if step == 1 << 20:
                self.buf, self.at = self.buf[self.at :], 0

    def word(self) -> int:
        value: int = struct.unpack(self.fmt, self.take(4))[0]
        return value

    def length(self) -> int:
        n = self.word()
        if n == -1:  # long vector: two more words
            upper, lower = self.word(), self.word()
            n = (upper << 32) + (lower & 0xFFFFFFFF)
        if n < 0:
            raise FormatError(f"negative length {n} at offset {self.pos}")
        return n

    def count(self) -> None:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise LimitExceeded("R serialized items", MAX_ITEMS, self.items)

    def item(self, depth: int) -> _Item:
        return self.body(self.word(), depth)

    def body(self, flags: int, depth: int) -> _Item:
        if depth > MAX_DEPTH:
            raise FormatError(f"objects nest deeper than {MAX_DEPTH}")
        self.count()
        kind = flags & 0xFF
        has_attr = flags & (1 << 9)
        if kind in _SINGLETONS:
            return _Item(kind)
        if kind == REFSXP:
            index = flags >> 8 or self.word()
            if not 1 <= index <= len(self.refs):
                raise FormatError(f"reference {index} to an entry not read yet")
            return self.refs[index - 1]
        if kind == PERSISTSXP:
            self.strings(depth)
            item = _Item(kind)
            self.refs.append(item)
            return item
        if kind == SYMSXP:
            slot = len(self.refs)
            self.refs.append(_Item(SYMSXP))  # placeholder (R adds after reading the name)
            name = self.item(depth + 1).name
            item = _Item(SYMSXP, name)
            self.refs[slot] = item
            return item
        if kind in (PACKAGESXP, NAMESPACESXP):
            names = self.strings(depth)
            item = _Item(kind, names[0] if names else None)
            if kind == NAMESPACESXP and item.name and len(self.report.namespaces) < 20:
                self.report.namespaces.append(item.name)
            self.refs.append(item)
            return item
        if kind == ENVSXP:
            item = _Item(ENVSXP)
            self.refs.append(item)
            self.word()  # locked
            for _ in range(4):  # enclosure, frame, hash table, attributes
                self.item(depth + 1)
            return item
        if kind in _PAIRLISTS:
            return self.pairlist(flags, depth)
        if kind == ALTREP:
            for _ in range(3):  # class info, state, attributes
                self.item(depth + 1)
            return _Item(kind)
        if kind in (CLASSREFSXP, GENERICREFSXP):
            raise FormatError(f"item type {kind} cannot be unserialized")
        item = _Item(kind)
        if kind in (SPECIALSXP, BUILTINSXP):
            item.name = self.take(self.length_bounded(1)).decode("latin-1")
        elif kind == CHARSXP:
            n = self.word()
            if n != -1:
                if n < 0:
                    raise FormatError(f"string length {n}")
                text = self.take(min(n, 256))
                self.skip(n - len(text))
                item.name = text.decode("utf-8", "replace")
        elif kind in _ELEMENT_BYTES:
            self.skip(self.length_bounded(_ELEMENT_BYTES[kind]) * _ELEMENT_BYTES[kind])
        elif kind in (STRSXP, VECSXP, EXPRSXP):
            n = self.length_bounded(4)
            if kind == EXPRSXP:
                self.report.language += 1
            for _ in range(n):
                self.item(depth + 1)
        elif kind == BCODESXP:
            self.report.bytecode += 1
            reps = self.length_bounded(4)
            self.bc1(reps, depth + 1)
        elif kind == EXTPTRSXP:
            self.refs.append(item)
            self.item(depth + 1)
            self.item(depth + 1)
        elif kind == WEAKREFSXP:
            self.refs.append(item)
        elif kind != S4SXP:
            raise FormatError(f"unknown item type {kind} at offset {self.pos - 4}")
        if has_attr:
            self.item(depth + 1)
        return item

    def length_bounded(self, element: int) -> int:
        n = self.length()
        if n > MAX_ITEMS * 64 // element:
            raise FormatError(f"vector of {n} elements at offset {self.pos}")
        return n

    def strings(self, depth: int) -> list[str]:
        if self.word() != 0:
            raise FormatError("malformed name vector")
        n = self.length_bounded(4)
        return [self.item(depth + 1).name or "" for _ in range(n)]

    def pairlist(self, flags: int, depth: int) -> _Item:
        first = _Item(flags & 0xFF)
        report = self.report
        while True:
            kind = flags & 0xFF
            levels = flags >> 12
            if kind == PROMSXP:
                report.promises += 1
            elif kind == CLOSXP:
                report.closures += 1
            elif kind == LANGSXP:
                report.language += 1
            if flags & (1 << 9):
                self.item(depth + 1)
            tag = self.item(depth + 1) if flags & (1 << 10) else None
            car = self.item(depth + 1)
            name = tag.name if tag is not None and tag.kind == SYMSXP else None
            if kind == LISTSXP and levels & ACTIVE_BINDING and len(report.active) < 20:
                report.active.append(name or "?")
            if kind == LISTSXP and name in HOOKS and car.kind in (CLOSXP, LANGSXP, PROMSXP):
                report.hooks.append(name or "?")
            if kind == LANGSXP and car.kind == SYMSXP and car.name:
                report.calls[car.name] = report.calls.get(car.name, 0) + 1
            flags = self.word()
            if flags & 0xFF not in _PAIRLISTS:
                self.body(flags, depth + 1)
                return first
            self.count()

    def bc1(self, reps: int, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise FormatError(f"byte code nests deeper than {MAX_DEPTH}")
        self.item(depth + 1)  # the code (an integer vector)
        for _ in range(self.length_bounded(4)):
            kind = self.word()
            if kind == BCODESXP:
                self.bc1(reps, depth + 1)
            elif kind in _BC_LANG:
                self.bc_lang(kind, reps, depth + 1)
            else:
                self.item(depth + 1)

    def bc_lang(self, kind: int, reps: int, depth: int) -> None:
        while True:
            if depth > MAX_DEPTH:
                raise FormatError(f"byte code nests deeper than {MAX_DEPTH}")
            self.count()
            if kind == BCREPREF:
                if not 0 <= self.word() < reps:
                    raise FormatError("byte code reference outside its table")
                return
            if kind not in _BC_LANG:
                self.item(depth + 1)
                return
            if kind == BCREPDEF:
                if not 0 <= self.word() < reps:
                    raise FormatError("byte code definition outside its table")
                kind = self.word()
            if kind in (ATTRLANGSXP, ATTRLISTSXP):
                self.item(depth + 1)
            elif kind not in (LANGSXP, LISTSXP):
                raise FormatError(f"byte code language cell of type {kind}")
            if kind in (LANGSXP, ATTRLANGSXP):
                self.report.language += 1
            self.item(depth + 1)  # tag
            car_kind = self.word()
            if car_kind == 0:
                car = self.item(depth + 1)
                if kind in (LANGSXP, ATTRLANGSXP) and car.kind == SYMSXP and car.name:
                    self.report.calls[car.name] = self.report.calls.get(car.name, 0) + 1
            else:
                self.bc_lang(car_kind, reps, depth + 1)
            kind = self.word()  # the CDR, iteratively
            depth += 1


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    head = source.head
    offset = 5 if head[:5] in _WORKSPACE else 0
    workspace = offset == 5
    marker = head[offset : offset + 2]
    if marker == b"A\n":
        raise FormatError("ASCII R serialization is recognised but not scanned")
    reader = _Reader(source, offset + 2, little=marker == b"B\n")
    version = reader.word()
    reader.word()  # writer R version
    reader.word()  # minimal reader R version
    if version == 3:
        n = reader.word()
        if not 0 <= n <= 64:
            raise FormatError(f"native encoding name of {n} bytes")
        reader.take(n)
    elif version != 2:
        raise FormatError(f"serialization version {version}")
    reader.item(0)
    report = reader.report
    member = ctx.member
    calls = sorted(report.calls, key=lambda c: (c not in RISKY_CALLS, -report.calls[c], c))
    evidence = ", ".join(calls[:25])[:400] or None
    if report.promises:
        yield PROMISE.finding(f"{report.promises} promise(s): evaluated when the loaded value "
                              "is used (CVE-2024-27322 in R < 4.4.0)", member=member,
                              evidence=evidence)
    if report.active:
        yield HOOK.finding("active binding(s) run a function when read: "
                           + ", ".join(report.active[:10]), member=member, evidence=evidence)
    if report.hooks and workspace:
        yield HOOK.finding("workspace defines " + ", ".join(sorted(set(report.hooks)))
                           + " (called by R when the workspace is restored)", member=member,
                           evidence=evidence)
    risky = [c for c in calls if c in RISKY_CALLS]
    code = report.closures + report.bytecode
    if code or risky:
        # Calls alone (formulas, a model's saved `call`) are data until a method evaluates
        # them: only risky ones are reported without a function to carry them.
        what = (f"{report.closures} function(s), {report.bytecode} byte-code object(s), "
                f"{report.language} call(s)")
        if risky:
            what += "; calls " + ", ".join(risky[:10])
        if report.namespaces:
            what += "; namespaces " + ", ".join(report.namespaces[:10])
        yield CLOSURE.finding(what, member=member, evidence=evidence)
