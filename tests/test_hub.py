"""`hf://` targets against a fake Hub on 127.0.0.1, with the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fixtures.containers import EVIL

pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed")
pytestmark = pytest.mark.network

COMMIT = "c0ffee" * 6 + "c0ff"
REPOS: dict[str, dict[str, bytes]] = {
    "someorg/evil-model": {"model.pkl": EVIL, "config.json": b'{"hidden_size": 8}',
                           "big.bin": b"\0" * 5000},
    "someorg/flaky": {"ok.pkl": b"\x80\x04K\x01.", "broken.pkl": EVIL},
}


class FakeHub(BaseHTTPRequestHandler):
    log: ClassVar[list[tuple[str, str]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        FakeHub.log.append((self.command, self.path))
        path = self.path.split("?")[0]
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            repo = rest.split("/tree/")[0].split("/revision/")[0]
            if repo not in REPOS:
                self._send(404, b'{"error": "Repository not found"}',
                           {"X-Error-Code": "RepoNotFound"})
            elif "/tree/" in rest:
                items = [{"type": "file", "path": name, "size": len(data),
                          "oid": hashlib.sha1(data).hexdigest()}
                         for name, data in REPOS[repo].items()]
                self._send(200, json.dumps(items).encode(), {"Content-Type": "application/json"})
            else:
                body = {"id": repo, "sha": COMMIT,
                        "siblings": [{"rfilename": name} for name in REPOS[repo]]}
                self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
        elif "/resolve/" in path:
            repo, rest = path[1:].split("/resolve/")
            filename = rest.split("/", 1)[1]
            if filename == "broken.pkl":
                self._send(500, b"internal error")
                return
            data = REPOS[repo][filename]
            self._send(200, data, {"X-Repo-Commit": COMMIT,
                                   "ETag": '"' + hashlib.sha256(data).hexdigest() + '"'})
        else:
            self._send(404)


@pytest.fixture
def hub() -> Iterator[str]:
    FakeHub.log = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def scan(hub: str, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    env = {**os.environ, "HF_ENDPOINT": hub, "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_ETAG_TIMEOUT": "5",
           "HF_HUB_DOWNLOAD_TIMEOUT": "5"}
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
    attempts = [p for _, p in FakeHub.log if "broken.pkl" in p]  # HEAD or GET
    assert len(attempts) >= 2 and code == 2
