"""MLflow model metadata: the `MLmodel` file and the environment files next to it
(`requirements.txt`, `conda.yaml`, `python_env.yaml`).

Layout. An MLflow model is a folder: `MLmodel` (YAML, no extension) names the flavors the
model can be loaded with; `flavors.python_function.loader_module` is the module that
`mlflow.pyfunc.load_model` imports and whose `_load_pyfunc` it calls, and `code` (in any
flavor) lists paths shipped with the model that are put on `sys.path` first;
`model_code_path` (models from code) names a Python file the loader executes. The
environment files say what `mlflow models serve`/`predict`, `mlflow.pyfunc.spark_udf` and
`mlflow.models.build_docker` install (`pip install -r requirements.txt`, `conda env create`,
virtualenv from `python_env.yaml`). `MLmodel`, `conda.yaml` and `python_env.yaml` are parsed
by `workers/yaml_config.py`, which calls `mlmodel_findings`/`environment_findings` here;
this module scans pip requirements files itself (format `requirements`).

Attack surface. A `loader_module` outside MLflow's own flavors is code shipped with (or
installed for) the model that runs on `load_model`; `code` paths ship Python that the loader
imports. Requirements that install from another index (`--extra-index-url` mixes indexes:
dependency confusion), from URLs, VCS or local paths, or with install options run code from
elsewhere at install time (`setup.py`, build backends).

What is checked: the loader module against MLflow's flavor modules; non-empty `code` paths;
every requirement line (pip options, `name @ url`, `git+`, `http(s)://`, `file:`, local paths
and archives) in requirements files, `python_env.yaml` lists and conda's `pip:` list, and
URL/path specs in conda's dependencies. Not checked: whether pinned versions exist or are
vulnerable (a dependency auditor's job), conda channels.

Rules
| id     | name                    | severity | CWE     |
|--------|-------------------------|----------|---------|
| MLF001 | pyfunc-loader-module    | warning  | CWE-94  |
| MLF002 | shipped-code-paths      | warning  | CWE-94  |
| MLF003 | install-from-elsewhere  | warning  | CWE-829 |
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import LimitExceeded, ScanContext, Source

FORMAT = "requirements"

LOADER_MODULE = rules.MLF001
CODE_PATHS = rules.MLF002
INSTALL_ELSEWHERE = rules.MLF003
RULES: tuple[Rule, ...] = (LOADER_MODULE, CODE_PATHS, INSTALL_ELSEWHERE)

_MAX_BYTES = 4 * 1024 * 1024
_MAX_LINES = 100_000
# MLflow's built-in flavor modules (`mlflow.<flavor>`); `mlflow.pyfunc.model` loads a
# PythonModel (its pickle is scanned as a file of its own) and `mlflow.pyfunc.loaders.*`
# are MLflow's own loaders.
_FLAVORS = frozenset({
    "sklearn", "pytorch", "tensorflow", "keras", "xgboost", "lightgbm", "catboost", "onnx",
    "spark", "statsmodels", "prophet", "h2o", "spacy", "fastai", "gluon", "mleap", "diffusers",
    "transformers", "sentence_transformers", "langchain", "openai", "pmdarima", "diviner",
    "paddle", "johnsnowlabs", "llama_index", "dspy", "shap", "promptflow", "pyfunc.model",
    "prompt.promptlab_model",
})
_FLAVOR_PREFIXES = ("pyfunc.loaders.",)
# pip options in requirement lists that change nothing about where code comes from.
_QUIET_OPTIONS = frozenset({"--hash", "--pre", "--prefer-binary", "--only-binary",
                            "--no-binary", "--require-hashes", "--use-feature"})
_INCLUDE_OPTIONS = frozenset({"-r", "--requirement", "-c", "--constraint"})
_URL = re.compile(r"(?:\A|[\s@=])(?:[a-z][a-z0-9+.-]*\+)?(?:https?|ftp|file|ssh)://|\A(?:git|hg|"
                  r"svn|bzr)\+", re.IGNORECASE)
_LOCAL = re.compile(r"\A(?:\.{1,2}[/\\]|[/\\~]|[A-Za-z]:[/\\])|\.(?:whl|zip|tar\.gz|tgz|tar\.bz2|"
                    r"tar|egg)\Z", re.IGNORECASE)
_LINE_OPTION = re.compile(r"\s(--?[A-Za-z][\w-]*)")
_NAME = re.compile(r"\Arequirements[\w.-]*\.txt\Z", re.IGNORECASE)


def sniff(head: bytes, name: str) -> bool:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if _NAME.match(base) is None or b"\x00" in head[:4096]:
        return False
    try:
        head[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= 4092
    return True


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.known_size is not None and source.known_size > _MAX_BYTES:
        raise LimitExceeded("requirements bytes", _MAX_BYTES, source.known_size, ctx.member)
    raw = source.read_at(0, _MAX_BYTES + 1)
    if len(raw) > _MAX_BYTES:  # a stream of unknown length: one byte past the limit tells
        raise LimitExceeded("requirements bytes", _MAX_BYTES, len(raw), ctx.member)
    text = raw.decode("utf-8", "replace")
    lines = text.splitlines()
    if len(lines) > _MAX_LINES:
        raise LimitExceeded("requirements lines", _MAX_LINES, len(lines), ctx.member)
    joined: list[tuple[int, str]] = []
    pending = ""
    for number, line in enumerate(lines, 1):
        if line.endswith("\\"):  # pip joins continued lines
            pending += line[:-1] + " "
            continue
        joined.append((number, pending + line))
        pending = ""
    if pending:
        joined.append((len(lines), pending))
    for number, line in joined:
        yield from requirement_findings(line, f"line {number}", ctx)


def requirement_findings(line: str, where: str, ctx: ScanContext) -> Iterator[Finding]:
    """Findings for one pip requirement line (a requirements file, python_env, conda pip:)."""
    reason = _elsewhere(line)
    if reason is not None:
        yield INSTALL_ELSEWHERE.finding(f"{where}: {reason}", member=ctx.member,
                                        evidence=line.strip()[:300])


def _elsewhere(line: str) -> str | None:
    text = re.split(r"(?:\A|\s)#", line, maxsplit=1)[0].strip()
    if not text:
        return None
    if text.startswith("-"):
        if text.startswith("--"):
            option, value = re.split(r"[=\s]+", text, maxsplit=1)[0], ""
            value = text[len(option):].lstrip("= \t")
        else:  # `-i URL` or `-iURL`
            option, value = text[:2], text[2:].strip()
        if option in _QUIET_OPTIONS:
            return None
        if option in _INCLUDE_OPTIONS:
            if _URL.search(value) or (_LOCAL.match(value) and not value.startswith("./")):
                return f"includes requirements from {value!r}, outside the model folder"
            return None
        return f"pip option {option} changes where or how packages are installed"
    if _URL.search(text):
        return "installs from a URL or version-control repository instead of the index"
    requirement = text.split(";", 1)[0].strip()
    if _LOCAL.search(requirement.split()[0]):
        return "installs from a local path or archive"
    for option in _LINE_OPTION.findall(text):
        if option not in _QUIET_OPTIONS:  # --config-settings, --global-option: build arguments
            return f"per-requirement pip option {option} changes how it is built or installed"
    return None


def _requirement_list(items: Any, where: str, ctx: ScanContext) -> Iterator[Finding]:
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, str):
                yield from requirement_findings(item, f"{where}[{i}]", ctx)


def environment_findings(document: Any, ctx: ScanContext) -> Iterator[Finding]:
    """A conda environment (`dependencies` with a `pip:` list) or an MLflow `python_env.yaml`
    (`python`, `build_dependencies`, `dependencies` of pip requirement lines)."""
    if not isinstance(document, dict):
        return
    dependencies = document.get("dependencies")
    if "build_dependencies" in document or (
        "python" in document and isinstance(dependencies, list)
        and all(isinstance(item, str) for item in dependencies)
    ):
        yield from _requirement_list(document.get("build_dependencies"), "build_dependencies",
                                     ctx)
        yield from _requirement_list(dependencies, "dependencies", ctx)
        return
    if not isinstance(dependencies, list):
        return
    for i, item in enumerate(dependencies):
        if isinstance(item, dict):
            yield from _requirement_list(item.get("pip"), f"dependencies[{i}].pip", ctx)
        elif isinstance(item, str) and (_URL.search(item) or _LOCAL.match(item.strip())):
            yield INSTALL_ELSEWHERE.finding(
                f"dependencies[{i}]: conda installs a package from a URL or local path",
                member=ctx.member, evidence=item[:300])


def mlmodel_findings(document: Any, ctx: ScanContext) -> Iterator[Finding]:
    """An MLmodel document: its python_function loader and shipped code paths."""
    if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
        return
    for flavor, conf in document["flavors"].items():
        if not isinstance(conf, dict):
            continue
        loader = conf.get("loader_module")
        if flavor == "python_function" and isinstance(loader, str) and not _mlflow_flavor(loader):
            yield LOADER_MODULE.finding(
                f"python_function loader_module {loader!r} is not an MLflow flavor: "
                "mlflow.pyfunc.load_model imports it and calls its _load_pyfunc",
                member=ctx.member, evidence=loader[:300])
        paths: list[str] = []
        # `code`: put on sys.path; `model_code_path`: models from code, a .py file the loader
        # executes to build the model.
        for key in ("code", "model_code_path"):
            value = conf.get(key)
            values = [value] if isinstance(value, str) else value if isinstance(value,
                                                                                list) else []
            paths.extend(path for path in values if isinstance(path, str) and path)
        if paths:
            yield CODE_PATHS.finding(
                f"flavor {flavor!s} ships code paths {paths[:8]!r}: the loader puts them on "
                "sys.path and imports from them", member=ctx.member,
                evidence=", ".join(paths)[:300])


def _mlflow_flavor(module: str) -> bool:
    head, _, rest = module.partition(".")
    return head == "mlflow" and (rest in _FLAVORS or rest.startswith(_FLAVOR_PREFIXES))
