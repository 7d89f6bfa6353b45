"""JSON documents shipped with models: `config.json`, `tokenizer_config.json`, Keras
`config.json`, `chat_template.json`, Hydra configs in JSON, JSON Lines.

Layout. UTF-8 JSON (or one JSON value per line). Read whole up to 64 MiB. Parsed with
orjson; a tokenizer's vocabulary and merges are checked in place (`workers/jsonbulk.py`);
what orjson refuses goes to the standard `json` module.

Attack surface. `auto_map` (transformers imports `modeling_*.py` from the repo, or from
another repo via `org/repo--module.Class`, under trust_remote_code); chat templates in any
field (Jinja2 SSTI, CVE-2024-34359; LiteLLM GHSA-46cm-pfwv-cgf8); Hydra `_target_`;
Keras configs with Lambda bytecode or foreign module references; base64 pickles. Deeply
nested brackets crash naive parsers (attacks.md row 50).

What is checked: every string and mapping via `workers/configs.py`; nesting beyond the
parser's depth is reported, not crashed on.

Rules
| id     | name         | severity | CWE     |
|--------|--------------|----------|---------|
| JSN001 | invalid-json | warning  | CWE-20  |
| CFG001-CFG010 | see workers/configs.py | | |
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import orjson

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import LimitExceeded, ScanContext, Source
from batchscan.workers.configs import CONFIG_RULES, walk_config
from batchscan.workers.jsonbulk import parse_without_bulk

FORMAT = "json"

INVALID = rules.JSN001
RULES: tuple[Rule, ...] = (INVALID, *CONFIG_RULES)

_MAX_BYTES = 64 * 1024 * 1024
_REFUSED = object()  # orjson could not parse the text
# Without a .json name, only an object whose first key is a JSON string counts: random
# bytes (tensor storages) that start with "{" followed by a digit are not a document. Any
# key json.loads accepts counts (empty, escaped quotes, longer than the window: a
# stable-baselines3 `data` led by `"": 0` is loaded all the same); a key still open at the
# end of the window must be string characters all the way (random bytes hold controls).
_KEY_START = re.compile(
    rb'\A\s*\{\s*"(?:[^"\\\x00-\x1f]|\\["\\/bfnrtu])*(?:"\s*:|\Z)')


# json.loads skips any leading whitespace: a document padded past the head is still one
# (stable-baselines3's `data` member is read with json.loads whatever it starts with).
_PADDING = b" \t\r\n"
_MIN_PADDED_HEAD = 1024


def sniff(head: bytes, name: str) -> bool:
    if name.lower().endswith((".yaml", ".yml")):
        # Loaded with a YAML loader, which reads flow text JSON refuses (`{"a":!!python/
        # name:os.system x}`): `yaml_config` scans it (YAML composes valid JSON the same).
        return False
    body = head.lstrip(_PADDING)
    if not body:
        return len(head) >= _MIN_PADDED_HEAD
    lowered = name.lower()
    if lowered.endswith((".json", ".jsonl", ".ndjson")):
        return body[:1] in (b"{", b"[")
    if _KEY_START.match(body[:1024]) is None:
        return False
    try:
        body[:1024].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= 1020  # cut in the middle of a character is fine
    return True


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.known_size is not None and source.known_size > _MAX_BYTES:
        raise LimitExceeded("JSON bytes", _MAX_BYTES, source.known_size, ctx.member)
    raw = source.read_at(0, _MAX_BYTES + 1)
    if len(raw) > _MAX_BYTES:  # a stream of unknown length: one byte past the limit tells
        raise LimitExceeded("JSON bytes", _MAX_BYTES, len(raw), ctx.member)
    # Fast path: orjson, and a tokenizer's vocabulary and merges checked without being built
    # (`workers/jsonbulk.py`). Whatever orjson refuses (JSON Lines, NaN, lone surrogates,
    # invalid UTF-8, nesting past 1024) takes the standard parser's path below, as before.
    document = parse_without_bulk(raw)
    if document is None:
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            document = _REFUSED
    if document is not _REFUSED:
        yield from walk_config(document, ctx)
        return
    text = raw.decode("utf-8", "replace")
    try:
        documents = [json.loads(text)]
    except json.JSONDecodeError as first:
        documents = []
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            documents = [json.loads(line) for line in lines] if len(lines) > 1 else []
        except json.JSONDecodeError:
            documents = []
        if not documents:
            yield INVALID.finding(f"not valid JSON: {first.msg} at line {first.lineno}",
                                  member=ctx.member)
            return
    except RecursionError:
        yield INVALID.finding("JSON nests too deeply to parse", member=ctx.member)
        ctx.note_incomplete("JSON nests too deeply to parse")
        return
    for document in documents:
        yield from walk_config(document, ctx)
