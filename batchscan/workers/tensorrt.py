"""TensorRT serialized engines (`.engine`, `.plan`, `.trt`), raw or with Ultralytics' JSON
metadata prefix.

Layout. A plan starts with the magic `ftrt`; NVIDIA does not document the rest (version,
target GPU, kernels, weights and the serialized state of every plugin layer). Ultralytics'
exporter writes `[u32 little-endian length][JSON metadata][plan]`.

Attack surface. Deserialising an engine instantiates its plugin layers through the plugin
registry: a plugin is native code from a shared library that the application (or, since
TensorRT 8.6/10, the engine itself: `setPluginsToSerialize` / version-compatible engines with
an embedded lean runtime) loads. An engine can therefore carry or require native libraries.
The plan is opaque to any static tool.

What is checked. The header (magic, or the metadata prefix: JSON, bounded, checked like other
configs through its strings; string values Ultralytics passes to eval() must be literals,
TRT003); the plan bytes are searched (bounded, streaming, never held
whole) for embedded ELF/PE images, shared-library names and plugin creator names (TRT001,
WARNING: native code that runs when the engine is deserialised). Because the plan format is
undocumented, an engine is never reported clean: TRT002 and an incomplete-scan note are
always recorded (fail closed).

References: NVIDIA TensorRT developer guide, "Extending TensorRT with custom layers"
(plugin registry, `IPluginCreator`, `setPluginsToSerialize`, version-compatible engines).

Rules
| id     | name           | severity | CWE     |
|--------|----------------|----------|---------|
| TRT001 | plugin-library | warning  | CWE-829 |
| TRT002 | opaque-engine  | info     | CWE-693 |
| TRT003 | metadata-eval  | error    | CWE-95  |
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import pickle as pickle_format
from batchscan.workers.base import FormatError, ScanContext, Source
from batchscan.workers.configs import CONFIG_RULES, walk_config

FORMAT = "tensorrt"

PLUGIN = rules.TRT001
OPAQUE = rules.TRT002
METADATA_EVAL = rules.TRT003
RULES: tuple[Rule, ...] = (PLUGIN, OPAQUE, METADATA_EVAL, *CONFIG_RULES)
_EVALUATED = ("imgsz", "names", "kpt_shape", "args")

MAGIC = b"ftrt"
_MAX_METADATA = 1024 * 1024
_CHUNK = 1024 * 1024
_OVERLAP = 256
_MAX_SEARCH = 256 * 1024 * 1024  # bytes of plan searched (~10 s); beyond it the record says so
# Suffix first, then the name before it (a name-first pattern backtracks up to its width at
# every byte of a long run of letters: quadratic on hostile plans).
_LIBRARY = re.compile(rb"\.(?:so(?:\.[0-9]+)*|dll|dylib)(?![A-Za-z0-9_])")
# At least four name bytes, starting with a letter, after a non-name byte: weights are
# random-looking bytes, where a short "x.so" turns up about once per 100 MB.
_LIBRARY_NAME = re.compile(rb"(?<![A-Za-z0-9_.+-])[A-Za-z][A-Za-z0-9_.+-]{3,119}\Z")
_PLUGIN = re.compile(rb"(?:_TRT|PluginCreator|Plugin(?:Dynamic|V[0-9]+)?)(?![A-Za-z0-9_])")
_PLUGIN_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9_]{2,80}\Z")
_ELF = re.compile(rb"\x7fELF[\x01\x02][\x01\x02]\x01")


def _plan_offset(head: bytes) -> int | None:
    if head[:4] == MAGIC:
        return 0
    if len(head) >= 8:
        length = int.from_bytes(head[:4], "little")
        if 2 <= length <= _MAX_METADATA and head[4:5] == b"{" and (
            head[4 + length : 8 + length] == MAGIC or len(head) < 8 + length
        ):
            return 4 + length
    return None


def sniff(head: bytes, name: str) -> bool:
    # `J` (BININT) + three zeros + `{` reads as a 74-byte metadata prefix: a stream the
    # unpickler runs is left to the pickle module (later in the registry).
    return _plan_offset(head) is not None and not pickle_format.sniff(head, name)


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    offset = _plan_offset(source.head)
    if offset is None:
        raise FormatError("not a TensorRT engine: no 'ftrt' magic")
    if offset:
        yield from _metadata(source, offset, ctx)
    if source.read_at(offset, 4) != MAGIC:
        raise FormatError(f"TensorRT engine truncated or damaged: no 'ftrt' plan at "
                          f"offset {offset}")
    libraries: set[str] = set()
    plugins: set[str] = set()
    executables: list[int] = []
    pos = offset
    end = min(source.size, offset + _MAX_SEARCH)
    source.stream.seek(pos)
    tail = b""
    while pos < end:
        chunk = source.stream.read(min(_CHUNK, end - pos))
        if not chunk:
            break
        window = tail + chunk
        base = pos - len(tail)
        for pattern, name_pattern, found in ((_LIBRARY, _LIBRARY_NAME, libraries),
                                             (_PLUGIN, _PLUGIN_NAME, plugins)):
            for match in pattern.finditer(window):
                name = name_pattern.search(window, max(0, match.start() - 121), match.start())
                if name is not None:
                    found.add((name.group(0) + match.group(0)).decode("latin-1"))
        for match in _ELF.finditer(window):
            if base + match.start() not in executables:
                executables.append(base + match.start())
        pos += len(chunk)
        tail = window[-_OVERLAP:]
        if len(libraries) + len(plugins) > 1000:
            break
    if executables:
        yield PLUGIN.finding(f"{len(executables)} embedded ELF image(s) (a serialized plugin "
                             "library or lean runtime): loaded when the engine is "
                             "deserialised", member=ctx.member, offset=executables[0])
    if libraries or plugins:
        named = sorted(libraries)[:10] + sorted(plugins)[:10]
        yield PLUGIN.finding(f"names plugin libraries or plugin creators: "
                             f"{', '.join(repr(n) for n in named)}", member=ctx.member,
                             evidence=named[0][:300])
    searched = "" if end >= source.size else f" (first {end - offset} bytes searched)"
    yield OPAQUE.finding(f"TensorRT plan format is undocumented: searched for plugins and "
                         f"libraries{searched}, not parsed", member=ctx.member)
    ctx.note_incomplete("TensorRT engine: the plan format is undocumented and cannot be fully "
                        "scanned")


def _metadata(source: Source, offset: int, ctx: ScanContext) -> Iterator[Finding]:
    """Ultralytics' prefix is read with `json.loads`; it must be JSON. AutoBackend (8.0-8.3)
    then runs `eval()` on the string values of `imgsz`, `names`, `kpt_shape` (and `args`):
    one that is not a Python literal is code that runs on load (TRT003)."""
    raw = source.read_at(4, offset - 4)
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise FormatError("TensorRT engine metadata prefix is not JSON") from None
    if not isinstance(metadata, dict):
        return
    for key in _EVALUATED:
        value = metadata.get(key)
        if not isinstance(value, str):
            continue
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            yield METADATA_EVAL.finding(
                f"metadata {key!r} is not a Python literal: Ultralytics evaluates it when it "
                "loads the engine", member=ctx.member, evidence=value[:300])
    yield from walk_config(metadata, ctx, "metadata")


__all__ = ["FORMAT", "RULES", "scan", "sniff"]
