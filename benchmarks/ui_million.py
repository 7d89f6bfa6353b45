"""The web UI on a run of 1,000,000 records: time to first paint of its pages, server RSS.

    python benchmarks/ui_million.py [--records N] [--keep DIR]

Writes a generated run (paths in 1,000 folders and hf:// repos, 1 in 50 files with findings,
a few timeouts and skips), starts `batchscan ui` on it with no Parquet copy, and with headless
Chromium (/usr/bin/chromium) measures:
- after a warm-up navigation (the setup page: a fresh browser's first page pays for its
  renderer and static files), the first open of the run (answered at once with a
  "preparing N records" page) and the ingest: how long until the background build of the
  Parquet copy, its summary and its groups is done;
- first contentful paint of the run page (first open after the copy, then warm), of filtered
  pages, of a deep page by keyset (the "next" link's `after=`), of the old `offset=` form and
  of the group-by view;
then prints the server's RSS now and its peak (VmHWM, which includes the build).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson


def write_run(path: Path, count: int) -> None:
    rng = random.Random(7)
    with open(path, "wb") as out:
        for i in range(count):
            folder = (f"hf://org{i % 97}/model{i % 1000}@{i % 13:040x}" if i % 3 == 0
                      else f"/data/registry/org{i % 97}/model{i % 1000}")
            findings = []
            status = "clean"
            if i % 50 == 0:
                severity = rng.choice(("error", "warning", "info"))
                findings = [{"rule_id": rng.choice(("PKL001", "PKL002", "PKL003", "ZIP003")),
                             "severity": severity, "message": "calls `posix.system`",
                             "member": "archive/data.pkl" if i % 100 == 0 else None,
                             "offset": 32, "evidence": "posix.system('true')",
                             "cwe": "CWE-502"}]
                status = "findings"
            elif i % 997 == 0:
                status = "timeout"
            elif i % 1999 == 0:
                status = "skipped"
            top = findings[0]["severity"] if findings else None
            out.write(orjson.dumps({
                "schema_version": 2, "run_id": "bench", "path": f"{folder}/file{i}.pkl",
                "source": "hf" if i % 3 == 0 else "file", "size": 1000 + i % 5000,
                "sha256": f"{i:064x}", "format": "pickle", "status": status,
                "max_severity": top, "findings": findings, "error": None,
                "scanned_at": "2026-11-30T00:00:00.000Z", "duration_ms": (i % 300) / 10,
                "scanner_version": "0.1.0", "cached": False}) + b"\n")


def fcp(page: object, url: str) -> tuple[float, float]:
    """(wall seconds until the load event, first-contentful-paint ms from the browser)."""
    started = time.perf_counter()
    page.goto(url)  # type: ignore[attr-defined]
    wall = time.perf_counter() - started
    # The paint entry arrives after the load event now and then: wait for it (buffered).
    paint = page.evaluate(  # type: ignore[attr-defined]
        """() => new Promise(done => {
            const seen = performance.getEntriesByName('first-contentful-paint')[0];
            if (seen) return done(seen.startTime);
            new PerformanceObserver(list => {
                const entry = list.getEntriesByName('first-contentful-paint')[0];
                if (entry) done(entry.startTime);
            }).observe({type: 'paint', buffered: true});
            setTimeout(() => done(0), 5000);
        })""")
    return wall, float(paint or 0)


def rss_peak(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines()
              if len(line.split()) > 1}
    return int(fields["VmRSS"]) / 1024, int(fields["VmHWM"]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keep", metavar="DIR")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(args.keep or tempfile.mkdtemp(prefix="ui-bench-"))
    runs = work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run = runs / "million.jsonl"
    if not run.is_file():
        started = time.perf_counter()
        write_run(run, args.records)
        print(f"wrote {args.records:,} records, {run.stat().st_size / 1e6:.0f} MB, "
              f"in {time.perf_counter() - started:.1f} s")
    for old in (runs / ".cache").glob("million.*"):  # measure the ingest every time
        old.unlink()
    server = subprocess.Popen([sys.executable, "-P", "-m", "batchscan", "ui", "--runs",
                               str(runs), "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = server.stdout.readline().split()[-1]
    base, token = url.split("/?token=")
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"])
            page = browser.new_page()
            page.set_default_timeout(120_000)
            run_page = f"{base}/runs/million?token={token}"
            filtered = (f"{base}/runs/million?token={token}&severity=error&rule=PKL001"
                        f"&q=model12")
            # A fresh browser's first navigation pays for its renderer and the static files:
            # paid on the setup page (which reads no run), and printed.
            wall, paint = fcp(page, f"{base}/setup?token={token}")
            print(f"{'browser warm-up (setup page)':45s} "
                  f"load {wall * 1000:7.0f} ms   first paint {paint:7.0f} ms")
            started = time.perf_counter()
            wall, paint = fcp(page, run_page)
            preparing = page.locator("#preparing").count() > 0
            print(f"{'first open (preparing page)' if preparing else 'first open':45s} "
                  f"load {wall * 1000:7.0f} ms   first paint {paint:7.0f} ms")
            while page.locator("#preparing").count():
                time.sleep(0.25)
                page.goto(run_page)
            print(f"{'ingest (background Parquet copy, summary)':45s} "
                  f"{time.perf_counter() - started:7.1f} s   server RSS peak so far "
                  f"{rss_peak(server.pid)[1]:.0f} MB")
            matching = (f"{base}/runs/million?token={token}&severity=error&q=model10")
            rows = [("run page, first after the copy", run_page),
                    ("run page, warm", run_page),
                    ("filtered page (severity+rule+search)", filtered),
                    ("filtered page, again", filtered),
                    ("filtered page (severity+search, matches)", matching),
                    ("deep page by keyset (after row 500,000)", run_page + "&after=500000"),
                    ("page 2,000 by offset=100,000 (fallback)", run_page + "&offset=100000"),
                    ("group by repository/folder", run_page + "&view=groups"),
                    ("file page", f"{base}/runs/million/files/500001?token={token}")]
            for label, target in rows:
                wall, paint = fcp(page, target)
                print(f"{label:45s} load {wall * 1000:7.0f} ms   first paint {paint:7.0f} ms")
            page.goto(run_page)
            clicks = []
            for _ in range(3):  # follow "next" as a user pages on
                started = time.perf_counter()
                page.click("#next")
                page.wait_for_load_state("load")
                clicks.append(time.perf_counter() - started)
            print(f"{'next page (keyset link), slowest of 3 clicks':45s} "
                  f"load {max(clicks) * 1000:7.0f} ms")

            browser.close()
        now, peak = rss_peak(server.pid)
        print(f"server RSS now {now:.0f} MB, peak {peak:.0f} MB")
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    main()
