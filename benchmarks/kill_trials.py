"""Kill trials: interrupt a scan at random, resume it, compare with an uninterrupted run.

    python benchmarks/kill_trials.py [--dir bench-data/kill] [--files 5000] [--trials 20]
                                     [--seed 14]

The tree: 5,000 entries (clean pickles in nested folders, harmless-malicious pickles,
files whose scanner raises (`error` records, fault injection), files over 1 MiB scheduled
alone, dangling links, and a Hugging Face cache folder whose blobs have several snapshot
names). One uninterrupted run gives the reference: a status per path and an exit code.

Each trial starts a fresh `--resume` output, interrupts the run after a random delay with
SIGKILL (the coordinator only, not its process group), SIGINT, or SIGINT followed by more
SIGINTs (an impatient user), then resumes it until it completes. A trial passes when:
the interrupted run exited as it should (130 after SIGINT, killed after SIGKILL, or the
reference code if it finished first); no process of the run is left after it ended; the
final output holds exactly one record per path, with the reference's status for each; and
the resumed run's exit code is the reference's (it covers the whole output).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EVIL = b"cposix\nsystem\n(Vtrue\ntR."
ENV = {**os.environ, "BATCHSCAN_FAULT_INJECTION": "1"}


def build(root: Path, files: int) -> None:
    marker = root.parent / f".complete-{files}"  # outside the tree: not a scanned file
    if marker.exists():
        return
    made = 0
    hub = root / "hub" / "models--org--model"
    (hub / "blobs").mkdir(parents=True, exist_ok=True)
    for blob in range(20):
        (hub / "blobs" / f"blob{blob:02d}").write_bytes(pickle.dumps({"blob": blob}, 4))
        for commit in range(5):  # five names per blob: alias records
            snap = hub / "snapshots" / f"commit{commit}"
            snap.mkdir(parents=True, exist_ok=True)
            link = snap / f"file{blob:02d}.pkl"
            if not link.is_symlink():
                link.symlink_to(f"../../blobs/blob{blob:02d}")
            made += 1
    index = 0
    while made < files:
        folder = root / f"org{index % 7}" / f"model{index % 31}" / f"rev{index % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = index % 100
        if kind == 0:
            (folder / f"evil{index}.pkl").write_bytes(EVIL)
        elif kind == 1:
            (folder / f"broken{index}.bin").write_bytes(b"BATCHSCAN-FAULT raise ")
        elif kind == 2:
            link = folder / f"dangling{index}"
            if not link.is_symlink():
                link.symlink_to(folder / "nowhere")
        elif kind == 3:
            (folder / f"big{index}.pkl").write_bytes(pickle.dumps(b"x" * 1_200_000, 4))
        else:
            (folder / f"w{index}.pkl").write_bytes(pickle.dumps({"i": index, "w": [index] * 30},
                                                                4))
        index += 1
        made += 1
    marker.touch()


def command(root: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "batchscan", "scan", str(root), "-f", "jsonl", "-o",
            str(out), "--resume", "-j", "2", "--no-progress"]


def statuses(out: Path) -> tuple[dict[str, str], int]:
    found: dict[str, str] = {}
    lines = 0
    for line in out.read_bytes().splitlines():
        if line.strip():
            record = json.loads(line)
            found[record["path"]] = record["status"]
            lines += 1
    return found, lines


def session_alive(sid: int) -> list[int]:
    """Processes still in the run's session (the coordinator started a new one)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            alive.append(int(entry.name))
    return alive


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setsid()


def trial(root: Path, out: Path, kind: str, delay: float) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    process = subprocess.Popen(command(root, out), env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, preexec_fn=default_sigint)
    time.sleep(delay)
    if kind == "SIGKILL":
        process.kill()
    elif kind == "SIGINT":
        process.send_signal(signal.SIGINT)
    else:
        end = time.monotonic() + 0.5
        while time.monotonic() < end and process.poll() is None:
            process.send_signal(signal.SIGINT)
            time.sleep(0.02)
    _, stderr = process.communicate(timeout=120)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and session_alive(process.pid):
        time.sleep(0.1)
    left = session_alive(process.pid)
    partial = statuses(out)[1] if out.exists() else 0
    resumed = subprocess.run(command(root, out), env=ENV, capture_output=True, timeout=600,
                             check=False, preexec_fn=default_sigint)
    return {"kind": kind, "delay": delay, "rc": process.returncode, "partial": partial,
            "left": left, "resumed_rc": resumed.returncode,
            "stderr": (stderr.decode(errors="replace") + resumed.stderr.decode(
                errors="replace"))[-400:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="bench-data/kill")
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    base = Path(args.dir).resolve()
    root = base / "tree"
    build(root, args.files)
    reference_out = base / "reference.jsonl"
    for _ in range(2):  # the second run is warm: its wall time scales the delays
        reference_out.unlink(missing_ok=True)
        started = time.monotonic()
        reference = subprocess.run(command(root, reference_out), env=ENV,
                                   capture_output=True, timeout=900, check=False)
        wall = time.monotonic() - started
    expected, expected_lines = statuses(reference_out)
    print(f"reference: {expected_lines} records, {len(expected)} paths, exit "
          f"{reference.returncode}, {wall:.1f} s; statuses "
          f"{dict(collections.Counter(expected.values()))}")
    rng = random.Random(args.seed)
    kinds = ["SIGKILL", "SIGINT", "double-SIGINT"]
    passed = 0
    by_kind: collections.Counter[str] = collections.Counter()
    for number in range(args.trials):
        kind = kinds[number % 3]
        delay = rng.uniform(0.3, max(0.4, wall * 0.85))
        out = base / f"trial{number:02d}.jsonl"
        for _ in range(4):  # a run that finished before the signal proves little: again
            result = trial(root, out, kind, delay)
            finished_first = result["partial"] == expected_lines
            if not finished_first:
                break
            delay *= 0.6
        found, lines = statuses(out)
        expected_rc = {"SIGKILL": -9}.get(kind, 130)
        rc_ok = result["rc"] == expected_rc or (finished_first
                                                and result["rc"] == reference.returncode)
        wrong = [p for p in expected if found.get(p) != expected[p]]
        extra = [p for p in found if p not in expected]
        ok = (rc_ok and not result["left"] and lines == expected_lines and not wrong
              and not extra and result["resumed_rc"] == reference.returncode)
        passed += ok
        by_kind[kind] += ok
        print(f"trial {number:2d} {kind:13} at {delay:5.2f} s: exit {result['rc']:4}"
              f", {result['partial']:5} records before, left running {len(result['left'])}; "
              f"resumed exit {result['resumed_rc']}, {lines} records, {len(wrong)} wrong "
              f"status, {len(extra)} extra -> {'ok' if ok else 'FAIL'}")
        if not ok:
            print("   ", result["stderr"].replace("\n", "\n    "))
        out.unlink(missing_ok=True)
    print(f"{passed}/{args.trials} trials passed ({dict(by_kind)})")
    sys.exit(0 if passed == args.trials else 1)


if __name__ == "__main__":
    main()
