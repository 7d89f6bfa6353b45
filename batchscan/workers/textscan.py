"""Shared text checks: Jinja2 template injection, and code-like strings in metadata.

Used by the template, JSON, YAML, GGUF and safetensors modules; it is not a format module.

Templates (CVE-2024-34359 "Llama Drama" and kin): chat templates are rendered by
`jinja2.Environment` in several runtimes (llama-cpp-python < 0.2.72, LiteLLM), where an
expression can walk from any object to `os.popen`. Legitimate chat templates loop over
messages and print fields; they never touch dunder attributes, the `|attr` filter, or the
`cycler`/`joiner`/`lipsum` globals, and never name `os`, `popen` or `subprocess`. String
escapes (`\\x5f\\x5f`, `\\u005f`) and string building (`'__cla' ~ 'ss__'`) are undone before
matching, so obfuscation does not hide the gadget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ESCAPES = re.compile(r"\\x([0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})|\\([0-7]{3})")
_CONCAT = re.compile(r"""['"]\s*(?:~|\+)\s*['"]""")

_TEMPLATE_ERRORS = [
    (re.compile(r"__(?:class|mro|subclasses|globals|builtins|base|bases|init|import|"
                r"getattribute|dict|code|func|self|reduce|reduce_ex|loader|spec)__"),
     "reaches Python internals through a dunder attribute"),
    (re.compile(r"\|\s*attr\s*\("), "uses the |attr filter to reach attributes"),
    (re.compile(r"\b(?:cycler|joiner|lipsum)\b\s*\.\s*__|\b(?:cycler|joiner|lipsum|namespace)"
                r"\s*\.\s*(?:__init__|__globals__)"), "uses a Jinja global as a gadget"),
    (re.compile(r"\b(?:popen|subprocess|os\.system|system\s*\(|check_output|__import__|"
                r"eval\s*\(|exec\s*\()"), "names a process or code-evaluation call"),
    (re.compile(r"\b(?:request|config|self)\s*\.\s*(?:application|__|_TemplateReference__)"),
     "reaches framework globals (request/config/self)"),
    (re.compile(r"\[\s*['\"]_{2}\w+_{2}['\"]\s*\]"), "subscripts a dunder name"),
]
_TEMPLATE_WARNINGS = [
    (re.compile(r"\b(?:cycler|joiner|lipsum)\b"), "uses a Jinja global that chat templates "
     "never need"),
    (re.compile(r"\b(?:os|sys|builtins|importlib|socket|urllib|requests)\s*\."),
     "names an OS or network module"),
]

_TEMPLATE_MARKERS = ("{{", "{%")


@dataclass(frozen=True, slots=True)
class Hit:
    error: bool
    reason: str
    excerpt: str


def normalise(text: str) -> str:
    """Undo the escapes and string concatenations that hide names from a regex."""
    def unescape(match: re.Match[str]) -> str:
        hexa, uni, octal = match.groups()
        code = int(hexa or uni, 16) if (hexa or uni) else int(octal, 8)
        return chr(code)

    text = _ESCAPES.sub(unescape, text)
    return _CONCAT.sub("", text)


def looks_like_template(text: str) -> bool:
    return any(marker in text for marker in _TEMPLATE_MARKERS)


_OPENERS = re.compile(r"\{[{%]")
_CLOSERS = {"{": "}}", "%": "%}"}


def blocks(text: str) -> list[str]:
    """The `{{ ... }}` and `{% ... %}` blocks of a template, leftmost first, in linear time.

    The regex `\\{\\{.*?\\}\\}` rescans to the end of the text from every unclosed `{{`
    (a 70 KB template of `{{` took 18 s, 1 MB hours). Here a kind of block whose closer is
    missing after some position cannot close after any later one, so it is searched once.
    """
    found: list[str] = []
    dead: set[str] = set()
    pos = 0
    while len(dead) < 2:
        opener = _OPENERS.search(text, pos)
        if opener is None:
            break
        kind = text[opener.start() + 1]
        if kind in dead:
            pos = opener.start() + 1
            continue
        end = text.find(_CLOSERS[kind], opener.end())
        if end < 0:
            dead.add(kind)
            pos = opener.start() + 1
            continue
        found.append(text[opener.start() : end + 2])
        pos = end + 2
    return found


_FILTER_BUILD = re.compile(r"\|\s*(?:format|join)\b")


def _builds_dunder(text: str) -> int | None:
    """Where a `|format`/`|join` filter is followed by `__` before the block's `}` (the
    regex `\\|\\s*(?:format|join)\\b[^}]*_{2}` is quadratic on `|join|join|join...`)."""
    next_dunder = next_brace = -2
    for match in _FILTER_BUILD.finditer(text):
        at = match.end()
        if next_dunder != -1 and next_dunder < at:
            next_dunder = text.find("__", at)
        if next_brace != -1 and next_brace < at:
            next_brace = text.find("}", at)
        if next_dunder >= 0 and (next_brace < 0 or next_dunder < next_brace):
            return match.start()
    return None


def template_hits(text: str) -> list[Hit]:
    """Findings for one Jinja2 template (empty for ordinary chat templates).

    Only what Jinja evaluates is inspected: `{{ expressions }}` and `{% statements %}`.
    Literal text is output, not run (a code-generation template may mention `subprocess`).
    """
    plain = normalise(" ".join(blocks(text)))
    hits: list[Hit] = []
    for pattern, reason in _TEMPLATE_ERRORS:
        match = pattern.search(plain)
        if match:
            hits.append(Hit(True, reason, _excerpt(plain, match.start())))
    if not hits:
        for pattern, reason in _TEMPLATE_WARNINGS:
            match = pattern.search(plain)
            if match:
                hits.append(Hit(False, reason, _excerpt(plain, match.start())))
        built = _builds_dunder(plain)
        if built is not None:
            hits.append(Hit(False, "builds a dunder name with filters", _excerpt(plain, built)))
    return hits


_CODE_PATTERNS = [
    (re.compile(r"\b(?:import\s+\w+|__import__|exec\s*\(|eval\s*\(|os\.system|subprocess\.|"
                r"os\.popen|compile\s*\()"), "Python code"),
    (re.compile(r"(?:\brm\s+-[rf]+|\bwget\s+|\bcurl\s+|\bchmod\s+[0-7+]|\|\s*(?:ba)?sh\b|"
                r"/bin/(?:ba)?sh\b|\bnc\s+-)"), "shell commands"),
    (re.compile(r"<\s*script\b|javascript:", re.IGNORECASE), "script markup"),
    (re.compile(r"\b(?:https?|ftp)://[^\s'\"]+", re.IGNORECASE), "a network location"),
]


def code_like(text: str) -> list[tuple[str, str]]:
    """(kind, excerpt) for strings in metadata that look like code, commands or URLs."""
    plain = normalise(text)
    found = []
    for pattern, kind in _CODE_PATTERNS:
        match = pattern.search(plain)
        if match:
            found.append((kind, _excerpt(plain, match.start())))
    return found


def _excerpt(text: str, at: int) -> str:
    start = max(0, at - 40)
    return text[start : at + 120].replace("\n", " ")
