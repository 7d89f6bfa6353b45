"""The rule catalogue: every rule batchscan can raise, in one leaf module.

A rule has a stable id (never renumbered), a short name, a default severity, a CWE, a
description of what it detects and how to fix what it found. Format modules take their rules
from here; SARIF, the cache's rule-set digest and the README tables read this catalogue
without importing a single scanner. This module imports only `batchscan.records`.

Severity contract (README "Severity contract"; tests/test_severity_contract.py pins every
default): ERROR = the normal loader runs code, opens files or the network, or writes, on load;
WARNING = the file ships code that runs when the model is used (Lambda layers, pickled
functions, `auto_map` remote code, custom ops) or calls something unclassifiable; INFO =
unusual but inert; DEBUG = detail.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchscan.records import Finding, Severity


@dataclass(frozen=True, slots=True)
class Rule:
    """One check: a stable id, a short name, a default severity, a CWE and a remedy."""

    rule_id: str
    name: str
    severity: Severity
    cwe: str
    description: str
    fix: str

    def finding(
        self,
        message: str,
        *,
        severity: Severity | None = None,
        member: str | None = None,
        offset: int | None = None,
        evidence: str | None = None,
    ) -> Finding:
        return Finding(
            rule_id=self.rule_id,
            severity=severity or self.severity,
            message=message,
            member=member,
            offset=offset,
            evidence=evidence,
            cwe=self.cwe,
        )


# --- the engine (batchscan/workers/task.py) ------------
ENG002 = Rule(
    "ENG002",
    "limit-exceeded",
    Severity.WARNING,
    "CWE-400",
    "A scanning budget ran out; the file was not fully scanned.",
    fix=(
        "The file exceeded a scanning budget and was not fully checked; raise the limit for a"
        " trusted file or review it by hand."
    ),
)
ENG003 = Rule(
    "ENG003",
    "blacklisted-name",
    Severity.ERROR,
    "CWE-506",
    "The file name matches a -b/--blacklist pattern.",
    fix="The file name matches your -b/--blacklist pattern; review it before use.",
)

ENG004 = Rule(
    "ENG004",
    "unrecordable-finding",
    Severity.ERROR,
    "CWE-20",
    "A scanner reported a finding that could not be written as a record; its severity is kept.",
    fix=(
        "The scanner produced a result the record format cannot carry; review the file by hand"
        " and report the file to the batchscan maintainers."
    ),
)

# --- batchscan/workers/pickle.py --------------------------------------------
PKL001 = Rule(
    "PKL001",
    "dangerous-global",
    Severity.ERROR,
    "CWE-502",
    "The pickle imports a callable that can run code, touch files or the network on load.",
    fix=(
        "Do not load this file with pickle, torch.load(weights_only=False), joblib or numpy "
        "allow_pickle: it imports or calls something that runs commands, evaluates code, or "
        "touches files or the network. Obtain the model from a trusted source or convert it "
        "to safetensors."
    ),
)
PKL002 = Rule(
    "PKL002",
    "unknown-callable",
    Severity.WARNING,
    "CWE-502",
    "The pickle calls a function that is neither known-safe nor known-dangerous.",
    fix=(
        "Review what the callable does before loading; prefer torch.load(weights_only=True) "
        "or a data-only format such as safetensors."
    ),
)
PKL003 = Rule(
    "PKL003",
    "unknown-global",
    Severity.INFO,
    "CWE-502",
    "The pickle imports or constructs a class that is not on the allow-list.",
    fix="Check that the class is the library type you expect; prefer a data-only format.",
)
PKL004 = Rule(
    "PKL004",
    "malformed-stream",
    Severity.WARNING,
    "CWE-20",
    "The opcode stream is damaged; the unpickler stops there after running what came before.",
    fix=(
        "Re-create the file; loaders stop at the damage but may already have run what came "
        "before it."
    ),
)
PKL005 = Rule(
    "PKL005",
    "computed-import",
    Severity.ERROR,
    "CWE-502",
    "STACK_GLOBAL imports a name computed at load time, hiding what is imported.",
    fix=(
        "Do not load: the pickle builds the name it imports at load time, a technique used to"
        " evade scanners."
    ),
)
PKL006 = Rule(
    "PKL006",
    "object-mutation-gadget",
    Severity.ERROR,
    "CWE-502",
    "BUILD/SETITEM/APPEND applied to an imported object, or `__setstate__` injected: "
        "code runs or global state changes without a REDUCE.",
    fix=(
        "Do not load: the pickle overwrites attributes of imported objects, a technique used "
        "to plant code."
    ),
)
PKL007 = Rule(
    "PKL007",
    "extension-registry-import",
    Severity.WARNING,
    "CWE-502",
    "EXT1/EXT2/EXT4 import a global through copyreg's extension registry.",
    fix=(
        "Do not load: the pickle imports through the copyreg extension registry, which hides "
        "the name it imports."
    ),
)
PKL008 = Rule(
    "PKL008",
    "parser-differential",
    Severity.ERROR,
    "CWE-436",
    "The stream reads differently in different unpicklers (FRAME straddling): a classic "
        "way to show scanners one program and the loader another.",
    fix=(
        "Do not load: the stream is read differently by the C and Python unpicklers, a "
        "technique used to evade scanners."
    ),
)
PKL009 = Rule(
    "PKL009",
    "trailing-data",
    Severity.INFO,
    "CWE-436",
    "Bytes follow the last STOP (a polyglot, or data a custom loader reads).",
    fix=(
        "Remove the data after the pickle's STOP; it is not part of the object and may target"
        " other readers."
    ),
)
PKL010 = Rule(
    "PKL010",
    "nested-pickle",
    Severity.WARNING,
    "CWE-502",
    "A bytes value, or a base64/hex string, is itself a complete pickle: a second stage "
        "waiting for a loader. It was analysed recursively.",
    fix=(
        "A pickle nested in the data is unpickled by code that runs later; review its "
        "findings as for the outer file."
    ),
)
PKL011 = Rule(
    "PKL011",
    "blacklisted-global",
    Severity.ERROR,
    "CWE-502",
    "A global matches a user-supplied -b/--blacklist pattern.",
    fix=(
        "The pickle imports a name that matches your -b/--blacklist pattern; do not load it "
        "until reviewed."
    ),
)
PKL012 = Rule(
    "PKL012",
    "analysis-limit",
    Severity.WARNING,
    "CWE-400",
    "A budget (opcodes, nesting, nested pickle bytes) ran out before the stream was finished.",
    fix=(
        "The pickle exceeded an analysis budget and was not fully checked; review it, or "
        "raise the limit for a trusted file."
    ),
)
PKL013 = Rule(
    "PKL013",
    "computed-callable",
    Severity.WARNING,
    "CWE-502",
    "The pickle calls a value produced at load time rather than an import.",
    fix=(
        "The pickle calls something computed at load time that could not be identified; "
        "review before loading."
    ),
)

# --- batchscan/workers/pytorch_legacy.py ------------------------------------
PTL001 = Rule(
    "PTL001",
    "storage-mismatch",
    Severity.WARNING,
    "CWE-20",
    "The storage section does not match the storages the pickle declares.",
    fix=(
        "Re-save the checkpoint; storages that do not match the pickle's references mean "
        "damage or a crafted file."
    ),
)
PTL002 = Rule(
    "PTL002",
    "data-after-storages",
    Severity.WARNING,
    "CWE-436",
    "Data follows the last storage: torch ignores it, other tools may not.",
    fix=(
        "Data after the last storage is ignored by torch but may target other readers; re-"
        "save the checkpoint."
    ),
)

# --- batchscan/workers/numpy.py ---------------------------------------------
NPY001 = Rule(
    "NPY001",
    "object-array",
    Severity.INFO,
    "CWE-502",
    "An object array: its data is a pickle (loading needs allow_pickle=True); "
                        "it was analysed.",
    fix=(
        "Object arrays are pickles: load with allow_pickle=False, or convert the array to a "
        "numeric dtype."
    ),
)
NPY002 = Rule(
    "NPY002",
    "bad-header",
    Severity.WARNING,
    "CWE-20",
    "The .npy header cannot be parsed.",
    fix="Re-save the array with numpy.save; a damaged header can hide data from scanners.",
)
NPY003 = Rule(
    "NPY003",
    "size-mismatch",
    Severity.WARNING,
    "CWE-20",
    "The data size does not match shape and dtype.",
    fix="Re-save the array; its data does not match the shape and dtype the header declares.",
)

# --- batchscan/workers/zip.py -----------------------------------------------
ZIP001 = Rule(
    "ZIP001",
    "path-traversal",
    Severity.ERROR,
    "CWE-22",
    "A member name escapes the extraction directory (../, absolute, drive).",
    fix=(
        "Do not extract with a tool that keeps member paths: a member name leaves the "
        "extraction folder."
    ),
)
ZIP002 = Rule(
    "ZIP002",
    "symlink-escape",
    Severity.ERROR,
    "CWE-59",
    "A symlink member points outside the archive's directory.",
    fix="Do not extract: a symlink member points outside the extraction folder.",
)
ZIP003 = Rule(
    "ZIP003",
    "name-mismatch",
    Severity.WARNING,
    "CWE-436",
    "Local header and central directory disagree on a member name "
                         "(CVE-2025-1944: zipfile refuses, torch loads).",
    fix=(
        "The local header and the central directory disagree on a name; readers differ on "
        "which one they use. Re-create the archive."
    ),
)
ZIP004 = Rule(
    "ZIP004",
    "crc-mismatch",
    Severity.WARNING,
    "CWE-354",
    "A member's CRC-32 is wrong (CVE-2025-10156: zipfile refuses, torch loads).",
    fix="A member's data does not match its CRC; re-create the archive.",
)
ZIP005 = Rule(
    "ZIP005",
    "unusual-flags",
    Severity.WARNING,
    "CWE-436",
    "General-purpose flag bits that loaders disagree on (CVE-2025-1945).",
    fix=(
        "Unusual flag bits let readers disagree on the content; re-create the archive with a "
        "standard tool."
    ),
)
ZIP006 = Rule(
    "ZIP006",
    "encrypted-member",
    Severity.INFO,
    "CWE-311",
    "An encrypted member cannot be scanned; the file is not reported clean.",
    fix="Encrypted members cannot be checked; scan the decrypted archive.",
)
ZIP007 = Rule(
    "ZIP007",
    "duplicate-name",
    Severity.WARNING,
    "CWE-436",
    "Two members share a name; loaders pick different copies (torch the last).",
    fix=(
        "Two members share a name and readers differ on which one they use (torch takes the "
        "last); re-create the archive."
    ),
)
ZIP008 = Rule(
    "ZIP008",
    "unsupported-method",
    Severity.WARNING,
    "CWE-20",
    "A member uses a compression method this scanner cannot decode.",
    fix=(
        "A member uses a compression method this scanner cannot decode, so it was not "
        "checked; re-create the archive with deflate or store."
    ),
)
ZIP009 = Rule(
    "ZIP009",
    "corrupt-entry",
    Severity.WARNING,
    "CWE-20",
    "A directory entry or local header is damaged; the other members were scanned.",
    fix="Re-create the archive; a damaged member cannot be fully checked.",
)
ZIP010 = Rule(
    "ZIP010",
    "compression-ratio",
    Severity.WARNING,
    "CWE-409",
    "A member declares a compression ratio beyond the limit (a decompression bomb).",
    fix="An extreme compression ratio is the mark of a zip bomb; do not extract it.",
)
ZIP011 = Rule(
    "ZIP011",
    "prepended-data",
    Severity.INFO,
    "CWE-436",
    "Data precedes the archive (a polyglot); it was scanned as its own format.",
    fix=(
        "Data before the archive (a polyglot or self-extractor) may target other readers; re-"
        "create the archive."
    ),
)
ZIP012 = Rule(
    "ZIP012",
    "torchscript-code",
    Severity.ERROR,
    "CWE-94",
    "TorchScript source in the archive reaches Python, the OS or files.",
    fix=(
        "Do not load this TorchScript model: its code calls into Python or the operating "
        "system. Re-export it from reviewed source."
    ),
)
ZIP013 = Rule(
    "ZIP013",
    "blacklisted-member",
    Severity.ERROR,
    "CWE-506",
    "A member name matches a -b/--blacklist pattern.",
    fix="A member name matches your -b/--blacklist pattern; review it before use.",
)

# --- batchscan/workers/tar.py -----------------------------------------------
TAR001 = Rule(
    "TAR001",
    "path-traversal",
    Severity.ERROR,
    "CWE-22",
    "A member name escapes the extraction directory.",
    fix=(
        "Do not extract with tarfile without filter='data': a member name leaves the "
        "extraction folder."
    ),
)
TAR002 = Rule(
    "TAR002",
    "link-escape",
    Severity.ERROR,
    "CWE-59",
    "A symlink or hardlink member points outside the archive's directory.",
    fix=(
        "Do not extract: a link member points outside the extraction folder (use "
        "filter='data')."
    ),
)
TAR003 = Rule(
    "TAR003",
    "special-member",
    Severity.WARNING,
    "CWE-73",
    "A device or FIFO member (extraction creates special files).",
    fix="Device and FIFO members have no place in a model archive; re-create it without them.",
)
TAR004 = Rule(
    "TAR004",
    "duplicate-name",
    Severity.WARNING,
    "CWE-436",
    "Two members share a name; the later one overwrites the first on extraction.",
    fix=(
        "Two members share a name and extraction keeps the last; re-create the archive with "
        "unique names."
    ),
)
TAR005 = Rule(
    "TAR005",
    "corrupt-archive",
    Severity.WARNING,
    "CWE-20",
    "The archive is damaged; members before the damage were scanned.",
    fix="Re-create the archive; a damaged tar cannot be fully checked.",
)
TAR006 = Rule(
    "TAR006",
    "blacklisted-member",
    Severity.ERROR,
    "CWE-506",
    "A member name matches a -b/--blacklist pattern.",
    fix="A member name matches your -b/--blacklist pattern; review it before use.",
)

# --- batchscan/workers/sevenzip.py ------------------------------------------
SVZ001 = Rule(
    "SVZ001",
    "path-traversal",
    Severity.ERROR,
    "CWE-22",
    "A member name escapes the extraction directory.",
    fix=(
        "Do not extract with a tool that keeps member paths: a member name leaves the "
        "extraction folder."
    ),
)
SVZ002 = Rule(
    "SVZ002",
    "encrypted",
    Severity.INFO,
    "CWE-311",
    "The archive is encrypted and cannot be scanned; it is not reported clean.",
    fix="Encrypted members cannot be checked; scan the decrypted archive.",
)
SVZ003 = Rule(
    "SVZ003",
    "corrupt-archive",
    Severity.WARNING,
    "CWE-20",
    "The archive is damaged or uses an unsupported method.",
    fix="Re-create the archive; a damaged 7z cannot be fully checked.",
)

# --- batchscan/workers/compressed.py ----------------------------------------
CMP001 = Rule(
    "CMP001",
    "corrupt-compression",
    Severity.WARNING,
    "CWE-20",
    "The compressed stream is truncated or corrupt; only what decoded was scanned.",
    fix=(
        "Re-create the compressed file from its source; a stream that does not decompress "
        "cleanly cannot be checked and may hide a payload past the damage."
    ),
)
CMP002 = Rule(
    "CMP002",
    "compression-limit",
    Severity.WARNING,
    "CWE-409",
    "Decompression stopped at a budget (bytes or ratio): a possible bomb.",
    fix=(
        "Check where the file came from; raise the decompression limits only for a trusted "
        "file whose size you expect."
    ),
)

# --- batchscan/workers/configs.py -------------------------------------------
CFG001 = Rule(
    "CFG001",
    "remote-code-auto-map",
    Severity.WARNING,
    "CWE-94",
    "`auto_map` makes transformers import code shipped with the model "
                    "(trust_remote_code).",
    fix=(
        "Read the Python files that auto_map names before loading with "
        "trust_remote_code=True, or load without remote code."
    ),
)
CFG002 = Rule(
    "CFG002",
    "cross-repo-remote-code",
    Severity.ERROR,
    "CWE-829",
    "`auto_map` points at code in another repository (`org/repo--module.Class`).",
    fix=(
        "Do not load: the config makes the loader fetch and run code from another repository."
        " Vendor the reviewed code into this repository or drop auto_map."
    ),
)
CFG003 = Rule(
    "CFG003",
    "dangerous-target",
    Severity.ERROR,
    "CWE-94",
    "A Hydra/OmegaConf `_target_` names a dangerous callable.",
    fix=(
        "Do not instantiate this config: its _target_ names a callable that runs commands, "
        "evaluates code or touches files. Replace it with the intended class."
    ),
)
CFG004 = Rule(
    "CFG004",
    "unknown-target",
    Severity.INFO,
    "CWE-94",
    "A Hydra/OmegaConf `_target_` names a callable that instantiate() runs.",
    fix=(
        "Check that the named callable is the library class you expect before instantiating "
        "the config (Hydra instantiate / similar)."
    ),
)
CFG005 = Rule(
    "CFG005",
    "template-injection",
    Severity.ERROR,
    "CWE-1336",
    "A Jinja2 template reaches Python internals or the OS (SSTI).",
    fix=(
        "Do not render this template: it reaches Python internals (a server-side template "
        "injection gadget). Replace it with the model's published template."
    ),
)
CFG006 = Rule(
    "CFG006",
    "suspicious-template",
    Severity.WARNING,
    "CWE-1336",
    "A Jinja2 template uses constructs chat templates never need.",
    fix=(
        "Review the template by hand before rendering it; compare it with the model family's "
        "published chat template."
    ),
)
CFG007 = Rule(
    "CFG007",
    "keras-lambda",
    Severity.ERROR,
    "CWE-94",
    "A Keras Lambda layer carries Python bytecode that runs on load "
                        "(CVE-2024-3660).",
    fix=(
        "A Keras Lambda layer runs its stored Python code when the model is loaded with "
        "safe_mode=False or called. Rebuild the layer as a registered custom layer from "
        "reviewed source."
    ),
)
CFG008 = Rule(
    "CFG008",
    "keras-foreign-module",
    Severity.WARNING,
    "CWE-470",
    "A Keras config references a class or function outside Keras "
                        "(CVE-2025-1550).",
    fix=(
        "The config references a class from a module outside Keras; make sure that module is "
        "yours and reviewed before loading."
    ),
)
CFG009 = Rule(
    "CFG009",
    "keras-dangerous-reference",
    Severity.ERROR,
    "CWE-470",
    "A Keras config references a dangerous callable (os.system, get_file...).",
    fix="Do not load: the config references a callable that runs commands or evaluates code.",
)
CFG010 = Rule(
    "CFG010",
    "encoded-pickle",
    Severity.INFO,
    "CWE-502",
    "A base64/hex string (or a stable-baselines3 `:serialized:` value) decodes to a pickle; "
    "it was decoded and scanned as a member, whose own findings grade what it contains.",
    fix=(
        "The config carries a base64 pickle: decoding and loading it runs code. Store the "
        "object in a data format instead, or scan the decoded blob."
    ),
)
CFG011 = Rule(
    "CFG011",
    "unknown-callable-target",
    Severity.WARNING,
    "CWE-94",
    "A Hydra/OmegaConf `_target_` names a function that is not on the allow-list: "
    "instantiate() calls it with the config's arguments (`sympy.sympify` evaluates them).",
    fix=(
        "Check what the named function does with its arguments before instantiating the "
        "config; replace it with the intended class or a reviewed function."
    ),
)

# --- batchscan/workers/mlflow_env.py ----------------------------------------
MLF001 = Rule(
    "MLF001",
    "pyfunc-loader-module",
    Severity.WARNING,
    "CWE-94",
    "An MLflow `python_function` flavor names a `loader_module` outside MLflow's own flavors: "
    "mlflow.pyfunc.load_model imports it and calls its `_load_pyfunc`.",
    fix=(
        "Read the loader module (usually shipped under the model's code paths) before loading "
        "the model with mlflow.pyfunc.load_model, or use a built-in MLflow flavor."
    ),
)
MLF002 = Rule(
    "MLF002",
    "shipped-code-paths",
    Severity.WARNING,
    "CWE-94",
    "An MLflow flavor ships `code` paths: the loader puts them on sys.path and imports the "
    "Python in them.",
    fix="Review the Python files under the listed code paths before loading the model.",
)
MLF003 = Rule(
    "MLF003",
    "install-from-elsewhere",
    Severity.WARNING,
    "CWE-829",
    "A model's environment installs packages from another index, a URL, a version-control "
    "repository or a local path, or passes pip options (dependency confusion, code from "
    "elsewhere at install time).",
    fix=(
        "Install only pinned packages from your own index: drop --extra-index-url/--index-url/"
        "--find-links and URL or path requirements, or review what they install."
    ),
)

# --- batchscan/workers/json_config.py ---------------------------------------
JSN001 = Rule(
    "JSN001",
    "invalid-json",
    Severity.WARNING,
    "CWE-20",
    "The document is not valid JSON (or nests too deeply to parse).",
    fix=(
        "Fix or regenerate the JSON file; loaders may read a damaged file differently from "
        "this scanner."
    ),
)

# --- batchscan/workers/yaml_config.py ---------------------------------------
YML001 = Rule(
    "YML001",
    "python-tag",
    Severity.ERROR,
    "CWE-502",
    "A `!!python/...` tag builds Python objects or calls functions when loaded "
                      "unsafely.",
    fix=(
        "Load with yaml.safe_load only: the document has a python/ tag that constructs "
        "objects or calls functions under the unsafe loaders."
    ),
)
YML002 = Rule(
    "YML002",
    "custom-tag",
    Severity.INFO,
    "CWE-502",
    "A non-standard tag: what it does depends on the loader's constructors.",
    fix=(
        "Custom tags need a registered constructor; make sure yours is data-only, or load "
        "with yaml.safe_load."
    ),
)
YML003 = Rule(
    "YML003",
    "invalid-yaml",
    Severity.WARNING,
    "CWE-20",
    "The document is not valid YAML.",
    fix=(
        "Fix or regenerate the YAML file; loaders may read a damaged file differently from "
        "this scanner."
    ),
)
YML004 = Rule(
    "YML004",
    "python-data-tag",
    Severity.INFO,
    "CWE-502",
    "A `!!python/tuple`-style tag (tuple, complex, bytes, ...) builds plain data only; it "
    "imports and calls nothing, but yaml.safe_load rejects it.",
    fix="Nothing to fix for safety; use plain YAML types if the file must load with safe_load.",
)

# --- batchscan/workers/keras_h5.py ------------------------------------------
HDF001 = Rule(
    "HDF001",
    "external-data",
    Severity.WARNING,
    "CWE-73",
    "The HDF5 file links to other files (external links or external storage).",
    fix=(
        "Remove external dataset links or make sure the files they reference are part of the "
        "reviewed model."
    ),
)
HDF002 = Rule(
    "HDF002",
    "bad-config",
    Severity.WARNING,
    "CWE-20",
    "A Keras config attribute is not valid JSON.",
    fix=(
        "Re-save the model with Keras; its configuration could not be parsed, so it could not"
        " be checked."
    ),
)

# --- batchscan/workers/keras_files.py (Keras configs in keras_h5.py and zip.py) ----
KRS001 = Rule(
    "KRS001",
    "keras-file-reference",
    Severity.ERROR,
    "CWE-73",
    "A Keras layer config names a file the loader reads: a lookup vocabulary or BPE merges "
    "path (absolute, .., a URL scheme: ERROR; plain relative: WARNING) or a TFSMLayer "
    "SavedModel.",
    fix=(
        "Do not load: the model reads a file outside itself while it is deserialised (the "
        "lines of a vocabulary file become model state). Re-save with an inline vocabulary "
        "or with Keras 3, which stores it inside the archive."
    ),
)

# --- batchscan/workers/safetensors.py ---------------------------------------
SFT001 = Rule(
    "SFT001",
    "bad-header",
    Severity.WARNING,
    "CWE-20",
    "The header length or JSON is invalid.",
    fix=(
        "Re-save the file with the safetensors library; a damaged header can hide data from "
        "scanners."
    ),
)
SFT002 = Rule(
    "SFT002",
    "bad-tensor-layout",
    Severity.WARNING,
    "CWE-20",
    "Tensor dtype, shape or offsets are inconsistent (overlap, gap, out of "
                      "bounds).",
    fix=(
        "Re-save the file; tensor offsets that overlap, leave gaps or run past the end mean "
        "damage or a crafted file."
    ),
)
SFT003 = Rule(
    "SFT003",
    "metadata-code",
    Severity.WARNING,
    "CWE-94",
    "A `__metadata__` value carries code, shell commands, script markup or a "
                         "URL.",
    fix="Metadata is free text; make sure nothing downstream evaluates it.",
)

# --- batchscan/workers/gguf.py ----------------------------------------------
GGF001 = Rule(
    "GGF001",
    "bad-header",
    Severity.WARNING,
    "CWE-20",
    "The GGUF header or metadata is malformed or exceeds sane bounds.",
    fix=(
        "Re-export the GGUF file with llama.cpp's tools; a damaged header can hide data from "
        "scanners."
    ),
)
GGF002 = Rule(
    "GGF002",
    "tensor-bounds",
    Severity.WARNING,
    "CWE-20",
    "A tensor's dimensions or offset do not fit the file.",
    fix=(
        "Re-export the GGUF file; tensor data outside the file bounds means it was damaged or"
        " crafted."
    ),
)

# --- batchscan/workers/onnx.py ----------------------------------------------
ONX001 = Rule(
    "ONX001",
    "external-data-escape",
    Severity.ERROR,
    "CWE-22",
    "An external-data location is absolute or leaves the model's directory.",
    fix=(
        "Do not load: an external-data location points outside the model folder. Keep "
        "external data files next to the model with plain relative names."
    ),
)
ONX002 = Rule(
    "ONX002",
    "custom-op-domain",
    Severity.WARNING,
    "CWE-829",
    "An operator from a non-standard domain (needs a native op library).",
    fix=(
        "Custom operator domains need a shared library at load time; make sure it is yours "
        "and reviewed."
    ),
)
ONX003 = Rule(
    "ONX003",
    "python-op",
    Severity.ERROR,
    "CWE-94",
    "A Python operator (onnxruntime-extensions PyOp) runs Python code.",
    fix=(
        "Do not load with a runtime that executes Python operators; remove the Python op or "
        "replace it with a standard operator."
    ),
)
ONX004 = Rule(
    "ONX004",
    "initializer-size",
    Severity.WARNING,
    "CWE-20",
    "An initializer's raw data does not match its dims and type.",
    fix=(
        "Re-export the model; an initializer whose size does not match its shape was damaged "
        "or crafted."
    ),
)
ONX005 = Rule(
    "ONX005",
    "bad-protobuf",
    Severity.WARNING,
    "CWE-20",
    "The protobuf is malformed; what came before the damage was checked.",
    fix="Re-export the model; a damaged protobuf cannot be fully checked.",
)
ONX006 = Rule(
    "ONX006",
    "external-data-link",
    Severity.ERROR,
    "CWE-59",
    "An external-data file in the model's folder is a symlink that leaves the folder, or a "
    "device, FIFO or socket.",
    fix=(
        "Do not load: the external-data file is a link out of the model folder (the loader "
        "reads whatever it points to into a tensor) or a special file. Replace it with the "
        "real data file."
    ),
)

# --- batchscan/workers/tf_savedmodel.py -------------------------------------
TFG001 = Rule(
    "TFG001",
    "python-op",
    Severity.ERROR,
    "CWE-94",
    "The graph calls back into Python (py_func): arbitrary code when it runs.",
    fix="Do not load: the graph contains a py_func-style op that runs Python code.",
)
TFG002 = Rule(
    "TFG002",
    "file-op",
    Severity.ERROR,
    "CWE-73",
    "The graph reads, writes or lists files when it runs.",
    fix="Do not load: the graph contains ops that read or write files when the graph runs.",
)
TFG003 = Rule(
    "TFG003",
    "file-reader-op",
    Severity.WARNING,
    "CWE-73",
    "The graph contains a file reader op.",
    fix="Review which files the reader ops open before running the graph.",
)
TFG004 = Rule(
    "TFG004",
    "bad-protobuf",
    Severity.WARNING,
    "CWE-20",
    "The protobuf is malformed; nodes before the damage were checked.",
    fix="Re-export the model; a damaged protobuf cannot be fully checked.",
)

# --- batchscan/workers/python_source.py -------------------------------------
PYS001 = Rule(
    "PYS001",
    "process-or-eval",
    Severity.ERROR,
    "CWE-94",
    "The code starts a process or evaluates code.",
    fix=(
        "Review the Python file: it runs commands or evaluates code. Do not run it "
        "(trust_remote_code, custom handlers) until reviewed."
    ),
)
PYS002 = Rule(
    "PYS002",
    "network-or-import",
    Severity.WARNING,
    "CWE-829",
    "The code opens network connections or imports modules by name.",
    fix="Review the Python file's network access and dynamic imports before running it.",
)
PYS003 = Rule(
    "PYS003",
    "file-or-loader",
    Severity.INFO,
    "CWE-73",
    "The code writes files or loads other serialised files.",
    fix="Review which files the Python code reads, writes or loads before running it.",
)
PYS004 = Rule(
    "PYS004",
    "unparsable",
    Severity.WARNING,
    "CWE-20",
    "The file is not valid Python for the scanner's interpreter, so it was not analysed "
        "(it may use newer syntax that a newer Python runs). INFO when no Python version "
        "can compile it (a logical line opens with a token no statement opens with, such "
        "as joblib.Memory's `func_code.py` of a ufunc): it cannot run.",
    fix=(
        "The Python file could not be parsed, so it could not be checked; fix it or review it"
        " by hand."
    ),
)
PYS005 = Rule(
    "PYS005",
    "computed-namespace-access",
    Severity.WARNING,
    "CWE-95",
    "The code fetches a member of the builtins, os, subprocess or another dangerous module by "
    "a name it computes (ERROR when a builtins/os member chosen that way is called).",
    fix=(
        "Review the Python file: it looks up members of builtins or the OS by computed names,"
        " a way to call exec or start processes without naming them. Do not run it until "
        "reviewed."
    ),
)

# --- XML model formats (batchscan/workers/safexml.py, pmml.py, openvino.py) ------------
XML001 = Rule(
    "XML001",
    "external-entity",
    Severity.ERROR,
    "CWE-611",
    "The XML declares an external entity (XXE): a loader that resolves entities opens a file "
    "or URL while loading.",
    fix=(
        "Remove the DOCTYPE's SYSTEM/PUBLIC entity declarations; a model file never needs "
        "them. Load XML only with a parser that resolves no entities."
    ),
)
XML002 = Rule(
    "XML002",
    "external-dtd",
    Severity.ERROR,
    "CWE-611",
    "The DOCTYPE names an external DTD that a validating loader fetches.",
    fix="Remove the external DTD reference from the DOCTYPE before loading the file.",
)
XML003 = Rule(
    "XML003",
    "entity-declaration",
    Severity.WARNING,
    "CWE-776",
    "The XML declares internal entities (nested ones expand exponentially: billion laughs).",
    fix="Remove the entity declarations; model XML does not use entities.",
)
PMM001 = Rule(
    "PMM001",
    "extension-code",
    Severity.WARNING,
    "CWE-94",
    "A PMML <Extension> element carries code or commands that a vendor's scoring engine may "
    "run.",
    fix="Review the <Extension> content and which scoring engine interprets it before use.",
)
PMM002 = Rule(
    "PMM002",
    "external-reference",
    Severity.INFO,
    "CWE-829",
    "A PMML element or attribute refers to a URL or file outside the document.",
    fix="Check that the referenced location is expected; scoring should not fetch anything.",
)
OVN001 = Rule(
    "OVN001",
    "custom-operation",
    Severity.WARNING,
    "CWE-829",
    "An OpenVINO IR layer uses an operation from outside the standard opsets: native "
    "extension code runs when the model is compiled and inferred.",
    fix=(
        "Find the extension library that implements the operation and review it before "
        "loading it with core.add_extension."
    ),
)
OVN002 = Rule(
    "OVN002",
    "library-reference",
    Severity.WARNING,
    "CWE-829",
    "The OpenVINO IR names a native library or Python file (an extension to load).",
    fix="Review the named library or script; do not load extensions you did not build.",
)
OVN003 = Rule(
    "OVN003",
    "rt-info-code",
    Severity.WARNING,
    "CWE-94",
    "OpenVINO IR metadata (<rt_info>, <meta_data>) holds code or shell commands.",
    fix="Review the metadata; IR runtime information never needs code.",
)

# --- TorchServe model archives (batchscan/workers/mar.py) --------------------
MAR001 = Rule(
    "MAR001",
    "handler-code",
    Severity.WARNING,
    "CWE-94",
    "The TorchServe archive ships a Python handler that the server imports and runs when it "
    "loads the model.",
    fix=(
        "Review the handler and every shipped .py file before serving the archive; prefer a "
        "built-in handler."
    ),
)
MAR002 = Rule(
    "MAR002",
    "handler-outside-archive",
    Severity.WARNING,
    "CWE-829",
    "The manifest's handler is neither a built-in handler nor a file of the archive: the "
    "server imports whatever module of that name it finds.",
    fix="Ship the handler in the archive or use a built-in handler name.",
)
MAR003 = Rule(
    "MAR003",
    "requirements",
    Severity.WARNING,
    "CWE-829",
    "The archive ships a requirements file that TorchServe pip-installs (packages run "
    "setup code) when per-model dependencies are enabled.",
    fix=(
        "Review the requirements (URLs, VCS and index options especially) or keep "
        "install_py_dep_per_model off."
    ),
)
MAR004 = Rule(
    "MAR004",
    "bad-manifest",
    Severity.WARNING,
    "CWE-20",
    "MAR-INF/MANIFEST.json is missing, not JSON, or lacks the model section.",
    fix="Rebuild the archive with torch-model-archiver.",
)

# --- RAR archives (batchscan/workers/rar.py) ---------------------------------
RAR001 = Rule(
    "RAR001",
    "not-decompressed",
    Severity.INFO,
    "CWE-693",
    "RAR members are not decompressed (no unrar): the archive is never reported clean.",
    fix="Extract the archive with a trusted tool and scan the extracted files.",
)
RAR002 = Rule(
    "RAR002",
    "path-traversal",
    Severity.ERROR,
    "CWE-22",
    "A RAR member name escapes the extraction directory.",
    fix="Do not extract the archive; a member name leaves the extraction folder.",
)
RAR003 = Rule(
    "RAR003",
    "link-member",
    Severity.ERROR,
    "CWE-59",
    "A RAR member is a symlink or hard link whose target escapes the extraction directory.",
    fix="Do not extract the archive; a link points outside the extraction folder.",
)
RAR004 = Rule(
    "RAR004",
    "corrupt-archive",
    Severity.WARNING,
    "CWE-20",
    "The RAR headers are damaged or encrypted and could not all be read.",
    fix="Re-create the archive, or extract it with a trusted tool and scan the files.",
)
RAR005 = Rule(
    "RAR005",
    "risky-member",
    Severity.INFO,
    "CWE-506",
    "A RAR member's name says it holds code or a pickle (executables, scripts, pickles).",
    fix="Extract the archive and scan those members before using them.",
)

# --- native executables, llamafiles, TensorRT engines (batchscan/workers/executable.py) ----
EXE001 = Rule(
    "EXE001",
    "native-executable",
    Severity.WARNING,
    "CWE-506",
    "The file is a native executable or shared library (ELF, PE, Mach-O, APE/llamafile): "
    "running or loading it runs its code.",
    fix="Run or load native code only from a publisher you trust; check its signature.",
)
TRT001 = Rule(
    "TRT001",
    "plugin-library",
    Severity.WARNING,
    "CWE-829",
    "A TensorRT engine names plugin libraries or plugin creators: native code that runs "
    "when the engine is deserialised.",
    fix="Review the plugin libraries the engine needs before loading it.",
)
TRT002 = Rule(
    "TRT002",
    "opaque-engine",
    Severity.INFO,
    "CWE-693",
    "A TensorRT engine's format is undocumented: it cannot be fully scanned and is never "
    "reported clean.",
    fix="Rebuild the engine yourself from a scanned ONNX model on the target GPU.",
)
TRT003 = Rule(
    "TRT003",
    "metadata-eval",
    Severity.ERROR,
    "CWE-95",
    "A TensorRT engine's Ultralytics metadata holds `imgsz`, `names`, `kpt_shape` or `args` "
    "as a string that is not a Python literal: Ultralytics' AutoBackend (8.0-8.3) passes "
    "those strings to eval() when it loads the engine.",
    fix="Do not load the engine with Ultralytics; rebuild it from a scanned model.",
)

# --- tar members for OCI image layers (batchscan/workers/tar.py) --------------
TAR007 = Rule(
    "TAR007",
    "setuid-member",
    Severity.WARNING,
    "CWE-250",
    "A tar member has the setuid or setgid bit: extracted by a container runtime or "
    "`tar -p`, it runs with its owner's privileges.",
    fix="Strip setuid/setgid bits from model archives and image layers.",
)
TAR008 = Rule(
    "TAR008",
    "whiteout",
    Severity.INFO,
    "CWE-436",
    "An OCI/Docker layer member is a whiteout: it deletes a file of a lower layer when the "
    "image is assembled.",
    fix="Check what the whiteout removes from the lower layers.",
)

# --- batchscan/workers/tflite.py --------------------------------------------
TFL001 = Rule(
    "TFL001",
    "custom-op",
    Severity.WARNING,
    "CWE-829",
    "A TFLite custom operator: the interpreter calls a native kernel the application registers.",
    fix=(
        "Custom operators run kernels outside the model file; run the model only with a "
        "reviewed op resolver that registers your own implementation of each named op."
    ),
)
TFL002 = Rule(
    "TFL002",
    "flex-dangerous-op",
    Severity.ERROR,
    "CWE-94",
    "A Flex (select TensorFlow) operator that runs Python or reads or writes files.",
    fix=(
        "Do not run with the Flex delegate: the model runs a TensorFlow op that calls Python "
        "or touches files. Re-convert it with builtin operators only."
    ),
)
TFL003 = Rule(
    "TFL003",
    "buffer-bounds",
    Severity.WARNING,
    "CWE-125",
    "A buffer, custom-option span, tensor buffer index or opcode index points outside the "
    "file or its tables.",
    fix=(
        "Re-convert the model; out-of-bounds offsets or indexes mean it was damaged or crafted "
        "to make the runtime read outside its data."
    ),
)
TFL004 = Rule(
    "TFL004",
    "external-buffer-escape",
    Severity.ERROR,
    "CWE-22",
    "An external buffer group names a weights file outside the model's directory.",
    fix=(
        "Do not load: the model reads weights from an absolute path or a parent directory. "
        "Keep external weights beside the model under a plain relative name."
    ),
)
TFL005 = Rule(
    "TFL005",
    "bad-flatbuffer",
    Severity.WARNING,
    "CWE-20",
    "The TFLite flatbuffer is malformed; what came before the damage was checked.",
    fix="Re-convert the model; a damaged flatbuffer cannot be fully checked.",
)

# --- batchscan/workers/executorch.py ----------------------------------------
PTE001 = Rule(
    "PTE001",
    "unknown-delegate",
    Severity.WARNING,
    "CWE-829",
    "A backend delegate that is not one of ExecuTorch's own backends processes an opaque blob.",
    fix=(
        "The program hands part of the model to a backend outside ExecuTorch's tree; run it "
        "only with a backend library you have reviewed."
    ),
)
PTE002 = Rule(
    "PTE002",
    "custom-operator",
    Severity.WARNING,
    "CWE-829",
    "An operator outside the ATen and ExecuTorch namespaces: a kernel library the application "
    "links must provide it.",
    fix=(
        "Custom operators run native kernels outside the program file; make sure the kernel "
        "library that provides each named op is yours and reviewed."
    ),
)
PTE003 = Rule(
    "PTE003",
    "segment-bounds",
    Severity.WARNING,
    "CWE-125",
    "A segment, delegate reference, operator index or buffer index points outside the file "
    "or its tables.",
    fix=(
        "Re-export the program; out-of-bounds segments or indexes mean it was damaged or "
        "crafted to make the runtime read outside its data."
    ),
)
PTE004 = Rule(
    "PTE004",
    "bad-flatbuffer",
    Severity.WARNING,
    "CWE-20",
    "The ExecuTorch program flatbuffer is malformed; what came before the damage was checked.",
    fix="Re-export the program; a damaged flatbuffer cannot be fully checked.",
)

# --- batchscan/workers/coreml.py --------------------------------------------
CML001 = Rule(
    "CML001",
    "custom-layer",
    Severity.WARNING,
    "CWE-829",
    "A Core ML custom layer or custom model: Core ML instantiates the named application class.",
    fix=(
        "Custom layers and models run code from the application that hosts the model; make "
        "sure each named class is yours and reviewed."
    ),
)
CML002 = Rule(
    "CML002",
    "file-path-escape",
    Severity.ERROR,
    "CWE-22",
    "A linked model or an ML Program weight blob is read from an absolute path or a parent "
    "directory.",
    fix=(
        "Do not load: the model reads another file from outside its folder. Keep linked models "
        "and weight files beside it under plain relative names."
    ),
)
CML003 = Rule(
    "CML003",
    "bad-protobuf",
    Severity.WARNING,
    "CWE-20",
    "The Core ML protobuf is malformed; what came before the damage was checked.",
    fix="Re-export the model; a damaged protobuf cannot be fully checked.",
)

# --- batchscan/workers/paddle.py --------------------------------------------
PDL001 = Rule(
    "PDL001",
    "python-op",
    Severity.ERROR,
    "CWE-94",
    "A PaddlePaddle `py_func` operator calls a Python function when the program runs.",
    fix=(
        "Do not run the program: it calls Python. Re-export it without `py_func` "
        "(paddle.static.py_func)."
    ),
)
PDL002 = Rule(
    "PDL002",
    "file-op",
    Severity.ERROR,
    "CWE-73",
    "A PaddlePaddle operator that reads or writes a file when the program runs (save, load, "
    "read_file...).",
    fix=(
        "Do not run the program: it reads or writes files (inference programs have no such "
        "ops). Re-export it with paddle.jit.save or paddle.static.save_inference_model."
    ),
)
PDL003 = Rule(
    "PDL003",
    "bad-structure",
    Severity.WARNING,
    "CWE-20",
    "The PaddlePaddle program or parameters file is malformed; what came before the damage "
    "was checked.",
    fix="Re-export the model; a damaged program or parameters file cannot be fully checked.",
)

# --- batchscan/workers/mxnet.py ---------------------------------------------
MXN001 = Rule(
    "MXN001",
    "custom-op",
    Severity.WARNING,
    "CWE-829",
    "An MXNet `Custom` operator: it runs the Python CustomOp class registered under its "
    "op_type.",
    fix=(
        "Custom operators run Python registered by the application; make sure the class "
        "registered for each named op_type is yours and reviewed."
    ),
)
MXN002 = Rule(
    "MXN002",
    "native-callback-op",
    Severity.ERROR,
    "CWE-822",
    "A legacy `_Native`/`_NDArray` operator: its `info` attribute is a raw pointer to a "
    "callback that MXNet dereferences and calls.",
    fix=(
        "Do not load: the graph makes MXNet call through a pointer taken from the file. "
        "Re-export the model without NativeOp/NDArrayOp operators."
    ),
)
MXN003 = Rule(
    "MXN003",
    "bad-structure",
    Severity.WARNING,
    "CWE-20",
    "The MXNet symbol graph or parameters file is malformed; what came before the damage was "
    "checked.",
    fix="Re-export the model; a damaged graph or parameters file cannot be fully checked.",
)

# --- tests only: the fault-injection hook --------------
TST001 = Rule(
    "TST001",
    "fault-injected",
    Severity.INFO,
    "CWE-703",
    "A fault-injection file was processed (tests only).",
    fix="Test-only rule of the fault-injection hook; never raised in normal runs.",
)

# Bumped whenever detection changes what a file's result is without a rule or policy table
# changing (the results cache keys on it: a stale `clean` must never be reused).
# 2: loader agreement (issue 13): damaged streams, sniffing, status `unsupported`.
ANALYSIS_REVISION = 2

# --- batchscan/workers/xgboost.py (fmt-tree) --------------------------------
XGB001 = Rule(
    "XGB001",
    "unknown-objective",
    Severity.INFO,
    "CWE-20",
    "The XGBoost model names an objective or booster that XGBoost does not register; its loader"
    " refuses the model (no code is stored in an XGBoost model).",
    fix=(
        "Re-save the model with a released XGBoost; a custom objective is never stored in the"
        " file."
    ),
)
XGB002 = Rule(
    "XGB002",
    "tree-bounds",
    Severity.WARNING,
    "CWE-129",
    "An XGBoost tree's child, parent or split-feature index lies outside the tree or the"
    " feature count; prediction in native code indexes with it.",
    fix=(
        "Re-train or re-export the model; out-of-range tree indices mean it was damaged or"
        " crafted."
    ),
)

# --- batchscan/workers/lightgbm.py (fmt-tree) -------------------------------
LGB001 = Rule(
    "LGB001",
    "file-parameter",
    Severity.WARNING,
    "CWE-73",
    "The LightGBM model's saved parameters name a file that LightGBM reads or writes when the"
    " parameters are reused (refit, continued training, the CLI): an absolute or escaping path,"
    " or an output file.",
    fix=(
        "Clear the file parameters (data, valid, output_model, *_filename...) before"
        " sharing."
    ),
)
LGB002 = Rule(
    "LGB002",
    "tree-bounds",
    Severity.WARNING,
    "CWE-129",
    "A LightGBM tree's child or split-feature index lies outside the tree or the feature count.",
    fix=(
        "Re-train or re-export the model; out-of-range tree indices mean it was damaged or"
        " crafted."
    ),
)

# --- batchscan/workers/skops_schema.py (fmt-tree) ---------------------------
SKO001 = Rule(
    "SKO001",
    "untrusted-type",
    Severity.WARNING,
    "CWE-502",
    "A skops node names a type outside skops' default trusted list: skops.io.load refuses it"
    " unless the user trusts it, and trusting it imports and calls it.",
    fix="Review each listed type before passing it to `trusted=`; never trust"
    " get_untrusted_types() output blindly.",
)
SKO002 = Rule(
    "SKO002",
    "dangerous-callable",
    Severity.ERROR,
    "CWE-502",
    "A skops node imports or calls a callable that runs commands, evaluates code or opens files"
    " (os.system, builtins.eval...): approving the file's untrusted types runs it on load.",
    fix="Do not load the file; it is built to run code once its types are trusted.",
)
SKO003 = Rule(
    "SKO003",
    "hidden-operator",
    Severity.ERROR,
    "CWE-351",
    "An OperatorFuncNode that calls an `operator` function other than the attribute/item"
    " getters, or that names a module other than `operator` so that skops <= 0.11 audited a"
    " harmless-looking type while calling operator.<name> (CVE-2025-54412).",
    fix="Do not load the file; upgrade skops to >= 0.12.",
)
SKO004 = Rule(
    "SKO004",
    "method-attribute-chain",
    Severity.ERROR,
    "CWE-915",
    "A MethodNode whose method name is a dotted chain or a dunder, or whose owner type differs"
    " from its object's: skops <= 0.11 resolved it with getattr through arbitrary attributes"
    " (CVE-2025-54413).",
    fix="Do not load the file; upgrade skops to >= 0.12.",
)
SKO005 = Rule(
    "SKO005",
    "unknown-loader",
    Severity.INFO,
    "CWE-20",
    "A skops node names a loader that this skops protocol does not define; skops refuses it.",
    fix="Re-save the model with a released skops.",
)

# --- batchscan/workers/rds.py (fmt-tree) ------------------------------------
RDS001 = Rule(
    "RDS001",
    "promise",
    Severity.ERROR,
    "CWE-502",
    "An R promise (lazy expression) in a serialized object: R < 4.4.0 evaluates an unbound"
    " promise when the loaded value is first used (CVE-2024-27322), and any promise runs its"
    " expression when forced.",
    fix="Do not load the file with readRDS/load; upgrade R to >= 4.4.0 and treat it as code.",
)
RDS002 = Rule(
    "RDS002",
    "active-binding-or-hook",
    Severity.ERROR,
    "CWE-94",
    "An environment with an active binding (a function that runs whenever the variable is"
    " read), or a workspace that defines .First/.Last or similar hooks that R calls itself.",
    fix="Do not load the workspace; inspect it in a sandboxed R session.",
)
RDS003 = Rule(
    "RDS003",
    "closure",
    Severity.WARNING,
    "CWE-94",
    "An R function (closure, byte code or language object) is serialized in the file: it runs"
    " when the model is used (predict methods, callbacks).",
    fix="Review the function bodies (the evidence lists the calls they make) before use.",
)

# --- batchscan/workers/flax_msgpack.py (fmt-tree) ---------------------------
FLX001 = Rule(
    "FLX001",
    "unexpected-ext-type",
    Severity.INFO,
    "CWE-20",
    "A Flax msgpack checkpoint holds a msgpack extension type or array dtype that"
    " flax.serialization does not write (it restores it as an opaque value or refuses it).",
    fix="Re-save the checkpoint with flax.serialization.to_bytes.",
)

# --- batchscan/workers/orbax.py (fmt-tree) ----------------------------------
ORB001 = Rule(
    "ORB001",
    "path-escape",
    Severity.ERROR,
    "CWE-22",
    "An Orbax leaf key is absolute or has `..` components: without OCDBT a restore opens"
    " `os.path.join(checkpoint, key)`, a file outside the checkpoint.",
    fix="Do not restore the checkpoint without an explicit target; re-save it with plain keys.",
)
ORB002 = Rule(
    "ORB002",
    "unknown-type",
    Severity.INFO,
    "CWE-20",
    "An Orbax handler or value type string that Orbax does not register: the loader refuses"
    " it unless the application registered such a type itself.",
    fix="Check which handler the checkpoint expects before restoring it.",
)

CATALOGUE: tuple[Rule, ...] = (
    ENG002,
    ENG003,
    ENG004,
    PKL001,
    PKL002,
    PKL003,
    PKL004,
    PKL005,
    PKL006,
    PKL007,
    PKL008,
    PKL009,
    PKL010,
    PKL011,
    PKL012,
    PKL013,
    PTL001,
    PTL002,
    NPY001,
    NPY002,
    NPY003,
    ZIP001,
    ZIP002,
    ZIP003,
    ZIP004,
    ZIP005,
    ZIP006,
    ZIP007,
    ZIP008,
    ZIP009,
    ZIP010,
    ZIP011,
    ZIP012,
    ZIP013,
    TAR001,
    TAR002,
    TAR003,
    TAR004,
    TAR005,
    TAR006,
    SVZ001,
    SVZ002,
    SVZ003,
    CMP001,
    CMP002,
    CFG001,
    CFG002,
    CFG003,
    CFG004,
    CFG005,
    CFG006,
    CFG007,
    CFG008,
    CFG009,
    CFG010,
    CFG011,
    MLF001,
    MLF002,
    MLF003,
    JSN001,
    YML001,
    YML002,
    YML003,
    YML004,
    HDF001,
    HDF002,
    KRS001,
    SFT001,
    SFT002,
    SFT003,
    GGF001,
    GGF002,
    ONX001,
    ONX002,
    ONX003,
    ONX004,
    ONX005,
    ONX006,
    TFG001,
    TFG002,
    TFG003,
    TFG004,
    PYS001,
    PYS002,
    PYS003,
    PYS004,
    PYS005,
    XML001,
    XML002,
    XML003,
    PMM001,
    PMM002,
    OVN001,
    OVN002,
    OVN003,
    MAR001,
    MAR002,
    MAR003,
    MAR004,
    RAR001,
    RAR002,
    RAR003,
    RAR004,
    RAR005,
    EXE001,
    TRT001,
    TRT002,
    TRT003,
    TAR007,
    TAR008,
    TFL001,
    TFL002,
    TFL003,
    TFL004,
    TFL005,
    PTE001,
    PTE002,
    PTE003,
    PTE004,
    CML001,
    CML002,
    CML003,
    PDL001,
    PDL002,
    PDL003,
    MXN001,
    MXN002,
    MXN003,
    TST001,
    XGB001,
    XGB002,
    LGB001,
    LGB002,
    SKO001,
    SKO002,
    SKO003,
    SKO004,
    SKO005,
    RDS001,
    RDS002,
    RDS003,
    FLX001,
    ORB001,
    ORB002,
)
BY_ID: dict[str, Rule] = {rule.rule_id: rule for rule in CATALOGUE}

# Where each rule's page is: `docs/rules.md` (generated from this catalogue by
# `rules_markdown`, kept current by tests/test_compat.py) with one anchor per rule id.
RULES_DOC_URL = "https://batchscan.invalid/docs/rules.md"


def help_uri(rule_id: str) -> str:
    return f"{RULES_DOC_URL}#{rule_id.lower()}"


def rules_markdown() -> str:
    """docs/rules.md: one section per rule, anchored by its lower-cased id."""
    lines = [
        "# batchscan rules",
        "",
        "Generated from `batchscan/rules.py` by `batchscan schema --rules-md`; do not edit.",
        "",
        "| id | name | severity | CWE |",
        "|---|---|---|---|",
    ]
    lines += [f"| [{r.rule_id}](#{r.rule_id.lower()}) | {r.name} | {r.severity.value} | "
              f"{r.cwe} |" for r in CATALOGUE]
    for rule in CATALOGUE:
        lines += [
            "",
            f'<a id="{rule.rule_id.lower()}"></a>',
            f"## {rule.rule_id} {rule.name}",
            "",
            f"Severity: {rule.severity.value}. {rule.cwe}.",
            "",
            rule.description,
            "",
            f"**How to fix.** {rule.fix}",
        ]
    return "\n".join(lines) + "\n"
