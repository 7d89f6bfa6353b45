"""The registry of format modules and content detection.

`SCANNERS` is the explicit registry (order matters: the first module whose `sniff` accepts
the head bytes scans the input). `batchscan.workers.magic` names formats that have no scanner yet.
Containers hand their members back through `scan_source`, so every member is sniffed by
content and scanned by the same modules within the same budgets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from batchscan.records import Finding
from batchscan.workers import (
    compressed,
    executable,
    gguf,
    json_config,
    keras_h5,
    numpy,
    onnx,
    openvino,
    pickle,
    pmml,
    python_source,
    pytorch_legacy,
    rar,
    safetensors,
    sevenzip,
    tar,
    template,
    tensorrt,
    tf_savedmodel,
    unknown,
    yaml_config,
    zip,
)
from batchscan.workers.base import FormatModule, ScanContext, Source
from batchscan.workers.magic import recognise

SCANNERS: tuple[FormatModule, ...] = (
    zip,
    compressed,
    tar,
    sevenzip,
    rar,  # RAR4/RAR5 marker blocks
    executable,  # ELF/PE/Mach-O/APE: a llamafile's zip part is scanned from here
    tensorrt,  # `ftrt`, or Ultralytics' JSON prefix before it
    numpy,
    pytorch_legacy,  # before pickle: a legacy torch file is a pickle stream with a magic
    pickle,
    keras_h5,
    gguf,
    safetensors,
    tf_savedmodel,  # before onnx: both are protobufs, a .pb name decides
    onnx,
    pmml,  # XML with a <PMML> root
    openvino,  # XML with a <net version=...> root
    json_config,  # text formats last: their sniffs use the name as a hint
    yaml_config,
    template,
    python_source,
)

UNKNOWN = "unknown"


def detect(head: bytes, name: str, scanners: tuple[FormatModule, ...] = SCANNERS) -> tuple[
    str, FormatModule | None
]:
    """Format id and scanner module for an input, decided by content (the name is a hint)."""
    for module in scanners:
        if module.sniff(head, name):
            return module.FORMAT, module
    return recognise(head, name) or UNKNOWN, None


def detect_source(
    source: Source, scanners: tuple[FormatModule, ...] = SCANNERS
) -> tuple[str, FormatModule | None]:
    """`detect`, plus one look at the end: a zip with data in front of it (a polyglot or a
    self-extractor) is still a zip to the loaders that read its central directory, and a
    "zip" without an end record that the unpickler runs is a pickle."""
    fmt, module = detect(source.head, source.name, scanners)
    if module is None and fmt == UNKNOWN and zip.has_end_record(source):
        return zip.FORMAT, zip
    if module is zip and pickle.sniff(source.head, source.name) and not zip.has_end_record(
        source
    ):
        # `PK...` that no zip reader opens but pickle.load runs (PERSID, then a payload).
        return pickle.FORMAT, pickle
    return fmt, module


def context(**options: Any) -> ScanContext:
    """A scan context wired to this registry (members are detected and scanned here)."""
    return ScanContext(dispatch=scan_source, detect=detect, **options)


def scan_source(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    """Scan a container member: detect by content, scan, or say why it was not scanned."""
    fmt, module = detect_source(source)
    if module is not None:
        yield from module.scan(source, ctx)
    elif fmt != UNKNOWN:
        ctx.note_incomplete(f"{ctx.member}: format {fmt!r} recognised but not scanned")
    else:
        # Tensor storages and the like: the cheap content checks only (YAML python tags,
        # template markers, a damaged pickle under any name).
        yield from unknown.checks(source, ctx)
