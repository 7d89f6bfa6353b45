"""Native executables and shared libraries (ELF, PE, Mach-O) and Actually Portable
Executables, including llamafiles (an APE that is also a zip of weights).

Layout. ELF: `\\x7fELF`, class (1/2) and data (1/2) bytes. PE: a DOS header `MZ` whose
`e_lfanew` (offset 0x3C) points to `PE\\0\\0`. Mach-O: 0xfeedface/0xfeedfacf in either byte
order (universal binaries 0xcafebabe are also Java class files and are left out). APE
(cosmopolitan, llamafile): `MZqFpD='` - a PE header that is also a shell script - with a
zip central directory at the end holding the weights (GGUF) and arguments (`.args`).
A PE's `MZ` is also a pickle opcode (BININT2): a pickle stream can carry a PE signature.

Attack surface. Running the file runs its code; a shared library runs its constructors when
loaded (TensorRT plugins, custom ops, `ctypes.CDLL`). A llamafile is executed, not loaded:
the weights inside are read by the embedded llama.cpp (GGUF chat templates, metadata).

What is checked. The file (or member) is named as an executable (EXE001, WARNING under the
severity contract: shipped code). The zip part of an APE/llamafile, or any executable with a
zip end record (self-extractors), is scanned by the zip module: every member (GGUF weights,
`.args`, nested pickles) by content; a head the unpickler runs is scanned as a pickle too.
The machine code itself is not analysed.

References: System V ABI (ELF header), Microsoft PE/COFF specification (`e_lfanew`),
Apple Mach-O header, cosmopolitan's APE format (justine.lol/ape.html), llamafile README.

Rules
| id     | name              | severity | CWE     |
|--------|-------------------|----------|---------|
| EXE001 | native-executable | warning  | CWE-506 |
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import pickle as pickle_format
from batchscan.workers import zip as zip_format
from batchscan.workers.base import FormatError, ScanContext, Source

FORMAT = "executable"

EXECUTABLE = rules.EXE001
RULES: tuple[Rule, ...] = (EXECUTABLE,)

_MACHO = (b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe")


def kind(head: bytes) -> str | None:
    """What kind of executable `head` starts, if any."""
    if head[:4] == b"\x7fELF" and len(head) >= 6 and head[4] in (1, 2) and head[5] in (1, 2):
        return "ELF"
    if head[:7] in (b"MZqFpD=", b"jartsr=") or head[:8] == b"APEDBG='":
        return "APE"
    if head[:2] == b"MZ" and len(head) >= 0x40:
        (pe_at,) = struct.unpack_from("<I", head, 0x3C)
        if 0x40 <= pe_at <= len(head) - 4 and head[pe_at : pe_at + 4] == b"PE\x00\x00":
            return "PE"
    if head[:4] in _MACHO:
        return "Mach-O"
    return None


def sniff(head: bytes, name: str) -> bool:
    return kind(head) is not None


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    found = kind(source.head) or "executable"
    has_zip = zip_format.has_end_record(source)
    label = {"APE": "an Actually Portable Executable (APE: llamafile/cosmopolitan)",
             "ELF": "an ELF executable or shared library",
             "PE": "a Windows PE executable or DLL",
             "Mach-O": "a Mach-O executable or library"}.get(found, found)
    suffix = " that also ends like a zip archive (its members are scanned)" if has_zip else ""
    yield EXECUTABLE.finding(f"{label}{suffix}: running or loading it runs native code",
                             member=ctx.member, evidence=source.head[:16].hex())
    if pickle_format.sniff(source.head, source.name):
        # `MZ` is a BININT2 opcode: a stream the unpickler runs can carry a PE signature in a
        # bytes argument (pickle.load/joblib.load run it); a real PE is no pickle (`MZ\x90\0`).
        yield from pickle_format.scan(source, ctx)
    if has_zip:
        try:
            # the executable in front is this file, reported above: not scanned again
            yield from zip_format.scan(source, ctx, prefix=False)
        except FormatError:
            # end-record bytes inside the machine code, not an appended zip: a loader
            # that opens the file as a zip fails the same way
            return
        if ctx.depth == 0 and found == "APE":
            ctx.format_hint = "llamafile"


__all__ = ["FORMAT", "RULES", "kind", "scan", "sniff"]
