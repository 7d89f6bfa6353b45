"""The command line as users and CI gates run it: formats, exit codes, signals, schema."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from batchscan.schema import load_json_schema

EVIL = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."
VALIDATOR = jsonschema.Draft202012Validator(load_json_schema())


def batchscan(*args: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "batchscan", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, check=False,
    )


def jsonl(text: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for record in records:
        VALIDATOR.validate(record)
    return records


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "a").mkdir(parents=True)
    (root / "a" / "good.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, 4))
    (root / "a" / "notes.txt").write_text("plain text, not a model\n")
    return root


def test_clean_tree_exits_0_and_records_validate(tree: Path) -> None:
    result = batchscan("scan", str(tree), "-f", "jsonl", "-j", "2")
    assert result.returncode == 0, result.stderr
    records = jsonl(result.stdout)
    assert {Path(r["path"]).name: r["status"] for r in records} == {
        "good.pkl": "clean", "notes.txt": "unsupported"}  # clean = read and understood
    assert len({r["run_id"] for r in records}) == 1


def test_unsupported_files_change_the_exit_code_only_when_asked(tree: Path) -> None:
    result = batchscan("scan", str(tree), "-f", "json", "-j", "1", "--fail-on-unsupported")
    assert result.returncode == 2, result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["unsupported_files"] == 1
    assert summary["by_status"] == {"clean": 1, "unsupported": 1}


def test_findings_exit_1_and_take_precedence_over_errors(tree: Path) -> None:
    (tree / "evil.pt").write_bytes(EVIL)
    (tree / "broken").symlink_to(tree / "nowhere")
    os.mkfifo(tree / "pipe")
    result = batchscan("scan", str(tree), str(tree / "missing.pkl"), "-f", "jsonl")
    assert result.returncode == 1
    by_name = {Path(r["path"]).name: r for r in jsonl(result.stdout)}
    assert by_name["evil.pt"]["max_severity"] == "error"
    assert by_name["missing.pkl"]["status"] == "error"
    assert by_name["pipe"]["status"] == "skipped" and "FIFO" in by_name["pipe"]["error"]
    assert by_name["broken"]["status"] == "skipped" and "dangling" in by_name["broken"]["error"]


def test_incomplete_scan_without_findings_exits_2(tree: Path) -> None:
    result = batchscan("scan", str(tree), str(tree / "missing.pkl"), "-f", "jsonl")
    assert result.returncode == 2


def test_fail_on_error_ignores_warnings(tree: Path) -> None:
    (tree / "odd.pkl").write_bytes(b"\x80\x02csomepkg\nrun_job\n)R.")
    assert batchscan("scan", str(tree), "-f", "jsonl").returncode == 1
    assert batchscan("scan", str(tree), "-f", "jsonl", "--fail-on", "error").returncode == 0


def test_text_output_is_human_and_default(tree: Path) -> None:
    (tree / "evil.pkl").write_bytes(EVIL)
    result = batchscan(str(tree))  # `scan` is the default command, as in ModelAudit
    assert result.returncode == 1
    assert "ERROR" in result.stdout and "PKL001" in result.stdout
    assert "Scanned 3 files" in result.stdout
    good = str(tree / "a" / "good.pkl")
    assert not any(line.startswith(good) for line in result.stdout.splitlines())  # -v only
    assert any(line.startswith(good) for line in batchscan(str(tree), "-v").stdout.splitlines())
    assert "Slowest:" in result.stdout


def test_json_document_has_summary_and_records(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = batchscan("scan", str(tree), "-f", "json", "-o", str(out))
    assert result.returncode == 0 and result.stdout == ""
    document = json.loads(out.read_bytes())
    assert document["schema_version"] == 4
    assert document["summary"]["files"] == 2
    for record in document["records"]:
        VALIDATOR.validate(record)


def test_max_file_size_never_reads(tree: Path) -> None:
    # If this file were read, its fault action would hang the worker past the timeout.
    (tree / "huge.bin").write_bytes(b"BATCHSCAN-FAULT sleep 600" + b" " * 2000)
    result = batchscan("scan", str(tree), "-f", "jsonl", "--max-file-size", "1KB", "-t", "60",
                       env={"BATCHSCAN_FAULT_INJECTION": "1"}, timeout=60)
    by_name = {Path(r["path"]).name: r for r in jsonl(result.stdout)}
    assert by_name["huge.bin"]["status"] == "too_large"
    assert by_name["huge.bin"]["sha256"] is None
    assert result.returncode == 2


def test_blacklist_flags_file_names(tree: Path) -> None:
    result = batchscan("scan", str(tree), "-f", "jsonl", "-b", "*.txt")
    by_name = {Path(r["path"]).name: r for r in jsonl(result.stdout)}
    assert by_name["notes.txt"]["findings"][0]["rule_id"] == "ENG003"
    assert result.returncode == 1


def test_file_list_targets(tree: Path, tmp_path: Path) -> None:
    listing = tmp_path / "targets.txt"
    listing.write_text(f"# comment\n{tree / 'a' / 'good.pkl'}\n\n{tree / 'a' / 'notes.txt'}\n")
    result = batchscan("scan", f"@{listing}", "-f", "jsonl")
    assert len(jsonl(result.stdout)) == 2 and result.returncode == 0


def test_symlink_loop_is_recorded_once_with_follow_always(tree: Path) -> None:
    (tree / "a" / "loop").symlink_to(tree)
    result = batchscan("scan", str(tree), "-f", "jsonl", "--follow-symlinks", "always")
    records = jsonl(result.stdout)
    loops = [r for r in records if "loop" in (r["error"] or "")]
    assert len(loops) == 1 and loops[0]["status"] == "skipped"
    assert sum(1 for r in records if r["path"].endswith("good.pkl")) == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_130_with_valid_output(tree: Path, tmp_path: Path, sig: int) -> None:
    # Over the 1 MiB small-file threshold, so it hangs alone while the fast files finish.
    (tree / "slow.bin").write_bytes(b"BATCHSCAN-FAULT sleep 30 " + b" " * 1_100_000)
    out = tmp_path / "partial.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "batchscan", "scan", str(tree), "-f", "jsonl", "-o", str(out),
         "-j", "2", "-t", "60"],
        env={**os.environ, "BATCHSCAN_FAULT_INJECTION": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # a suite run as a background job has SIGINT ignored, which exec keeps: restore it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not out.exists() or not out.read_bytes()):
        time.sleep(0.1)
    process.send_signal(sig)
    assert process.wait(timeout=30) == 130
    records = jsonl(out.read_text())
    assert records and all(not r["path"].endswith(".bin") for r in records)


def test_bad_usage_exits_2() -> None:
    assert batchscan("scan").returncode == 2
    assert batchscan("scan", ".", "--max-file-size", "lots").returncode == 2
