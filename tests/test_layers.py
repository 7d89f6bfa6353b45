"""The import graph: layers that import only downward, and no circle anywhere.

Reads every module's imports with `ast` (function-level imports included: a late import is
still a dependency), so the check needs nothing installed and runs in milliseconds. The
layers are drawn in README ("How the code is layered"):

    cli            batchscan.cli, launch, __main__, ui.runner (the UI's scan child: the CLI)
    ui             batchscan.ui.* (the web app; the CLI hands it its argument parser)
    outputs        batchscan.outputs.*
    coordinator    batchscan.coordinator, config, cache, downloads, selection, baseline,
                   executors.*
    sources        batchscan.sources.*
    runtime        batchscan.workers.task, jobs, entry; sandbox, landlock, seccomp, hashing,
                   cachedb, forkserver, lifeline, safeopen, channel
    formats        batchscan.workers.* (one module per format, base, registry, policy)
    records        batchscan (version), records, rules (the catalogue), schema
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "batchscan"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("records", ("batchscan", "batchscan.records", "batchscan.rules", "batchscan.schema")),
    ("formats", ("batchscan.workers",)),
    ("runtime", ("batchscan.workers.task", "batchscan.workers.jobs", "batchscan.workers.entry",
                 "batchscan.sandbox", "batchscan.landlock", "batchscan.seccomp",
                 "batchscan.hashing", "batchscan.cachedb", "batchscan.forkserver",
                 "batchscan.lifeline", "batchscan.safeopen", "batchscan.channel")),
    ("sources", ("batchscan.sources",)),
    ("coordinator", ("batchscan.coordinator", "batchscan.config", "batchscan.cache",
                     "batchscan.downloads", "batchscan.selection", "batchscan.baseline",
                     "batchscan.executors")),
    ("outputs", ("batchscan.outputs",)),
    ("ui", ("batchscan.ui",)),
    ("cli", ("batchscan.cli", "batchscan.launch", "batchscan.__main__", "batchscan.ui.runner")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """The most specific prefix decides: `batchscan.workers.task` is runtime, the rest of
    `batchscan.workers` is formats."""
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS and README"
    return best


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The batchscan modules `module` imports (a package's submodule when named as such)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    found.discard(module)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(name, path, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def test_no_import_runs_in_a_circle() -> None:
    assert cycles(graph()) == []


def test_every_import_goes_down_or_sideways() -> None:
    upward = [
        f"{source} ({LAYERS[layer(source)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
        for source, targets in graph().items()
        for target in sorted(targets)
        if layer(target) > layer(source)
    ]
    assert upward == []


def test_the_checker_sees_a_circle_and_an_upward_import() -> None:
    """The checks above would catch what they exist for."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("batchscan.workers.task") > layer("batchscan.workers.zip")
    assert layer("batchscan.cli") > layer("batchscan.coordinator") > layer("batchscan.rules")


def test_the_coordinator_process_imports_no_scanner() -> None:
    """SARIF's rule table and the cache's rule-set digest come from the catalogue: with
    `-f sarif` or `--cache` the coordinator still loads no format module (start-up time)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import batchscan.cli\n"
        "from batchscan import cache\n"
        "from batchscan.outputs import sarif\n"
        "sarif.render([], 'run')\n"
        "cache.ruleset_version()\n"
        "print(sorted(m for m in sys.modules if m.startswith('batchscan.workers.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = set(ast.literal_eval(out))
    allowed = {"batchscan.workers.base", "batchscan.workers.jobs", "batchscan.workers.entry",
               "batchscan.workers.pickle_policy"}
    assert loaded <= allowed, loaded - allowed
