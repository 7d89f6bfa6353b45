"""Python files shipped with models (`modeling_*.py`, `tokenization_*.py`, handlers, hubconf).

Layout. Python source. It is parsed with `ast.parse` (never compiled to bytecode or run).

Attack surface. With `trust_remote_code=True` transformers imports the repo's `.py` files
named by `auto_map`; `torch.hub.load` runs `hubconf.py`; TorchServe runs handlers.
ModelAudit does not scan `.py` files at all. Obfuscated code reaches the same calls without
naming them: `__builtins__['ex'+'ec'](...)`, `getattr(os, 'posix_'+'spawnp')(...)`,
`vars(os)[name]`, `globals()['__builtins__']`, `importlib.import_module('o'+'s')`.

What is checked: calls that start processes or evaluate code (ERROR when the arguments are
literals or the callable was reached indirectly, WARNING otherwise), network access and
dynamic imports (WARNING), writes to files and deserialisation of other files (INFO), both
as direct calls and through indirection. References are resolved through imports, aliases,
variables assigned once, `getattr`, subscripts of namespace dictionaries (`__builtins__`,
`X.__dict__`, `vars(X)`, `globals()`, `sys.modules`), `__import__` and
`importlib.import_module`, with string keys folded from literals (concatenation, `join`,
`format`, `%`, f-strings, reversal). A key that cannot be folded on a dangerous namespace
(builtins, os, subprocess, sys, ...) is PYS005: WARNING, ERROR when the namespace is the
builtins or the OS and what it yields is called. Remote code that only builds a model
produces no finding.

Bounds: one AST walk; folds memoised per node, at most 4096 steps and characters each, and
never through a format width or precision (`'{:>999999999}'`); references chained through
more than 64 names make the file PYS004 and not clean.

Not checked: data flow beyond single assignments (a key built in a loop, a namespace passed
through a function argument); `globals()[name]` and `sys.modules[name]` with a computed
name (a module's registry and library code looking up its own modules, common in benign
code) unless what they yield is indexed by a computed key again.

Rules
| id     | name                      | severity | CWE     |
|--------|---------------------------|----------|---------|
| PYS001 | process-or-eval           | error    | CWE-94  |
| PYS002 | network-or-import         | warning  | CWE-829 |
| PYS003 | file-or-loader            | info     | CWE-73  |
| PYS004 | unparsable                | warning  | CWE-20  |
| PYS005 | computed-namespace-access | warning  | CWE-95  |
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass

from batchscan import rules
from batchscan.records import Finding, Severity
from batchscan.rules import Rule
from batchscan.workers.base import ScanContext, Source

FORMAT = "python"

PROCESS = rules.PYS001
NETWORK = rules.PYS002
FILES = rules.PYS003
UNPARSABLE = rules.PYS004
COMPUTED = rules.PYS005
RULES: tuple[Rule, ...] = (PROCESS, NETWORK, FILES, UNPARSABLE, COMPUTED)

_MAX_BYTES = 4 * 1024 * 1024
_MAX_FOLD = 4096  # characters of a folded key; longer is no attribute name
_MAX_HOPS = 64  # alias and variable hops while resolving one reference
_PERCENT_SPEC = re.compile(r"%(?!s)")  # any directive but a plain %s
_BRACE_SPEC = re.compile(r"\{[^{}]*[:!][^{}]*\}")

# Every way the standard library starts a process or evaluates code. Matched exactly, or
# as a whole module (an entry without a dot covers all its members).
_OS_PROCESS = ("system", "popen", "execl", "execle", "execlp", "execlpe", "execv", "execve",
               "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv",
               "spawnve", "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp", "startfile")
PROCESS_NAMES = frozenset({
    *(f"os.{name}" for name in _OS_PROCESS), "subprocess", "pty.spawn",
    "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell",
    "asyncio.subprocess.create_subprocess_exec", "asyncio.subprocess.create_subprocess_shell",
    "builtins.eval", "builtins.exec", "builtins.compile", "commands.getoutput",
    "commands.getstatusoutput", "runpy.run_path", "runpy.run_module", "ctypes.CDLL",
    "ctypes.cdll", "marshal.loads", "platform.popen",
})
_NETWORK = frozenset({"socket", "urllib.request", "urllib.urlopen", "urllib2", "requests",
                      "httpx", "http.client", "ftplib", "smtplib", "telnetlib", "aiohttp",
                      "importlib.import_module", "importlib.__import__", "builtins.__import__",
                      "pip", "webbrowser"})
_FILES = frozenset({"pickle.load", "pickle.loads", "torch.load", "joblib.load", "dill.load",
                    "dill.loads", "cloudpickle.load", "cloudpickle.loads", "shutil.rmtree",
                    "os.remove", "os.unlink", "shutil.move", "os.chmod"})
# Low-level modules that are the OS under another name.
_SAME_AS_OS = {"posix": "os", "nt": "os", "_posixsubprocess": "subprocess"}
# Namespaces whose members by computed name are worth a finding ...
_DANGEROUS = frozenset({"builtins", "os", "subprocess", "sys", "pty", "importlib", "ctypes",
                        "shutil", "socket", "runpy", "marshal", "pickle", "asyncio",
                        "commands", "platform"})
# ... and those where calling such a member is most likely a command or code.
_CORE = frozenset({"builtins", "os", "subprocess", "pty"})
_IMPORTERS = frozenset({"importlib.import_module", "importlib.__import__",
                        "builtins.__import__"})
_BUILTIN_NAMES = frozenset({"eval", "exec", "compile", "__import__", "open", "getattr"})
_GLOBALS = "<globals>"  # the module's own namespace (globals(), locals())
_COMPUTED = "?"  # a member whose name could not be folded


@dataclass(frozen=True, slots=True)
class _Ref:
    """What an expression refers to: a dotted name, and whether it was reached indirectly
    (getattr, a namespace subscript, `vars`, `__dict__`, an import by name)."""

    name: str
    indirect: bool = False

    def member(self, key: str | None) -> _Ref:
        return _Ref(f"{self.name}.{key if key is not None else _COMPUTED}", True)


def sniff(head: bytes, name: str) -> bool:
    return name.lower().endswith(".py") and b"\x00" not in head[:4096]


# Tokens no statement of any Python grammar begins with (binary, comparison, augmented
# assignment operators and closing brackets). New syntax is added by soft keywords and new
# expression forms, never by statements that open with these.
_NEVER_STARTS = frozenset({
    "<", ">", "<=", ">=", "==", "!=", "<>", ")", "]", "}", ",", ":", ";", "=", "|", "&", "^",
    "%", "/", "//", "->", "<<", ">>", "+=", "-=", "*=", "/=", "//=", "%=", "@=", "&=", "|=",
    "^=", "<<=", ">>=", "**=", ":=",
})


def _never_python(text: str) -> bool:
    """True when no Python version can compile `text`: one of its logical lines begins with
    a token no statement begins with (joblib.Memory's `func_code.py` of a ufunc holds
    `<ufunc 'sqrt'>`). Any token this Python cannot read (a newer f-string, an unterminated
    string) leaves the question open: False."""
    line_start = True
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            kind = token.type
            if kind == tokenize.ERRORTOKEN:
                return False
            if kind in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                line_start = True
            elif kind in (tokenize.NL, tokenize.COMMENT, tokenize.ENCODING):
                continue
            else:
                if line_start and kind == tokenize.OP and token.string in _NEVER_STARTS:
                    return True
                line_start = False
    except (tokenize.TokenError, SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return False


def _unparsable(text: str, exc: BaseException, ctx: ScanContext) -> Finding:
    """PYS004. Code this Python cannot parse may be newer syntax that a newer interpreter
    runs: WARNING, it was not analysed. Text no Python version can compile cannot run
    (inert by the severity contract): INFO."""
    if _never_python(text):
        return UNPARSABLE.finding(f"not Python in any version, cannot run: {exc}"[:300],
                                  severity=Severity.INFO, member=ctx.member)
    return UNPARSABLE.finding(
        f"not valid Python {sys.version_info.major}.{sys.version_info.minor} (newer syntax "
        f"is not analysed): {exc}"[:300], member=ctx.member)


def fold(node: ast.AST, variables: dict[str, ast.expr] | None = None,
         memo: dict[int, str | None] | None = None) -> str | None:
    """The string a literal expression evaluates to: constants joined by `+`, `join`,
    `format`, `%`, f-strings, slices such as `[::-1]`, `str()`, and variables assigned
    once to such an expression. None for anything else, or beyond the folding budget.
    `memo` (by node) is shared by the folds of one file: each expression is folded once."""
    return _Folder(variables or {}, {} if memo is None else memo).fold(node, 0)


class _Folder:
    """One folding, bounded in steps and in the length of every intermediate string (a
    chain `a = b + b; b = c + c; ...` doubles at each step)."""

    def __init__(self, variables: dict[str, ast.expr], memo: dict[int, str | None]):
        self.variables = variables
        self.memo = memo
        self.steps = 0

    def fold(self, node: ast.AST, depth: int) -> str | None:
        if id(node) in self.memo:
            return self.memo[id(node)]
        self.steps += 1
        if depth > 32 or self.steps > _MAX_FOLD:
            return None  # not memoised: a fresh budget may fold it
        value = self._fold(node, depth + 1)
        if value is not None and len(value) > _MAX_FOLD:
            value = None
        self.memo[id(node)] = value
        return value

    def _fold(self, node: ast.AST, depth: int) -> str | None:
        if isinstance(node, ast.Name) and node.id in self.variables:
            return self.fold(self.variables[node.id], depth)
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, str) else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.fold(node.left, depth), self.fold(node.right, depth)
            return left + right if left is not None and right is not None else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            template = self.fold(node.left, depth)
            if template is None or _PERCENT_SPEC.search(template.replace("%%", "")):
                return None  # only plain %s: a width or precision can build gigabytes
            items = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
            args = [self.fold(item, depth) for item in items]
            if template is None or any(a is None for a in args):
                return None
            try:
                return template % tuple(args)
            except (TypeError, ValueError):
                return None
        if isinstance(node, ast.JoinedStr):
            return self._fstring(node, depth)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            return self._slice(node.value, node.slice, depth)
        if isinstance(node, ast.Call) and not node.keywords:
            return self._call(node, depth)
        return None

    def _fstring(self, node: ast.JoinedStr, depth: int) -> str | None:
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue) and (
                    value.format_spec or value.conversion not in (-1, 115)):
                return None
            inner = value.value if isinstance(value, ast.FormattedValue) else value
            text = self.fold(inner, depth)
            if text is None:
                return None
            parts.append(text)
        return "".join(parts)

    def _slice(self, value: ast.expr, bounds: ast.Slice, depth: int) -> str | None:
        numbers: list[int | None] = []
        for bound in (bounds.lower, bounds.upper, bounds.step):
            if bound is None:
                numbers.append(None)
            elif isinstance(bound, ast.Constant) and type(bound.value) is int:
                numbers.append(bound.value)
            elif (isinstance(bound, ast.UnaryOp) and isinstance(bound.op, ast.USub)
                  and isinstance(bound.operand, ast.Constant)
                  and type(bound.operand.value) is int):
                numbers.append(-bound.operand.value)
            else:
                return None
        text = self.fold(value, depth)
        if text is None or numbers[2] == 0:
            return None
        return text[numbers[0]:numbers[1]:numbers[2]]

    def _call(self, node: ast.Call, depth: int) -> str | None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "str" and len(node.args) == 1:
            return self.fold(node.args[0], depth)
        if not isinstance(func, ast.Attribute):
            return None
        base = self.fold(func.value, depth)
        if base is None:
            return None
        if func.attr == "join" and len(node.args) == 1 and isinstance(
                node.args[0], (ast.List, ast.Tuple)):
            pieces = [self.fold(item, depth) for item in node.args[0].elts]
            texts = [p for p in pieces if p is not None]
            return base.join(texts) if len(texts) == len(pieces) else None
        if func.attr == "format":
            if _BRACE_SPEC.search(base):
                return None  # only {}, {0}: a format spec can build gigabytes
            args = [self.fold(arg, depth) for arg in node.args]
            if any(a is None for a in args):
                return None
            try:
                return base.format(*args)
            except (IndexError, KeyError, ValueError):
                return None
        if func.attr in ("lower", "upper", "strip") and not node.args:
            return str(getattr(base, func.attr)())
        return None


class _Resolver:
    """Resolves expressions to `_Ref`s through imports and single assignments."""

    def __init__(self, tree: ast.Module):
        self.aliases: dict[str, str] = {}
        assigned: dict[str, list[ast.expr]] = {}
        self.calls: list[ast.Call] = []
        self.subscripts: list[ast.Subscript] = []
        self.truncated = False  # a reference chain longer than _MAX_HOPS was cut
        for node in ast.walk(tree):  # the file's only walk: calls and subscripts kept
            if isinstance(node, ast.Call):
                self.calls.append(node)
            elif isinstance(node, ast.Subscript):
                self.subscripts.append(node)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    self.aliases[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and node.value is not None:
                        assigned.setdefault(target.id, []).append(node.value)
        # A variable assigned once is a name for its value; reassigned ones are not.
        self.variables = {name: values[0] for name, values in assigned.items()
                          if len(values) == 1 and name not in self.aliases}
        self._folded: dict[int, str | None] = {}
        self._refs: dict[int, _Ref | None] = {}
        self._variable_refs: dict[str, _Ref | None] = {}

    def fold(self, node: ast.AST) -> str | None:
        return fold(node, self.variables, self._folded)

    def ref(self, node: ast.AST, hops: int = 0) -> _Ref | None:
        """What `node` refers to. Top-level answers are kept per node; inner ones are not
        (an answer cut short by the hop limit must not stand for the node's own)."""
        if hops:
            return self._ref(node, hops)
        key = id(node)
        if key not in self._refs:
            self._refs[key] = self._ref(node, 0)
        return self._refs[key]

    def _ref(self, node: ast.AST, hops: int) -> _Ref | None:
        if hops > _MAX_HOPS:
            self.truncated = True
            return None
        if isinstance(node, ast.Name):
            return self._name(node.id, hops)
        if isinstance(node, ast.Attribute):
            base = self.ref(node.value, hops + 1)
            if base is None:
                return None
            if node.attr == "__dict__":  # a module's or class's namespace as a mapping
                return _Ref(base.name, True)
            if base.name == "sys" and node.attr == "modules":
                return _Ref("sys.modules", base.indirect)
            return _Ref(f"{base.name}.{node.attr}", base.indirect)
        if isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Slice):
            base = self.ref(node.value, hops + 1)
            if base is None or not _namespace(base):
                return None
            key = self.fold(node.slice)
            return self._member(base, key, hops)
        if isinstance(node, ast.Call):
            return self._call(node, hops)
        return None

    def _member(self, base: _Ref, key: str | None, hops: int) -> _Ref | None:
        """`base[key]` or `getattr(base, key)`; key None when it could not be folded."""
        if base.name == _GLOBALS:  # the module's own names: what they are bound to
            named = self._name(key, hops + 1) if key is not None else _Ref(_COMPUTED)
            return _Ref(named.name, True) if named is not None else None
        if base.name == "sys.modules":
            return _Ref(_canonical(key) if key is not None else _COMPUTED, True)
        return base.member(key)

    def _name(self, name: str, hops: int) -> _Ref | None:
        if name == "__builtins__":
            return _Ref("builtins")
        if name in self.aliases:
            return _Ref(_canonical(self.aliases[name]))
        if name in self.variables:
            # flow-insensitive, so one answer per variable (None while it is being
            # resolved: a cycle of assignments refers to nothing)
            if name not in self._variable_refs:
                self._variable_refs[name] = None
                self._variable_refs[name] = self.ref(self.variables[name], hops + 1)
            return self._variable_refs[name]
        if name in _BUILTIN_NAMES:
            return _Ref(f"builtins.{name}")
        return _Ref(name)

    def _call(self, node: ast.Call, hops: int) -> _Ref | None:
        func = self.ref(node.func, hops + 1)
        if func is None:
            return None
        args = node.args
        if func.name == "builtins.getattr" and len(args) >= 2:
            base = self.ref(args[0], hops + 1)
            if base is None:
                return None
            return self._member(base, self.fold(args[1]), hops)
        if func.name in ("vars", "builtins.vars") and len(args) == 1:
            base = self.ref(args[0], hops + 1)
            return _Ref(base.name, True) if base is not None else None
        if func.name in ("globals", "locals", "builtins.globals", "builtins.locals") and (
                not args):
            return _Ref(_GLOBALS, True)
        if func.name in ("builtins.__import__", "importlib.import_module",
                         "importlib.__import__") and args:
            key = self.fold(args[0])
            if key is None:
                return None
            # __import__('a.b') returns package `a`; import_module returns `a.b`
            top = key.split(".")[0] if func.name != "importlib.import_module" else key
            return _Ref(_canonical(top), True)
        return None


