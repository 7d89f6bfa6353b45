"""Which items a run scans: shards, include/exclude globs, and resuming a previous output.

Each is a predicate on `Item`s applied before anything is read, so a skipped file costs one
stat from the walk and nothing else.

- `--shard K/N`: an item belongs to shard `int(sha1(path)[:8], 16) % N`; the hash is of the
  path, not an enumeration index, so it stays stable while the tree changes, and the N shard
  outputs concatenate into exactly one record per file. `--shard auto/N` takes K from
  `JOB_COMPLETION_INDEX` (Kubernetes Indexed Jobs) or `SLURM_ARRAY_TASK_ID`.
- `--include` / `--exclude`: shell globs matched against the path, the path relative to its
  directory target, and the file name; an excluded directory is not walked.
- `.batchscanignore`: gitignore syntax at the top of a directory target (`Ignored`).
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
from typing import Any

import orjson

from batchscan.schema import path_from_dict
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
                done[path_from_dict(record)] = (record["size"],
                                                _timestamp(record["scanned_at"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # base64 errors are ValueErrors too
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


def _root_prefix(target: str) -> str:
    """How the walk spells paths under a directory target: `os.scandir(target)` joins entry
    names to the target exactly as given (`./models/` -> `./models/a.pkl`)."""
    return target if target.endswith("/") else target + "/"


def _directory_roots(targets: list[str]) -> list[str]:
    return [_root_prefix(t) for t in targets
            if not t.startswith(("@", "hf://")) and Path(t).is_dir()]


def _relative(display: str, roots: list[str]) -> str | None:
    for prefix in roots:
        if display.startswith(prefix):
            return display[len(prefix):]
    return None


def globs(include: list[str], exclude: list[str], targets: list[str] | None = None,
          ) -> Predicate:
    """Shell globs against the path as recorded, the path relative to its directory target
    (`--include 'org-b/*'` for `models/org-b/x.pkl`) and the file name."""
    roots = _directory_roots(targets or [])

    def matches(item: Item, patterns: list[str]) -> bool:
        name = item.display.rsplit("/", 1)[-1]
        relative = _relative(item.display, roots)
        return any(fnmatch.fnmatch(item.display, p) or fnmatch.fnmatch(name, p)
                   or (relative is not None and fnmatch.fnmatch(relative, p))
                   for p in patterns)

    def keep(item: Item) -> bool:
        if include and not matches(item, include):
            return False
        return not (exclude and matches(item, exclude))

    return keep


def _ignore_spec(root: str) -> Any:
    """The compiled `pathspec.GitIgnoreSpec` of `root`'s ignore file, None without one
    (pathspec is imported only then: it costs start-up time every other run)."""
    try:
        text = Path(root, IGNORE_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    import pathspec

    spec = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
    return spec if len(spec) else None


class Ignored:
    """`.batchscanignore` at the top of each directory target, in gitignore syntax (read by
    `pathspec`, which implements git's rules: `#` comments, `!` negation, a trailing `/` for
    directories, a `/` at the start or in the middle anchors to the root, `**/` spans any
    number of directories, the last matching line wins). As in git, a file under an ignored
    directory cannot be re-included, so ignored directories are not walked at all
    (`prunes`); `--exclude` globs that match a directory prune it too."""

    def __init__(self, targets: list[str], exclude: list[str] | None = None):
        self.roots = [(prefix, spec) for prefix in _directory_roots(targets)
                      if (spec := _ignore_spec(prefix)) is not None]
        self.exclude = list(exclude or [])
        self.exclude_roots = _directory_roots(targets)

    def keep(self, item: Item) -> bool:
        return not any(item.display.startswith(prefix)
                       and spec.match_file(item.display[len(prefix):])
                       for prefix, spec in self.roots)

    def prunes(self, directory: str) -> bool:
        """True when nothing under `directory` (a path as the walk spells it) can be kept."""
        for prefix, spec in self.roots:
            if directory.startswith(prefix) and spec.match_file(
                    directory[len(prefix):] + "/"):
                return True
        if self.exclude:
            name = directory.rsplit("/", 1)[-1]
            relative = _relative(directory, self.exclude_roots)
            return any(fnmatch.fnmatch(directory, p) or fnmatch.fnmatch(name, p)
                       or (relative is not None and fnmatch.fnmatch(relative, p))
                       for p in self.exclude)
        return False


def ignored_by_files(targets: list[str]) -> Predicate:
    return Ignored(targets).keep


def combine(predicates: list[Predicate]) -> Predicate | None:
    if not predicates:
        return None
    return lambda item: all(p(item) for p in predicates)
