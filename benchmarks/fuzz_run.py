"""Coordinator-level fuzzing for N minutes: rounds of mutants of every format's fixtures plus
hostile names, each round scanned in one CLI run, every property of tests/fixtures/fuzz.py
checked (run completes, one record per input, schema-valid, under the caps, no internal
exception names).

    nice -n 10 python benchmarks/fuzz_run.py --minutes 30 [--mutants 6] [--names 40] [--seed 1]

Prints one line per round and a total: mutants/s, failures, internal names, records over
the caps, status counts. Failing rounds keep their tree under --keep DIR for reproduction.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixtures.fuzz import build_tree, run_once


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--mutants", type=int, default=6, help="mutants per seed per round")
    parser.add_argument("--names", type=int, default=40, help="hostile names per round")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "fuzz-fail")
    args = parser.parse_args()
    deadline = time.monotonic() + args.minutes * 60
    started = time.monotonic()
    rng = random.Random(args.seed)
    totals: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    rounds = mutants = failures = internal = over = 0
    while time.monotonic() < deadline:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder) / "tree"
            expected = build_tree(root, rng, args.mutants, args.names)
            outcome = run_once(root, expected, timeout=args.timeout, jobs=args.jobs)
            rounds += 1
            mutants += outcome.inputs
            failures += len(outcome.failures)
            internal += outcome.internal_names
            over += outcome.over_caps
            statuses.update(outcome.statuses)
            totals["records"] += outcome.records
            elapsed = time.monotonic() - started
            print(f"round {rounds}: {outcome.inputs} inputs, {outcome.records} records, "
                  f"exit {outcome.exit_code}, failures {len(outcome.failures)}, "
                  f"{mutants / elapsed:.1f} mutants/s", flush=True)
            if outcome.failures:
                for failure in outcome.failures[:10]:
                    print("  FAIL", failure[:500], flush=True)
                target = args.keep / f"round-{rounds}"
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(root, target, symlinks=True)
    elapsed = time.monotonic() - started
    print(f"total: {rounds} rounds, {mutants} mutants in {elapsed:.0f} s "
          f"({mutants / elapsed:.1f} mutants/s); coordinator failures {failures}, "
          f"internal exception names {internal}, records over caps {over}, "
          f"records {totals['records']}")
    print("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
