"""Python files shipped with models (`modeling_*.py`, `tokenization_*.py`, handlers, hubconf).

Layout. Python source. It is parsed with `ast.parse` (never compiled to bytecode or run).

Attack surface. With `trust_remote_code=True` transformers imports the repo's `.py` files
named by `auto_map`; `torch.hub.load` runs `hubconf.py`; TorchServe runs handlers.
ModelAudit does not scan `.py` files at all.

What is checked: calls that start processes or evaluate code (ERROR when the arguments are
literals, WARNING otherwise), network access and dynamic imports (WARNING), writes to files
and deserialisation of other files (INFO), both as direct calls and through `getattr`.
Remote code that only builds a model produces no finding.

Rules
| id     | name              | severity | CWE     |
|--------|-------------------|----------|---------|
| PYS001 | process-or-eval   | error    | CWE-94  |
| PYS002 | network-or-import | warning  | CWE-829 |
| PYS003 | file-or-loader    | info     | CWE-73  |
| PYS004 | unparsable        | warning  | CWE-20  |
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding, Severity
from batchscan.rules import Rule
from batchscan.workers.base import ScanContext, Source

FORMAT = "python"

PROCESS = rules.PYS001
NETWORK = rules.PYS002
FILES = rules.PYS003
UNPARSABLE = rules.PYS004
RULES: tuple[Rule, ...] = (PROCESS, NETWORK, FILES, UNPARSABLE)

_MAX_BYTES = 4 * 1024 * 1024
_PROCESS = {"os.system", "os.popen", "os.exec", "os.spawn", "subprocess", "pty.spawn",
            "eval", "exec", "compile", "builtins.eval", "builtins.exec", "os.execv",
            "os.execve", "os.execl", "os.execvp", "commands.getoutput", "runpy.run_path",
            "runpy.run_module", "ctypes.CDLL", "ctypes.cdll", "marshal.loads"}
_NETWORK = {"socket", "urllib.request", "urllib.urlopen", "requests", "httpx", "http.client",
            "ftplib", "smtplib", "importlib.import_module", "__import__", "pip", "webbrowser"}
_FILES = {"pickle.load", "pickle.loads", "torch.load", "joblib.load", "dill.load",
          "shutil.rmtree", "os.remove", "os.unlink", "shutil.move", "os.chmod"}


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


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _matches(name: str, table: set[str]) -> bool:
    return any(name == entry or name.startswith(entry + ".") or name.startswith(entry + "_")
               for entry in table)


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    text = source.read_at(0, _MAX_BYTES).decode("utf-8", "replace")
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        yield _unparsable(text, exc, ctx)
        return
    lines = text.splitlines()
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    seen: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        full = aliases.get(head, head) + (f".{rest}" if rest else "")
        if full == "getattr" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            target = _dotted(node.args[0])
            if target is not None:
                full = f"{aliases.get(target, target)}.{node.args[1].value!s}"
        literal = all(isinstance(a, ast.Constant) for a in node.args) and bool(node.args)
        where = f"line {node.lineno}"
        if _matches(full, _PROCESS):
            rule, severity = PROCESS, None if literal else Severity.WARNING
        elif _matches(full, _NETWORK):
            rule, severity = NETWORK, None
        elif _matches(full, _FILES):
            rule, severity = FILES, None
        else:
            continue
        if (rule.rule_id, full) in seen:
            continue
        seen.add((rule.rule_id, full))
        # the source line, not ast.get_source_segment: that re-splits the whole file per call
        snippet = lines[node.lineno - 1].strip() if 0 < node.lineno <= len(lines) else full
        yield rule.finding(f"calls `{full}` ({where})", severity=severity, member=ctx.member,
                           evidence=snippet[:300])
