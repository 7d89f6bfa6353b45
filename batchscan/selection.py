"""Which items a run scans: shards, include/exclude globs, and resuming a previous output.

Each is a predicate on `Item`s applied before anything is read, so a skipped file costs one
stat from the walk and nothing else.

- `--shard K/N`: an item belongs to shard `int(sha1(path)[:8], 16) % N`; the hash is of the
  path, not an enumeration index, so it stays stable while the tree changes, and the N shard
  outputs concatenate into exactly one record per file. `--shard auto/N` takes K from
  `JOB_COMPLETION_INDEX` (Kubernetes Indexed Jobs) or `SLURM_ARRAY_TASK_ID`.
- `--include` / `--exclude`: shell globs matched against the path and the file name.
- `--resume`: the existing JSONL output is its own checkpoint. A torn last line (a run
  killed mid-write) is cut off; a file is skipped when a record for its path exists with the
  same size and the file has not been modified since that record was written.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import orjson

from batchscan.sources import Item

Predicate = Callable[[Item], bool]


def parse_shard(text: str, environ: dict[str, str] | None = None) -> tuple[int, int]:
    env = os.environ if environ is None else environ
    index, _, total = text.partition("/")
    if not total.isdigit() or int(total) < 1:
        raise ValueError(f"--shard wants K/N with N >= 1, got {text!r}")
    if index == "auto":
        index = env.get("JOB_COMPLETION_INDEX") or env.get("SLURM_ARRAY_TASK_ID") or ""
        if not index.isdigit():
            raise ValueError("--shard auto/N needs JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID")
    if not index.isdigit() or int(index) >= int(total):
        raise ValueError(f"--shard index must be in 0..{int(total) - 1}, got {index!r}")
    return int(index), int(total)


def shard_of(path: str, total: int) -> int:
    return int(hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16) % total


def in_shard(index: int, total: int) -> Predicate:
    return lambda item: shard_of(item.display, total) == index


def globs(include: list[str], exclude: list[str]) -> Predicate:
    def matches(item: Item, patterns: list[str]) -> bool:
        name = item.display.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatch(item.display, p) or fnmatch.fnmatch(name, p)
                   for p in patterns)

    def keep(item: Item) -> bool:
        if include and not matches(item, include):
            return False
        return not (exclude and matches(item, exclude))

    return keep


def _timestamp(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def load_checkpoint(output: Path) -> dict[str, tuple[int | None, float]]:
    """Records already in `output` (path -> (size, scanned_at)); cuts a torn last line."""
    if not output.exists():
        return {}
    done: dict[str, tuple[int | None, float]] = {}
    with output.open("r+b") as handle:
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            handle.truncate(end)  # the run was killed mid-line: drop the partial record
        for line in data[:end].splitlines():
            try:
                record = orjson.loads(line)
                done[record["path"]] = (record["size"], _timestamp(record["scanned_at"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return done


def not_done(done: dict[str, tuple[int | None, float]]) -> Predicate:
    def keep(item: Item) -> bool:
        previous = done.get(item.display)
        if previous is None:
            return True
        size, scanned_at = previous
        if item.decided is not None:
            return False
        if item.remote is not None:  # a hub path names a commit: its content never changes
            return size != item.size
        try:
            mtime = Path(item.path).stat().st_mtime
        except OSError:
            return True
        return not (size == item.size and mtime <= scanned_at)

    return keep


IGNORE_FILE = ".batchscanignore"


def _ignore_rules(root: Path) -> list[tuple[bool, bool, bool, str]]:
    """(negated, directory-only, anchored, glob) for each line of a gitignore-style file."""
    rules: list[tuple[bool, bool, bool, str]] = []
    try:
        text = (root / IGNORE_FILE).read_text(encoding="utf-8")
    except OSError:
        return rules
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line.removeprefix("!")
        directory_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        rules.append((negated, directory_only, anchored, line.lstrip("/")))
    return rules


def _ignored(relative: str, rules: list[tuple[bool, bool, bool, str]]) -> bool:
    parts = relative.split("/")
    directories = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
    verdict = False  # the last matching line wins, as in git
    for negated, directory_only, anchored, glob in rules:
        if anchored:
            candidates = directories if directory_only else [*directories, relative]
            pattern = glob.replace("**/", "*")
        else:
            candidates = parts[:-1] if directory_only else parts
            pattern = glob
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            verdict = not negated
    return verdict


def ignored_by_files(targets: list[str]) -> Predicate:
    """`.batchscanignore` at the top of each directory target, gitignore syntax: `#`
    comments, `!` negation, a trailing `/` for directories, a `/` inside anchors the
    pattern to the root, `**/` spans directories; the last matching line wins."""
    roots = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            rules = _ignore_rules(path)
            if rules:
                roots.append((str(path).rstrip("/") + "/", rules))

    def keep(item: Item) -> bool:
        return not any(item.display.startswith(prefix)
                       and _ignored(item.display[len(prefix):], rules)
                       for prefix, rules in roots)

    return keep


def load_baseline(path: Path) -> set[tuple[str, str, str | None, str | None]]:
    """Finding identities of an earlier run: (rule_id, path, sha256, member)."""
    known: set[tuple[str, str, str | None, str | None]] = set()
    with path.open("rb") as handle:
        for line in handle:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            for finding in record.get("findings") or []:
                if _triage_expired(finding.get("triage")):
                    continue  # a UI triage decision past its expiry: report the finding again
                known.add((finding["rule_id"], record["path"], record.get("sha256"),
                           finding.get("member")))
    return known


def _triage_expired(triage: object) -> bool:
    """`batchscan ui` adds `triage: {state, reason, expires}` to baseline findings; an
    `expires` date (YYYY-MM-DD, inclusive) in the past, or unreadable, ends the suppression."""
    if not isinstance(triage, dict) or not triage.get("expires"):
        return False
    try:
        until = dt.date.fromisoformat(str(triage["expires"])[:10])
    except ValueError:
        return True
    return dt.datetime.now(dt.UTC).date() > until


def combine(predicates: list[Predicate]) -> Predicate | None:
    if not predicates:
        return None
    return lambda item: all(p(item) for p in predicates)
