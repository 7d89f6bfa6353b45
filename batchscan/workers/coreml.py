"""Apple Core ML models (`.mlmodel`, the protobuf `Model` of coremltools' mlmodel/format),
parsed with the bounded wire reader (coremltools is never imported).

Layout. `Model{1: specificationVersion, 2: description, 200/201: pipelineClassifier/
pipelineRegressor{1: Pipeline}, 202: pipeline{1: models Model*}, 303/403/500: neural network
regressor/classifier/network{1: layers NeuralNetworkLayer*}, 555: customModel{10:
className}, 556: linkedModel{1: LinkedModelFile{1: linkedModelFileName, 2:
linkedModelSearchPath}} (both `StringParameter{1: defaultValue}`)}`;
`NeuralNetworkLayer{1: name, 500: custom{10: className}, 605: branch{1: ifBranch, 2:
elseBranch}, 615: loop{3: conditionNetwork, 4: bodyNetwork}}` (the branches and bodies are
NeuralNetworks).

Attack surface. Core ML runs no code from the file, but a custom layer or a custom model
makes it instantiate the Objective-C/Swift class named in `className` from the host
application (code outside the file, steered by the layer's parameters and weights); a linked
model makes it open another model file by name and search path when the model is compiled or
loaded; an ML Program (`Model{502: mlProgram}`) reads its weights from the blob file each
constant names (`@model_path/weights/weight.bin` inside an `.mlpackage`).

What is checked: every model of every pipeline, every layer of every network and of nested
branch/loop networks (custom class names), linked model file names and search paths, and ML
Program weight blob file names in every operation of every block (absolute or
parent-directory paths). Not checked: ML Program operation types, and `.mlpackage` folders as
a unit (their `model.mlmodel` is scanned as here, Manifest.json as JSON).

Rules
| id     | name                | severity | CWE     |
|--------|---------------------|----------|---------|
| CML001 | custom-layer        | warning  | CWE-829 |
| CML002 | file-path-escape    | error    | CWE-22  |
| CML003 | bad-protobuf        | warning  | CWE-20  |
"""

from __future__ import annotations

from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers import protobuf
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source, unsafe_path

FORMAT = "coreml"

CUSTOM = rules.CML001
ESCAPE = rules.CML002
BAD = rules.CML003
RULES: tuple[Rule, ...] = (CUSTOM, ESCAPE, BAD)

_PIPELINES = (200, 201)
_NETWORKS = (303, 403, 500)
_MAX_BYTES = 2 * 1024 * 1024 * 1024
_MAX_DEPTH = 32
_MAX_LAYERS = 5_000_000


def sniff(head: bytes, name: str) -> bool:
    """specificationVersion (field 1, a small varint) then a ModelDescription (field 2) whose
    first field is a FeatureDescription (tag 0x0a); a `.mlmodel` name is enough on its own."""
    if name.lower().endswith(".mlmodel"):
        return head[:1] == b"\x08"
    if len(head) < 6 or head[0] != 0x08 or not 1 <= head[1] <= 20 or head[2] != 0x12:
        return False
    try:
        _, at = protobuf.read_varint(memoryview(head), 3)
    except FormatError:
        return False
    return head[at : at + 1] == b"\x0a"


