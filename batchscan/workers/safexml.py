"""A small XML reader that never resolves anything: shared by the XML model formats (PMML,
OpenVINO IR).

Attack surface of XML itself. A document type declaration can declare external entities
(`<!ENTITY x SYSTEM "file:///etc/passwd">`, XXE: the parser opens a file or a URL while
loading), an external DTD subset (`<!DOCTYPE x SYSTEM "http://...">`, fetched by validating
parsers), parameter entities that pull further DTDs, and nested internal entities whose
expansion is exponential ("billion laughs").

How it is read. `xml.parsers.expat` (stdlib) fed from the stream in 64 KiB chunks, with
parameter-entity parsing off, a default handler installed (expat then passes entity
references through instead of expanding internal entities) and an external-entity handler
that records the reference and opens nothing. Declarations are recorded, not used. The
element tree is built with bounds on element count, depth and kept text; a document that
breaks a bound is not fully read and raises `LimitExceeded`. Malformed XML raises
`FormatError` with expat's message and position.

References: expat `XML_SetDefaultHandler` (no internal-entity expansion),
`XML_SetParamEntityParsing`; OWASP XXE Prevention Cheat Sheet.

Rules (raised by the modules that use this reader)
| id     | name              | severity | CWE      |
|--------|-------------------|----------|----------|
| XML001 | external-entity   | error    | CWE-611  |
| XML002 | external-dtd      | error    | CWE-611  |
| XML003 | entity-declaration| warning  | CWE-776  |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from xml.parsers import expat

from batchscan import rules
from batchscan.records import Finding
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source

EXTERNAL_ENTITY = rules.XML001
EXTERNAL_DTD = rules.XML002
ENTITY_DECLARATION = rules.XML003

_CHUNK = 64 * 1024
MAX_ELEMENTS = 2_000_000
MAX_DEPTH = 512
_EXTERNAL_ID = re.compile(r"\b(?:SYSTEM|PUBLIC)\b")
MAX_TEXT = 64 * 1024  # characters of text kept per element (the rest is counted, not kept)


@dataclass(slots=True)
class Element:
    """One element: its local tag (namespace dropped), attributes, kept text, children."""

    tag: str
    attrs: dict[str, str]
    line: int
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def iter(self, tag: str | None = None) -> Iterator[Element]:
        """This element and every descendant (iteratively: no recursion on deep trees)."""
        stack = [self]
        while stack:
            node = stack.pop()
            if tag is None or node.tag == tag:
                yield node
            stack.extend(reversed(node.children))

    def find(self, tag: str) -> Element | None:
        return next((c for c in self.children if c.tag == tag), None)


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    parameter: bool
    system_id: str | None
    public_id: str | None
    value: str | None
    line: int


@dataclass(slots=True)
class Document:
    root: Element | None = None
    doctype: str | None = None
    doctype_system: str | None = None
    doctype_public: str | None = None
    entities: list[Entity] = field(default_factory=list)
    entity_references: list[str] = field(default_factory=list)
    elements: int = 0


class XmlError(FormatError):
    """Malformed XML; `doc` holds what was read before the error (declarations included)."""

    def __init__(self, message: str, doc: Document):
        super().__init__(message)
        self.doc = doc


_NAME = re.compile(rb"<([A-Za-z_][\w.:-]*)")


def root_tag(head: bytes) -> tuple[str, bytes] | None:
    """The root element's local name and its start tag (up to 2 KiB), skipping the XML
    declaration, processing instructions, comments and a DOCTYPE (with an internal subset)
    in `head`; None when `head` does not start like XML (sniffing, nothing is parsed).
    A UTF-16/UTF-32 or EBCDIC head (which Java, libxml2 and pugixml loaders read) is decoded
    first: a document is recognised in any encoding its loaders accept, and `read` then
    parses it or says it cannot."""
    head = _as_utf8(head)
    pos = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    for _ in range(64):
        while pos < len(head) and head[pos] in b" \t\r\n":
            pos += 1
        if head.startswith(b"<?", pos):
            end = head.find(b"?>", pos)
            pos = -1 if end < 0 else end + 2
        elif head.startswith(b"<!--", pos):
            end = head.find(b"-->", pos)
            pos = -1 if end < 0 else end + 3
        elif head.startswith(b"<!DOCTYPE", pos):
            bracket, close = head.find(b"[", pos), head.find(b">", pos)
            if 0 <= bracket < close:
                end = _subset_end(head, bracket + 1)
                close = head.find(b">", end) if end >= 0 else -1
            pos = -1 if close < 0 else close + 1
        elif head.startswith((b"<!", b"]"), pos):
            # a declaration of an internal subset that the DOCTYPE skip cut short
            end = head.find(b">", pos)
            pos = -1 if end < 0 else end + 1
        else:
            match = _NAME.match(head, pos)
            if match is None:
                return None
            name = match.group(1).decode("ascii", "replace").rsplit(":", 1)[-1]
            end = head.find(b">", pos, pos + 2048)
            return name, head[pos : end if end >= 0 else pos + 2048]
        if pos < 0:
            return None
    return None


# Appendix F of the XML 1.0 specification: the first bytes tell the encoding family.
_WIDE = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
         (b"<\x00", "utf-16-le"), (b"\x00<", "utf-16-be"), (b"\x4c\x6f\xa7\x94", "cp037"))


def _as_utf8(head: bytes) -> bytes:
    for start, codec in _WIDE:
        if head.startswith(start):
            width = 4 if "32" in codec else 2 if "16" in codec else 1
            text = head[: len(head) - len(head) % width].decode(codec, "replace")
            return text.lstrip("\ufeff").encode("utf-8")
    return head


def _subset_end(head: bytes, pos: int) -> int:
    """Where a DOCTYPE's internal subset ends (its `]`), quotes and comments respected."""
    quote = 0
    while pos < len(head):
        byte = head[pos]
        if quote:
            if byte == quote:
                quote = 0
        elif byte in b"\"'":
            quote = byte
        elif head.startswith(b"<!--", pos):
            end = head.find(b"-->", pos)
            if end < 0:
                return -1
            pos = end + 2
        elif byte == ord("]"):
            return pos
        pos += 1
    return -1


