"""Hugging Face Hub targets: `hf://ORG/NAME[@REV]`, `hf://datasets/ORG/NAME`, `hf://ORG`.

The maintained client (`huggingface_hub`) lists each repository's files with their sizes
first, so `--max-file-size`, globs, shards and `--resume` apply before anything is
downloaded. Files are then fetched one at a time by the coordinator (never by the sandboxed
workers, which have no network) into a scratch directory, scanned and deleted; records are
named `hf://ORG/NAME@COMMIT/FILE` with `source` = `hf`. The endpoint comes from
`HF_ENDPOINT` (mirrors, private hubs) and the token from `HF_TOKEN`. A missing or gated
repository gives one `error` record for the target; a file that cannot be downloaded after
bounded retries gives that file an `error` record and the run goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchscan.records import Status
from batchscan.sources import Item

PREFIX = "hf://"
_TYPES = {"datasets": "dataset", "spaces": "space"}
# huggingface_hub already retries 5xx/429/timeouts with exponential backoff (about 20 s in
# all); one more round of our own covers a dropped connection between its attempts.
RETRIES = 2


@dataclass(frozen=True, slots=True)
class Remote:
    """What to download for an item: repository, commit and path inside it."""

    repo_id: str
    repo_type: str
    commit: str
    filename: str
    endpoint: str | None


def _api() -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)


def parse(target: str) -> tuple[str, str, str | None]:
    """(repo type, repo id or author, revision) of an `hf://` target."""
    rest = target[len(PREFIX):].strip("/")
    repo_type = "model"
    head, _, tail = rest.partition("/")
    if head in _TYPES and tail:
        repo_type, rest = _TYPES[head], tail
    name, _, revision = rest.partition("@")
    return repo_type, name, revision or None


def expand(target: str) -> Iterator[Item]:
    try:
        repo_type, name, revision = parse(target)
        api = _api()
        if "/" in name:
            yield from _repo(api, repo_type, name, revision, target)
        else:  # every model of an author, listed lazily (the client pages through results)
            for model in api.list_models(author=name):
                yield from _repo(api, "model", model.id, None, f"{PREFIX}{model.id}")
    except Exception as exc:
        yield Item(path=target, display=target, source="hf", decided=Status.ERROR,
                   reason=f"cannot list {target}: {type(exc).__name__}: {exc}"[:500])


def _repo(api: Any, repo_type: str, repo_id: str, revision: str | None,
          target: str) -> Iterator[Item]:
    try:
        info = api.repo_info(repo_id, revision=revision, repo_type=repo_type)
        commit = info.sha or revision or "main"
        entries = list(api.list_repo_tree(repo_id, revision=commit, repo_type=repo_type,
                                          recursive=True))
    except Exception as exc:
        yield Item(path=target, display=target, source="hf", decided=Status.ERROR,
                   reason=f"cannot list {repo_id}: {type(exc).__name__}: {exc}"[:500])
        return
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    for entry in entries:
        if getattr(entry, "size", None) is None:
            continue  # a folder
        yield Item(path="", display=f"{PREFIX}{prefix}{repo_id}@{commit}/{entry.path}",
                   source="hf", size=entry.size,
                   remote=Remote(repo_id, repo_type, commit, entry.path, api.endpoint))


def download(remote: Remote, scratch: Path) -> str:
    """Fetch one file into `scratch` with bounded retries and backoff; returns its path."""
    from huggingface_hub import hf_hub_download

    delay = 0.5
    for attempt in range(RETRIES):
        try:
            return str(hf_hub_download(remote.repo_id, remote.filename,
                                       revision=remote.commit, repo_type=remote.repo_type,
                                       local_dir=scratch, endpoint=remote.endpoint))
        except Exception:
            if attempt == RETRIES - 1:
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
