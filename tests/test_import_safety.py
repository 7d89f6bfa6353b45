"""No process of the engine imports code from the folder it is started in or scans.

A model repository can ship any folder. Python starts multiprocessing's helper processes
(the workers' forkserver, the resource tracker) as `python -c ...`, which puts the current
directory first on the import path; a `workers/`, `batchscan/` or `multiprocessing/` folder
there would run, outside any sandbox, in a plain `cd checkout && batchscan scan .`.
Each planted package writes a marker file when imported: the test judges by that effect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchscan.forkserver import import_path

# Names the engine's processes import (ours, the standard library's, our dependencies').
PLANTED = ("workers", "batchscan", "multiprocessing", "pebble", "yaml", "h5py", "orjson",
           "py7zr", "encodings_extra", "sitecustomize", "usercustomize")


def hostile_checkout(root: Path, markers: Path) -> Path:
    checkout = root / "checkout"
    for name in PLANTED:
        package = checkout / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            "import pathlib\n"
            f"pathlib.Path({str(markers / name)!r}).write_text('imported')\n"
        )
    (checkout / "sitecustomize.py").write_text(
        f"open({str(markers / 'sitecustomize.py')!r}, 'w').write('imported')\n")
    (checkout / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    return checkout


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def planted_records(stdout: str, checkout: Path) -> int:
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    expected = sum(1 for p in checkout.rglob("*") if p.is_file())
    assert len(records) == expected
    return len(records)


@pytest.mark.sandbox
def test_console_script_started_inside_a_hostile_checkout(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    checkout = hostile_checkout(tmp_path, markers)
    script = Path(sys.executable).parent / "batchscan"
    result = run([str(script), "scan", ".", "-f", "jsonl", "-j", "2"], cwd=checkout)
    assert sorted(p.name for p in markers.iterdir()) == []
    assert result.returncode in (0, 1), result.stderr
    planted_records(result.stdout, checkout)


@pytest.mark.sandbox
def test_python_m_started_elsewhere_scanning_a_hostile_checkout(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    checkout = hostile_checkout(tmp_path, markers)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run([sys.executable, "-m", "batchscan", "scan", str(checkout), "-f", "jsonl"],
                 cwd=elsewhere)
    assert sorted(p.name for p in markers.iterdir()) == []
    assert result.returncode in (0, 1), result.stderr
    planted_records(result.stdout, checkout)


def test_import_path_drops_every_spelling_of_the_current_directory(tmp_path: Path) -> None:
    other = tmp_path / "lib"
    other.mkdir()
    path = ["", ".", str(tmp_path), str(tmp_path) + "/", str(other), "/usr/lib/python3"]
    assert import_path(path, tmp_path) == [str(other), "/usr/lib/python3"]
