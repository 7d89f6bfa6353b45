"""RAR archives, versions 1.5-4.x ("RAR4") and 5.0 ("RAR5"): headers read, members not
decompressed.

Layout. RAR4: the marker `Rar!\\x1a\\x07\\x00`, then blocks of HEAD_CRC(2) HEAD_TYPE(1)
HEAD_FLAGS(2) HEAD_SIZE(2) [ADD_SIZE(4) when flags & 0x8000]; a file block (0x74) carries
PACK_SIZE, UNP_SIZE, HOST_OS, CRC, time, version, METHOD, NAME_SIZE, ATTR, [64-bit size
highs when flags & 0x100], the name, and is followed by PACK_SIZE bytes of data; the archive
header (0x73) flag 0x80 means the headers themselves are encrypted. RAR5 (rarlab
"RAR 5.0 archive format"): `Rar!\\x1a\\x07\\x01\\x00`, then blocks of CRC32(4) HeaderSize
(vint) HeaderType(vint) HeaderFlags(vint) [ExtraSize][DataSize] type-specific fields; file
(2) and service (3) headers carry FileFlags, UnpackedSize, Attributes, [mtime][CRC],
CompressionInfo, HostOS, NameLength, Name, and extra records (type 5 = a symlink/hard-link
redirection with its target); type 4 = encrypted headers; 5 = end of archive.

Attack surface. Extraction writes where member names and link targets point (path
traversal, CVE-2018-20250-style absolute paths, symlinks out of the tree); the members can
hold anything (pickles, executables), and RAR's compression is proprietary: decompressing
needs rarlab's unrar (the `rarfile` package only drives that external tool), which this
scanner does not depend on.

What is checked. The headers are walked without decompressing anything (bounded by the
member budget): member names that escape (RAR002), links whose target escapes (RAR003),
names that say a member holds code or a pickle (RAR005), damaged or encrypted headers
(RAR004). Members are never decompressed, so a RAR archive is never reported clean: RAR001
and an incomplete-scan error are always recorded (fail closed).

References: rarlab "RAR 5.0 archive format" (rarlab.com/technote.htm); the RAR 4.x
`technote.txt` shipped with unrar; CVE-2018-20250 (WinRAR ACE absolute paths).

Rules
| id     | name             | severity | CWE     |
|--------|------------------|----------|---------|
| RAR001 | not-decompressed | info     | CWE-693 |
| RAR002 | path-traversal   | error    | CWE-22  |
| RAR003 | link-member      | error    | CWE-59  |
| RAR004 | corrupt-archive  | warning  | CWE-20  |
| RAR005 | risky-member     | info     | CWE-506 |
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import ScanContext, Source, unsafe_path

FORMAT = "rar"

NOT_DECOMPRESSED = rules.RAR001
TRAVERSAL = rules.RAR002
LINK = rules.RAR003
CORRUPT = rules.RAR004
RISKY = rules.RAR005
RULES: tuple[Rule, ...] = (NOT_DECOMPRESSED, TRAVERSAL, LINK, CORRUPT, RISKY)

RAR4 = b"Rar!\x1a\x07\x00"
RAR5 = b"Rar!\x1a\x07\x01\x00"
_SFX_SEARCH = 1024 * 1024  # self-extracting archives put an executable stub first
_RISKY_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".bin", ".joblib", ".dill",
                   ".npy", ".npz", ".h5", ".keras", ".py", ".pyc", ".sh", ".bat", ".cmd",
                   ".ps1", ".exe", ".dll", ".so", ".dylib", ".lnk", ".jar", ".mar", ".nemo")
_UNIX_LINK = 0o120000
_MAX_BLOCKS = 100_000  # headers walked (service and unknown blocks included)


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    link_target: str | None
    link_kind: str | None
    directory: bool


class RarDamaged(Exception):
    """The header walk stopped; the message says where and why."""


def sniff(head: bytes, name: str) -> bool:
    return head.startswith((RAR4, RAR5))


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    version = 5 if source.head.startswith(RAR5) else 4
    members: list[Member] = []
    try:
        walk = _walk5 if version == 5 else _walk4
        for member in walk(source, ctx):
            members.append(member)
            yield from _member_findings(member, ctx)
    except RarDamaged as exc:
        reason = f"RAR{version} headers unreadable: {exc}"
        yield CORRUPT.finding(reason, member=ctx.member)
        ctx.note_incomplete(reason)
    files = [m for m in members if not m.directory]
    yield NOT_DECOMPRESSED.finding(
        f"RAR{version} archive with {len(files)} member(s) listed from its headers; RAR "
        "compression needs the external unrar tool, so members were not scanned",
        member=ctx.member)
    ctx.note_incomplete(f"RAR{version} members are not decompressed (no unrar): "
                        f"{len(files)} member(s) not scanned")


def _member_findings(member: Member, ctx: ScanContext) -> Iterator[Finding]:
    ctx.count_member()
    where = ctx.where(member.name)
    reason = unsafe_path(member.name)
    if reason:
        yield TRAVERSAL.finding(f"member name {member.name!r}: {reason}", member=where)
    if member.link_target is not None:
        escape = _link_escapes(member.name, member.link_target)
        if escape:
            yield LINK.finding(f"{member.link_kind} {member.name!r} -> "
                               f"{member.link_target!r} ({escape})", member=where)
    if not member.directory and member.name.lower().endswith(_RISKY_SUFFIXES):
        yield RISKY.finding(f"member {member.name!r} (not decompressed) would need a scan: "
                            "its name says code or a pickle", member=where)


def _link_escapes(name: str, target: str) -> str | None:
    base = name.replace("\\", "/").rsplit("/", 1)[0] if "/" in name.replace("\\", "/") else ""
    joined = f"{base}/{target}" if base and not target.startswith(("/", "\\")) else target
    reason = unsafe_path(joined)
    if reason != "parent-directory component":
        return reason
    depth = 0
    for part in joined.replace("\\", "/").split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return reason
        elif part not in ("", "."):
            depth += 1
    return None


def _read(source: Source, offset: int, length: int) -> bytes:
    data = source.read_at(offset, length)
    if len(data) < length:
        raise RarDamaged(f"a header at offset {offset} runs past the end of the file")
    return data


def _walk4(source: Source, ctx: ScanContext) -> Iterator[Member]:
    pos = len(RAR4)
    blocks = 0
    while pos < source.size:
        blocks += 1
        if blocks > _MAX_BLOCKS:
            raise RarDamaged(f"more than {_MAX_BLOCKS} headers")
        fixed = source.read_at(pos, 7)
        if len(fixed) < 7:
            raise RarDamaged(f"truncated block header at offset {pos} (no end-of-archive block)")
        _, kind, flags, size = struct.unpack("<HBHH", fixed)
        if size < 7:
            raise RarDamaged(f"block at offset {pos} declares a {size}-byte header")
        header = _read(source, pos, size)
        add = 0
        if flags & 0x8000 and kind != 0x74:
            if size < 11:
                raise RarDamaged(f"block at offset {pos} is too short for its data size")
            (add,) = struct.unpack_from("<I", header, 7)
        if kind == 0x73 and flags & 0x0080:
            raise RarDamaged("the headers are encrypted (archive password)")
        if kind == 0x7B:  # end of archive
            return
        if kind in (0x74, 0x7A):  # file, or a service ("new sub") block
            if size < 32:
                raise RarDamaged(f"file header at offset {pos} is too short")
            pack, _, host, _, _, _, _, name_size, attr = struct.unpack_from(
                "<IIBIIBBHI", header, 7)
            field = 32
            if flags & 0x100:
                if size < 40:
                    raise RarDamaged(f"file header at offset {pos} is too short")
                (high_pack,) = struct.unpack_from("<I", header, 32)
                pack |= high_pack << 32
                field = 40
            raw_name = header[field : field + name_size]
            if len(raw_name) < name_size:
                raise RarDamaged(f"file name at offset {pos} runs past its header")
            add = pack
            if kind == 0x74:
                name = _rar4_name(raw_name, flags)
                directory = (flags & 0xE0) == 0xE0 or (host == 3 and attr & 0o170000 == 0o040000)
                link = host == 3 and attr & 0o170000 == _UNIX_LINK
                target = None
                method = header[25]
                if link and method == 0x30 and pack <= 4096:  # stored: the target is the data
                    target = source.read_at(pos + size, pack).decode("utf-8", "replace")
                elif link:
                    target = "(compressed link target)"
                yield Member(name, target if link else None, "symlink" if link else None,
                             directory)
        pos += size + add


def _rar4_name(raw: bytes, flags: int) -> str:
    """The name unrar extracts to: with flag 0x200 the field is an ASCII name, a NUL, then
    RAR's packed Unicode name, and the Unicode one wins (the two can differ: a scanner that
    reads only the ASCII part sees a harmless name)."""
    if flags & 0x200 and b"\x00" in raw:
        ascii_part, packed = raw.split(b"\x00", 1)
        if packed:
            return _unpack_unicode(ascii_part, packed)
        raw = ascii_part
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437", "replace")


def _unpack_unicode(name: bytes, packed: bytes) -> str:
    """unrar's DecodeFileName: 2-bit opcodes (a byte, a byte in the high page, a 16-bit unit,
    or a run copied from the ASCII name with an optional correction)."""
    out: list[int] = []
    pos = 0
    high = packed[pos] if pos < len(packed) else 0
    pos += 1
    flags = bits = 0
    while pos < len(packed) and len(out) < 4096:
        if bits == 0:
            flags, bits = packed[pos], 8
            pos += 1
            if pos >= len(packed) and flags >> 6 != 3:
                break
        op = flags >> 6
        if op == 0 and pos < len(packed):
            out.append(packed[pos])
            pos += 1
        elif op == 1 and pos < len(packed):
            out.append(packed[pos] + (high << 8))
            pos += 1
        elif op == 2 and pos + 1 < len(packed):
            out.append(packed[pos] + (packed[pos + 1] << 8))
            pos += 2
        elif op == 3 and pos < len(packed):
            length = packed[pos]
            pos += 1
            correction = None
            if length & 0x80:
                if pos >= len(packed):
                    break
                correction = packed[pos]
                pos += 1
            for _ in range((length & 0x7F) + 2):
                base = name[len(out)] if len(out) < len(name) else 0
                out.append(base if correction is None else ((base + correction) & 0xFF)
                           + (high << 8))
        else:
            break
        flags = (flags << 2) & 0xFF
        bits -= 2
    return "".join(chr(c) if c < 0xD800 or c > 0xDFFF else "\ufffd" for c in out)


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(10):
        if pos + index >= len(data):
            raise RarDamaged("a variable-length number runs past its header")
        byte = data[pos + index]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos + index + 1
    raise RarDamaged("a variable-length number is longer than 10 bytes")


def _walk5(source: Source, ctx: ScanContext) -> Iterator[Member]:
    pos = len(RAR5)
    blocks = 0
    while pos < source.size:
        blocks += 1
        if blocks > _MAX_BLOCKS:
            raise RarDamaged(f"more than {_MAX_BLOCKS} headers")
        lead = source.read_at(pos, 4 + 3)
        if len(lead) < 5:
            raise RarDamaged(f"truncated block header at offset {pos} (no end-of-archive block)")
        size, after = _vint(lead + source.read_at(pos + len(lead), 7), 4)
        if size < 2 or size > 2 * 1024 * 1024:
            raise RarDamaged(f"block at offset {pos} declares a {size}-byte header")
        header = _read(source, pos + after, size)
        kind, at = _vint(header, 0)
        flags, at = _vint(header, at)
        extra_size = data_size = 0
        if flags & 0x1:
            extra_size, at = _vint(header, at)
        if flags & 0x2:
            data_size, at = _vint(header, at)
        if kind == 4:
            raise RarDamaged("the headers are encrypted (archive password)")
        if kind == 5:
            return
        if kind in (2, 3):
            file_flags, at = _vint(header, at)
            _, at = _vint(header, at)  # unpacked size
            _, at = _vint(header, at)  # attributes
            at += (4 if file_flags & 0x2 else 0) + (4 if file_flags & 0x4 else 0)
            _, at = _vint(header, at)  # compression information
            _, at = _vint(header, at)  # host OS
            name_length, at = _vint(header, at)
            if at + name_length > len(header):
                raise RarDamaged(f"file name at offset {pos} runs past its header")
            name = header[at : at + name_length].decode("utf-8", "replace")
            target, link_kind = _rar5_redirection(header, size - extra_size, extra_size)
            if kind == 2:
                yield Member(name, target, link_kind, bool(file_flags & 0x1))
        pos += after + size + data_size


_REDIRECTIONS = {1: "symlink", 2: "symlink", 3: "junction", 4: "hardlink", 5: "file copy"}


def _rar5_redirection(header: bytes, start: int, length: int) -> tuple[str | None, str | None]:
    pos, end = start, min(len(header), start + length)
    while pos < end:
        record_size, body = _vint(header, pos)
        record_type, at = _vint(header, body)
        if record_type == 5:
            redirect, at = _vint(header, at)
            _, at = _vint(header, at)
            name_length, at = _vint(header, at)
            target = header[at : at + name_length].decode("utf-8", "replace")
            return target, _REDIRECTIONS.get(redirect, "link")
        if record_size == 0:
            break
        pos = body + record_size
    return None, None


__all__ = ["FORMAT", "RULES", "scan", "sniff"]
