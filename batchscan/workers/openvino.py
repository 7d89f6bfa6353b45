"""OpenVINO IR: `model.xml` (the graph, XML) beside `model.bin` (raw weights).

Layout. `<net name= version=10|11>` with `<layers>` (each `<layer id name type version>`
with `<data>` attributes and ports), `<edges>`, and metadata in `<rt_info>` (IR v11) or
`<meta_data>` (older Model Optimizer output, e.g. `<cli_parameters>` with the
`extensions` it was converted with). `model.bin` holds only tensor bytes addressed by
`Const` layers' offset/size: it is inert and is not read here.

Attack surface. `version` names the operation set of a layer: `opsetN` are OpenVINO's own
operations; any other value is an operation that only a loaded extension (a native shared
library, or Python via frontend extensions) implements, and that code runs when the model is
compiled and inferred. Metadata can name libraries or scripts to load and carry arbitrary
strings. The XML itself can carry XXE/DTD/entity declarations (the runtime uses pugixml,
which does not resolve external entities, but other tools that read IR files may).

What is checked. The XML through `safexml` (XML001-003); layers whose `version` is not a
standard opset or whose type is a known escape hatch (OVN001); attribute values anywhere
that name a shared library or a Python file (OVN002); `<rt_info>`/`<meta_data>` strings that
look like code or shell commands (OVN003). The root must be `<net>` with `<layers>`.

References: OpenVINO "IR format" and "Operation sets" documentation (docs.openvino.ai);
`ov::Core::add_extension` (custom operations in shared libraries).

Rules
| id     | name               | severity | CWE     |
|--------|--------------------|----------|---------|
| XML001 | external-entity    | error    | CWE-611 |
| XML002 | external-dtd       | error    | CWE-611 |
| XML003 | entity-declaration | warning  | CWE-776 |
| OVN001 | custom-operation   | warning  | CWE-829 |
| OVN002 | library-reference  | warning  | CWE-829 |
| OVN003 | rt-info-code       | warning  | CWE-94  |
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import safexml, textscan
from batchscan.workers.base import FormatError, ScanContext, Source

FORMAT = "openvino"

CUSTOM = rules.OVN001
LIBRARY = rules.OVN002
METADATA = rules.OVN003
RULES: tuple[Rule, ...] = (safexml.EXTERNAL_ENTITY, safexml.EXTERNAL_DTD,
                           safexml.ENTITY_DECLARATION, CUSTOM, LIBRARY, METADATA)

_VERSION = re.compile(rb"\sversion\s*=")
_STANDARD = re.compile(r"\Aopset\d+\Z")
_LIBRARY = re.compile(r"[\w.+-]+\.(?:so(?:\.\d+)*|dll|dylib|py)\b", re.IGNORECASE)
_MAX_BYTES = 256 * 1024 * 1024


def sniff(head: bytes, name: str) -> bool:
    root = safexml.root_tag(head)
    return root is not None and root[0] == "net" and _VERSION.search(root[1]) is not None


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    libraries: set[str] = set()

    def attributes(tag: str, attrs: dict[str, str], line: int) -> None:
        for value in attrs.values():
            if len(libraries) < 100:
                libraries.update(m.group(0) for m in _LIBRARY.finditer(value))
        # Model Optimizer records its `--extensions` (a directory or library list) as
        # <cli_parameters><extensions value="..."/>; "DIR" is its default.
        value = attrs.get("value", "").strip()
        if tag == "extensions" and value not in ("", "DIR", "None", "[]", "()"):
            libraries.add(value[:200])

    root: safexml.Element | None = None
    for item in safexml.read(source, "OpenVINO IR", min(_MAX_BYTES, ctx.limits.max_member_bytes),
                             ctx, nodes=frozenset({"layers", "layer"}),
                             subtrees=frozenset({"rt_info", "meta_data"}),
                             on_element=attributes):
        if isinstance(item, safexml.Document):
            root = item.root
        else:
            yield item
    assert root is not None
    if root.tag != "net" or root.find("layers") is None:
        raise FormatError(f"not an OpenVINO IR: root <{root.tag}> without <layers>")
    custom: dict[tuple[str, str], int] = {}
    for layer in root.iter("layer"):  # sub-network bodies (Loop, TensorIterator) included
        version = layer.attrs.get("version", "")
        if not _STANDARD.match(version):
            key = (layer.attrs.get("type", "?"), version or "(none)")
            custom[key] = custom.get(key, 0) + 1
    for (op_type, version), count in sorted(custom.items())[:20]:
        yield CUSTOM.finding(
            f"{count} layer(s) of type {op_type!r} from operation set {version!r}: "
            "implemented by an extension library, not by OpenVINO", member=ctx.member,
            evidence=f'type="{op_type}" version="{version}"')
    reported = 0
    for section in ("rt_info", "meta_data"):
        for block in root.iter(section):
            for node in block.iter():
                libraries.update(m.group(0) for m in _LIBRARY.finditer(node.text))
                for value in (*node.attrs.values(), node.text):
                    hits = [h for h in textscan.code_like(value)
                            if h[0] != "a network location"]
                    if hits and reported < 10:
                        reported += 1
                        kind, excerpt = hits[0]
                        yield METADATA.finding(f"<{section}> <{node.tag}> (line {node.line}) "
                                               f"holds {kind}", member=ctx.member,
                                               evidence=excerpt[:300])
    if libraries:
        named = sorted(libraries)
        yield LIBRARY.finding(f"names native libraries or Python files: "
                              f"{', '.join(repr(n) for n in named[:10])}", member=ctx.member,
                              evidence=named[0][:300])


__all__ = ["FORMAT", "RULES", "scan", "sniff"]
