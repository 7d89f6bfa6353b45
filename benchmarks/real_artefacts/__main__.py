"""Write the benign real-library artefacts: `python -m benchmarks.real_artefacts OUT`.

Each writer runs in its own child process (a library that crashes or leaks memory takes only
its own entry with it). Writers already recorded as written are kept unless `--force`; writers
whose library does not import here are recorded as `missing`, so running this again with
another interpreter (say a venv with TensorFlow) fills in the same folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

from benchmarks.real_artefacts import WRITERS, Out, Writer, write_manifest


def run_one(root: Path, writer: Writer) -> int:
    out = Out(root, writer.library)
    shutil.rmtree(out.base, ignore_errors=True)
    out.base.mkdir(parents=True)
    try:
        writer.load()(out)
    except ImportError as exc:
        if any(p.is_file() for p in out.base.rglob("*")):
            # an optional part needed a package this interpreter lacks: keep the rest
            write_manifest(root, writer, "partial", f"{type(exc).__name__}: {exc}", out)
            return 0
        shutil.rmtree(out.base, ignore_errors=True)
        write_manifest(root, writer, "missing", f"{type(exc).__name__}: {exc}", None)
        return 0
    except Exception as exc:
        traceback.print_exc()
        write_manifest(root, writer, "partial", f"{type(exc).__name__}: {exc}", out)
        return 0
    write_manifest(root, writer, "written", "", out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", default="", help="comma-separated libraries")
    parser.add_argument("--force", action="store_true", help="rewrite libraries already written")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root: Path = args.out.resolve()
    by_name = {w.library: w for w in WRITERS}
    if args.one:
        return run_one(root, by_name[args.one])
    only = {name for name in args.only.split(",") if name}
    for writer in WRITERS:
        if only and writer.library not in only:
            continue
        manifest = root / "manifest" / f"{writer.library}.json"
        if manifest.is_file() and not args.force:
            status = json.loads(manifest.read_text())["status"]
            if status in ("written", "partial"):
                continue
        print(f"[{sys.executable}] writing {writer.library}", file=sys.stderr, flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.real_artefacts", str(root), "--one", writer.library],
            check=False, timeout=1800,
        )
        if result.returncode != 0:
            existing = Out(root, writer.library)
            write_manifest(root, writer, "partial" if existing.base.exists() else "failed",
                           f"writer process exited with {result.returncode}",
                           existing if existing.base.exists() else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
