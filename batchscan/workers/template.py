"""Standalone Jinja2 templates shipped with models (`chat_template.jinja`, `.j2`, `.template`).

Layout. Text with `{{ expressions }}` and `{% statements %}`; runtimes render chat templates
with `jinja2` (an unsandboxed Environment in llama-cpp-python < 0.2.72).

Attack surface and checks: see `workers/textscan.py` (SSTI gadgets, obfuscation undone).

Rules
| id     | name | severity | CWE |
|--------|------|----------|-----|
| CFG005-CFG006 | see workers/configs.py | | |
"""

from __future__ import annotations

from collections.abc import Iterator

from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import textscan
from batchscan.workers.base import ScanContext, Source
from batchscan.workers.configs import TEMPLATE_INJECTION, TEMPLATE_SUSPICIOUS

FORMAT = "jinja2_template"
RULES: tuple[Rule, ...] = (TEMPLATE_INJECTION, TEMPLATE_SUSPICIOUS)
_SUFFIXES = (".jinja", ".jinja2", ".j2", ".template", ".tmpl")
_MAX_BYTES = 8 * 1024 * 1024


def sniff(head: bytes, name: str) -> bool:
    if not name.lower().endswith(_SUFFIXES) or b"\x00" in head[:4096]:
        return False
    return textscan.looks_like_template(head.decode("utf-8", "replace"))


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    text = source.read_at(0, _MAX_BYTES).decode("utf-8", "replace")
    for hit in textscan.template_hits(text):
        rule = TEMPLATE_INJECTION if hit.error else TEMPLATE_SUSPICIOUS
        yield rule.finding(f"template {hit.reason}", member=ctx.member, evidence=hit.excerpt)
