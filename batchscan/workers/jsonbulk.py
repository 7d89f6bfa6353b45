"""Known-inert bulk of large JSON documents, checked without being built (issue 18).

Not a format module: `workers/json_config.py` calls `parse_without_bulk` on large documents.
A `tokenizer.json` is 2-35 MB, nearly all of it `model.vocab` (a string -> id table, or for
Unigram a list of [piece, score]) and `model.merges` (strings, or [left, right] pairs).
Parsing that into Python objects and walking every node cost 90% of a registry scan.

Which bulk is inert, and why nothing is lost:

- a JSON object whose every value is a number: `walk_config` reacts to a mapping only
  through the keys `auto_map`, `_target_`, `class_name` (...) holding a string, list or
  mapping, and to strings; a number-valued table has none of these (keys are never walked as
  strings). Nothing in it can give a finding;
- an array of strings, of [string, string] or of [string, number]: only its strings can give
  findings (`configs.string_matters`), except in an `auto_map` mapping, where each string
  of a list is a code reference (`"auto_map": {"merges": ["org/repo--modeling.X"]}`): a
  region there is put back (the whole document is parsed). A few fixed byte patterns find
  every string that could (template markers, the starts of encoded pickles or zips, and any
  `\\u00XX` escape that could spell one of those); each string they hit is decoded and
  checked on its own, and if any matters the region is not treated as bulk (the whole
  document is then walked).

How a region is proven to be the value it seems: a candidate follows a `"vocab":` or
`"merges":` key, must match one of the shapes above in full (possessive regexes: linear
time, no backtracking), and is replaced by a sentinel holding a random nonce. The spliced
document is parsed with orjson; every sentinel must come back as a value of the parsed
document. Since each region is a complete JSON value and its sentinel stood where a value
was expected, the original parses exactly like the spliced one with the region in place of
the sentinel. Anything else (a region inside a string, a duplicate key dropping one, a
parse error) returns None and the caller parses the whole text as before.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import orjson

from batchscan.workers.configs import string_matters

MIN_REGION = 64 * 1024  # smaller tables are parsed as usual: not worth a splice
_MAX_CANDIDATES = 32  # `"vocab":` keys looked at per document

_WS = rb"[ \t\n\r]*+"
# strings as "normal* (special normal*)*" (unrolled: 10-15% faster than an alternation)
_STR = rb'"[^"\\\x00-\x1f]*+(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*+)*+"'
_NUM = rb"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?"


def _array_of(item: bytes) -> re.Pattern[bytes]:
    element = item + _WS
    return re.compile(rb"\[" + _WS + rb"(?:" + element + rb"(?:," + _WS + element + rb")*+)?\]")


# A string none of whose forms `configs.string_matters` could accept (see _TRIGGERS): no
# template marker, no encoded-pickle or zip start, no escape of a printable ASCII character.
# Arrays of these are inert in one pass; otherwise each string is looked at (`_strings_inert`).
_INERT_STR = (rb'"(?!gA[A-Za-z0-9+/= \\]|800[2-5]|UEsDB)[^"\\{:\x00-\x1f]*+'
              rb'(?:(?:\{(?![{%])|:(?!serialized:)|\\(?:["\\/bfnrt]|u(?!00[2-7])[0-9a-fA-F]{4}))'
              rb'[^"\\{:\x00-\x1f]*+)*+"')
_PAIR = _STR + _WS + b":" + _WS + _NUM + _WS
_TABLE = re.compile(rb"\{" + _WS + rb"(?:" + _PAIR + rb"(?:," + _WS + _PAIR + rb")*+)?\}")
_SCORED = _array_of(rb"\[" + _WS + _STR + _WS + b"," + _WS + _NUM + _WS + rb"\]")
_MERGES = _array_of(rb"(?:" + _STR + rb"|\[" + _WS + _STR + _WS + b"," + _WS + _STR + _WS +
                    rb"\])")
_INERT_SCORED = _array_of(rb"\[" + _WS + _INERT_STR + _WS + b"," + _WS + _NUM + _WS + rb"\]")
_INERT_MERGES = _array_of(rb"(?:" + _INERT_STR + rb"|\[" + _WS + _INERT_STR + _WS + b"," + _WS +
                          _INERT_STR + _WS + rb"\])")
# (pattern, has strings still to check) per key, in the order tried
_SHAPES: dict[bytes, tuple[tuple[re.Pattern[bytes], bool], ...]] = {
    b"vocab": ((_TABLE, False), (_INERT_SCORED, False), (_SCORED, True)),
    b"merges": ((_INERT_MERGES, False), (_MERGES, True)),
}
_KEY = re.compile(rb'"(vocab|merges)"' + _WS + b":" + _WS)
# Every string `configs.string_matters` could accept contains one of these in its raw JSON
# form: a template marker, the start of a base64 pickle / hex pickle / base64 zip right after
# the opening quote, or an escape of a printable ASCII character (which could spell any of
# them). Keep in step with `configs._string`.
_TRIGGERS = re.compile(
    rb'\{[{%]|"(?:gA[A-Za-z0-9+/= \\]|800[2-5]|UEsDB)|\\u00[2-7]|:serialized:')


def _quote_before(raw: bytes, at: int, floor: int) -> int:
    """The nearest unescaped `"` at or before `at` (not before `floor`); -1 if none."""
    while at >= floor:
        at = raw.rfind(b'"', floor, at + 1)
        if at < 0:
            return -1
        slashes = 0
        while at - 1 - slashes >= floor and raw[at - 1 - slashes] == 0x5C:
            slashes += 1
        if slashes % 2 == 0:
            return at
        at -= 1
    return -1


def _strings_inert(raw: bytes, start: int, end: int) -> bool:
    """No string of the validated array region raw[start:end] can give a finding."""
    _string = re.compile(_STR)
    pos = start
    while True:
        hit = _TRIGGERS.search(raw, pos, end)
        if hit is None:
            return True
        at = hit.start()
        # An unescaped quote starting the hit opens a string (after a closing quote the
        # grammar allows only `,` `]` `:` and space); otherwise the hit is inside a string,
        # which has no unescaped quote: the nearest one before it opens that string.
        if raw[at] == 0x22 and _quote_before(raw, at, start) == at:
            opener = at
        else:
            opener = _quote_before(raw, at, start)
        token = _string.match(raw, opener, end) if opener >= 0 else None
        if token is None or token.end() <= at:
            return False  # not where the grammar says it must be: be conservative
        try:
            text = json.loads(raw[opener:token.end()])
        except ValueError:
            return False
        if not isinstance(text, str) or string_matters(text):
            return False
        pos = token.end()


def _regions(raw: bytes) -> list[tuple[int, int, bool]]:
    """(start, end, is_table) of the inert bulk values found after `vocab`/`merges` keys."""
    found: list[tuple[int, int, bool]] = []
    pos = 0
    for _ in range(_MAX_CANDIDATES):
        key = _KEY.search(raw, pos)
        if key is None:
            break
        start = pos = key.end()
        for pattern, has_strings in _SHAPES[key.group(1)]:
            value = pattern.match(raw, start)
            if value is None:
                continue
            end = value.end()
            if end - start >= MIN_REGION and (not has_strings
                                              or _strings_inert(raw, start, end)):
                found.append((start, end, pattern is _TABLE))
            pos = end
            break
    return found


def _restore(document: Any, nonce: str) -> int:
    """Replace each sentinel by an empty container of its kind; how many were found, or -1
    when one is a value of an `auto_map` mapping (its strings are code references there)."""
    found = 0
    stack: list[tuple[Any, bool]] = [(document, False)]
    while stack:
        node, in_auto_map = stack.pop()
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)  # type: ignore[assignment]
        else:
            continue
        replace: list[tuple[Any, Any]] = []
        for key, value in items:
            if isinstance(value, dict) and len(value) == 1 and nonce in value:
                replace.append((key, {}))
            elif isinstance(value, list) and len(value) == 1 and value[0] == nonce:
                if in_auto_map:
                    return -1
                replace.append((key, []))
            elif isinstance(value, dict | list):
                stack.append((value, key == "auto_map" and isinstance(value, dict)))
        for key, empty in replace:
            node[key] = empty
        found += len(replace)
    return found


def parse_without_bulk(raw: bytes) -> Any | None:
    """The document parsed with its inert bulk values left empty, or None when it has none
    (or anything about it is unusual): then the caller parses the whole text."""
    if len(raw) < MIN_REGION:
        return None
    regions = _regions(raw)
    if not regions:
        return None
    nonce = "batchscan-bulk-" + secrets.token_hex(12)
    table = b'{"' + nonce.encode() + b'":0}'
    array = b'["' + nonce.encode() + b'"]'
    pieces: list[bytes] = []
    last = 0
    for start, end, is_table in regions:
        pieces += [raw[last:start], table if is_table else array]
        last = end
    pieces.append(raw[last:])
    try:
        document = orjson.loads(b"".join(pieces))
    except orjson.JSONDecodeError:
        return None
    if _restore(document, nonce) != len(regions):
        return None
    return document
