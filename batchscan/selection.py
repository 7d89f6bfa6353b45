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
  same size and the file has not changed (ctime) since that record was written.
  `--retry-failed` also scans again the files whose records say they could not be fully
  scanned (`error`, `timeout`, `oom`, `crashed`, `too_large`), replacing those records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


# Statuses `--retry-failed` scans again: the file could not be fully scanned last time.
RETRIED = frozenset({"error", "timeout", "oom", "crashed", "too_large"})


@dataclass(slots=True)
class Checkpoint:
    """What an existing JSONL output already holds, one entry per path (the last line of a
    path wins, should an older version have appended it twice)."""

    done: dict[str, tuple[int | None, float]] = field(default_factory=dict)
    records: list[bytes] = field(default_factory=list)  # the kept lines, for the summary
    dropped: int = 0  # records of failed files dropped for --retry-failed


def load_checkpoint(output: Path, retry_failed: bool = False) -> Checkpoint:
    """Records already in `output`; cuts a torn last line. With `retry_failed`, records of
    files that could not be fully scanned are removed from the file (rewritten through a
    temporary file and a rename, so a kill leaves the old or the new file, never half) and
    their files are scanned again. The caller holds the output's lock."""
    checkpoint = Checkpoint()
    if not output.exists():
        return checkpoint
    with output.open("r+b") as handle:
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            handle.truncate(end)  # the run was killed mid-line: drop the partial record
    last: dict[str, tuple[int | None, float, int, bool]] = {}
    lines = data[:end].splitlines()
    for index, line in enumerate(lines):
        try:
            record = orjson.loads(line)
            path = path_from_dict(record)  # path_bytes restores a name that is not UTF-8
            identity = (record["size"], _timestamp(record["scanned_at"]))
            failed = retry_failed and record["status"] in RETRIED
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            continue  # base64 errors are ValueErrors too
        last[path] = (*identity, index, failed)
    kept_index = {index for *_, index, failed in last.values() if not failed}
    checkpoint.done = {path: (size, stamp) for path, (size, stamp, _, failed) in last.items()
                       if not failed}
    checkpoint.records = [line for index, line in enumerate(lines) if index in kept_index]
    checkpoint.dropped = sum(1 for *_, failed in last.values() if failed)
    if checkpoint.dropped:
        temporary = output.with_name(f".{output.name}.retry-failed.tmp")
        with temporary.open("wb") as handle:
            handle.writelines(line + b"\n" for line in checkpoint.records)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(output)
    return checkpoint


def unchanged(item: Item, size: int | None, scanned_at: float) -> bool:
    """True when `item` is the file a record made at `scanned_at` describes.

    The change time (ctime) is compared, not the modification time: anyone can set a file's
    mtime to the future (`touch -d 2030`), which made the file "modified after its record"
    on every resume and appended it again each time; the kernel sets ctime to the current
    time on every change, mtime changes included. A ctime later than now (a file server
    whose clock runs ahead) cannot be compared: the record is kept rather than repeated."""
    if item.remote is not None:  # a hub path names a commit: its content never changes
        return size == item.size
    ctime = item.ctime
    if ctime is None:
        try:
            ctime = Path(item.path).stat().st_ctime
        except OSError:
            return False
    if size != item.size:
        return False
    return ctime <= scanned_at or ctime > time.time()


def not_done(done: dict[str, tuple[int | None, float]]) -> Callable[[Item], Item | None]:
    """`--resume`: the part of `item` still to record, or None.

    An item with several names (an HF-cache blob and its snapshot aliases) keeps the names
    not yet recorded: a run stopped halfway through a blob's alias records resumes with the
    missing names only. A changed file is scanned again under all its names."""

    def remaining(item: Item) -> Item | None:
        names = (item.display, *item.aliases)
        recorded = [done.get(name) for name in names]
        if all(r is None for r in recorded):
            return item
        if item.decided is None and any(
                r is not None and not unchanged(item, *r) for r in recorded):
            return item
        missing = [name for name, r in zip(names, recorded, strict=True) if r is None]
        if not missing:
            return None
        return dataclasses.replace(item, display=missing[0], aliases=tuple(missing[1:]))

    return remaining


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
