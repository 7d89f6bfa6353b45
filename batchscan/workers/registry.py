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
    catboost,
    compressed,
    executable,
    flax_msgpack,
    gguf,
    json_config,
    keras_h5,
    lightgbm,
    mlflow_env,
    numpy,
    onnx,
    openvino,
    orbax,
    pickle,
    pmml,
    python_source,
    pytorch_legacy,
    rar,
    rds,
    safetensors,
    sevenzip,
    skops_schema,
    tar,
    template,
    tensorrt,
    tf_savedmodel,
    unknown,
    xgboost,
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
    xgboost,  # JSON/UBJSON with a `learner` first key: before pickle and json_config
    lightgbm,  # text starting `tree\nversion=`
    pytorch_legacy,  # before pickle: a legacy torch file is a pickle stream with a magic
    pickle,
    keras_h5,
    gguf,
    catboost,  # `CBM1` + a FlatBuffers core
    rds,  # R serialization (`X\n` + version, or an RDX2/RDX3 workspace)
    safetensors,
    tf_savedmodel,  # before onnx: both are protobufs, a .pb name decides
    onnx,
    flax_msgpack,  # a msgpack map with flax's ndarray extension (or a .msgpack name)
    skops_schema,  # a JSON object tree of skops nodes: before json_config
    orbax,  # Orbax _METADATA/_CHECKPOINT_METADATA JSON: before json_config
    pmml,  # XML with a <PMML> root
    openvino,  # XML with a <net version=...> root
    json_config,  # text formats last: their sniffs use the name as a hint
    yaml_config,
    mlflow_env,  # pip requirements files, by name and text content
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
