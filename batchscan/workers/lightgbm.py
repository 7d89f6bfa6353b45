"""LightGBM text model files (`Booster.save_model`, `model.txt`).

Layout. Text lines: `tree`, then `key=value` header lines (`version=v4`, `num_class`,
`max_feature_idx`, `objective`, `feature_names`, `feature_infos`, `tree_sizes`), one
`Tree=<i>` block per tree (`num_leaves`, `split_feature`, `left_child`, `right_child`,
`threshold`, `leaf_value`...; a negative child `~k` is leaf k), `end of trees`,
`feature_importances:`, then `parameters:` with one `[name: value]` per line up to `end of
parameters`, and finally `pandas_categorical:<JSON>` (read by the Python package with
`json.loads`).

Attack surface. No code is stored: the objective is looked up by name in the native
registry. The saved parameters are handed back to the user (`Booster.params`) and reused by
`refit`, continued training and the CLI, where file parameters (`data`, `valid`,
`output_model`, `output_result`, `input_model`, `forcedsplits_filename`,
`forcedbins_filename`, `machine_list_filename`, `parser_config_file`...) make LightGBM read or
write those paths. Tree indices (children, split features) are used by native prediction
code. `pandas_categorical` is JSON decoded by the Python package (category values become
DataFrame categories; strings are checked like config strings).

What is checked. The file is read line by line with bounds (<= 1 GiB, lines <= 64 MiB,
the declared tree count); header, tree blocks and the end markers must be present and
consistent (else `error`); every tree's children and split features are bounded (LGB002);
file parameters (LGB001: warning for absolute or escaping paths and output files, info for a
plain relative input file name); pandas_categorical must be JSON and goes through the config
checks.

Rules
| id     | name           | severity | CWE     |
|--------|----------------|----------|---------|
| LGB001 | file-parameter | warning  | CWE-73  |
| LGB002 | tree-bounds    | warning  | CWE-129 |
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding, Severity
from batchscan.rules import Rule
from batchscan.workers.base import FormatError, LimitExceeded, ScanContext, Source, unsafe_path
from batchscan.workers.configs import CONFIG_RULES, walk_config

FORMAT = "lightgbm"

FILE_PARAMETER = rules.LGB001
TREE_BOUNDS = rules.LGB002
RULES: tuple[Rule, ...] = (FILE_PARAMETER, TREE_BOUNDS, *CONFIG_RULES)

MAX_BYTES = 1024**3
MAX_LINE = 64 * 1024 * 1024
MAX_TREE_FINDINGS = 20
MAX_LEAVES = 131072  # LightGBM's num_leaves upper bound

# LightGBM's file-valued parameters (docs: Parameters, "IO Parameters" and friends).
INPUT_FILES = frozenset({
    "data", "valid", "input_model", "forcedsplits_filename", "forcedbins_filename",
    "machine_list_filename", "parser_config_file", "initscore_filename",
    "valid_data_initscores", "interaction_constraints_file",
})
OUTPUT_FILES = frozenset({"output_model", "output_result", "convert_model", "snapshot_file"})

_PARAM = re.compile(r"\A\[([A-Za-z0-9_]+): ?(.*)\]\Z")


def sniff(head: bytes, name: str) -> bool:
    return head.startswith((b"tree\nversion=", b"tree\r\nversion="))


class _Lines:
    def __init__(self, source: Source):
        self.source = source
        self.pos = 0
        self.buf = b""
        self.buf_at = 0
        self.number = 0

    def next(self) -> str | None:
        """The next line without its end, or None at the end of the file."""
        while True:
            rel = self.pos - self.buf_at
            end = self.buf.find(b"\n", rel)
            if end >= 0:
                line = self.buf[rel:end]
                self.pos = self.buf_at + end + 1
                break
            if self.buf_at + len(self.buf) >= self.source.size:
                if rel >= len(self.buf):
                    return None
                line = self.buf[rel:]
                self.pos = self.source.size
                break
            if len(self.buf) - rel > MAX_LINE:
                raise FormatError(f"line {self.number + 1} is longer than {MAX_LINE} bytes")
            self.buf = self.buf[rel:] + self.source.read_at(
                self.buf_at + len(self.buf), 8 * 1024 * 1024)
            self.buf_at = self.pos
        self.number += 1
        return line.rstrip(b"\r").decode("utf-8", "replace")


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split()] if text else []
    except ValueError:
        raise FormatError(f"{what} is not a list of integers") from None


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    if source.size > MAX_BYTES:
        raise LimitExceeded("LightGBM model bytes", MAX_BYTES, source.size, ctx.member)
    lines = _Lines(source)
    if lines.next() != "tree":
        raise FormatError("does not start with the line 'tree'")
    header: dict[str, str] = {}
    line = lines.next()
    while line is not None and not line.startswith("Tree="):
        if line == "end of trees":
            break
        key, sep, value = line.partition("=")
        if sep:
            header[key] = value
        line = lines.next()
    if not header.get("version", "").startswith("v"):
        raise FormatError("header has no version=v<N> line")
    max_feature = _ints(header.get("max_feature_idx", ""), "max_feature_idx")
    features = max_feature[0] + 1 if max_feature else 0
    declared = len(header.get("tree_sizes", "").split())
    trees = 0
    problems = 0
    while line is not None and line.startswith("Tree="):
        trees += 1
        block: dict[str, str] = {}
        line = lines.next()
        while line is not None and not line.startswith("Tree=") and line != "end of trees":
            key, sep, value = line.partition("=")
            if sep:
                block[key] = value
            line = lines.next()
        for problem in _tree_problems(block, features):
            problems += 1
            if problems <= MAX_TREE_FINDINGS:
                yield TREE_BOUNDS.finding(f"tree {trees - 1}: {problem}", member=ctx.member)
    if line != "end of trees":
        raise FormatError(f"truncated: no 'end of trees' after {trees} trees")
    if declared and declared != trees:
        raise FormatError(f"tree_sizes lists {declared} trees, the file has {trees}")
    line = lines.next()
    while line is not None and line != "parameters:" and not line.startswith(
            "pandas_categorical:"):
        line = lines.next()
    if line == "parameters:":
        line = lines.next()
        while line is not None and line != "end of parameters":
            match = _PARAM.match(line)
            if match is not None:
                yield from _parameter(match.group(1), match.group(2).strip(), ctx)
            line = lines.next()
        if line is None:
            raise FormatError("truncated: no 'end of parameters'")
        line = lines.next()
        while line is not None and not line.startswith("pandas_categorical:"):
            line = lines.next()
    if line is not None:
        try:
            categories = json.loads(line.partition(":")[2])
        except (json.JSONDecodeError, RecursionError):
            raise FormatError("pandas_categorical is not valid JSON") from None
        yield from walk_config(categories, ctx, "pandas_categorical")


def _parameter(name: str, value: str, ctx: ScanContext) -> Iterator[Finding]:
    if not value or (name not in INPUT_FILES and name not in OUTPUT_FILES):
        return
    for path in value.split(","):
        path = path.strip()
        if not path:
            continue
        escape = unsafe_path(path) or ("URL" if "://" in path else None)
        if name in OUTPUT_FILES:
            yield FILE_PARAMETER.finding(f"parameter {name} writes {path!r} when reused",
                                         member=ctx.member, evidence=f"{name}: {path}"[:200])
        elif escape is not None:
            yield FILE_PARAMETER.finding(f"parameter {name} reads {path!r} ({escape})",
                                         member=ctx.member, evidence=f"{name}: {path}"[:200])
        else:
            yield FILE_PARAMETER.finding(f"parameter {name} names the file {path!r}",
                                         severity=Severity.INFO, member=ctx.member,
                                         evidence=f"{name}: {path}"[:200])


def _tree_problems(block: dict[str, str], features: int) -> Iterator[str]:
    leaves = _ints(block.get("num_leaves", ""), "num_leaves")
    if len(leaves) != 1 or leaves[0] < 1:
        raise FormatError("tree without a num_leaves count")
    count = leaves[0]
    if count > MAX_LEAVES:
        raise FormatError(f"tree with {count} leaves (LightGBM allows {MAX_LEAVES})")
    if count == 1:
        return
    for key in ("left_child", "right_child", "split_feature"):
        # count the entries before converting them: a 64 MiB line is not a 16 M-int list
        if block.get(key, "").count(" ") + 1 != count - 1:
            yield f"{count} leaves but {key} has another number of entries"
            return
    left = _ints(block.get("left_child", ""), "left_child")
    right = _ints(block.get("right_child", ""), "right_child")
    split = _ints(block.get("split_feature", ""), "split_feature")
    inner = count - 1
    if not len(left) == len(right) == len(split) == inner:
        yield f"{count} leaves but {len(left)}/{len(right)}/{len(split)} child/split entries"
        return
    for node in range(inner):
        for child in (left[node], right[node]):
            if child >= 0 and not node < child < inner:
                yield f"node {node} has child {child} outside {node + 1}..{inner - 1}"
                return
            if child < 0 and ~child >= count:
                yield f"node {node} has leaf {~child} of {count}"
                return
        if features and not 0 <= split[node] < features:
            yield f"node {node} splits on feature {split[node]} of {features}"
            return
