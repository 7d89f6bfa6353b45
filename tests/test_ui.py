"""The web UI without a browser: token, escaping, confinement, queries, triage, exports.

The browser tests (`test_ui_browser.py`) drive the same app through Chromium; these check the
contracts beneath it quickly and exactly.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient
from ui_fixtures import XSS_NAME, finding, record, write_run

from batchscan.baseline import load as load_baseline
from batchscan.cli import build_parser
from batchscan.records import finding_identity
from batchscan.ui.app import build_app
from batchscan.ui.query import Filters, RunStore
from batchscan.ui.runs import RunsFolder, UnknownRun

TOKEN = "test-token-123"
HEADER = {"X-Batchscan-Token": TOKEN}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    old = [record("m/a.pkl", "findings", [finding()], sha256="aa"),
           record("m/b.pkl", "findings", [finding("PKL002", "warning")], sha256="bb"),
           record("m/moved.pkl", "findings", [finding("PKL001", member="x/data.pkl")],
                  sha256="cc"),
           record("m/gone.pkl"),
           record(f"m/{XSS_NAME}", "findings",
                  [finding(evidence="<script>alert(2)</script>")], sha256="dd")]
    new = [record("m/a.pkl", "findings", [finding(offset=99)], sha256="aa2"),
           record("m/b.pkl", "clean", sha256="bb"),
           record("other/renamed.pkl", "findings", [finding("PKL001", member="x/data.pkl")],
                  sha256="cc"),
           record("m/new.pkl", "findings", [finding("PKL005")], sha256="ee"),
           record("hf://org/name@abc123/sub/w.bin", "timeout", sha256=None),
           record("hf://org/name@abc123/x.pkl", "skipped")]
    write_run(folder / "old.jsonl", old)
    write_run(folder / "new.jsonl", new)
    return folder


@pytest.fixture
def client(runs: Path) -> Iterator[TestClient]:
    app = build_app(runs, TOKEN, build_parser().parse_args)
    with TestClient(app) as test_client:
        yield test_client


def test_every_request_needs_the_token(client: TestClient) -> None:
    for url in ("/runs", "/setup", "/runs/old", "/runs/old/files/1", "/diff",
                "/runs/old/export.jsonl", "/static/app.js", "/api/check?path=/"):
        assert client.get(url).status_code == 403, url
        assert client.get(url, params={"token": "wrong"}).status_code == 403, url
    assert client.get("/runs", params={"token": TOKEN}).status_code == 200
    # the token in the URL once, then the cookie carries it for links
    assert client.get("/runs/old").status_code == 200


def test_state_changes_need_the_token_in_a_header(client: TestClient) -> None:
    client.get("/runs", params={"token": TOKEN})  # the cookie is set now
    body = {"targets": ["/nonexistent"], "options": {}}
    assert client.post("/api/scans", json=body).status_code == 403
    assert client.post("/api/scans", json=body, params={"token": TOKEN}).status_code == 403
    response = client.post("/api/scans", json={"targets": [], "options": {}}, headers=HEADER)
    assert response.status_code == 400  # past the guard: refused for having no target
    bad = client.post("/api/scans", json={"targets": ["x"], "options": {"fail_on": "nope"}},
                      headers=HEADER)
    assert bad.status_code == 400 and "fail-on" in bad.json()["error"]


def test_responses_carry_a_strict_content_security_policy(client: TestClient) -> None:
    response = client.get("/runs", params={"token": TOKEN})
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("run_id", ["..%2F..%2Fetc%2Fpasswd", "%2E%2E", ".cache", "%2Fetc%2Fpasswd",
                                    "old.meta.json", "triage%2Fbaseline"])
def test_run_names_outside_the_runs_folder_are_refused(client: TestClient, run_id: str) -> None:
    for suffix in ("", "/files/1", "/export.jsonl"):
        response = client.get(f"/runs/{run_id}{suffix}", params={"token": TOKEN})
        assert response.status_code == 404, (run_id, suffix)
        assert "root:" not in response.text


def test_a_link_out_of_the_runs_folder_is_refused(runs: Path, tmp_path: Path) -> None:
    outside = write_run(tmp_path / "outside.jsonl", [record("secret.pkl")])
    (runs / "linked.jsonl").symlink_to(outside)
    with pytest.raises(UnknownRun):
        RunsFolder(runs).jsonl("linked")


def test_names_and_evidence_render_as_text(client: TestClient) -> None:
    page = client.get("/runs/old", params={"token": TOKEN}).text
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.pkl" in page
    rid = next(r["rid"] for r in RunStore(RunsFolder(client.app.state.runs.root))  # type: ignore[attr-defined]
               .page("old", Filters(q="img")).rows)
    detail = client.get(f"/runs/old/files/{rid}", params={"token": TOKEN}).text
    assert "<script>alert(2)" not in detail
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in detail


def test_verdict_is_never_clean_with_anything_unscanned(runs: Path, client: TestClient) -> None:
    write_run(runs / "quiet.jsonl", [record("a.pkl"), record("b.pkl", "skipped")])
    page = client.get("/runs/quiet", params={"token": TOKEN}).text
    assert "NOT FULLY SCANNED: 1 skipped" in page and "CLEAN" not in page
    write_run(runs / "clean.jsonl", [record("a.pkl"), record("b.pkl")])
    assert "CLEAN: all 2 file(s) fully scanned" in client.get(
        "/runs/clean", params={"token": TOKEN}).text


def test_filters_counts_and_groups(runs: Path) -> None:
    store = RunStore(RunsFolder(runs))
    shown = store.page("new", Filters())
    total, rows = shown.total, shown.rows
    assert total == 6
    assert rows[0]["max_severity"] == "error"  # sorted by severity
    assert store.page("new", Filters(severity=["error"])).total == 3
    assert store.page("new", Filters(rule=["PKL005"])).rows[0]["path"] == "m/new.pkl"
    assert store.page("new", Filters(status=["timeout"], q="HF://ORG")).total == 1
    counts = store.counts("new")
    assert counts["incomplete"] == 1 and counts["skipped"] == 1
    groups = {g["grp"]: g["files"] for g in store.groups("new", Filters()).rows}
    assert groups == {"m": 3, "other": 1, "hf://org/name@abc123": 2}


def test_a_torn_last_line_and_unknown_keys_are_tolerated(runs: Path) -> None:
    line = json.dumps({**record("z.pkl"), "path_bytes": "eg=="})
    (runs / "torn.jsonl").write_text(line + "\n" + line[:40])
    assert RunStore(RunsFolder(runs)).page("torn", Filters()).total == 1


def test_diff_matches_on_path_or_sha256_rule_and_member(runs: Path) -> None:
    result = RunStore(RunsFolder(runs)).diff("old", "new")
    assert {r["path"] for r in result["new"]["rows"]} == {"m/new.pkl"}
    assert {(r["path"], r["rule_id"]) for r in result["fixed"]["rows"]} == {
        ("m/b.pkl", "PKL002"), (f"m/{XSS_NAME}", "PKL001")}
    # same path, different sha and offset: unchanged; moved with the same sha: unchanged
    assert {r["path"] for r in result["unchanged"]["rows"]} == {"m/a.pkl", "other/renamed.pkl"}
    assert {r["path"] for r in result["added"]["rows"]} == {
        "other/renamed.pkl", "m/new.pkl", "hf://org/name@abc123/sub/w.bin",
        "hf://org/name@abc123/x.pkl"}
    assert {r["path"] for r in result["removed"]["rows"]} == {
        "m/moved.pkl", "m/gone.pkl", f"m/{XSS_NAME}"}


def test_triage_writes_the_baseline_the_cli_reads(client: TestClient, runs: Path) -> None:
    store = RunStore(RunsFolder(runs))
    rid = store.page("old", Filters(q="m/a.pkl")).rows[0]["rid"]
    response = client.post(f"/api/runs/old/files/{rid}/triage", headers=HEADER,
                           json={"index": 0, "state": "false_positive", "reason": "test rig"})
    assert response.status_code == 200
    baseline = runs / "triage" / "baseline.jsonl"
    known = load_baseline(baseline)
    assert known == {finding_identity("PKL001", "aa", None)}
    page = client.get(f"/runs/old/files/{rid}", params={"token": TOKEN}).text
    assert "false positive" in page and "test rig" in page  # still shown, marked
    # an expiry in the past: the CLI reports the finding again
    client.post(f"/api/runs/old/files/{rid}/triage", headers=HEADER,
                json={"index": 0, "state": "accepted", "reason": "r", "expires": "2001-01-01"})
    assert load_baseline(baseline) == set()
    assert "expired 2001-01-01" in client.get(f"/runs/old/files/{rid}",
                                              params={"token": TOKEN}).text
    client.post(f"/api/runs/old/files/{rid}/triage", headers=HEADER, json={"index": 0,
                                                                           "clear": True})
    assert baseline.read_bytes() == b""
    bad = client.post(f"/api/runs/old/files/{rid}/triage", headers=HEADER,
                      json={"index": 0, "state": "ignore-me", "reason": "r"})
    assert bad.status_code == 400


def test_exports_of_a_filtered_view(client: TestClient) -> None:
    params = {"token": TOKEN, "severity": "error"}
    jsonl = client.get("/runs/new/export.jsonl", params=params).text.splitlines()
    assert {json.loads(line)["path"] for line in jsonl} == {"m/a.pkl", "other/renamed.pkl",
                                                            "m/new.pkl"}
    sarif = client.get("/runs/new/export.sarif", params=params).json()
    assert len(sarif["runs"][0]["results"]) == 3
    document = client.get("/runs/new/export.json", params={"token": TOKEN}).json()
    assert len(document["records"]) == 6
    rows = list(csv.DictReader(io.StringIO(client.get("/runs/new/export.csv",
                                                      params={"token": TOKEN}).text)))
    assert len(rows) == 6 and {r["rule_id"] for r in rows} >= {"PKL001", "PKL005", ""}
    report = client.get("/runs/old/export.html", params={"token": TOKEN})
    assert report.headers["content-disposition"].endswith('.html"')
    text = report.text
    assert "<svg" in text and "<script" not in text and "<img src=x" not in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # no external asset


def test_report_html_from_the_cli(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "batchscan", "report", str(runs / "new.jsonl"),
                           "-f", "html", "-o", str(out)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1, done.stderr  # findings at warning or above
    text = out.read_text()
    assert "FLAGGED" in text and "not fully scanned: 1 timeout, 1 skipped" in text
    assert text.count("<svg") == 4


def test_check_path_reports_kind_and_size(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"x" * 2000)
    (tmp_path / "list.txt").write_text("a\nb\n\n")

    def check(path: str) -> dict[str, object]:
        result: dict[str, object] = client.get("/api/check", params={
            "token": TOKEN, "path": path}).json()
        return result

    assert check(str(tmp_path / "f.bin"))["message"] == "file, 2.0 KB"
    assert check(str(tmp_path))["kind"] == "folder"
    assert check(str(tmp_path / "nope"))["ok"] is False
    assert check(f"@{tmp_path / 'list.txt'}")["message"] == "list of 2 target(s)"
    assert check("hf://org/name@main")["kind"] == "hub"


def test_a_scan_started_here_is_the_cli_run(client: TestClient, runs: Path,
                                            tmp_path: Path) -> None:
    from ui_fixtures import model_tree

    tree = model_tree(tmp_path / "tree", benign=4)
    response = client.post("/api/scans", headers=HEADER, json={
        "targets": [str(tree)], "options": {"jobs": "1", "timeout": "60"}})
    assert response.status_code == 201
    run_id = response.json()["run_id"]
    runs_folder = RunsFolder(runs)
    deadline = time.monotonic() + 60
    while runs_folder.meta(run_id).state not in ("finished", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    meta = runs_folder.meta(run_id)
    assert meta.state == "finished" and meta.exit_code == 1
    lines = [json.loads(x) for x in runs_folder.jsonl(run_id).read_text().splitlines()]
    assert len(lines) == 6
    progress = runs_folder.progress(run_id)
    assert progress is not None and progress["done"] == 6 and progress["walk_done"]
    assert meta.summary is not None and meta.summary["sandbox_degraded"] is not None
    copy = re.compile(re.escape(run_id) + r"\.\d+-\d+\.r2\.parquet")
    while not any(copy.fullmatch(p.name) for p in (runs / ".cache").iterdir()):
        assert time.monotonic() < deadline  # the copy is built when the scan ends, unasked
        time.sleep(0.1)


def _many(runs: Path, name: str, count: int) -> None:
    rows = [record(f"d{i % 7}/f{i:04d}.pkl", "findings" if i % 5 == 0 else "clean",
                   [finding(("PKL001", "PKL002")[i % 2], ("error", "warning")[i % 3 % 2])]
                   if i % 5 == 0 else [], sha256=f"{i:064x}") for i in range(count)]
    write_run(runs / f"{name}.jsonl", rows)


@pytest.mark.parametrize("sort", ["severity", "path", "size", "duration", "file"])
def test_keyset_pages_visit_every_file_once_in_sort_order(runs: Path, sort: str) -> None:
    _many(runs, "many", 237)
    store = RunStore(RunsFolder(runs))
    everything = store.page("many", Filters(), sort, limit=1000).rows
    seen: list[int] = []
    shown = store.page("many", Filters(), sort, limit=50)
    while True:
        seen += [r["rid"] for r in shown.rows]
        if not shown.more:
            break
        shown = store.page("many", Filters(), sort, limit=50, after=shown.last)
    assert seen == [r["rid"] for r in everything] and sorted(seen) == list(range(1, 238))
    back = store.page("many", Filters(), sort, limit=50, before=shown.first)
    assert [r["rid"] for r in back.rows] == seen[-37 - 50:-37] and back.previous
    first = store.page("many", Filters(), sort, limit=50, before=seen[50])
    assert [r["rid"] for r in first.rows] == seen[:50] and not first.previous and first.more
    assert "findings" not in everything[0]  # pages never read the findings column
    filtered = store.page("many", Filters(severity=["error"]), sort, limit=10)
    following = store.page("many", Filters(severity=["error"]), sort, limit=10,
                           after=filtered.last)
    assert all(r["max_severity"] == "error" for r in filtered.rows + following.rows)
    assert not {r["rid"] for r in filtered.rows} & {r["rid"] for r in following.rows}


def test_the_copy_has_line_numbers_a_summary_and_groups(runs: Path) -> None:
    _many(runs, "many", 100)
    _many(runs, "many.b", 3)  # a run whose name extends another's keeps its own copy
    store = RunStore(RunsFolder(runs))
    assert store.record("many", 42)["path"] == "d6/f0041.pkl"  # type: ignore[index]
    summary = store.counts("many")
    assert summary["files"] == 100 and summary["by_max_severity"]["none"] == 80
    assert summary["findings_by_severity"] == {"error": 14, "warning": 6, "info": 0,
                                               "debug": 0}
    assert store.counts("many.b")["files"] == 3 and store.counts("many")["files"] == 100
    assert store.groups("many", Filters()).total == 7 == summary["groups"]
    filtered = store.groups("many", Filters(severity=["error"]))
    assert sum(g["files"] for g in filtered.rows) == 14
    names = sorted(p.name for p in (runs / ".cache").iterdir() if p.name.startswith("many"))
    assert len(names) == 6  # copy, summary and groups for each run, nothing else


def test_a_large_run_is_prepared_in_the_background(runs: Path, client: TestClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from batchscan.ui import query

    _many(runs, "big", 500)
    monkeypatch.setattr(query, "INLINE_BYTES", 1000)
    store = client.app.state.store  # type: ignore[attr-defined]
    release = __import__("threading").Event()
    build = store._build

    def slow(*args: object) -> None:
        release.wait(10)
        build(*args)

    monkeypatch.setattr(store, "_build", slow)
    page = client.get("/runs/big", params={"token": TOKEN}).text
    assert 'id="preparing"' in page and 'http-equiv="refresh"' in page
    assert client.get("/runs/big/files/1", params={"token": TOKEN}).status_code == 200
    release.set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and 'id="preparing"' in page:
        time.sleep(0.1)
        page = client.get("/runs/big", params={"token": TOKEN}).text
    assert 'id="files"' in page and "500 file(s)" in page
    with open(runs / "big.jsonl", "a") as out:  # the run grows: the old copy is shown
        out.write(json.dumps(record("late.pkl")) + "\n")
    release.clear()
    page = client.get("/runs/big", params={"token": TOKEN}).text
    assert 'id="stale"' in page and "500 file(s)" in page
    release.set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "501 file(s)" not in page:
        time.sleep(0.1)
        page = client.get("/runs/big", params={"token": TOKEN}).text
    assert "501 file(s)" in page and 'id="stale"' not in page


def test_the_pager_links_follow_the_keyset(runs: Path, client: TestClient) -> None:
    _many(runs, "many", 120)
    page = client.get("/runs/many", params={"token": TOKEN}).text
    assert 'id="previous"' not in page and "showing 1\u201350" in page
    seen: list[str] = []
    for _ in range(2):
        seen += re.findall(r'href="/runs/many/files/(\d+)"', page)
        after = re.search(r'id="next" href="[^"]*after=(\d+)', page)
        assert after is not None
        page = client.get("/runs/many", params={"token": TOKEN, "after": after[1],
                                                "offset": str(len(seen))}).text
    seen += re.findall(r'href="/runs/many/files/(\d+)"', page)
    assert 'id="next"' not in page and "showing 101\u2013120" in page
    assert sorted(map(int, seen)) == list(range(1, 121))
    before = re.search(r'id="previous" href="[^"]*before=(\d+)', page)
    assert before is not None
    back = client.get("/runs/many", params={"token": TOKEN, "before": before[1]}).text
    assert re.findall(r'href="/runs/many/files/(\d+)"', back) == seen[50:100]