def _local(name: str) -> str:
    # expat with namespace_separator=" " reports "uri local"; keep the local name.
    return name.rsplit(" ", 1)[-1]


OnElement = Callable[[str, dict[str, str], int], None]


def parse(source: Source, kind: str, max_bytes: int, *, nodes: frozenset[str] = frozenset(),
          subtrees: frozenset[str] = frozenset(),
          on_element: OnElement | None = None) -> Document:
    """The document from `source`, resolving nothing. `kind` names the format in messages
    ("PMML", "OpenVINO IR").

    Only what the caller asks for becomes a tree (a 30 MB PMML forest is 600k elements): the
    root, elements whose tag is in `nodes` (attached to their nearest kept ancestor, without
    their descendants) and whole `subtrees`. `on_element(tag, attrs, line)` sees every
    element's attributes. Every element counts against the element and depth limits."""
    doc = Document()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    # one entry per open element: the kept Element, or None; `inside` counts open subtrees
    stack: list[Element | None] = []
    anchors: list[Element] = []  # the kept elements among the open ones
    kept: list[int] = []
    inside = [0]

    def start(name: str, attrs: dict[str, str]) -> None:
        doc.elements += 1
        if doc.elements > MAX_ELEMENTS:
            raise LimitExceeded(f"{kind} XML elements", MAX_ELEMENTS, doc.elements)
        if len(stack) >= MAX_DEPTH:
            raise LimitExceeded(f"{kind} XML nesting depth", MAX_DEPTH, len(stack) + 1)
        if any(" " in key for key in attrs):  # namespaced attributes are rare
            attrs = {_local(k): v for k, v in attrs.items()}
        tag = name if " " not in name else _local(name)
        line = parser.CurrentLineNumber
        if on_element is not None:
            on_element(tag, attrs, line)
        node: Element | None = None
        if doc.root is None:
            node = doc.root = Element(tag, attrs, line)
        elif inside[0] or tag in nodes or tag in subtrees:
            node = Element(tag, attrs, line)
            anchors[-1].children.append(node)
        if tag in subtrees:
            inside[0] += 1
        stack.append(node)
        if node is not None:
            anchors.append(node)
        kept.append(0)

    def end(name: str) -> None:
        node = stack.pop()
        kept.pop()
        if node is not None:
            anchors.pop()
            if node.tag in subtrees:
                inside[0] -= 1

    def chars(data: str) -> None:
        node = stack[-1] if stack else None
        if node is not None and kept[-1] < MAX_TEXT:
            piece = data[: MAX_TEXT - kept[-1]]
            node.text += piece
            kept[-1] += len(piece)

    def doctype(name: str, system_id: str | None, public_id: str | None,
                internal: int) -> None:
        doc.doctype, doc.doctype_system, doc.doctype_public = name, system_id, public_id

    def entity(name: str, parameter: int, value: str | None, base: str | None,
               system_id: str | None, public_id: str | None, notation: str | None) -> None:
        if len(doc.entities) < 1000:
            doc.entities.append(Entity(name, bool(parameter), system_id, public_id,
                                       None if value is None else value[:200],
                                       parser.CurrentLineNumber))

    def external_ref(context: str | None, base: str | None, system_id: str | None,
                     public_id: str | None) -> int:
        if len(doc.entity_references) < 100:
            doc.entity_references.append(system_id or public_id or "?")
        return 1  # "handled": nothing is opened

    def default(data: str) -> None:
        # With a default handler expat reports `&name;` here instead of expanding it.
        if data.startswith("&") and data.endswith(";") and len(doc.entity_references) < 100:
            doc.entity_references.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.ExternalEntityRefHandler = external_ref
    parser.DefaultHandler = default
    source.stream.seek(0)
    read = 0
    try:
        while True:
            chunk = source.stream.read(_CHUNK)
            read += len(chunk)
            if read > max_bytes:
                raise LimitExceeded(f"{kind} XML bytes", max_bytes, read)
            parser.Parse(chunk, not chunk)
            if not chunk:
                break
    except expat.ExpatError as exc:
        raise XmlError(f"{kind} XML is malformed: {expat.errors.messages[exc.code]} "
                       f"(line {exc.lineno}, column {exc.offset})", doc) from None
    except RecursionError:
        raise XmlError(f"{kind} XML nests too deeply to read", doc) from None
    if doc.root is None:
        raise XmlError(f"{kind} XML has no root element", doc)
    return doc


