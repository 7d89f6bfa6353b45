"""Cheap content checks for files no format module understood (record status `unsupported`).

Layout. Anything: dlib `.dat`, fastText `.bin`, TF1 checkpoints, spaCy binaries, renamed
configs, text. The name is no guide (`hparams`, `cfg.yaml.bak`).

Attack surface. A loader that does not care about the name still runs what is inside: a
YAML document with `!!python/object/apply:os.system` under `yaml.unsafe_load`, a Jinja
template rendered by a chat runtime, a pickle handed to `pickle.load` whatever it is called.

What is checked. The first MiB is searched for YAML python tags (then composed, never
constructed, by `workers/yaml_config.py`), Jinja markers (then checked by
`workers/textscan.py`), and a pickle PROTO opcode at offset 0 (then walked by
`workers/pickle.py`: a pickle that imports something is already recognised by content; this
reports a damaged one at INFO), or a first opcode whose text argument is longer than the head
(then the whole file is walked, and reported when the walk imports or calls something); the
pickle checks are for files only, not for container members (tensor storages start with any
bytes).
Such a file is never `clean`: `clean` means read and understood.

Not checked: everything else about the file; the record says so (`unsupported`, with the
reason in `error`).

Rules: those of the modules it hands over to (YML001-YML003, CFG005-CFG006, PKL001-PKL013).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from batchscan.records import Finding, Severity
from batchscan.workers import pickle, textscan, yaml_config
from batchscan.workers.base import LimitExceeded, ScanContext, Source
from batchscan.workers.configs import TEMPLATE_INJECTION, TEMPLATE_SUSPICIOUS

REASON = "format not recognised: no scanner understood this file; only content checks ran"

_CHECK_BYTES = 1024 * 1024
_DAMAGE_ONLY = {pickle.MALFORMED.rule_id, pickle.TRAILING_DATA.rule_id}
_YAML_PYTHON = re.compile(rb"!!python/|tag:yaml\.org,2002:python/")
_TEMPLATE = re.compile(rb"\{\{|\{%")


def checks(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    """Findings of the cheap checks on a file (or member) of unknown format."""
    head = source.head if len(source.head) >= min(source.size, _CHECK_BYTES) else (
        source.read_at(0, _CHECK_BYTES))
    if ctx.depth == 0:  # members: tensor storages start with anything (int64 128: 80 00)
        yield from _pickle_checks(source, ctx, head)
    if b"\x00" in head[:4096]:
        return  # binary: no YAML or template
    tag = _YAML_PYTHON.search(head)
    if tag is not None:
        found = list(yaml_config.scan(source, ctx))
        if any(f.rule_id == yaml_config.PYTHON_TAG.rule_id for f in found):
            yield from found
        else:  # not a YAML document as a whole: the tag is still worth a look
            excerpt = head[max(0, tag.start() - 40) : tag.start() + 120]
            yield yaml_config.PYTHON_TAG.finding(
                "a YAML python tag appears in a file that does not parse as YAML",
                severity=Severity.WARNING, member=ctx.member, offset=tag.start(),
                evidence=excerpt.decode("utf-8", "replace"))
    if _TEMPLATE.search(head):
        for hit in textscan.template_hits(head.decode("utf-8", "replace")):
            rule = TEMPLATE_INJECTION if hit.error else TEMPLATE_SUSPICIOUS
            yield rule.finding(f"template {hit.reason}", member=ctx.member,
                               evidence=hit.excerpt)


def _pickle_checks(source: Source, ctx: ScanContext, head: bytes) -> Iterator[Finding]:
    """A file that starts with PROTO, or whose first text argument is longer than the head
    (`V` + 100 KB), is walked whole: only that tells whether the unpickler imports something.
    Damage alone (binary data that happens to start like a pickle) is one INFO finding."""
    starts_with_proto = head[:1] == b"\x80" and head[1:2] and head[1] <= pickle.HIGHEST_PROTOCOL
    if not starts_with_proto and not pickle.first_argument_overruns(source.head):
        return
    try:
        found = list(pickle.scan(source, ctx))
    except LimitExceeded:
        return  # a heuristic walk of data that is no pickle: the file stays `unsupported`
    if any(f.rule_id not in _DAMAGE_ONLY for f in found):
        yield from found
    elif starts_with_proto:
        where = next((f.offset for f in found if f.rule_id == pickle.MALFORMED.rule_id), None)
        yield pickle.MALFORMED.finding(
            f"starts with a pickle PROTO {head[1]} opcode but breaks at offset {where} before "
            "importing or calling anything", severity=Severity.INFO, member=ctx.member,
            offset=where)
