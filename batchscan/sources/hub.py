"""Hugging Face Hub targets: `hf://ORG/NAME[@REV]`, `hf://datasets/ORG/NAME`, `hf://ORG`
(every model of an author; `hf://datasets/ORG` every dataset).

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
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchscan.records import Status
from batchscan.sources import Item

PREFIX = "hf://"
_NAME = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?\Z")
_TYPES = {"datasets": "dataset", "spaces": "space"}
# Attempts per file: 5xx answers and short transfers are retried here after 0.5 s, 1 s, 2 s;
# the client itself retries 408/429 and timeouts and resumes dropped connections.
RETRIES = 4


@dataclass(frozen=True, slots=True)
class Remote:
    """What to download for an item: repository, commit and path inside it."""

    repo_id: str
    repo_type: str
    commit: str
    filename: str
    endpoint: str | None
    sha256: str | None = None  # the Hub's LFS sha256 of the content, when it has one


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
        if (not _NAME.match(name) or name in _TYPES
                or (revision is not None and "/" not in name)):
            # `hf://` alone would otherwise list every repo on the Hub
            raise ValueError("expected hf://ORG, hf://ORG/NAME[@REV], hf://datasets/ORG or "
                             "hf://datasets/ORG/NAME[@REV]")
        api = _api()
        if "/" in name:
            yield from _repo(api, repo_type, name, revision, target)
        else:  # every repo of an author, listed lazily (the client pages through results)
            listing = {"model": api.list_models, "dataset": api.list_datasets,
                       "space": api.list_spaces}[repo_type]
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            for repo in listing(author=name):
                yield from _repo(api, repo_type, repo.id, None, f"{PREFIX}{prefix}{repo.id}")
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
        lfs = getattr(entry, "lfs", None)
        yield Item(path="", display=f"{PREFIX}{prefix}{repo_id}@{commit}/{entry.path}",
                   source="hf", size=entry.size,
                   remote=Remote(repo_id, repo_type, commit, entry.path, api.endpoint,
                                 getattr(lfs, "sha256", None)))


def download(remote: Remote, scratch: Path, size: int | None = None) -> str:
    """Fetch one file into `scratch` with bounded retries and backoff; returns its path.

    One streamed GET of the file's `resolve` URL through the client's own session and
    `http_get` (auth headers, redirects to the CDN, resumption after a dropped connection,
    retries on 408/429, a size check). `hf_hub_download` would add a metadata HEAD, file
    locks and metadata files per file: about 9 ms of coordinator CPU per small file, which
    the scratch folder (used once, then deleted) does not need. 5xx answers are retried here.
    """
    from huggingface_hub import hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils._headers import build_hf_headers
    from huggingface_hub.utils.tqdm import disable_progress_bars

    disable_progress_bars()  # several downloads run at once; the run has its own progress
    url = hf_hub_url(remote.repo_id, remote.filename, repo_type=remote.repo_type,
                     revision=remote.commit, endpoint=remote.endpoint)
    target = scratch / (remote.filename.rsplit("/", 1)[-1] or "file")
    delay = 0.5
    for attempt in range(RETRIES):
        try:
            with target.open("wb") as handle:
                http_get(url, handle, headers=build_hf_headers(), expected_size=size)
            return str(target)
        except Exception as exc:
            if attempt == RETRIES - 1 or not _retryable(exc):
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _retryable(exc: Exception) -> bool:
    """5xx answers and short transfers. Timeouts, dropped connections and 408/429 were
    already retried (and resumed) by the client; 4xx will not change by asking again."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return bool(status >= 500)
    return isinstance(exc, OSError) and "Consistency check failed" in str(exc)
