"""Keras layer configs that name files the loader reads (not a format module).

`keras_h5.py` (the `model_config` attribute) and `zip.py` (a `.keras` archive's
`config.json`) walk their parsed configs with `file_references`.

Attack surface. A lookup layer's `vocabulary` may be a path instead of a list: `StringLookup`,
`IntegerLookup`, `TextVectorization` (through its inner lookup) and their subclasses read it
with `tf.io.gfile` while the model is deserialised (`IndexLookup.set_vocabulary`), and gfile
also opens remote schemes (`gs://`, `s3://`, `hdfs://`, `http(s)://` with tensorflow-io).
The file's lines become the vocabulary: `/etc/passwd`, `/proc/self/environ` or a cloud
credential file end up in the model, readable through its outputs or `get_vocabulary()`
(CVE-2025-12058; Keras 3.12 refuses a string vocabulary in safe mode, older Keras, tf.keras and
legacy `.h5` loading do not). BPE tokenizers (keras_nlp/keras_hub) read `merges` the same way.
`TFSMLayer` loads the TensorFlow SavedModel at `filepath` (its graph then runs).

Keras itself never writes such a config: Keras 3 stores a vocabulary file as an archive
asset (`assets/.../vocabulary.txt`) and leaves `vocabulary: null` in the config; inline
vocabularies are lists.

Severity (the contract: the loader opens files on load): a path that is absolute, climbs
with `..`, or names a URL scheme, and every `TFSMLayer` path, is ERROR; a plain relative
path is WARNING (it is read relative to the loading process's working directory, which an
older Keras that kept the path in the config may have written for a file of its own).

Rules
| id     | name                 | severity | CWE    |
|--------|----------------------|----------|--------|
| KRS001 | keras-file-reference | error    | CWE-73 |
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from batchscan import rules
from batchscan.records import Finding, Severity
from batchscan.rules import Rule
from batchscan.workers.base import ScanContext

FILE_REFERENCE = rules.KRS001
RULES: tuple[Rule, ...] = (FILE_REFERENCE,)

# Config keys a layer reads as a file path when they hold a string.
_PATH_KEYS = ("vocabulary", "merges")
_SCHEME = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"\A[A-Za-z]:[\\/]|\A\\\\")
_MAX_NODES = 2_000_000


def file_references(document: Any, ctx: ScanContext, where: str) -> Iterator[Finding]:
    """KRS001 findings for every Keras layer config in `document` that names a file."""
    stack: list[tuple[Any, str]] = [(document, where)]
    nodes = 0
    while stack:
        node, path = stack.pop()
        nodes += 1
        if nodes > _MAX_NODES:
            ctx.note_incomplete(f"Keras config has more than {_MAX_NODES} nodes")
            return
        if isinstance(node, dict):
            yield from _layer(node, path, ctx)
            stack.extend((value, f"{path}.{key}") for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(node))


def _layer(node: dict[Any, Any], path: str, ctx: ScanContext) -> Iterator[Finding]:
    class_name = node.get("class_name")
    config = node.get("config")
    if not isinstance(class_name, str) or not isinstance(config, dict):
        return
    layer = f"{class_name} layer {config.get('name', '?')!r} at {path}"
    if class_name.rsplit(".", 1)[-1].rsplit(">", 1)[-1] == "TFSMLayer":
        target = config.get("filepath")
        if isinstance(target, str) and target:
            yield FILE_REFERENCE.finding(f"{layer} loads the SavedModel at {target!r}",
                                         member=ctx.member, evidence=target[:300])
    for key in _PATH_KEYS:
        value = config.get(key)
        if not isinstance(value, str) or not value:
            continue
        escape = outside(value)
        if escape is None:
            yield FILE_REFERENCE.finding(
                f"{layer} reads its {key} from the file {value!r} (relative to the loading "
                "process's working directory)", severity=Severity.WARNING,
                member=ctx.member, evidence=value[:300])
        else:
            yield FILE_REFERENCE.finding(f"{layer} reads its {key} from {value!r} ({escape})",
                                         member=ctx.member, evidence=value[:300])


def outside(value: str) -> str | None:
    """Why a path string leaves the model, or None for a plain relative path."""
    if _SCHEME.match(value):
        return f"{value.split('://', 1)[0]}:// is remote storage or the network"
    normal = value.replace("\\", "/")
    if normal.startswith("/") or _DRIVE.match(value):
        return "an absolute path"
    if normal.startswith("~"):
        return "a home-directory path"
    if ".." in normal.split("/"):
        return "it climbs out with .."
    return None
