"""Issue 16, blind spots outside pickles and configs: each class with a benign twin that stays
clean and a malicious twin that is flagged at the severity contract's level.

- member sizes: a compressed zip member over the whole-read size keeps its real, declared
  size (no 2^62 placeholder taken for a size);
- shipped Python: computed access to the builtins / os namespaces;
- ONNX external data reached through links or special files in the model folder;
- Keras preprocessing layers whose vocabulary is a file path.

Every malicious fixture is generated here with a harmless payload and never loaded.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from batchscan.records import FileResult, Severity
from batchscan.workers.base import ScanContext, Source
from batchscan.workers.compressed import DecompressStream
from batchscan.workers.task import WorkerOptions, scan_file

_BIG = 17 * 1024 * 1024  # over zip.py's 16 MiB whole-read size: the member is streamed


def scan(path: Path) -> FileResult:
    return scan_file(str(path), WorkerOptions())


def is_clean(result: FileResult) -> bool:
    """What the coordinator records as `clean`: no finding and nothing left unscanned."""
    return result.error is None and not result.findings


def rule_ids(result: FileResult) -> set[str]:
    return {f.rule_id for f in result.findings}


def safetensors_bytes(tensor_bytes: int, trailing: bytes = b"") -> bytes:
    """A safetensors file as the library lays it out: one U8 tensor, header padded to 8."""
    header = json.dumps({"weight": {"dtype": "U8", "shape": [tensor_bytes],
                                    "data_offsets": [0, tensor_bytes]},
                         "__metadata__": {"format": "pt"}}).encode()
    header += b" " * (-len(header) % 8)
    # A repeating pattern: deflates about 100:1 (zeros would trip the bomb-ratio limit).
    pattern = bytes(range(256)) * (tensor_bytes // 256 + 1)
    return struct.pack("<Q", len(header)) + header + pattern[:tensor_bytes] + trailing


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes data descriptors (flag 0x08)."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self.buffer.write(data)


def deflated_zip(members: dict[str, bytes], descriptor: bool = False) -> bytes:
    if descriptor:
        sink = _Unseekable()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        return sink.buffer.getvalue()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# --- 4. zip members keep their real size ----------------------------------------------

@pytest.mark.parametrize("descriptor", [False, True], ids=["local-sizes", "data-descriptor"])
def test_big_deflated_safetensors_member_is_clean(tmp_path: Path, descriptor: bool) -> None:
    data = deflated_zip({"model.safetensors": safetensors_bytes(_BIG)}, descriptor)
    assert descriptor == bool(zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 0x8)
    path = tmp_path / "model.zip"
    path.write_bytes(data)
    result = scan(path)
    assert is_clean(result), result


@pytest.mark.parametrize("descriptor", [False, True], ids=["local-sizes", "data-descriptor"])
def test_big_deflated_safetensors_member_with_hidden_tail_is_flagged(
        tmp_path: Path, descriptor: bool) -> None:
    # The malicious twin: 100 bytes after the last tensor, counted from the real size.
    data = deflated_zip({"model.safetensors": safetensors_bytes(_BIG, b"X" * 100)}, descriptor)
    path = tmp_path / "model.zip"
    path.write_bytes(data)
    result = scan(path)
    layout = [f for f in result.findings if f.rule_id == "SFT002"]
    assert [f.message for f in layout] == ["100 bytes after the last tensor"], result


def test_sizes_that_disagree_are_reported_and_not_used(tmp_path: Path) -> None:
    data = bytearray(deflated_zip({"model.safetensors": safetensors_bytes(_BIG)}))
    # The local header's uncompressed size (offset 22) now says 1000 bytes less than the
    # central directory's: which one a reader believes depends on the reader.
    (usize,) = struct.unpack_from("<I", data, 22)
    struct.pack_into("<I", data, 22, usize - 1000)
    path = tmp_path / "model.zip"
    path.write_bytes(bytes(data))
    result = scan(path)
    corrupt = [f for f in result.findings if f.rule_id == "ZIP009"]
    assert corrupt and "local header declares" in corrupt[0].message, result
    # no size-based verdict from a size nobody agrees on, and no placeholder number
    assert "SFT002" not in rule_ids(result), result
    assert not any(str(1 << 62)[:10] in f.message for f in result.findings), result


def test_gzip_safetensors_of_unknown_length_gets_no_size_checks(tmp_path: Path) -> None:
    # A gzip payload has no declared size: the bounds checks are skipped, not guessed.
    path = tmp_path / "model.safetensors.gz"
    path.write_bytes(gzip.compress(safetensors_bytes(200_000), compresslevel=1))
    result = scan(path)
    assert "SFT002" not in rule_ids(result), result
    assert is_clean(result), result


def test_declared_size_caps_the_stream_and_reports_what_lies_past_it() -> None:
    payload = b"abcdefgh" * 1000
    compressor = zlib.compressobj(wbits=-15)
    raw = compressor.compress(payload) + compressor.flush()
    for declared, short, overrun in ((len(payload), False, False),
                                     (len(payload) - 8, False, True),
                                     (len(payload) + 8, True, False)):
        stream = DecompressStream(io.BytesIO(raw), "deflate", ScanContext(), size=declared)
        out = stream.read()
        assert out == payload[:declared]
        assert stream.read(1) == b""
        assert (stream.short, stream.overrun) == (short, overrun), declared


def test_streamed_member_shorter_than_declared_is_not_clean(tmp_path: Path) -> None:
    # A pickle member declared 17 MiB long whose data ends early: the scan notices when the
    # pickle walk reads to the end, and the file is not reported clean.
    payload = b"\x80\x04N." + b"\x00" * 16
    data = bytearray(deflated_zip({"archive/data.pkl": payload}))
    for offset in (22,):  # local header
        struct.pack_into("<I", data, offset, _BIG)
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, _BIG)
    path = tmp_path / "model.zip"
    path.write_bytes(bytes(data))
    result = scan(path)
    assert result.error is not None, result
    assert any(f.rule_id == "ZIP009" and f.severity is Severity.WARNING
               for f in result.findings), result


def test_source_known_size() -> None:
    assert Source.from_bytes(b"abc", "x").known_size == 3
    unknown = Source(io.BytesIO(b"abc"), 1 << 62, "x", b"abc")
    assert unknown.known_size is None
