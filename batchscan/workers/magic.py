"""Content-based recognition of formats that have no scanner module yet (or are text).

The registry in `workers/registry.py` asks the scanner modules first; this table names the
rest so that a record always says what a file is. A format recognised here but not scanned
is reported as `error` ("recognised, not scanned"): batchscan never calls a file it did not
analyse clean.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

_HDF5 = b"\x89HDF\r\n\x1a\n"


def _hdf5(head: bytes, name: str) -> bool:
    # The superblock may follow a user block of 512, 1024, 2048... bytes.
    return any(head[off : off + 8] == _HDF5 for off in (0, 512, 1024, 2048, 4096, 8192))


def _safetensors(head: bytes, name: str) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack_from("<Q", head)
    return 2 <= length < 100 * 1024 * 1024 and head[8:9] == b"{"


def _tar(head: bytes, name: str) -> bool:
    return len(head) >= 263 and head[257:262] == b"ustar"


def _suffix(*suffixes: str) -> Callable[[bytes, str], bool]:
    return lambda head, name: name.lower().endswith(suffixes)


def _coreml(head: bytes, name: str) -> bool:
    """Core ML `Model`: specificationVersion (field 1), then a ModelDescription (field 2)
    whose first field is a FeatureDescription message; the same first bytes as ONNX."""
    if name.lower().endswith(".mlmodel"):
        return True
    return (len(head) > 5 and head[0] == 0x08 and head[2] == 0x12 and head[4] == 0x0A
            and not head[3] & 0x80)


def _json(head: bytes, name: str) -> bool:
    text = head.lstrip()[:1]
    return text in (b"{", b"[") and name.lower().endswith((".json", ".jsonl"))


# (format id, recogniser), checked in order after the scanner modules.
RECOGNISERS: tuple[tuple[str, Callable[[bytes, str], bool]], ...] = (
    ("zip", lambda h, n: h[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")),
    ("gzip", lambda h, n: h[:2] == b"\x1f\x8b"),
    ("bzip2", lambda h, n: h[:3] == b"BZh" and h[3:4].isdigit()),
    ("xz", lambda h, n: h[:6] == b"\xfd7zXZ\x00"),
    ("zstd", lambda h, n: h[:4] == b"\x28\xb5\x2f\xfd"),
    ("lz4", lambda h, n: h[:4] == b"\x04\x22\x4d\x18"),
    ("7z", lambda h, n: h[:6] == b"7z\xbc\xaf\x27\x1c"),
    ("tar", _tar),
    ("hdf5", _hdf5),
    ("numpy", lambda h, n: h[:6] == b"\x93NUMPY"),
    ("gguf", lambda h, n: h[:4] == b"GGUF"),
    ("ggml", lambda h, n: h[:4] in (b"lmgg", b"fmgg", b"tjgg", b"algg", b"ggml", b"ggjt")),
    ("tflite", lambda h, n: h[4:8] == b"TFL3"),
    ("xgboost_binary", lambda h, n: h[:4] == b"binf"),  # legacy XGBoost < 2 binary model
    ("ocdbt", lambda h, n: h[:4] in (b"\x0c\xdb\x3a\x2a", b"\x0c\xdb\x20\xde")),  # Orbax OCDBT
    ("safetensors", _safetensors),
    ("coreml", _coreml),
    ("onnx", _suffix(".onnx")),
    ("tf_savedmodel", _suffix(".pb", ".pbtxt")),
    ("json", _json),
    ("yaml", _suffix(".yaml", ".yml")),
    ("python", _suffix(".py")),
)

# Formats that cannot carry code or data a loader runs: recognised, nothing to scan.
INERT: frozenset[str] = frozenset()


def recognise(head: bytes, name: str) -> str | None:
    for format_id, recogniser in RECOGNISERS:
        if recogniser(head, name):
            return format_id
    return None
