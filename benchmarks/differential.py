"""Long differential run: batchscan against CPython's unpicklers over mutated pickles (issue 13).

    nice -n 10 .venv/bin/python benchmarks/differential.py --minutes 30 [--seed N] [--out DIR]

Mutants of the seeds in tests/oracle.py (every protocol, FRAME, memo, nesting) are cut,
corrupted, spliced and extended at opcode boundaries; each is run through the C unpickler
(bytes, unbuffered file, buffered file, latin-1) and the pure-Python one with a recording
`find_class` that returns inert stubs (nothing real is imported or called), and scanned by
batchscan as a worker scans a file. Prints mutants/s, how many mutants made a loader resolve
a global the policy denies, how many of those batchscan reported `clean`, and every
divergence (also written to DIR/divergence-N.bin for a regression case).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import oracle  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", type=Path, default=Path("differential-out"))
    args = parser.parse_args()
    # A mutated length may ask the C unpickler for gigabytes: it must fail, not swap.
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    rng = random.Random(args.seed)
    deadline = time.monotonic() + 60 * args.minutes
    started = time.monotonic()
    total = reached = clean_denied = 0
    divergences: list[tuple[bytes, str]] = []
    last_report = started
    for data in oracle.mutants(rng):
        now = time.monotonic()
        if now > deadline:
            break
        total += 1
        runs = oracle.loader_runs(data)
        resolved = oracle.denied(runs)
        scanned = oracle.batchscan_result(data)
        if resolved:
            reached += 1
            if scanned.status == "clean":
                clean_denied += 1
        why = oracle.verdict(resolved, scanned)
        if why is not None:
            divergences.append((data, why))
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"divergence-{len(divergences)}.bin").write_bytes(data)
            print(f"DIVERGENCE {len(divergences)}: {why}\n  {data!r}"[:2000], flush=True)
        if now - last_report > 60:
            last_report = now
            print(f"[{(now - started) / 60:.1f} min] mutants={total} "
                  f"rate={total / (now - started):.0f}/s reached_denied={reached} "
                  f"clean_when_denied={clean_denied} divergences={len(divergences)}",
                  flush=True)
    elapsed = time.monotonic() - started
    print(f"seed={args.seed} minutes={elapsed / 60:.1f} mutants={total} "
          f"mutants_per_s={total / elapsed:.0f}")
    print(f"a loader resolved a denied global: {reached}; batchscan clean on them: "
          f"{clean_denied}; divergences: {len(divergences)}")
    return 1 if divergences else 0


if __name__ == "__main__":
    sys.exit(main())
