"""`hf://` targets against a fake Hub on 127.0.0.1, with the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.containers import EVIL
from fixtures.fakehub import FakeHub, Files, serve

pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed")
pytestmark = pytest.mark.network

COMMIT = "c0ffee" * 6 + "c0ff"
COMMIT_V1 = "decade" * 6 + "deca"
BIG = 2_000_000  # the "large" files of the disk-budget test
SHARDS = [pickle.dumps((i, b"\0" * BIG), protocol=4) for i in range(5)]  # built, never loaded
# repo id -> revision -> (commit, files); "main" is what an unpinned target resolves to
MODELS: dict[str, dict[str, tuple[str, Files]]] = {
    "someorg/evil-model": {
        "main": (COMMIT, {"model.pkl": EVIL, "config.json": b'{"hidden_size": 8}',
                          "big.bin": b"\0" * 5000}),
        "v1": (COMMIT_V1, {"model.pkl": b"\x80\x04K\x01.", "sub/dir/notes.md": b"# v1"}),
    },
    "someorg/flaky": {"main": (COMMIT, {"ok.pkl": b"\x80\x04K\x01.", "broken.pkl": EVIL,
                                        "swapped.bin": b"\x80\x04K\x02."})},
    "someorg/bumpy": {"main": (COMMIT, {"limited.pkl": EVIL, "stalled.pkl": EVIL})},
    "bigorg/weights": {"main": (COMMIT, {
        **{f"shard-{i}.bin": data for i, data in enumerate(SHARDS)},
        "huge.bin": b"\0" * (3 * BIG)})},
    **{f"manyorg/model-{i}": {"main": (COMMIT, {"model.pkl": EVIL if i == 5 else b"K\x01."})}
       for i in range(7)},
}
DATASETS: dict[str, dict[str, tuple[str, Files]]] = {
    "someorg/evil-data": {"main": (COMMIT, {"data/train.pkl": EVIL})},
}
GATED = {"someorg/gated-model"}


@pytest.fixture
def hub() -> Iterator[str]:
    FakeHub.models, FakeHub.datasets, FakeHub.gated = MODELS, DATASETS, GATED
    FakeHub.page, FakeHub.fail, FakeHub.slow_from = 3, {"broken.pkl"}, BIG
    FakeHub.lie = {"swapped.bin"}
    FakeHub.once = {"limited.pkl": "429", "stalled.pkl": "stall"}
    with serve() as endpoint:
        yield endpoint


def downloads() -> list[str]:
    return [path for method, path in FakeHub.log if method == "GET" and "/resolve/" in path]


def scan(hub: str, *args: str, timeout: str = "5") -> tuple[int, dict[str, dict[str, Any]]]:
    env = {**os.environ, "HF_ENDPOINT": hub, "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_ETAG_TIMEOUT": timeout,
           "HF_HUB_DOWNLOAD_TIMEOUT": timeout}
    env.pop("HF_TOKEN", None)
    result = subprocess.run([sys.executable, "-m", "batchscan", "scan", *args, "-f", "jsonl"],
                            capture_output=True, text=True, timeout=120, env=env, check=False)
    records = {json.loads(x)["path"]: json.loads(x) for x in result.stdout.splitlines()}
    return result.returncode, records


def test_hub_repo_is_scanned_like_its_local_copy(hub: str, tmp_path: Path) -> None:
    code, records = scan(hub, "hf://someorg/evil-model")
    remote = records[f"hf://someorg/evil-model@{COMMIT}/model.pkl"]
    assert code == 1 and remote["source"] == "hf" and remote["max_severity"] == "error"
    local = tmp_path / "model.pkl"
    local.write_bytes(EVIL)
    _, local_records = scan(hub, str(local))
    strip = ("run_id", "scanned_at", "duration_ms", "path", "source")
    assert {k: v for k, v in remote.items() if k not in strip} == {
        k: v for k, v in local_records[str(local)].items() if k not in strip}


def test_too_large_files_are_never_downloaded(hub: str) -> None:
    _, records = scan(hub, "hf://someorg/evil-model", "--max-file-size", "1000")
    assert records[f"hf://someorg/evil-model@{COMMIT}/big.bin"]["status"] == "too_large"
    assert not any("big.bin" in path for _, path in FakeHub.log if "/resolve/" in path)


def test_missing_repo_is_one_error_record(hub: str) -> None:
    code, records = scan(hub, "hf://someorg/does-not-exist")
    assert code == 2 and list(records) == ["hf://someorg/does-not-exist"]
    assert records["hf://someorg/does-not-exist"]["status"] == "error"


def test_server_error_on_one_file_is_retried_then_an_error_record(hub: str) -> None:
    code, records = scan(hub, "hf://someorg/flaky")
    broken = records[f"hf://someorg/flaky@{COMMIT}/broken.pkl"]
    assert broken["status"] == "error" and "download failed" in broken["error"]
    assert records[f"hf://someorg/flaky@{COMMIT}/ok.pkl"]["status"] == "clean"
    attempts = [p for _, p in FakeHub.log if "broken.pkl" in p]
    assert len(attempts) == 4 and code == 2  # hub.RETRIES attempts, then the error record


def test_content_that_differs_from_the_listed_sha256_is_an_error(hub: str) -> None:
    _, records = scan(hub, "hf://someorg/flaky")
    swapped = records[f"hf://someorg/flaky@{COMMIT}/swapped.bin"]
    assert swapped["status"] == "error" and "the Hub lists" in swapped["error"]


def test_a_revision_is_listed_and_named_by_its_commit(hub: str) -> None:
    code, records = scan(hub, "hf://someorg/evil-model@v1")
    assert set(records) == {f"hf://someorg/evil-model@{COMMIT_V1}/model.pkl",
                            f"hf://someorg/evil-model@{COMMIT_V1}/sub/dir/notes.md"}
    assert code == 0 and {p.rsplit("/", 1)[1]: r["status"] for p, r in records.items()} == {
        "model.pkl": "clean", "notes.md": "unsupported"}
    assert all(f"/resolve/{COMMIT_V1}/" in path for path in downloads())


def test_author_listing_pages_through_every_model(hub: str) -> None:
    code, records = scan(hub, "hf://manyorg")
    listed = [path for _, path in FakeHub.log if path.startswith("/api/models?")]
    assert len(listed) == 3  # 7 models, 3 per page
    assert set(records) == {f"hf://manyorg/model-{i}@{COMMIT}/model.pkl" for i in range(7)}
    flagged = {p for p, r in records.items() if r["status"] == "findings"}
    assert flagged == {f"hf://manyorg/model-5@{COMMIT}/model.pkl"} and code == 1


def test_dataset_repo_and_an_authors_datasets(hub: str) -> None:
    name = f"hf://datasets/someorg/evil-data@{COMMIT}/data/train.pkl"
    for target in ("hf://datasets/someorg/evil-data", "hf://datasets/someorg"):
        code, records = scan(hub, target)
        assert list(records) == [name], target  # the author's models are not datasets
        assert code == 1 and records[name]["max_severity"] == "error"
        assert records[name]["source"] == "hf"


def test_gated_repo_is_one_error_record_naming_the_cause(hub: str) -> None:
    code, records = scan(hub, "hf://someorg/gated-model", "hf://manyorg/model-0")
    gated = records["hf://someorg/gated-model"]
    assert gated["status"] == "error" and "Gated" in gated["error"]
    assert records[f"hf://manyorg/model-0@{COMMIT}/model.pkl"]["status"] == "clean"
    assert code == 2


def test_disk_budget_holds_with_several_large_files(hub: str, tmp_path: Path) -> None:
    FakeHub.download_dir = tmp_path / "scratch"
    budget = 2 * len(SHARDS[0]) + 100_000  # two shards at a time, never three
    code, records = scan(hub, "hf://bigorg/weights", "-j", "2", "--download-dir",
                         str(FakeHub.download_dir), "--max-download-bytes", str(budget))
    shards = {f"hf://bigorg/weights@{COMMIT}/shard-{i}.bin" for i in range(5)}
    assert all(records[p]["status"] == "clean" for p in shards)
    huge = records[f"hf://bigorg/weights@{COMMIT}/huge.bin"]
    assert huge["status"] == "too_large" and "--max-download-bytes" in huge["error"]
    assert huge["sha256"] == hashlib.sha256(b"\0" * (3 * BIG)).hexdigest()  # the Hub's
    assert len(FakeHub.on_disk) == 5 and not any("huge.bin" in p for p in downloads())
    assert max(FakeHub.on_disk) <= budget, FakeHub.on_disk
    assert FakeHub.serving[1] <= 2  # without the budget, all four task slots download at once
    assert not any(p.is_file() for p in FakeHub.download_dir.rglob("*"))  # all deleted
    assert code == 2  # too_large is an incomplete scan


def test_cache_answers_by_the_hubs_sha256_before_downloading(hub: str, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    _, first = scan(hub, "hf://bigorg/weights", "--cache", cache, "--max-file-size", "3MB")
    fetched = len(downloads())
    FakeHub.log.clear()
    _, second = scan(hub, "hf://bigorg/weights", "--cache", cache, "--max-file-size", "3MB")
    shards = [f"hf://bigorg/weights@{COMMIT}/shard-{i}.bin" for i in range(5)]
    assert fetched == 5 and downloads() == []
    assert all(second[p]["cached"] and second[p]["sha256"] == first[p]["sha256"]
               for p in shards)


def test_target_list_mixes_paths_and_hub_urls_and_resumes(hub: str, tmp_path: Path) -> None:
    local = tmp_path / "local.pkl"
    local.write_bytes(EVIL)
    targets = tmp_path / "targets.txt"
    targets.write_text(f"# mixed\n{local}\nhf://manyorg/model-1\n")
    out = tmp_path / "run.jsonl"
    scan(hub, f"@{targets}", "-o", str(out))
    fetched = len(downloads())
    FakeHub.log.clear()
    scan(hub, f"@{targets}", "-o", str(out), "--resume")
    paths = [json.loads(line)["path"] for line in out.read_text().splitlines()]
    assert sorted(paths) == sorted([str(local), f"hf://manyorg/model-1@{COMMIT}/model.pkl"])
    assert fetched == 1 and downloads() == []  # a recorded commit's file is not fetched again


def test_rate_limit_and_stalled_transfer_are_retried_then_scanned(hub: str) -> None:
    code, records = scan(hub, "hf://someorg/bumpy", timeout="1")
    for name in ("limited.pkl", "stalled.pkl"):  # 429 once; no answer within the timeout once
        record = records[f"hf://someorg/bumpy@{COMMIT}/{name}"]
        assert record["status"] == "findings" and record["max_severity"] == "error", record
        assert sum(1 for p in downloads() if p.endswith(name)) == 2
    assert code == 1


def test_a_file_named_by_two_targets_gets_two_records_and_no_leftovers(
    hub: str, tmp_path: Path
) -> None:
    scratch, out = tmp_path / "scratch", tmp_path / "run.jsonl"
    scan(hub, "hf://manyorg/model-5", "hf://manyorg", "--download-dir", str(scratch),
         "--max-download-bytes", "100", "-o", str(out))
    paths = [json.loads(line)["path"] for line in out.read_text().splitlines()]
    assert paths.count(f"hf://manyorg/model-5@{COMMIT}/model.pkl") == 2 and len(paths) == 8
    assert not any(p.is_file() for p in scratch.rglob("*"))


@pytest.mark.parametrize("target", ["hf://", "hf://datasets/", "hf://a/b/c", "hf://org@v1",
                                    "hf://../etc"])
def test_malformed_targets_are_one_error_record_and_list_nothing(hub: str, target: str) -> None:
    code, records = scan(hub, target)
    assert code == 2 and list(records) == [target]
    assert records[target]["status"] == "error" and "expected hf://ORG" in records[target]["error"]
    assert not any(path.startswith("/api/") for _, path in FakeHub.log)


def test_an_unusable_download_dir_gives_error_records_and_the_run_goes_on(
    hub: str, tmp_path: Path
) -> None:
    local = tmp_path / "local.pkl"
    local.write_bytes(EVIL)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    code, records = scan(hub, "hf://manyorg/model-1", str(local),
                         "--download-dir", str(blocker / "sub"))
    remote = records[f"hf://manyorg/model-1@{COMMIT}/model.pkl"]
    assert remote["status"] == "error" and "download folder" in remote["error"]
    assert records[str(local)]["max_severity"] == "error" and code == 1  # findings win


def test_large_downloads_are_hashed_by_the_coordinator_before_deletion(
    hub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchscan import hashing
    from batchscan.config import ScanConfig
    from batchscan.coordinator import Engine

    hashed: list[str] = []
    start = hashing.start
    monkeypatch.setattr(hashing, "start",
                        lambda path, *walk: hashed.append(path) or start(path, *walk))
    monkeypatch.setenv("HF_ENDPOINT", hub)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    scratch = tmp_path / "scratch"
    config = ScanConfig(jobs=2, coordinator_hash_from=1_000_000, download_dir=str(scratch))
    engine = Engine(config)
    records = {r.path: r for r in engine.run(["hf://bigorg/weights"])}
    for i, data in enumerate(SHARDS):
        record = records[f"hf://bigorg/weights@{COMMIT}/shard-{i}.bin"]
        assert record.status.value == "clean" and record.error is None
        assert record.sha256 == hashlib.sha256(data).hexdigest()  # agrees with the listing
    assert len(hashed) == 6  # the five 2 MB shards and the 6 MB huge.bin (no budget here)
    assert not engine._hashes and not any(p.is_file() for p in scratch.rglob("*"))
