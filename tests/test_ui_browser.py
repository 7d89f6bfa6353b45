"""The web UI end to end in Debian's headless Chromium (driven by Playwright, never downloaded).

One UI server (`batchscan ui --port 0`, fault injection on so that a scan can be slow enough to
cancel) and one browser page serve the whole module; the tests run in order and build on each
other: scan from the setup form, filter, open a file, triage, cancel and resume, diff, export.
Screenshots of every page go to `test-artifacts/ui/` (gitignored).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("starlette")

from ui_fixtures import EVIL, XSS_NAME, model_tree, slow_tree  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.sandbox,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


class UI:
    def __init__(self, base: str, token: str, runs: Path, tree: Path, slow: Path, page: Any,
                 browser: Any):
        self.base, self.token, self.runs, self.tree, self.slow = base, token, runs, tree, slow
        self.page, self.browser = page, browser
        self.dialogs: list[str] = []

    def go(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def start_scan(self, target: str, jobs: str = "2") -> str:
        self.go("/setup")
        self.page.fill("#targets", target)
        self.page.wait_for_selector("#checks li.ok")
        self.page.fill("input[name=jobs]", jobs)
        self.page.fill("input[name=timeout]", "60")
        self.page.click("#start")
        self.page.wait_for_url("**/runs/2*")
        return self.page.url.rsplit("/", 1)[1]

    def wait_state(self, run_id: str, states: tuple[str, ...], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        meta = self.runs / f"{run_id}.meta.json"
        while json.loads(meta.read_text())["state"] not in states:
            assert time.monotonic() < deadline, meta.read_text()
            time.sleep(0.1)

    def records(self, run_id: str) -> list[dict[str, Any]]:
        text = (self.runs / f"{run_id}.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    work = tmp_path_factory.mktemp("ui")
    tree = model_tree(work / "tree", benign=10)
    slow = slow_tree(work / "slow", files=24, seconds=0.25)
    runs = work / "runs"
    env = {**os.environ, "BATCHSCAN_FAULT_INJECTION": "1"}
    server = subprocess.Popen([sys.executable, "-P", "-m", "batchscan", "ui", "--runs", str(runs),
                               "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=work)
    assert server.stdout is not None
    line = server.stdout.readline()
    assert "token=" in line, server.stderr.read() if server.stderr else line
    url = line.split()[-1]
    base, token = url.split("/?token=")
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])  # a fresh profile: Playwright's own
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280,
                                                                        "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        state = UI(base, token, runs, tree, slow, page, browser)
        page.on("dialog", lambda dialog: (state.dialogs.append(dialog.message),
                                          dialog.dismiss()))
        page.goto(url)  # the printed URL: sets the cookie the links rely on
        try:
            yield state
        finally:
            browser.close()
            server.send_signal(signal.SIGINT)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()


def test_scan_from_the_setup_form_and_watch_it_finish(ui: UI) -> None:
    ui.go("/setup")
    ui.page.fill("#targets", str(ui.tree) + "\n" + str(ui.tree / "nope"))
    ui.page.wait_for_selector("#checks li.bad")
    assert "folder" in ui.page.inner_text("#checks li.ok")
    assert "does not exist" in ui.page.inner_text("#checks li.bad")
    ui.shot("setup")
    run_id = ui.start_scan(str(ui.tree))
    # the live panel counts up from the event stream; the page reloads to the verdict at the end
    ui.page.wait_for_selector("#verdict:has-text('FLAGGED')", timeout=60_000)
    assert ui.page.inner_text("#state") == "finished"
    assert "2 file(s) with findings" in ui.page.inner_text("#verdict")
    assert ui.page.inner_text("#cards .card:last-child .n") == "12"
    assert len(ui.records(run_id)) == 12
    progress = json.loads((ui.runs / f"{run_id}.progress.json").read_text())
    assert progress["done"] == progress["seen"] == 12 and progress["walk_done"]
    ui.shot("run")


def test_filter_by_severity_and_open_a_file(ui: UI) -> None:
    ui.page.click("#cards a[data-severity=error]")
    ui.page.wait_for_url("**severity=error*")
    rows = ui.page.locator("#files tbody tr")
    assert rows.count() == 2
    assert set(ui.page.locator("#files td.sev").all_inner_texts()) == {"error"}
    assert "2 file(s) match" in ui.page.inner_text("#pager")
    ui.shot("run-filtered")
    ui.page.click(f"#files a:text-is('{ui.tree / 'org0' / 'evil.pkl'}')")
    ui.page.wait_for_selector("#file-path")
    evidence = ui.page.inner_text("#finding-0 pre.evidence")
    assert "system" in evidence and "true" in evidence
    assert "CWE-502" in ui.page.inner_text("#finding-0")
    assert "How to fix" in ui.page.inner_text("#finding-0 details")
    assert len(ui.page.inner_text("#sha256")) == 64
    ui.shot("file")


def test_the_xss_file_name_renders_as_text(ui: UI) -> None:
    run_id = sorted(p.name for p in ui.runs.glob("2*.jsonl"))[0].removesuffix(".jsonl")
    ui.go(f"/runs/{run_id}?q=onerror")
    link = ui.page.locator("#files td.path a")
    assert link.count() == 1
    assert link.inner_text().endswith(XSS_NAME)
    assert ui.page.locator("img").count() == 0  # no element was made from the name
    link.click()
    ui.page.wait_for_selector("#file-path")
    assert ui.page.inner_text("#file-path").endswith(XSS_NAME)
    assert ui.page.locator("img").count() == 0
    assert ui.dialogs == []  # alert(1) never ran


def test_triage_is_honoured_by_the_cli_baseline(ui: UI) -> None:
    run_id = sorted(p.name for p in ui.runs.glob("2*.jsonl"))[0].removesuffix(".jsonl")
    ui.go(f"/runs/{run_id}?q=evil.pkl")
    ui.page.click("#files td.path a")
    ui.page.wait_for_selector("#finding-0")
    form = ui.page.locator("#finding-0 form.triage")
    form.locator("select[name=state]").select_option("false_positive")
    form.locator("input[name=reason]").fill("planted by the test rig")
    form.locator("button[type=submit]").click()
    ui.page.wait_for_selector("#finding-0 .triage-mark")
    assert "false positive" in ui.page.inner_text("#finding-0 .triage-mark")
    assert ui.page.locator("#finding-0.suppressed").count() == 1  # visible, marked
    ui.shot("file-triaged")
    baseline = ui.runs / "triage" / "baseline.jsonl"
    done = subprocess.run([sys.executable, "-m", "batchscan", "scan", str(ui.tree), "-f", "jsonl",
                           "-j", "1", "--baseline", str(baseline)], capture_output=True, text=True,
                          check=False)
    records = {json.loads(x)["path"]: json.loads(x) for x in done.stdout.splitlines()}
    evil = records[str(ui.tree / "org0" / "evil.pkl")]
    xss = records[str(ui.tree / "org1" / XSS_NAME)]
    assert evil["findings"] == [] and evil["status"] == "clean"  # suppressed by the triage
    # The baseline identity is the content (sha256 + rule + member): the same bytes under
    # another name are the same finding, as a moved file would be.
    assert xss["sha256"] == evil["sha256"] and xss["status"] == "clean"
    assert done.returncode == 0, done.stderr


def test_cancel_and_resume_scan_each_file_once(ui: UI) -> None:
    run_id = ui.start_scan(str(ui.slow), jobs="1")
    deadline = time.monotonic() + 60  # (wait_for_function evaluates a string: the CSP forbids)
    while int(ui.page.get_attribute("#live", "data-done") or 0) < 3:
        assert time.monotonic() < deadline
        ui.page.wait_for_timeout(100)
    ui.shot("live")
    ui.page.click("#cancel")
    ui.wait_state(run_id, ("interrupted",))
    ui.page.wait_for_selector("#resume:not([hidden])")
    assert "INCOMPLETE" in ui.page.inner_text("#verdict")
    first = ui.records(run_id)
    assert 3 <= len(first) < 24
    ui.shot("run-interrupted")
    ui.page.click("#resume")
    ui.page.wait_for_selector("#verdict:has-text('FLAGGED'), #verdict:has-text('CLEAN')",
                              timeout=60_000)
    ui.wait_state(run_id, ("finished",))
    paths = [r["path"] for r in ui.records(run_id)]
    assert len(paths) == 24 and len(set(paths)) == 24  # nothing twice, nothing lost
    assert paths[: len(first)] == [r["path"] for r in first]


def test_diff_two_runs(ui: UI) -> None:
    first = sorted(p.name for p in ui.runs.glob("2*.jsonl"))[0].removesuffix(".jsonl")
    (ui.tree / "org1" / "model" / "w1.pkl").unlink()
    # other bytes than evil.pkl: a finding with the same sha256 would count as unchanged
    (ui.tree / "org1" / "new-evil.pkl").write_bytes(EVIL.replace(b"cos\n", b"cposix\n"))
    second = ui.start_scan(str(ui.tree))
    ui.wait_state(second, ("finished",))
    ui.go("/diff")
    ui.page.select_option("select[name=old]", first)
    ui.page.select_option("select[name=new]", second)
    ui.page.click("#diff-form button")
    ui.page.wait_for_selector("#n-new")
    counts = {k: ui.page.inner_text(f"#n-{k}") for k in
              ("new", "fixed", "unchanged", "added", "removed")}
    assert counts == {"new": "1", "fixed": "0", "unchanged": "2", "added": "1", "removed": "1"}
    assert "new-evil.pkl" in ui.page.inner_text("table.diff-new")
    ui.shot("diff")
    ui.go("/runs")
    assert ui.page.locator("#runs tbody tr").count() == 3
    ui.shot("history")


def test_export_sarif_and_html(ui: UI, tmp_path: Path) -> None:
    run_id = sorted(p.name for p in ui.runs.glob("2*.jsonl"))[0].removesuffix(".jsonl")
    ui.go(f"/runs/{run_id}?severity=error")
    with ui.page.expect_download() as sarif_download:
        ui.page.click("a.export-sarif")
    sarif = json.loads(Path(sarif_download.value.path()).read_text())
    assert sarif["version"] == "2.1.0" and len(sarif["runs"][0]["results"]) == 2
    with ui.page.expect_download() as html_download:
        ui.page.click("a.export-html")
    report = tmp_path / "report.html"
    shutil.copy(html_download.value.path(), report)
    text = report.read_text()
    assert "<script" not in text and text.count("<svg") == 4
    ui.page.goto(report.as_uri())  # readable offline, names still text
    assert "FLAGGED" in ui.page.inner_text("#verdict")
    assert ui.page.locator("img").count() == 0 and ui.dialogs == []
    ui.shot("html-report")


def test_no_token_no_access_and_no_traversal(ui: UI) -> None:
    stranger = ui.browser.new_context()
    try:
        page = stranger.new_page()
        assert page.goto(ui.base + "/runs").status == 403
        assert page.goto(ui.base + "/static/app.js").status == 403
    finally:
        stranger.close()
    # the cookie alone never changes state
    response = ui.page.request.post(ui.base + "/api/scans",
                                    data={"targets": [str(ui.tree)], "options": {}})
    assert response.status == 403
    for bad in ("/runs/..%2F..%2Fetc%2Fpasswd", "/runs/%2E%2E%2Ftriage%2Fbaseline/export.jsonl",
                "/runs/%2Fetc%2Fpasswd/files/1"):
        answer = ui.go(bad)
        assert answer.status == 404, bad
        assert "root:" not in ui.page.content()
