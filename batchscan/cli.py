"""Command line: arguments in, a writer chosen, the engine run, an exit code out.

`batchscan scan [OPTIONS] PATH...` (also `batchscan PATH...`, as ModelAudit accepts). Options
shared with ModelAudit keep its spelling: -b/--blacklist, -f/--format, -o/--output,
-t/--timeout, -v/--verbose, --max-file-size.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

from tqdm import tqdm

from batchscan import __version__
from batchscan.config import ScanConfig, parse_size
from batchscan.coordinator import Engine
from batchscan.outputs.summary import EXIT_INTERRUPTED, Summary
from batchscan.outputs.writers import JsonlWriter, JsonWriter, TextWriter, Writer
from batchscan.records import Severity
from batchscan.sandbox import degraded
from batchscan.sources.local import FOLLOW_CHOICES

COMMANDS = ("scan",)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchscan",
        description="Sandboxed, multiprocess security scanner for ML model files.",
    )
    parser.add_argument("--version", action="version", version=f"batchscan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    scan = sub.add_parser("scan", help="scan files, directories and @FILE lists")
    scan.add_argument("paths", nargs="+", metavar="PATH",
                      help="file, directory, or @FILE (one target per line)")
    scan.add_argument("-b", "--blacklist", action="append", default=[], metavar="PATTERN",
                      help="extra name pattern to flag in file and global names (repeatable)")
    scan.add_argument("-f", "--format", choices=("text", "json", "jsonl"), default="text")
    scan.add_argument("-o", "--output", metavar="FILE", help="write there instead of stdout")
    scan.add_argument("-t", "--timeout", type=_positive_float, default=300.0,
                      help="hard wall-clock limit per file in seconds (default 300)")
    scan.add_argument("-v", "--verbose", action="store_true",
                      help="include DEBUG findings and clean files in text output")
    scan.add_argument("--max-file-size", type=_size, metavar="BYTES",
                      help="larger files get status too_large and are never read (500MB, 2GiB)")
    scan.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                      help="worker processes (default: CPU count)")
    scan.add_argument("--memory-limit", type=_size, default=4 * 1024**3, metavar="SIZE",
                      help="per-worker memory cap (default 4GiB)")
    scan.add_argument("--fail-on", choices=("error", "warning", "info"), default="warning",
                      help="lowest severity that makes the exit code 1 (default warning)")
    scan.add_argument("--no-hash", action="store_true", help="do not compute sha256")
    scan.add_argument("--follow-symlinks", choices=FOLLOW_CHOICES, default="args",
                      help="never, only command-line args (default), or always")
    scan.add_argument("--one-file-system", action="store_true",
                      help="do not descend into other file systems")
    scan.add_argument("--max-depth", type=int, metavar="N", help="directory depth limit")
    scan.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def _normalise_argv(argv: Sequence[str]) -> list[str]:
    args = list(argv)
    if args and args[0] not in COMMANDS and not args[0].startswith("-"):
        args.insert(0, "scan")
    return args


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: stop cleanly with a valid output."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


@contextlib.contextmanager
def _open_output(path: str | None, binary: bool) -> Iterator[Any]:
    """stdout or a file, binary for JSON/JSONL (orjson writes bytes), text otherwise."""
    if path is None:
        yield sys.stdout.buffer if binary else sys.stdout
        return
    with open(path, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
        yield handle


def config_from_args(args: argparse.Namespace) -> ScanConfig:
    return ScanConfig(
        jobs=max(1, args.jobs),
        timeout=args.timeout,
        memory_limit=args.memory_limit,
        max_file_size=args.max_file_size,
        hash=not args.no_hash,
        verbose=args.verbose,
        blacklist=tuple(args.blacklist),
        follow_symlinks=args.follow_symlinks,
        one_file_system=args.one_file_system,
        max_depth=args.max_depth,
        fault_injection=os.environ.get("BATCHSCAN_FAULT_INJECTION") == "1",
    )


def run_scan(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    engine = Engine(config)
    summary = Summary(fail_on=Severity(args.fail_on))
    binary = args.format in ("json", "jsonl")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    interrupted = False
    try:
        with _open_output(args.output, binary) as out:
            writer: Writer
            if args.format == "jsonl":
                writer = JsonlWriter(out)
            elif args.format == "json":
                writer = JsonWriter(out, engine.run_id)
            else:
                writer = TextWriter(out, verbose=args.verbose)
            show = sys.stderr.isatty() and not args.no_progress
            progress = tqdm(unit=" files", file=sys.stderr, disable=not show, dynamic_ncols=True)
            try:
                for record in engine.run(args.paths):
                    writer.write(record)
                    summary.add(record)
                    progress.update(1)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                progress.close()
            extra: dict[str, Any] = {
                "run_id": engine.run_id,
                "scanner_version": __version__,
                "interrupted": interrupted,
                "sandbox_degraded": degraded(engine.stats.sandbox),
                "pool_rebuilds": engine.stats.pool_rebuilds,
            }
            writer.finish(summary.as_dict(engine.stats.wall_seconds, extra))
    finally:
        signal.signal(signal.SIGTERM, previous)
    if interrupted:
        return EXIT_INTERRUPTED
    return summary.exit_code()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_normalise_argv(sys.argv[1:] if argv is None else argv))
    try:
        return run_scan(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `batchscan ... | head`: the reader left; say nothing more.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