class _Walk:
    def __init__(self, ctx: ScanContext):
        self.ctx = ctx
        self.layers = 0
        self.blobs: set[str] = set()  # escaping blob paths already reported
        self.findings: list[Finding] = []

    def model(self, model: memoryview, where: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise LimitExceeded("Core ML nesting depth", _MAX_DEPTH, depth, self.ctx.member)
        for field, wire, value in protobuf.fields(model):
            if wire != protobuf.LENGTH or not isinstance(value, memoryview):
                continue
            if field in _PIPELINES:
                for pipeline in protobuf.messages(value, 1):
                    self.pipeline(pipeline, where, depth)
            elif field == 202:
                self.pipeline(value, where, depth)
            elif field in _NETWORKS:
                self.network(value, where, depth)
            elif field == 555:
                name = protobuf.text(value, 10) or "?"
                self.findings.append(CUSTOM.finding(
                    f"{where}: custom model class {name!r}", member=self.ctx.member,
                    evidence=name))
            elif field == 556:
                for linked in protobuf.messages(value, 1):
                    self.linked(linked, where)
            elif field == 502:
                self.program(value, f"{where}/program", depth)

    def pipeline(self, pipeline: memoryview, where: str, depth: int) -> None:
        for index, inner in enumerate(protobuf.messages(pipeline, 1)):
            self.model(inner, f"{where}/pipeline model {index}", depth + 1)

    def network(self, network: memoryview, where: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise LimitExceeded("Core ML nesting depth", _MAX_DEPTH, depth, self.ctx.member)
        for layer in protobuf.messages(network, 1):
            self.layers += 1
            if self.layers > _MAX_LAYERS:
                raise LimitExceeded("Core ML layers", _MAX_LAYERS, self.layers,
                                    self.ctx.member)
            name = protobuf.text(layer, 1) or "?"
            for custom in protobuf.messages(layer, 500):
                cls = protobuf.text(custom, 10) or "?"
                self.findings.append(CUSTOM.finding(
                    f"{where}: layer {name!r} is a custom layer of class {cls!r}",
                    member=self.ctx.member, evidence=cls))
            for branch in protobuf.messages(layer, 605):
                for inner in (*protobuf.messages(branch, 1), *protobuf.messages(branch, 2)):
                    self.network(inner, f"{where}/branch {name!r}", depth + 1)
            for loop in protobuf.messages(layer, 615):
                for inner in (*protobuf.messages(loop, 3), *protobuf.messages(loop, 4)):
                    self.network(inner, f"{where}/loop {name!r}", depth + 1)

    def program(self, program: memoryview, where: str, depth: int) -> None:
        """MIL `Program{2: functions map<string, Function{3: block_specializations
        map<string, Block>}>}`: every block's operations (map entries are {1: key, 2:
        value})."""
        for entry in protobuf.messages(program, 2):
            name = protobuf.text(entry, 1) or "?"
            for function in protobuf.messages(entry, 2):
                for spec in protobuf.messages(function, 3):
                    for block in protobuf.messages(spec, 2):
                        self.block(block, f"{where} function {name!r}", depth + 1)

    def block(self, block: memoryview, where: str, depth: int) -> None:
        """`Block{3: operations}`; `Operation{1: type, 2: inputs map<string, Argument{1:
        Binding{2: Value}}>, 4: blocks, 5: attributes map<string, Value>}`; a `Value{5:
        blobFileValue{1: fileName, 2: offset}}` is weight data the loader reads from that
        file (`@model_path/weights/weight.bin`)."""
        if depth > _MAX_DEPTH:
            raise LimitExceeded("Core ML nesting depth", _MAX_DEPTH, depth, self.ctx.member)
        for operation in protobuf.messages(block, 3):
            self.layers += 1
            if self.layers > _MAX_LAYERS:
                raise LimitExceeded("Core ML operations", _MAX_LAYERS, self.layers,
                                    self.ctx.member)
            values = [value for entry in protobuf.messages(operation, 5)
                      for value in protobuf.messages(entry, 2)]
            for entry in protobuf.messages(operation, 2):
                for argument in protobuf.messages(entry, 2):
                    for binding in protobuf.messages(argument, 1):
                        values.extend(protobuf.messages(binding, 2))
            for value in values:
                for blob in protobuf.messages(value, 5):
                    path = protobuf.text(blob, 1) or ""
                    why = unsafe_path(path.removeprefix("@model_path/"))
                    if why is not None and path not in self.blobs:
                        self.blobs.add(path)
                        self.findings.append(ESCAPE.finding(
                            f"{where}: weights are read from {path!r} ({why})",
                            member=self.ctx.member, evidence=path))
            for inner in protobuf.messages(operation, 4):
                self.block(inner, where, depth + 1)

    def linked(self, linked: memoryview, where: str) -> None:
        def value(number: int) -> str:
            parameter = next(protobuf.messages(linked, number), None)
            return (protobuf.text(parameter, 1) or "") if parameter is not None else ""

        file_name, search = value(1), value(2)
        candidates = [file_name, *(p for p in search.split(":") if not p.startswith("$"))]
        for path in candidates:
            why = unsafe_path(path) if path else None
            if why is not None:
                self.findings.append(ESCAPE.finding(
                    f"{where}: linked model {file_name!r} is looked up at {path!r} ({why})",
                    member=self.ctx.member, evidence=path))


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.size > _MAX_BYTES:
        raise LimitExceeded("Core ML bytes", _MAX_BYTES, source.size, ctx.member)
    walk = _Walk(ctx)
    try:
        walk.model(memoryview(source.read_at(0, _MAX_BYTES)), "model", 0)
    except FormatError as exc:
        walk.findings.append(BAD.finding(f"malformed Core ML protobuf: {exc}",
                                         member=ctx.member))
        ctx.note_incomplete(f"malformed Core ML protobuf: {exc}")
    yield from walk.findings
