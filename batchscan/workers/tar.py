"""Tar archives (any compression: compressed wrappers hand their payload to this module), the
old PyTorch tar checkpoints (`sys_info`, `pickle`, `storages`, `tensors`), `.nemo` files.

Layout. 512-byte headers (ustar/GNU/PAX) each followed by the member data.

Attack surface. Extraction writes where names and links point (`../`, absolute names,
symlink or hardlink members that point outside: CVE-2025-12060, CVE-2024-5187); device and
FIFO members; the legacy torch tar layout runs the `storages` pickle first (attacks.md row
30) and picklescan does not look inside tars.

What is checked. Members are read sequentially in streaming mode (`tarfile` "r|"), each
sniffed by content and scanned by the matching format module within the shared budgets.
Names that escape, links that escape, device/FIFO members and duplicate names are reported.

NeMo (`.nemo`): a tar (often gzip) of `model_config.yaml` (Hydra config: `_target_` and
friends are checked by the YAML module through the pickle policy), `model_weights.ckpt`
(a torch zip: its pickle is analysed) and artifacts (tokenizers, nested `.nemo` files), all
scanned by content like any member (CVE-2025-23249).

OCI / Docker images (attacks: a model shipped as an image layer). An OCI image layout tar
(`oci-layout`, `index.json`, `blobs/sha256/*`) or a `docker save` tar (`manifest.json`,
`repositories`, `<id>/layer.tar`) is a tar of JSON and of layer tars (gzip or zstd); each
layer is decompressed and read as a tar in turn, so traversal, links, devices, setuid/setgid
members (TAR007: a runtime extracts them with their modes) and whiteouts (TAR008: `.wh.*`
files delete lower-layer content) are reported for every layer's members, and every
member file is scanned by content. Laid out as a directory, the same blobs are walked as
files.

TorchServe archives written with `--archive-format tgz` are tars with `MAR-INF/MANIFEST.json`:
the manifest checks of `mar.py` run on them as on a `.mar` zip.

Rules
| id     | name             | severity | CWE     |
|--------|------------------|----------|---------|
| TAR001 | path-traversal   | error    | CWE-22  |
| TAR002 | link-escape      | error    | CWE-59  |
| TAR003 | special-member   | warning  | CWE-73  |
| TAR004 | duplicate-name   | warning  | CWE-436 |
| TAR005 | corrupt-archive  | warning  | CWE-20  |
| TAR006 | blacklisted-member | error  | CWE-506 |
| TAR007 | setuid-member    | warning  | CWE-250 |
| TAR008 | whiteout         | info     | CWE-436 |
| MAR001 | handler-code (mar.py, tgz archives) | warning | CWE-94 |
| MAR002 | handler-outside-archive | warning | CWE-829 |
| MAR003 | requirements     | warning  | CWE-829 |
| MAR004 | bad-manifest     | warning  | CWE-20  |
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import IO, cast

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import mar
from batchscan.workers.base import (
    HEAD_BYTES,
    LimitExceeded,
    Readable,
    ScanContext,
    Source,
    unsafe_path,
)

FORMAT = "tar"

TRAVERSAL = rules.TAR001
LINK_ESCAPE = rules.TAR002
SPECIAL = rules.TAR003
DUPLICATE = rules.TAR004
CORRUPT = rules.TAR005
BLACKLISTED = rules.TAR006
SETUID = rules.TAR007
WHITEOUT = rules.TAR008
RULES: tuple[Rule, ...] = (TRAVERSAL, LINK_ESCAPE, SPECIAL, DUPLICATE, CORRUPT, BLACKLISTED,
                           SETUID, WHITEOUT, *mar.RULES)

# A top-level member that names what the tar is (the record's format).
_HINTS = {"model_config.yaml": "nemo", "oci-layout": "oci_image",
          "repositories": "docker_image"}



def sniff(head: bytes, name: str) -> bool:
    return len(head) >= 263 and head[257:262] == b"ustar"


def _link_escapes(member: tarfile.TarInfo) -> str | None:
    target = member.linkname
    if member.issym():
        # relative links resolve from the member's own directory
        base = member.name.replace("\\", "/").rsplit("/", 1)[0] if "/" in member.name else ""
        target = f"{base}/{target}" if base and not target.startswith("/") else target
    reason = unsafe_path(target)
    if reason == "parent-directory component":
        depth = 0
        for part in target.replace("\\", "/").split("/"):
            if part == "..":
                depth -= 1
                if depth < 0:
                    return reason
            elif part not in ("", "."):
                depth += 1
        return None
    return reason


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    source.stream.seek(0)
    seen: set[str] = set()
    try:
        counted = _Counted(source.stream)
        stream = cast(IO[bytes], counted)  # tarfile's stream mode only reads
        small: dict[str, bytes] = {}
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                yield from _member(archive, member, seen, ctx, small)
            if counted.delivered < archive.offset + tarfile.BLOCKSIZE:
                # tarfile ends the member loop quietly on a header cut short by the end
                # of the input: members after it were never seen.
                raise tarfile.ReadError(f"truncated at offset {counted.delivered}: no "
                                        "end-of-archive block")
        yield from _torchserve(seen, small, ctx)
    except LimitExceeded:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        reason = f"tar archive damaged: {exc}"
        yield CORRUPT.finding(reason, member=ctx.member)
        ctx.note_incomplete(reason)


class _Counted:
    """A read-only stream that counts the bytes it delivered."""

    def __init__(self, stream: Readable):
        self._stream = stream
        self.delivered = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.delivered += len(data)
        return data


def _torchserve(seen: set[str], small: dict[str, bytes], ctx: ScanContext) -> Iterator[Finding]:
    """torch-model-archiver --archive-format tgz writes `<model>/MAR-INF/MANIFEST.json` (the
    server extracts it and uses that folder): the same manifest checks as a `.mar` zip."""
    roots = [key[: -len(mar.MANIFEST)] for key in small if key.endswith(mar.MANIFEST)]
    roots = [r for r in roots if r == "" or (r.endswith("/") and r.count("/") == 1)]
    if not roots:
        return
    root = roots[0]
    names = [_plain(n)[len(root):] for n in seen if _plain(n).startswith(root)]

    def read(name: str) -> bytes | None:
        return small.get(root + name)

    yield from mar.check(names, read, ctx)


def _plain(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _member(archive: tarfile.TarFile, member: tarfile.TarInfo, seen: set[str],
            ctx: ScanContext, small: dict[str, bytes]) -> Iterator[Finding]:
    ctx.count_member()
    where = ctx.where(member.name)
    reason = unsafe_path(member.name)
    if reason:
        yield TRAVERSAL.finding(f"member name {member.name!r}: {reason}", member=where)
    if member.name in seen and not member.isdir():
        yield DUPLICATE.finding(f"member {member.name!r} appears more than once", member=where)
    seen.add(member.name)
    pattern = ctx.blacklisted(member.name.rsplit("/", 1)[-1])
    if pattern is not None:
        yield BLACKLISTED.finding(f"member {member.name!r} matches blacklist pattern "
                                  f"{pattern!r}", member=where)
    if member.issym() or member.islnk():
        escape = _link_escapes(member)
        if escape:
            kind = "symlink" if member.issym() else "hardlink"
            yield LINK_ESCAPE.finding(f"{kind} {member.name!r} -> {member.linkname!r} "
                                      f"({escape})", member=where)
        return
    if member.mode & 0o6000 and member.isfile():
        bits = " and ".join(b for b, m in (("setuid", 0o4000), ("setgid", 0o2000))
                            if member.mode & m)
        yield SETUID.finding(f"{member.name!r} has the {bits} bit (mode "
                             f"{member.mode:o}, owner uid {member.uid})", member=where)
    base = member.name.rstrip("/").rsplit("/", 1)[-1]
    if base.startswith(".wh."):
        removed = "the whole directory's lower-layer content" if base == ".wh..wh..opq" else (
            repr(member.name.rstrip("/")[: -len(base)] + base[4:]))
        yield WHITEOUT.finding(f"whiteout {member.name!r} deletes {removed} when the image "
                               "layers are stacked", member=where)
    if ctx.depth == 0:
        hint = _HINTS.get(base) if member.name.count("/") <= 1 else None
        if member.name.endswith(mar.MANIFEST) and member.name.count("/") <= 2:
            hint = "torchserve_mar"
        if hint is not None:
            ctx.format_hint = hint
    if member.ischr() or member.isblk() or member.isfifo():
        yield SPECIAL.finding(f"{member.name!r} is a device or FIFO member", member=where)
        return
    if not member.isfile():
        return
    handle = archive.extractfile(member)
    if handle is None:
        return
    head = handle.read(HEAD_BYTES)
    if member.size <= len(head) and len(small) < 64 and (
        member.name.endswith((mar.MANIFEST, ".txt"))
    ):
        small[_plain(member.name)] = head  # a .mar manifest and its requirements file
    if ctx.format_of(head, member.name)[1] is None and len(head) < member.size:
        return  # not a scannable format: the rest of the member is never read
    limit = ctx.limits.max_member_bytes
    if member.size > limit:
        raise LimitExceeded("bytes of one member held in memory", limit, member.size, where)
    data = head + handle.read(member.size - len(head))
    ctx.count_decompressed(0)
    yield from ctx.scan_member(Source.from_bytes(data, member.name), member.name)