def _canonical(name: str) -> str:
    head, dot, rest = name.partition(".")
    if head in _SAME_AS_OS:
        return _SAME_AS_OS[head] + dot + rest
    if head == "__builtin__":  # Python 2's name
        return "builtins" + dot + rest
    return name


def _namespace(ref: _Ref) -> bool:
    """A mapping from names to objects that code can be fetched from."""
    return (ref.name in _DANGEROUS or ref.name in (_GLOBALS, "sys.modules")
            or (ref.indirect and ref.name.split(".")[0] == _COMPUTED))


def _matches(name: str, table: frozenset[str]) -> bool:
    head = name.split(".")
    return any(".".join(head[:i]) in table for i in range(1, len(head) + 1))


def _decoded(raw: bytes) -> str:
    """The text Python runs: decoded with the file's own coding cookie or BOM (PEP 263), as
    the interpreter does. `# coding: utf-7` turns `+ACIAIgAi-` into three double quotes:
    read as UTF-8 the same bytes hide the code (or look like no Python at all). A cookie
    naming no codec makes the interpreter refuse the file; the UTF-8 reading is analysed."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        return raw.decode(encoding, "replace")
    except (SyntaxError, LookupError, UnicodeError, ValueError):
        return raw.decode("utf-8", "replace")


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    text = _decoded(source.read_at(0, _MAX_BYTES))
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        yield _unparsable(text, exc, ctx)
        return
    lines = text.splitlines()
    resolver = _Resolver(tree)
    seen: set[tuple[str, str]] = set()
    called: set[int] = set()
    try:
        found = list(_calls(resolver, called)) + list(_accesses(resolver, called))
    except RecursionError:
        resolver.truncated = True
        found = []
    if resolver.truncated:
        reason = f"Python references chain through more than {_MAX_HOPS} names or nest too deeply"
        yield UNPARSABLE.finding(f"{reason} to analyse", member=ctx.member)
        ctx.note_incomplete(f"{reason} to analyse")
    for rule, severity, what, node in sorted(found, key=lambda f: f[3].lineno):
        if (rule.rule_id, what) in seen:
            continue
        seen.add((rule.rule_id, what))
        # the source line, not ast.get_source_segment: that re-splits the whole file per call
        snippet = lines[node.lineno - 1].strip() if 0 < node.lineno <= len(lines) else what
        yield rule.finding(f"{what} (line {node.lineno})", severity=severity,
                           member=ctx.member, evidence=snippet[:300])


_Hit = tuple[Rule, Severity | None, str, ast.expr]


def _calls(resolver: _Resolver, called: set[int]) -> Iterator[_Hit]:
    for node in resolver.calls:
        called.add(id(node.func))
        ref = resolver.ref(node.func)
        if ref is None:
            continue
        name = ref.name
        how = "reached indirectly: " if ref.indirect else ""
        if _COMPUTED in name.split("."):
            base = name.split(f".{_COMPUTED}")[0]
            if base in _CORE:
                yield (COMPUTED, Severity.ERROR,
                       f"calls a member of `{base}` chosen by a computed name", node)
            continue
        if _matches(name, PROCESS_NAMES):
            literal = bool(node.args) and all(_literal(a, resolver) for a in node.args)
            severity = None if literal or ref.indirect else Severity.WARNING
            yield PROCESS, severity, f"calls `{name}`{_how(how)}", node
        elif _matches(name, _NETWORK):
            module = (resolver.fold(node.args[0]) if node.args and name in _IMPORTERS
                      else None)
            # the module only when it is one of the dangerous ones ('o'+'s'): one finding
            # per importer otherwise, whatever it imports
            dangerous = module is not None and module.split(".")[0] in _DANGEROUS
            what = f"calls `{name}`" + (f" for `{module}`" if dangerous else "")
            yield NETWORK, None, f"{what}{_how(how)}", node
        elif _matches(name, _FILES):
            yield FILES, None, f"calls `{name}`{_how(how)}", node


def _literal(node: ast.expr, resolver: _Resolver) -> bool:
    """An argument fixed in the file: a constant, a folded string, a container of such,
    or a module constant (`os.P_WAIT`, `subprocess.PIPE`)."""
    if isinstance(node, ast.Constant) or resolver.fold(node) is not None:
        return True
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_literal(item, resolver) for item in node.elts)
    if isinstance(node, ast.Dict):
        return all(item is not None and _literal(item, resolver)
                   for item in (*node.keys, *node.values))
    return isinstance(node, ast.Attribute) and node.attr.isupper()


def _how(how: str) -> str:
    return f" ({how.rstrip(': ')})" if how else ""


def _accesses(resolver: _Resolver, called: set[int]) -> Iterator[_Hit]:
    """Members of dangerous namespaces fetched by a name that cannot be folded."""
    node: ast.expr
    for node in (*resolver.subscripts, *resolver.calls):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            base = resolver.ref(node.value)
            key = node.slice
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and len(node.args) >= 2 and resolver.ref(node.func) == _Ref("builtins.getattr")):
            base = resolver.ref(node.args[0])
            key = node.args[1]
        else:
            continue
        if base is None or isinstance(key, ast.Slice) or resolver.fold(key) is not None:
            continue
        # sys.modules[name] only holds what is imported already: library code looks its own
        # modules up that way; sys.modules['os'] is resolved like any other reference.
        if base.name in _DANGEROUS or (
                base.indirect and base.name.split(".")[0] == _COMPUTED):
            if id(node) in called and base.name in _CORE:
                continue  # the call is reported by _calls, at ERROR
            what = (base.name if base.name.split(".")[0] != _COMPUTED
                    else "a global or module chosen by a computed name")
            yield (COMPUTED, None, f"fetches a member of `{what}` by a computed name", node)
