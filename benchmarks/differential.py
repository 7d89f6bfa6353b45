"""Long differential run: batchscan against CPython's unpicklers over mutated pickles (issue 13).

    nice -n 10 .venv/bin/python benchmarks/differential.py --minutes 30 [--seed N] [--out DIR]

Mutants of the seeds in tests/oracle.py (every protocol, FRAME, memo, nesting) are cut,
corrupted, spliced and extended at opcode boundaries; each is run through the C unpickler
(bytes, unbuffered file, buffered file, latin-1) and the pure-Python one with a recording
`find_class` that returns inert stubs (nothing real is imported or called), and scanned by
batchscan as a worker scans a file. Every Nth mutant (`--entry-every`) also goes through the
real entry points with the stub unpickler: `torch.load(weights_only=False)` as a torch zip's
`data.pkl` and as a legacy file, `joblib.load` and `numpy.load(allow_pickle=True)` (each only
when installed). Prints mutants/s, how many mutants made a loader resolve
a global the policy denies, how many of those batchscan reported `clean`, and every
divergence (also written to DIR/divergence-N.bin for a regression case).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import pickle
import random
import resource
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import oracle  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", type=Path, default=Path("differential-out"))
    parser.add_argument("--entry-every", type=int, default=10, metavar="N",
                        help="every Nth mutant also goes through torch.load (as a torch zip's "
                        "data.pkl and as a legacy file), joblib.load and numpy.load; 0: never")
    args = parser.parse_args()
    # A mutated length may ask the C unpickler for gigabytes: it must fail, not swap.
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    rng = random.Random(args.seed)
    deadline = time.monotonic() + 60 * args.minutes
    started = time.monotonic()
    total = reached = clean_denied = 0
    entry = {"torch-zip": [0, 0], "torch-legacy": [0, 0], "joblib": [0, 0], "numpy": [0, 0]}
    checks = _entry_checks() if args.entry_every else []
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
        verdicts = [("pickle", data, oracle.verdict(resolved, scanned))]
        if checks and total % args.entry_every == 0:
            for label, wrap, run, name in checks:
                wrapped = wrap(data)
                denied = oracle.denied([run(wrapped)])
                got = oracle.batchscan_result(wrapped, name)
                entry[label][0] += 1
                if denied:
                    entry[label][1] += 1
                    if got.status == "clean":
                        clean_denied += 1
                verdicts.append((label, wrapped, oracle.verdict(denied, got)))
        for label, sample, why in verdicts:
            if why is None:
                continue
            divergences.append((sample, why))
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"divergence-{len(divergences)}.bin").write_bytes(sample)
            print(f"DIVERGENCE {len(divergences)} [{label}]: {why}\n  {sample!r}"[:2000],
                  flush=True)
        if now - last_report > 60:
            last_report = now
            print(f"[{(now - started) / 60:.1f} min] mutants={total} "
                  f"rate={total / (now - started):.0f}/s reached_denied={reached} "
                  f"clean_when_denied={clean_denied} divergences={len(divergences)}",
                  flush=True)
    elapsed = time.monotonic() - started
    print(f"seed={args.seed} minutes={elapsed / 60:.1f} mutants={total} "
          f"mutants_per_s={total / elapsed:.0f}")
    print(f"a CPython unpickler resolved a denied global: {reached}; batchscan clean on "
          f"any mutant a loader resolved a denied global in: {clean_denied}; "
          f"divergences: {len(divergences)}")
    for label, (runs, denied) in entry.items():
        print(f"  through {label}: {runs} files, {denied} resolved a denied global")
    return 1 if divergences else 0


def _entry_checks() -> list[tuple[str, Any, Any, str]]:
    """(label, wrap the mutant, loader run, file name) for the loaders that are installed."""
    out: list[tuple[str, Any, Any, str]] = []
    if importlib.util.find_spec("torch") is not None:
        out.append(("torch-zip", _torch_zip, oracle.torch_load_run, "model.pt"))
        out.append(("torch-legacy", _legacy, oracle.torch_load_run, "model.pt"))
    if importlib.util.find_spec("joblib") is not None:
        out.append(("joblib", bytes, oracle.joblib_load_run, "model.joblib"))
    if importlib.util.find_spec("numpy") is not None:
        out.append(("numpy", bytes, oracle.numpy_load_run, "weights.npy"))
    return out


def _torch_zip(pkl: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pkl)
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/byteorder", "little")
    return buffer.getvalue()


def _legacy(main: bytes) -> bytes:
    header = (pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2)
              + pickle.dumps({"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 8}}, 2))
    return header + main + pickle.dumps([], 2)


if __name__ == "__main__":
    sys.exit(main())
