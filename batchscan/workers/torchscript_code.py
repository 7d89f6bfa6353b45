"""TorchScript `code/*.py`: which statements reach Python or the OS, read as code, not as text.

`torch.jit.load` compiles these sources with the TorchScript compiler. The serializer writes
a small, regular subset of Python, and its own shapes are not risks:
- `getattr(self, "0")`: children of `nn.Sequential`/`ModuleList`/`ParameterList` have names
  that are not identifiers, so the printer spells attribute access with a literal name;
- `ops.prim.RaiseException(msg, "builtins.ValueError")`: the exception class of a compiled
  `raise` is written as a qualified *string*; TorchScript never imports it during load;
- `__torch__.torch.compiler.is_compiling`, `ops.prim.dtype(x)`: compiled torch functions.

What reaches Python or the OS, and stays ERROR: Python builtins that evaluate, import or open
(`eval`, `exec`, `compile`, `__import__`, `open`, ...), `getattr` with a computed or dunder
name, names rooted in OS/interpreter modules (`os.system`, `subprocess`, `sys`, `ctypes`,
`builtins.*`), torch entry points that load or compile more code (`torch.load`,
`torch.jit.*`, `torch.hub`, `torch.classes`), and a raised exception class that is not a
builtin exception (the name is resolved in Python when the exception reaches it). An operator
from a namespace torch does not ship (`ops.myns.op`, `torch.ops.myns.op`) is a custom op:
native code registered by a library the user loads, so it runs when the model is used
(WARNING, by the severity contract). Sources that do not parse are judged by the old textual
patterns: never less than before.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from batchscan.records import Severity

# Namespaces of operators that torch itself defines (native ATen, interpreter primitives...).
_TORCH_OP_NAMESPACES = frozenset(
    {"aten", "prim", "quantized", "_quantized", "_caffe2", "profiler", "quantized_decomposed",
     "prims", "_c10d_functional", "c10d_functional", "_dtensor", "rngprims", "higher_order"}
)
_CALL_BUILTINS = frozenset(
    {"__import__", "eval", "exec", "compile", "open", "globals", "locals", "vars",
     "breakpoint", "input", "setattr", "delattr", "__builtins__", "execfile", "help"}
)
_OS_ROOTS = frozenset(
    {"os", "posix", "nt", "sys", "subprocess", "ctypes", "builtins", "importlib", "socket",
     "shutil", "pickle", "marshal", "io", "pathlib", "runpy", "pty", "signal", "platform",
     "multiprocessing", "threading", "urllib", "http", "requests", "__builtin__"}
)
_TORCH_LOADERS = frozenset(
    {"load", "save", "from_file", "hub", "jit", "package", "classes", "library", "_ops",
     "utils", "compile"}
)
_BUILTIN_EXCEPTION = re.compile(
    r"builtins\.(?:[A-Z]\w*(?:Error|Exception|Warning)|StopIteration|StopAsyncIteration|"
    r"KeyboardInterrupt|SystemExit|GeneratorExit)\Z"
)
# The textual patterns used when a source does not parse.
_TEXTUAL = re.compile(
    r"\b(?:__import__|eval|exec|compile|getattr|open|os\.\w+|subprocess|builtins\.\w+|"
    r"torch\.ops\.(?!aten\b|prim\b|quantized\b|_caffe2\b|profiler\b)\w+|"
    r"torch\.jit\.annotations|ctypes|sys\.\w+)\b"
)


@dataclass(frozen=True, slots=True)
class Reach:
    what: str  # the construct, as it appears in the source
    line: int
    severity: Severity


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _plain_attribute(name: object) -> bool:
    return isinstance(name, str) and re.fullmatch(r"\w+", name) is not None and not (
        name.startswith("__") and name.endswith("__")
    )


class _Reaches(ast.NodeVisitor):
    def __init__(self, tree: ast.AST) -> None:
        self.found: list[Reach] = []
        # Parameters and assigned names are locals (`input` is the usual parameter name).
        self.local = {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)} | {
            n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }

    def hit(self, what: str, node: ast.AST, severity: Severity = Severity.ERROR) -> None:
        self.found.append(Reach(what, getattr(node, "lineno", 0), severity))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "getattr":
            # The printer's `getattr(self, "0")`: a literal, non-dunder attribute of a local.
            literal = (len(node.args) == 2 and not node.keywords
                       and isinstance(node.args[1], ast.Constant)
                       and isinstance(node.args[1].value, str))
            owner = node.args[0] if node.args else None
            if (literal and isinstance(owner, ast.Name) and owner.id not in _OS_ROOTS
                    and _plain_literal(node.args[1])):
                self.visit(owner)
                return
            self.hit("getattr", node)
            self.generic_visit(node)
            return
        name = _dotted(func)
        if name in ("ops.prim.RaiseException", "torch.ops.prim.RaiseException") and len(
            node.args
        ) >= 2:
            cls = node.args[1]
            if not (isinstance(cls, ast.Constant) and isinstance(cls.value, str)
                    and _BUILTIN_EXCEPTION.match(cls.value)):
                self.hit(f"raises {ast.unparse(cls)[:80]}", node)
            for arg in node.args[:1]:
                self.visit(arg)
            return
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and node.id not in self.local and (
            node.id in _CALL_BUILTINS or node.id == "getattr" or node.id in _OS_ROOTS
        ):
            self.hit(node.id, node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = _dotted(node)
        if name is None:
            self.generic_visit(node)
            return
        parts = name.split(".")
        if parts[0] in _OS_ROOTS:
            self.hit(name, node)
            return
        ops_at = 1 if parts[0] == "torch" and len(parts) > 1 and parts[1] == "ops" else (
            0 if parts[0] == "ops" else None)
        if ops_at is not None and len(parts) > ops_at + 1:
            if parts[ops_at + 1] not in _TORCH_OP_NAMESPACES:
                self.hit(".".join(parts[: ops_at + 3]), node, Severity.WARNING)
            return
        if parts[0] == "torch" and len(parts) > 1 and parts[1] in _TORCH_LOADERS:
            if parts[1] != "utils" or "cpp_extension" in parts:
                self.hit(name, node)
            return
        if any(p in ("__globals__", "__builtins__", "__subclasses__", "__code__") for p in parts):
            self.hit(name, node)


def _plain_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and _plain_attribute(node.value)


def reaches(text: str) -> list[Reach]:
    """Every construct in one TorchScript source that reaches Python or the OS."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [
            Reach(m.group(0), text.count("\n", 0, m.start()) + 1, Severity.ERROR)
            for m in _TEXTUAL.finditer(text)
        ]
    try:
        visitor = _Reaches(tree)
        visitor.visit(tree)
    except RecursionError:
        return [Reach("source nested too deeply to analyse", 0, Severity.ERROR)]
    return visitor.found


__all__ = ["Reach", "reaches"]
