"""Command line: arguments in, a writer chosen, the engine run, an exit code out.

`batchscan scan [OPTIONS] PATH...` (also `batchscan PATH...`, as ModelAudit accepts). Options
shared with ModelAudit keep its spelling: -b/--blacklist, -f/--format, -o/--output,
-t/--timeout, -v/--verbose, --max-file-size.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from batchscan import __version__, selection
from batchscan.config import ScanConfig, parse_size
from batchscan.coordinator import Engine
from batchscan.outputs.summary import EXIT_INTERRUPTED, Summary
from batchscan.outputs.writers import (
    FlatJsonlWriter,
    JsonlWriter,
    JsonWriter,
    SarifWriter,
    TextWriter,
    Writer,
)
from batchscan.records import ScanRecord, Severity, Status
from batchscan.sandbox import degraded, refusal_of, supported_layers
from batchscan.schema import record_from_dict
from batchscan.sources import Item
from batchscan.sources.local import FOLLOW_CHOICES

COMMANDS = ("scan", "report", "doctor")


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
    scan.add_argument("-f", "--format", choices=("text", "json", "jsonl", "sarif"),
                      default="text")
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
    scan.add_argument("--fail-on-unsupported", action="store_true",
                      help="exit code 2 when a file's format is not understood (status "
                      "unsupported), as for files that could not be fully scanned")
    scan.add_argument("--no-hash", action="store_true", help="do not compute sha256")
    scan.add_argument("--follow-symlinks", choices=FOLLOW_CHOICES, default="args",
                      help="never, only command-line args (default), or always")
    scan.add_argument("--one-file-system", action="store_true",
                      help="do not descend into other file systems")
    scan.add_argument("--max-depth", type=int, metavar="N", help="directory depth limit")
    scan.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    scan.add_argument("--flatten", action="store_true",
                      help="with -f jsonl: one row per finding instead of per file")
    scan.add_argument("--summary", metavar="FILE", help="also write the run summary as JSON")
    scan.add_argument("--shard", metavar="K/N",
                      help="scan only shard K of N (stable hash of the path); K may be auto")
    scan.add_argument("--include", action="append", default=[], metavar="GLOB",
                      help="scan only matching paths or names (repeatable)")
    scan.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                      help="skip matching paths or names (repeatable)")
    scan.add_argument("--executor", choices=("local", "dask"), default="local",
                      help="scan here, or ship shards to a Dask cluster (--scheduler)")
    scan.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                      help="Dask scheduler address for --executor dask")
    scan.add_argument("--baseline", metavar="OLD.jsonl",
                      help="report only findings not in this earlier run "
                           "(matched on rule, path, sha256, member)")
    scan.add_argument("--cache", metavar="DIR",
                      help="reuse results of unchanged content (SQLite in DIR, shared by runs)")
    scan.add_argument("--download-dir", metavar="DIR",
                      help="scratch directory for hf:// files (default: the system temp dir)")
    scan.add_argument("--max-download-bytes", type=_size, metavar="SIZE",
                      help="disk budget: hf:// files downloaded and not yet scanned never "
                           "exceed this; a larger file is too_large (default: no budget)")
    scan.add_argument("--resume", action="store_true",
                      help="with -o FILE -f jsonl: skip files already recorded there, append")
    report = sub.add_parser("report", help="re-render saved JSONL without rescanning")
    report.add_argument("runs", nargs="+", metavar="RUN.jsonl")
    report.add_argument("-f", "--format", choices=("text", "json", "jsonl", "sarif"),
                        default="text")
    report.add_argument("-o", "--output", metavar="FILE")
    report.add_argument("-v", "--verbose", action="store_true")
    report.add_argument("--fail-on", choices=("error", "warning", "info"), default="warning")
    report.add_argument("--fail-on-unsupported", action="store_true")
    report.add_argument("--flatten", action="store_true")
    sub.add_parser("doctor", help="which sandbox layers this machine supports, and whether "
                                  "each was applied in a test worker")
    return parser


def run_doctor() -> int:
    """Print the kernel's support for each layer, then start one real worker, scan one
    harmless file, and print what the worker reported. Exit 0: every layer applied."""
    import tempfile

    out = sys.stdout
    out.write(f"batchscan {__version__}\nsupported by this machine:\n")
    for name, value in supported_layers():
        out.write(f"  {name:<14} {value}\n")
    with tempfile.TemporaryDirectory(prefix="batchscan-doctor-") as folder:
        probe = Path(folder) / "probe.pkl"
        probe.write_bytes(b"\x80\x04K\x01.")
        engine = Engine(ScanConfig(jobs=1, timeout=60.0))
        records = list(engine.run([str(probe)]))
    status = engine.stats.sandbox
    out.write("applied in a test worker:\n")
    for key, value in sorted(status.items()):
        out.write(f"  {key:<17} {value}\n")
    problems = degraded(status)
    refused = refusal_of(status)
    scanned = bool(records) and records[0].status is Status.CLEAN
    out.write(f"test scan: {'clean, as expected' if scanned else 'FAILED'}\n")
    if refused:
        out.write(f"workers refuse to scan on this machine: {refused}\n")
    elif problems:
        out.write("degraded (scans run, the summary says so): " + "; ".join(problems) + "\n")
    else:
        out.write("every layer applied\n")
    return 0 if scanned and not problems else 2


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
def _open_output(path: str | None, binary: bool, append: bool = False) -> Iterator[Any]:
    """stdout or a file, binary for JSON/JSONL/SARIF (orjson writes bytes), text otherwise."""
    if path is None:
        yield sys.stdout.buffer if binary else sys.stdout
        return
    mode = ("ab" if append else "wb") if binary else "w"
    with open(path, mode, encoding=None if binary else "utf-8") as handle:
        yield handle


def run_report(args: argparse.Namespace) -> int:
    """Re-render saved JSONL (several runs or shards may be given) as any output format."""
    summary = Summary(fail_on=Severity(args.fail_on),
                      fail_on_unsupported=args.fail_on_unsupported)
    records = []
    for run in args.runs:
        with open(run, "rb") as handle:
            for line in handle:
                if line.strip():
                    try:
                        records.append(record_from_dict(orjson.loads(line)))
                    except (orjson.JSONDecodeError, KeyError, ValueError) as exc:
                        raise SystemExit(f"batchscan: {run}: not a record: {exc}") from exc
    run_id = records[0].run_id if records else "report"
    binary = args.format in ("json", "jsonl", "sarif")
    with _open_output(args.output, binary) as out:
        writer = _writer(args.format, out, run_id, args.verbose, args.flatten)
        for record in records:
            writer.write(record)
            summary.add(record)
        writer.finish(summary.as_dict(0.0, {"run_id": run_id, "interrupted": False}))
    return summary.exit_code()


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
        cache_dir=args.cache,
        download_dir=args.download_dir,
        max_download_bytes=args.max_download_bytes,
    )


def _writer(fmt: str, out: Any, run_id: str, verbose: bool, flatten: bool) -> Writer:
    if fmt == "jsonl":
        return FlatJsonlWriter(out) if flatten else JsonlWriter(out)
    if fmt == "json":
        return JsonWriter(out, run_id)
    if fmt == "sarif":
        return SarifWriter(out, run_id)
    return TextWriter(out, verbose=verbose)


def _selection(args: argparse.Namespace) -> Callable[[Item], bool] | None:
    predicates = []
    if args.shard:
        index, total = selection.parse_shard(args.shard)
        predicates.append(selection.in_shard(index, total))
    if args.include or args.exclude:
        predicates.append(selection.globs(args.include, args.exclude))
    if args.resume:
        predicates.append(selection.not_done(selection.load_checkpoint(Path(args.output))))
    predicates.append(selection.ignored_by_files(args.paths))
    return selection.combine(predicates)


def _without_baseline(record: ScanRecord, known: set[tuple[str, str, str | None, str | None]],
                      ) -> ScanRecord:
    kept = tuple(f for f in record.findings
                 if (f.rule_id, record.path, record.sha256, f.member) not in known)
    if len(kept) == len(record.findings):
        return record
    status = record.status
    if status is Status.FINDINGS and not any(f.severity is not Severity.DEBUG for f in kept):
        status = Status.CLEAN
    return dataclasses.replace(record, findings=kept, status=status)


class _NoProgress:
    """Stands in for tqdm when stderr is not a terminal (tqdm's import alone is 30 ms)."""

    total: int | None = None

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar() -> Any:
    from tqdm import tqdm

    return tqdm(unit=" files", file=sys.stderr, dynamic_ncols=True)


def run_scan(args: argparse.Namespace) -> int:
    if args.resume and (args.output is None or args.format != "jsonl"):
        raise SystemExit("batchscan: --resume needs -o FILE and -f jsonl")
    config = config_from_args(args)
    try:
        keep = _selection(args)
    except ValueError as exc:
        raise SystemExit(f"batchscan: {exc}") from exc
    engine = Engine(config, keep=keep)
    summary = Summary(fail_on=Severity(args.fail_on),
                      fail_on_unsupported=args.fail_on_unsupported)
    binary = args.format in ("json", "jsonl", "sarif")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    interrupted = False
    try:
        with _open_output(args.output, binary, append=args.resume) as out:
            writer = _writer(args.format, out, engine.run_id, args.verbose, args.flatten)
            known = selection.load_baseline(Path(args.baseline)) if args.baseline else None
            show = sys.stderr.isatty() and not args.no_progress
            progress: Any = _progress_bar() if show else _NoProgress()
            if args.executor == "dask":
                if not args.scheduler:
                    raise SystemExit("batchscan: --executor dask needs --scheduler")
                from batchscan.executors import dask as dask_executor

                records = dask_executor.run(engine.items(args.paths), config, engine.run_id,
                                            args.scheduler)
            else:
                records = engine.run(args.paths)
            try:
                for record in records:
                    if known is not None:
                        record = _without_baseline(record, known)
                    writer.write(record)
                    summary.add(record)
                    progress.update(1)
                    if show and progress.total is None and engine.stats.walk_done:
                        progress.total = engine.stats.items_seen  # the walk is over: ETA
                        progress.refresh()
                    if show and summary.files % 64 == 0:
                        progress.set_postfix(MB=summary.bytes // 1_000_000,
                                             flagged=summary.failing,
                                             incomplete=summary.incomplete, refresh=False)
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
            summary_doc = summary.as_dict(engine.stats.wall_seconds, extra)
            writer.finish(summary_doc)
            if args.summary:
                Path(args.summary).write_bytes(orjson.dumps(summary_doc,
                                                            option=orjson.OPT_INDENT_2))
    finally:
        signal.signal(signal.SIGTERM, previous)
    if interrupted:
        return EXIT_INTERRUPTED
    return summary.exit_code()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_normalise_argv(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "doctor":
            return run_doctor()
        return run_report(args) if args.command == "report" else run_scan(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `batchscan ... | head`: the reader left; say nothing more.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
