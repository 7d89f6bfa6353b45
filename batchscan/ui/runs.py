"""The runs folder: one `ID.jsonl` per run (the CLI's `-f jsonl` output) and `ID.meta.json`.

Every name that comes from a request goes through `RunsFolder.jsonl()`: a run id is a plain
file stem (letters, digits, `.`, `_`, `-`, no leading dot), and the resolved file must sit
directly in the runs folder, so `../`, absolute names and links out of the folder are refused.
JSONL files that the CLI or a shard job wrote into the folder are runs too; their metadata is
whatever the file itself tells (modification time), marked `origin: cli`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# Files in the folder that are not runs: metadata, live progress, summaries.
_NOT_RUNS = (".meta.json", ".progress.json", ".summary.json")


class UnknownRun(LookupError):
    """A run id that is malformed, escapes the runs folder, or names no run."""


@dataclass(slots=True)
class RunMeta:
    """What the UI knows about a run besides its records."""

    run_id: str
    targets: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)  # the CLI options, as argv
    state: str = "finished"  # queued, running, finished, interrupted, cancelled, failed
    origin: str = "cli"  # ui: started here; cli: a JSONL file found in the folder
    created: str | None = None
    started: str | None = None
    ended: str | None = None
    exit_code: int | None = None
    resumes: int = 0
    summary: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    @property
    def complete(self) -> bool:
        """Finished without interruption and nothing left unscanned (summary permitting)."""
        if self.state != "finished":
            return False
        if self.summary is None:
            return True
        return not self.summary.get("incomplete_files") and not self.summary.get("interrupted")


def now_rfc3339() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


class RunsFolder:
    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.cache_dir = self.root / ".cache"
        self.cache_dir.mkdir(exist_ok=True)
        self.triage_dir = self.root / "triage"
        self.triage_dir.mkdir(exist_ok=True)

    def _confined(self, run_id: str, suffix: str) -> Path:
        if not RUN_ID.fullmatch(run_id) or run_id.endswith(_NOT_RUNS):
            raise UnknownRun(run_id)
        path = self.root / f"{run_id}{suffix}"
        if path.resolve().parent != self.root:  # a link that leaves the folder
            raise UnknownRun(run_id)
        return path

    def jsonl(self, run_id: str, must_exist: bool = True) -> Path:
        path = self._confined(run_id, ".jsonl")
        if must_exist and not path.is_file():
            raise UnknownRun(run_id)
        return path

    def meta_path(self, run_id: str) -> Path:
        return self._confined(run_id, ".meta.json")

    def progress_path(self, run_id: str) -> Path:
        return self._confined(run_id, ".progress.json")

    def summary_path(self, run_id: str) -> Path:
        return self._confined(run_id, ".summary.json")

    def run_ids(self) -> list[str]:
        """Every run in the folder, newest first (by modification time)."""
        found: list[tuple[float, str]] = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(".jsonl"):
                    run_id = name[: -len(".jsonl")]
                elif name.endswith(".meta.json"):  # queued: no records yet
                    run_id = name[: -len(".meta.json")]
                else:
                    continue
                if RUN_ID.fullmatch(run_id) and entry.is_file(follow_symlinks=False):
                    found.append((entry.stat().st_mtime, run_id))
        newest: dict[str, float] = {}
        for mtime, run_id in found:
            newest[run_id] = max(mtime, newest.get(run_id, 0.0))
        return sorted(newest, key=lambda r: (newest[r], r), reverse=True)

    def meta(self, run_id: str) -> RunMeta:
        path = self.meta_path(run_id)
        if path.is_file():
            data = orjson.loads(path.read_bytes())
            known = {k: v for k, v in data.items() if k in RunMeta.__slots__}
            meta = RunMeta(**known)
        else:
            records = self.jsonl(run_id)
            stat = records.stat()
            stamp = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
            meta = RunMeta(run_id=run_id, ended=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"))
        if meta.summary is None:
            meta.summary = self.read_summary(run_id)
        return meta

    def read_summary(self, run_id: str) -> dict[str, Any] | None:
        """The run's `--summary` document, None while the run has not written it: the CLI
        opens the file before the scan (a bad path costs no scan) and fills it at the end."""
        try:
            data = orjson.loads(self.summary_path(run_id).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def save_meta(self, meta: RunMeta) -> None:
        path = self.meta_path(meta.run_id)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(meta.as_dict(), option=orjson.OPT_INDENT_2))
        tmp.replace(path)

    def progress(self, run_id: str) -> dict[str, Any] | None:
        path = self.progress_path(run_id)
        try:
            data: dict[str, Any] = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return data