def read(source: Source, kind: str, max_bytes: int, ctx: ScanContext, *,
         nodes: frozenset[str] = frozenset(), subtrees: frozenset[str] = frozenset(),
         on_element: OnElement | None = None) -> Iterator[Finding | Document]:
    """`parse`, then the declaration findings; the findings are yielded before a parse
    error is raised (an XXE that also breaks the document is still reported)."""
    try:
        doc = parse(source, kind, max_bytes, nodes=nodes, subtrees=subtrees,
                    on_element=on_element)
    except XmlError as exc:
        yield from declaration_findings(exc.doc, ctx)
        raise
    yield from declaration_findings(doc, ctx)
    yield doc


def declaration_findings(doc: Document, ctx: ScanContext) -> Iterator[Finding]:
    """XXE, external DTDs and entity declarations, none of which a model file needs."""
    if doc.doctype_system or doc.doctype_public:
        target = doc.doctype_system or doc.doctype_public
        yield EXTERNAL_DTD.finding(
            f"DOCTYPE {doc.doctype!r} names an external DTD {target!r}: a validating "
            "loader fetches it", member=ctx.member, evidence=str(target)[:300])
    internal: list[Entity] = []
    for entity in doc.entities:
        if entity.parameter and entity.value and _EXTERNAL_ID.search(entity.value):
            # `<!ENTITY % a "<!ENTITY &#x25; b SYSTEM 'http://...'>"> %a; %b;`: expat (with
            # parameter entities off) never sees `b`; a loader that expands `%a;` fetches it.
            yield EXTERNAL_ENTITY.finding(
                f"parameter entity {entity.name!r} (line {entity.line}) declares an external "
                "identifier in its replacement text: a loader that expands it opens that file "
                "or URL (XXE)", member=ctx.member, evidence=entity.value[:300])
        elif entity.system_id or entity.public_id:
            kind = "parameter entity" if entity.parameter else "entity"
            target = entity.system_id or entity.public_id
            yield EXTERNAL_ENTITY.finding(
                f"external {kind} {entity.name!r} -> {target!r} (line {entity.line}): a "
                "loader that resolves entities opens that file or URL (XXE)",
                member=ctx.member, evidence=str(target)[:300])
        else:
            internal.append(entity)
    if internal:
        names = ", ".join(repr(e.name) for e in internal[:8])
        nested = sum(1 for e in internal if e.value and "&" in e.value)
        yield ENTITY_DECLARATION.finding(
            f"{len(internal)} internal entity declaration(s) ({names})"
            + (f", {nested} referring to other entities (expansion bomb)" if nested else ""),
            member=ctx.member)


__all__ = ["Document", "Element", "XmlError", "declaration_findings", "parse", "read",
           "root_tag"]
