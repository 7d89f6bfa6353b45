"""tokenizer.json at parser speed: worker time and MB/s on a 6 MB and a 30 MB file.

    .venv/bin/python benchmarks/tokenizer_json.py [--tokenizers-python PY] [--dir DIR]
                                                  [--repeat 5]

The files are written once by the `tokenizers` library (byte-level BPE, a synthetic
vocabulary with one merge per learned token, see hub_repo.py) through `--tokenizers-python`,
an interpreter that has it (default /work/realvenv/bin/python; the project's .venv does not).
Each is scanned `--repeat` times by the CLI (`-j 1`, sha256 on); the row shows the median of
the record's `duration_ms` (the worker's time for the file: read, hash, parse, checks) and
the MB/s it gives, the median whole-process wall time, the CPU time of the same work done in
this process (`scan_file`, what a worker runs per file: read, detect, scan, sha256; best of
--repeat, which a loaded machine does not inflate the way it inflates wall time), and for
reference orjson.loads of the same bytes (best of --repeat CPU times). Target (issue 18):
>= 100 MB/s.
A copy of each file with a Jinja payload placed in a merge is scanned too: it must be found.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

from batchscan.workers.task import WorkerOptions, scan_file

HERE = Path(__file__).resolve().parent
# vocabulary sizes that give about 6 MB and 30 MB pretty-printed (the library's own layout)
FILES = {"tokenizer-6mb.json": 64_000, "tokenizer-30mb.json": 300_000}
SSTI = "{{ cycler.__init__.__globals__.os.popen('true').read() }}"


def write(python: str, out: Path, vocab: int) -> None:
    if not out.exists():
        subprocess.run([python, str(HERE / "hub_repo.py"), "tokenizer", "--kind", "bpe",
                        "--vocab", str(vocab), str(out)], check=True)


def poisoned(path: Path) -> Path:
    """The same file with one merge replaced by a template payload (deep in the bulk)."""
    out = path.with_name(path.stem + "-ssti.json")
    if not out.exists():
        document = orjson.loads(path.read_bytes())
        merges = document["model"]["merges"]
        middle = len(merges) // 2
        merges[middle] = [SSTI, "x"] if isinstance(merges[middle], list) else SSTI + " x"
        out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return out


def scan(path: Path) -> tuple[dict[str, object], float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "batchscan", "scan", "-j", "1", "-f", "jsonl",
                           "--no-progress", str(path)], capture_output=True, check=False)
    wall = time.perf_counter() - start
    if done.stderr:
        sys.stderr.write(done.stderr.decode("utf-8", "replace"))
    record: dict[str, object] = json.loads(done.stdout.splitlines()[0])
    return record, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizers-python", default="/work/realvenv/bin/python")
    parser.add_argument("--dir", default="bench-data/tokenizers")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{'file':24} {'MB':>6} {'worker ms':>10} {'MB/s':>7} {'wall s':>7} "
          f"{'CPU ms':>7} {'CPU MB/s':>9} {'orjson ms':>10} {'orjson MB/s':>12}  status")
    for name, vocab in FILES.items():
        path = folder / name
        write(args.tokenizers_python, path, vocab)
        raw = path.read_bytes()
        megabytes = len(raw) / 1e6
        runs = [scan(path) for _ in range(args.repeat)]
        worker = statistics.median(float(r["duration_ms"]) for r, _ in runs)  # type: ignore[arg-type]
        wall = statistics.median(w for _, w in runs)
        cpu = []
        for _ in range(args.repeat):
            start = time.process_time()
            scan_file(str(path), WorkerOptions())
            cpu.append((time.process_time() - start) * 1000)
        parse = []
        for _ in range(args.repeat):
            start = time.process_time()
            orjson.loads(raw)
            parse.append((time.process_time() - start) * 1000)
        statuses = sorted({f"{r['format']}/{r['status']}" for r, _ in runs})
        print(f"{name:24} {megabytes:6.1f} {worker:10.1f} {megabytes / worker * 1000:7.0f} "
              f"{wall:7.2f} {min(cpu):7.1f} {megabytes / min(cpu) * 1000:9.0f} "
              f"{min(parse):10.1f} {megabytes / min(parse) * 1000:12.0f}  "
              f"{','.join(statuses)}")
        bad, _ = scan(poisoned(path))
        rules = sorted({str(f["rule_id"]) for f in bad["findings"]})  # type: ignore[attr-defined]
        print(f"  with a Jinja payload in merges[{len(orjson.loads(raw)['model']['merges']) // 2}]:"
              f" {bad['status']} {bad['max_severity']} {rules} in {bad['duration_ms']:.0f} ms")


if __name__ == "__main__":
    main()
