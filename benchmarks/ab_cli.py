"""The same batchscan command under two (or more) installations, alternated: wall and CPU.

    .venv/bin/python benchmarks/ab_cli.py --python /work/wt-old/.venv/bin/python \\
        --python .venv/bin/python --repeat 3 -- scan TREE -j 2 -f jsonl -o /dev/null

Each round runs every interpreter once, in turn (a loaded machine drifts: alternating spreads
the drift over all of them); `benchmarks/measure.py` measures the whole process tree (wall
time, CPU time from /proc including the pool workers, peak RSS). Prints every run and the
median per interpreter.
"""

from __future__ import annotations

import argparse
import statistics

import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", required=True,
                        help="an interpreter with batchscan installed (repeat the option)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="batchscan arguments after --")
    args = parser.parse_args()
    command = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] \
        else args.command
    runs: dict[str, list[measure.Measured]] = {python: [] for python in args.python}
    for round_ in range(args.repeat):
        for python in args.python:
            result = measure.run([python, "-m", "batchscan", *command])
            runs[python].append(result)
            print(f"round {round_ + 1} {python}: wall {result.wall:.2f} s, cpu "
                  f"{result.cpu:.2f} s, exit {result.returncode}", flush=True)
    for python, results in runs.items():
        print(f"median {python}: wall {statistics.median(r.wall for r in results):.2f} s, "
              f"cpu {statistics.median(r.cpu for r in results):.2f} s "
              f"({len(results)} runs)")


if __name__ == "__main__":
    main()
