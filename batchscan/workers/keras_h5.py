"""Keras HDF5 models (`.h5`, `.hdf5`), read with h5py inside the sandbox.

Layout. An HDF5 file whose root attributes hold JSON: `model_config` (the architecture),
`training_config`, `keras_version`; weights live in groups (`model_weights/...`).

Attack surface. A Lambda layer stores marshalled Python bytecode that runs on
`load_model` (CVE-2024-3660; h5 files ignore `safe_mode`, CVE-2025-9905), also inside
nested Sequential/Functional sub-models and wrappers; `module`/`registered_name`
references to arbitrary modules (CVE-2025-1550); function references such as
`keras.utils.get_file` (CVE-2025-8747/9906); lookup layers whose vocabulary is a file path
read that file on load (CVE-2025-12058, see workers/keras_files.py). modelscan checks only
top-level layers.

What is checked: the JSON attributes with the shared config rules (the whole tree, so
nested models and wrappers are covered) and for file references (KRS001); external links
and external storage in the file
(data read from other files) are reported. Weights are never read.

Rules
| id     | name              | severity | CWE     |
|--------|-------------------|----------|---------|
| HDF001 | external-data     | warning  | CWE-73  |
| HDF002 | bad-config        | warning  | CWE-20  |
| KRS001 | keras-file-reference | error | CWE-73  |
| CFG007-CFG009 | see workers/configs.py | | |
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import (
    HEAD_BYTES,
    FormatError,
    LimitExceeded,
    ScanContext,
    Source,
)
from batchscan.workers.compressed import random_access
from batchscan.workers.configs import CONFIG_RULES, walk_config
from batchscan.workers.keras_files import FILE_REFERENCE, file_references

FORMAT = "keras_h5"

EXTERNAL = rules.HDF001
BAD_CONFIG = rules.HDF002
RULES: tuple[Rule, ...] = (EXTERNAL, BAD_CONFIG, FILE_REFERENCE, *CONFIG_RULES)

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CONFIG_ATTRS = ("model_config", "training_config", "keras_version", "backend")
_MAX_OBJECTS = 100_000
_MAX_ATTRIBUTE_BYTES = 64 * 1024 * 1024


def sniff(head: bytes, name: str) -> bool:
    return any(head[off : off + 8] == _SIGNATURE for off in (0, 512, 1024, 2048))


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    import h5py  # here, not at import: 75 ms of start-up that most registry runs never use

    source = random_access(source, ctx)
    source.stream.seek(0)
    handle: Any = source.stream if hasattr(source.stream, "readinto") else io.BytesIO(
        source.read_at(0, HEAD_BYTES))
    try:
        yield from _scan_file(h5py, handle, ctx)
    except (LimitExceeded, MemoryError, RecursionError):
        raise
    except Exception as exc:
        # h5py and libhdf5 answer damage with KeyError, OSError, RuntimeError, ValueError...
        # whose text names HDF5's internals; findings yielded before are already kept.
        raise FormatError("damaged or unsupported HDF5 structure") from exc
    if ctx.depth == 0:
        ctx.format_hint = FORMAT


def _attribute_bytes(h5: Any, name: str) -> int:
    """What reading an attribute would allocate, from its declared shape and type."""
    attr = h5.attrs.get_id(name)
    count = 1
    for n in attr.shape or ():
        count *= n
    return int(count * max(1, attr.dtype.itemsize))


def _scan_file(h5py: Any, handle: Any, ctx: ScanContext) -> Iterator[Finding]:
    with h5py.File(handle, "r") as h5:
        for name in _CONFIG_ATTRS:
            if name not in h5.attrs:
                continue
            # A 16 KB file can declare an attribute of billions of elements that libhdf5
            # fills in before returning: check the size first.
            declared = _attribute_bytes(h5, name)
            if declared > _MAX_ATTRIBUTE_BYTES:
                ctx.note_incomplete(f"HDF5 attribute {name} declares {declared} bytes, more "
                                    f"than {_MAX_ATTRIBUTE_BYTES} read")
                continue
            value = h5.attrs[name]
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if name in ("keras_version", "backend"):
                continue
            try:
                document = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as exc:
                yield BAD_CONFIG.finding(f"{name} is not valid JSON: {exc}"[:300],
                                         member=ctx.member)
                continue
            yield from walk_config(document, ctx, name)
            yield from file_references(document, ctx, name)
        yield from _external(h5, ctx)


def _external(h5: Any, ctx: ScanContext) -> Iterator[Finding]:
    import h5py

    seen = 0
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        nonlocal seen
        seen += 1
        if seen > _MAX_OBJECTS:
            raise StopIteration
        if isinstance(obj, h5py.Dataset) and obj.external:
            found.append(f"dataset {name!r} stores data in {obj.external[0][0]!r}")

    visited: set[int] = set()

    def links(group: Any, prefix: str) -> None:
        nonlocal seen
        # Each group once, by its object address: hard links may form cycles and diamonds,
        # and a walk by name is exponential in them (a 6 KB file held a worker for -t).
        address = h5py.h5o.get_info(group.id).addr
        if address in visited:
            return
        visited.add(address)
        for key in group:
            seen += 1
            if seen > _MAX_OBJECTS:
                raise StopIteration
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                found.append(f"{prefix}{key} -> {link.filename}:{link.path}")
            elif (isinstance(link, h5py.HardLink) and isinstance(group.get(key), h5py.Group)
                  and len(found) < 50 and prefix.count("/") < 32):
                links(group[key], f"{prefix}{key}/")

    try:
        links(h5, "/")
        h5.visititems(visit)
    except StopIteration:
        ctx.note_incomplete(f"HDF5 file has more than {_MAX_OBJECTS} objects")
    for detail in found[:20]:
        yield EXTERNAL.finding(detail, member=ctx.member)
