"""TorchServe model archives (`.mar`): a zip (read by `zip.py`) with `MAR-INF/MANIFEST.json`.

Layout. `torch-model-archiver` writes the serialized model (`serializedFile`: a torch zip or
TorchScript), an optional model definition (`modelFile`, Python), the handler (`handler`:
a built-in name such as `image_classifier`, a shipped `handler.py`, or `module:function`),
extra files, and an optional `requirementsFile`; the manifest names them.

Attack surface. TorchServe extracts the archive and imports the handler module (and the
model file) when it loads the model: shipped Python runs by design. A handler that names a
module the archive does not ship is imported from the server's `sys.path`. With
`install_py_dep_per_model=true` the server pip-installs the requirements file (package setup
code, arbitrary URLs and indexes). The serialized model is a pickle-based torch file.

What is checked (here, on the manifest; every member is also scanned by content by the zip
module: pickles in the serialized model, `.py` files by `python_source.py`, executables).
Custom handler / model-definition code (MAR001, its calls are graded by PYS rules); a
handler module outside the archive (MAR002); a requirements file, with its URLs, VCS
references and index options named (MAR003); a missing or malformed manifest (MAR004).

References: pytorch/serve `model-archiver` README (manifest fields), TorchServe
configuration `install_py_dep_per_model`, "Custom handlers" documentation.

Rules
| id     | name                    | severity | CWE     |
|--------|-------------------------|----------|---------|
| MAR001 | handler-code            | warning  | CWE-94  |
| MAR002 | handler-outside-archive | warning  | CWE-829 |
| MAR003 | requirements            | warning  | CWE-829 |
| MAR004 | bad-manifest            | warning  | CWE-20  |
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import ScanContext

MANIFEST = "MAR-INF/MANIFEST.json"
HANDLER_CODE = rules.MAR001
OUTSIDE = rules.MAR002
REQUIREMENTS = rules.MAR003
BAD_MANIFEST = rules.MAR004
RULES: tuple[Rule, ...] = (HANDLER_CODE, OUTSIDE, REQUIREMENTS, BAD_MANIFEST)

# ts/torch_handler's default handlers (TorchServe docs, "default handlers").
BUILTIN = frozenset({"image_classifier", "image_segmenter", "object_detector",
                     "text_classifier", "text_handler", "base_handler", "densenet_handler",
                     "vision_handler"})
_RISKY_REQUIREMENT = re.compile(
    r"(?:^|\s)(?:-e|--editable|-i|--index-url|--extra-index-url|-f|--find-links|--trusted-host"
    r"|-r|--requirement|-c)\b|(?:git|hg|svn|bzr)\+|://|@\s*file:|^\.{0,2}/", re.IGNORECASE)
_MAX_TEXT = 1024 * 1024

ReadMember = Callable[[str], bytes | None]


def check(names: list[str], read: ReadMember, ctx: ScanContext) -> Iterator[Finding]:
    """Findings on a `.mar`'s manifest; `read(name)` returns a small member's bytes."""
    where = ctx.where(MANIFEST)
    raw = read(MANIFEST)
    manifest: Any = None
    if raw is not None:
        try:
            manifest = json.loads(raw.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            manifest = None
    model = manifest.get("model") if isinstance(manifest, dict) else None
    if not isinstance(model, dict):
        yield BAD_MANIFEST.finding(f"{MANIFEST} is missing, not JSON or has no \"model\" "
                                   "section: TorchServe refuses the archive", member=where)
        return
    shipped = set(names)
    handler = model.get("handler")
    if isinstance(handler, str) and handler:
        module_part = handler.split(":", 1)[0]
        module_file = module_part if module_part.endswith(".py") else f"{module_part}.py"
        if module_file in shipped or module_file.rsplit("/", 1)[-1] in shipped:
            yield HANDLER_CODE.finding(
                f"custom handler {handler!r}: TorchServe imports {module_file!r} and runs it "
                "when it loads the model", member=ctx.where(module_file),
                evidence=f'"handler": "{handler[:200]}"')
        elif module_part not in BUILTIN:
            yield OUTSIDE.finding(
                f"handler {handler!r} is not built in and not shipped: the server imports "
                f"module {module_part!r} from its own path", member=where,
                evidence=f'"handler": "{handler[:200]}"')
    model_file = model.get("modelFile")
    if isinstance(model_file, str) and model_file:
        yield HANDLER_CODE.finding(
            f"model definition {model_file!r}: TorchServe imports it to build the model",
            member=ctx.where(model_file), evidence=f'"modelFile": "{model_file[:200]}"')
    requirements = model.get("requirementsFile")
    if isinstance(requirements, str) and requirements:
        text = (read(requirements) or b"")[:_MAX_TEXT].decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        risky = [line for line in lines if _RISKY_REQUIREMENT.search(line)]
        detail = (f"; {len(risky)} from URLs, VCS, local paths or other indexes: "
                  f"{', '.join(repr(r[:120]) for r in risky[:5])}" if risky else "")
        yield REQUIREMENTS.finding(
            f"requirements file {requirements!r} ({len(lines)} entries) is pip-installed by "
            f"TorchServe when per-model dependencies are on{detail}",
            member=ctx.where(requirements), evidence=(risky or lines or [""])[0][:300])


__all__ = ["BUILTIN", "MANIFEST", "RULES", "check"]
