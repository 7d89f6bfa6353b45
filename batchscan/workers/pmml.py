"""PMML (Predictive Model Markup Language, DMG 3.x/4.x): an XML document with root `<PMML>`.

Layout. `<PMML version=...>` with a `<Header>`, a `<DataDictionary>`, one or more model
elements (TreeModel, RegressionModel, NeuralNetwork, ...). Every element may contain
`<Extension>` children, whose content PMML leaves to vendors (anything goes).

Attack surface. PMML is data by design: scoring engines (JPMML, pypmml, Nyoka's readers)
interpret it, nothing in the standard runs code. What a file can steer is (1) the XML parser:
a DOCTYPE with external entities or an external DTD makes a resolving parser open files or
URLs while loading (XXE; JAXB-based loaders have resolved entities by default), nested
entities make it expand exponentially; (2) vendor `<Extension>` content, which some engines
interpret (embedded scripts, expressions, class names); (3) references to external tables or
resources.

What is checked. The document is parsed with `safexml` (nothing is resolved or fetched,
entities are recorded not expanded). XXE/DTD/entity declarations (XML001-003), `<Extension>`
content and attributes that look like code or commands (PMM001), URLs and file references
in extensions and attributes (PMM002). The root must be `<PMML>`; malformed XML is an error
with expat's message.

References: DMG PMML 4.4.1 (dmg.org/pmml/v4-4-1, "Extension" elements); OWASP XML
External Entity Prevention Cheat Sheet; CWE-611, CWE-776.

Rules
| id     | name               | severity | CWE     |
|--------|--------------------|----------|---------|
| XML001 | external-entity    | error    | CWE-611 |
| XML002 | external-dtd       | error    | CWE-611 |
| XML003 | entity-declaration | warning  | CWE-776 |
| PMM001 | extension-code     | warning  | CWE-94  |
| PMM002 | external-reference | info     | CWE-829 |
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import safexml, textscan
from batchscan.workers.base import FormatError, ScanContext, Source

FORMAT = "pmml"

EXTENSION_CODE = rules.PMM001
EXTERNAL = rules.PMM002
RULES: tuple[Rule, ...] = (safexml.EXTERNAL_ENTITY, safexml.EXTERNAL_DTD,
                           safexml.ENTITY_DECLARATION, EXTENSION_CODE, EXTERNAL)

_MAX_BYTES = 256 * 1024 * 1024
_REFERENCE = re.compile(r"\A\s*(?:(?:https?|ftp|file|jar)://|/(?:etc|proc|home|root|tmp)/)",
                        re.IGNORECASE)


def sniff(head: bytes, name: str) -> bool:
    root = safexml.root_tag(head)
    return root is not None and root[0] == "PMML"


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    references: list[Finding] = []

    def attributes(tag: str, attrs: dict[str, str], line: int) -> None:
        for key, value in attrs.items():
            if len(references) < 20 and _REFERENCE.match(value):
                references.append(EXTERNAL.finding(
                    f"<{tag} {key}=...> (line {line}) refers to {value[:200]!r}",
                    member=ctx.member, evidence=value[:300]))

    root: safexml.Element | None = None
    for item in safexml.read(source, "PMML", min(_MAX_BYTES, ctx.limits.max_member_bytes),
                             ctx, subtrees=frozenset({"Extension"}), on_element=attributes):
        if isinstance(item, safexml.Document):
            root = item.root
        else:
            yield item
    assert root is not None
    if root.tag != "PMML":
        raise FormatError(f"not a PMML document: the root element is <{root.tag}>")
    yield from references
    # the kept elements under the root are the outermost <Extension> subtrees
    reported = 0
    for extension in root.children:
        if reported >= 20:
            break
        if _REFERENCE.match(extension.text):
            yield EXTERNAL.finding(f"<Extension> (line {extension.line}) refers to "
                                   f"{extension.text.strip()[:200]!r}", member=ctx.member)
        hit = next(((kind, excerpt) for node in extension.iter()
                    for text in (node.text, *node.attrs.values())
                    for kind, excerpt in textscan.code_like(text)
                    if kind != "a network location"), None)
        if hit is not None:
            reported += 1
            yield EXTENSION_CODE.finding(f"<Extension> (line {extension.line}) holds {hit[0]}",
                                         member=ctx.member, evidence=hit[1][:300])


__all__ = ["FORMAT", "RULES", "scan", "sniff"]
