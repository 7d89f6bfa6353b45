"""Command line: arguments in, a writer chosen, the engine run, an exit code out.

`batchscan scan [OPTIONS] PATH...` (also `batchscan [OPTIONS] PATH...` and
`batchscan scan-model ...`, as ModelAudit and `promptfoo scan-model` accept). Options shared
with ModelAudit keep its spelling: -b/--blacklist, -f/--format, -o/--output, -t/--timeout,
-v/--verbose, --max-file-size; its other scan options are accepted with their meaning
(`--max-size`, `--strict`, `-q/--quiet`, `--progress`, `--list-scanners`, `--cache-dir`,
`--no-cache`, `--stream`, `--no-whitelist`) or rejected with the batchscan way to do it
(`MODELAUDIT_REJECTED`). `--compat modelaudit` makes `-f json` ModelAudit's document.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from batchscan import __version__, selection
from batchscan.baseline import BaselineError, without_known
from batchscan.baseline import load as load_baseline
from batchscan.config import ScanConfig, available_cpus, parse_size
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
from batchscan.records import Severity, Status
from batchscan.sandbox import degraded, refusal_of, supported_layers
from batchscan.schema import record_from_dict
from batchscan.sources import Item
from batchscan.sources.local import FOLLOW_CHOICES

COMMANDS = ("scan", "report", "schema", "doctor", "ui")
ALIASES = {"scan-model": "scan"}  # `promptfoo scan-model ARGS` -> `batchscan scan-model ARGS`
GLOBAL_OPTIONS = ("-h", "--help", "--version")
MIN_MEMORY_LIMIT = 64 * 1024**2  # a worker interpreter with the scanners loaded needs ~40 MB

# ModelAudit scan options batchscan does not implement, with what to use instead.
MODELAUDIT_REJECTED = {
    "scanners": "--scanners: batchscan picks the scanner by content for every file and has "
                "no per-scanner switch; narrow the files with --include/--exclude GLOB",
    "exclude_scanner": "--exclude-scanner: batchscan picks the scanner by content; skip files "
                       "with --exclude GLOB or a .batchscanignore",
    "suppress": "-s/--suppress: use --baseline OLD.jsonl (suppresses known findings by "
                "sha256 + rule + member) or --fail-on",
    "severity": "-S/--severity: use --fail-on error|warning|info",
    "sbom": "--sbom: batchscan writes no SBOM; -f jsonl records carry path, size and sha256",
    "dry_run": "--dry-run: use -f jsonl with --max-file-size 0 to list what would be scanned",
    "assume_shard_family": "--assume-shard-family: not needed, hub repos are listed file by "
                           "file (hf://ORG/NAME)",
}


class UsageError(ValueError):
    """A fault of the invocation or of the environment (unwritable output, full disk): the
    run says so in one line and exits 2, never with a traceback or the "findings" code 1."""


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _memory(text: str) -> int:
    value = _size(text)
    if value < MIN_MEMORY_LIMIT:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {value} bytes, below the 64MiB a worker needs; give a unit "
            "(e.g. 512MiB, 4GiB)")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchscan",
        description="Sandboxed, multiprocess security scanner for ML model files.",
    )
    parser.add_argument("--version", action="version", version=f"batchscan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    scan = sub.add_parser("scan", help="scan files, directories and @FILE lists")
    scan.add_argument("paths", nargs="*", metavar="PATH",
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
    scan.add_argument("--max-size", type=_size, metavar="SIZE",
                      help="ModelAudit's spelling of --max-file-size (e.g. 10GB)")
    scan.add_argument("-j", "--jobs", type=_count(1), default=None,
                      help="worker processes (default: the CPUs this process may use: "
                      "affinity and cgroup quota)")
    scan.add_argument("--memory-limit", type=_memory, default=4 * 1024**3, metavar="SIZE",
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
    scan.add_argument("--max-depth", type=_count(0), metavar="N", help="directory depth limit")
    scan.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="progress bar on stderr (default: only when stderr is a terminal)")
    scan.add_argument("-q", "--quiet", action="store_true",
                      help="no progress bar and no closing summary in text output")
    scan.add_argument("--strict", action="store_true",
                      help="ModelAudit's strict mode: INFO findings fail the run too "
                           "(--fail-on info) and no cache is used")
    scan.add_argument("--compat", choices=("batchscan", "modelaudit"), default="batchscan",
                      help="modelaudit: -f json writes ModelAudit's document (issues[], "
                           "has_errors, files_scanned, severity critical)")
    scan.add_argument("--list-scanners", action="store_true",
                      help="list the format scanners and exit (-f json for JSON)")
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
    scan.add_argument("--dask-shard-files", type=_count(1), default=2000, metavar="N",
                      help="files per Dask task (default 2000)")
    scan.add_argument("--baseline", metavar="OLD",
                      help="report only findings not in this earlier run (JSONL, --flatten, "
                           "-f json or SARIF; matched on sha256 + rule + member)")
    scan.add_argument("--cache", "--cache-dir", metavar="DIR",
                      help="reuse results of unchanged content (SQLite in DIR, shared by runs)")
    scan.add_argument("--no-cache", action="store_true",
                      help="no results cache (the default; overrides --cache)")
    scan.add_argument("--stream", action="store_true",
                      help="accepted for ModelAudit: hf:// files are always fetched, scanned "
                           "and deleted one by one")
    scan.add_argument("--no-whitelist", action="store_true",
                      help="accepted for ModelAudit: batchscan never downgrades findings "
                           "by model popularity")
    # ModelAudit options that are refused with the batchscan equivalent (MODELAUDIT_REJECTED)
    scan.add_argument("--scanners", help=argparse.SUPPRESS)
    scan.add_argument("--exclude-scanner", help=argparse.SUPPRESS)
    scan.add_argument("-s", "--suppress", action="append", help=argparse.SUPPRESS)
    scan.add_argument("-S", "--severity", action="append", help=argparse.SUPPRESS)
    scan.add_argument("--sbom", help=argparse.SUPPRESS)
    scan.add_argument("--dry-run", action="store_true", default=None, help=argparse.SUPPRESS)
    scan.add_argument("--assume-shard-family", action="store_true", default=None,
                      help=argparse.SUPPRESS)
    scan.add_argument("--download-dir", metavar="DIR",
                      help="scratch directory for hf:// files (default: the system temp dir)")
    scan.add_argument("--max-download-bytes", type=_size, metavar="SIZE",
                      help="disk budget: hf:// files downloaded and not yet scanned never "
                           "exceed this; a larger file is too_large (default: no budget)")
    scan.add_argument("--resume", action="store_true",
                      help="with -o FILE -f jsonl: skip files already recorded there, append")
    scan.add_argument("--retry-failed", action="store_true",
                      help="with --resume: scan again files recorded as error, timeout, oom, "
                           "crashed or too_large (their old records are replaced)")
    report = sub.add_parser("report", help="re-render saved JSONL without rescanning")
    report.add_argument("runs", nargs="+", metavar="RUN.jsonl")
    report.add_argument("-f", "--format", choices=("text", "json", "jsonl", "sarif", "html"),
                        default="text")
    report.add_argument("-o", "--output", metavar="FILE")
    report.add_argument("-v", "--verbose", action="store_true")
    report.add_argument("--fail-on", choices=("error", "warning", "info"), default="warning")
    report.add_argument("--fail-on-unsupported", action="store_true")
    report.add_argument("--flatten", action="store_true")
    sub.add_parser("doctor", help="which sandbox layers this machine supports, and whether "
                                  "each was applied in a test worker")
    report.add_argument("--compat", choices=("batchscan", "modelaudit"), default="batchscan",
                        help="modelaudit: -f json writes ModelAudit's document")
    report.add_argument("--to-parquet", metavar="FILE",
                        help="write typed Parquet (one row per file, per finding with "
                             "--flatten) instead of -f; needs pyarrow")
    schema = sub.add_parser("schema", help="print the record schema, warehouse DDL or the "
                                           "rule reference")
    what = schema.add_mutually_exclusive_group()
    what.add_argument("--ddl", choices=("duckdb", "bigquery", "sql"),
                      help="CREATE TABLE statements for this warehouse")
    what.add_argument("--rules-md", action="store_true",
                      help="docs/rules.md (the rule reference SARIF helpUri points to)")
    ui = sub.add_parser("ui", help="web UI: set up scans, watch them, read and triage results")
    ui.add_argument("--runs", default="batchscan-runs", metavar="DIR",
                    help="runs folder: one JSONL per run (default ./batchscan-runs)")
    ui.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    ui.add_argument("--parallel", type=int, default=1, metavar="N",
                    help="scans run at once; the others queue (default 1)")
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
    """`scan` is the default command, whatever the first argument is (an option too:
    `batchscan --format json -o out.json ./models/`), as with ModelAudit."""
    args = list(argv)
    if args and args[0] in ALIASES:
        args[0] = ALIASES[args[0]]
    elif args and args[0] not in COMMANDS and args[0] not in GLOBAL_OPTIONS:
        args.insert(0, "scan")
    return args


EXIT_USAGE = 2  # bad usage and runtime faults (DESIGN.md 4): one line on stderr


class _StopOnSignal:
    """SIGINT and SIGTERM: the first asks the engine to stop at its next turn (and the run
    finishes a valid output, exit 130); later ones only say that the stop is under way.

    The handler never raises: an exception thrown into whatever the main thread was doing
    (pebble's or threading's lock handling) is what made a second Ctrl-C end runs with
    "release unlocked lock", no `-f json` document, or a hang."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.stop.set()
        if self.count == 2:
            with contextlib.suppress(OSError):
                os.write(2, b"batchscan: stopping; finishing the output\n")


def _lock(fd: int, path: str) -> None:
    """One run per output file: an exclusive, non-blocking flock held while the run writes."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise UsageError(f"{path}: another batchscan run is writing this output") from exc
    except OSError:
        pass  # a file system without locks (or a device such as /dev/full): nothing to hold


@contextlib.contextmanager
def _open_output(path: str | None, binary: bool, append: bool = False) -> Iterator[Any]:
    """stdout or a file, binary for JSON/JSONL/SARIF (orjson writes bytes), text otherwise.

    A file is locked before it is truncated, so a second run on the same output fails with
    exit 2 and leaves the first run's records alone."""
    if path is None:
        yield sys.stdout.buffer if binary else sys.stdout
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0), 0o666)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        _lock(fd, path)
        if not append:
            with contextlib.suppress(OSError):  # a device (/dev/null, /dev/full)
                os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    mode = ("ab" if append else "wb") if binary else ("a" if append else "w")
    handle = open(fd, mode, encoding=None if binary else "utf-8")  # noqa: SIM115
    try:
        yield handle
    finally:
        try:
            handle.close()
        except OSError:
            # the buffer could not be flushed (full disk): drop it and report the fault
            with contextlib.suppress(OSError):
                os.close(fd)
            raise


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
                        raise UsageError(f"{run}: not a record: {exc}") from exc
    run_id = records[0].run_id if records else "report"
    if args.to_parquet:
        from batchscan.outputs.warehouse import write_parquet

        try:
            write_parquet(records, Path(args.to_parquet), flatten=args.flatten)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        for record in records:
            summary.add(record)
        return summary.exit_code()
    binary = args.format in ("json", "jsonl", "sarif", "html")
    with _open_output(args.output, binary) as out:
        writer = _writer(args.format, out, run_id, args.verbose, args.flatten, args.compat)
        for record in records:
            writer.write(record)
            summary.add(record)
        writer.finish(summary.as_dict(0.0, {"run_id": run_id, "interrupted": False}))
    return summary.exit_code()


def run_schema(args: argparse.Namespace) -> int:
    if args.ddl:
        from batchscan.outputs.warehouse import ddl

        sys.stdout.write(ddl(args.ddl))
    elif args.rules_md:
        from batchscan.rules import rules_markdown

        sys.stdout.write(rules_markdown())
    else:
        from batchscan.schema import SCHEMA_PATH

        sys.stdout.write(SCHEMA_PATH.read_text(encoding="utf-8"))
    return 0


def list_scanners(as_json: bool) -> int:
    from batchscan.workers.registry import SCANNERS

    rows = [{"name": module.FORMAT, "rules": [rule.rule_id for rule in module.RULES],
             "description": (module.__doc__ or "").strip().splitlines()[0]}
            for module in SCANNERS]
    if as_json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        width = max(len(row["name"]) for row in rows)
        sys.stdout.write("".join(f"{row['name']:{width}}  {row['description']}\n"
                                 for row in rows))
    return 0


def _check_scan_args(args: argparse.Namespace) -> None:
    """ModelAudit options: accepted with their meaning, or refused naming the equivalent."""
    for dest, message in MODELAUDIT_REJECTED.items():
        if getattr(args, dest) not in (None, False, []):
            raise UsageError(message)
    if args.max_size is not None:
        if args.max_file_size is not None and args.max_file_size != args.max_size:
            raise UsageError("--max-size and --max-file-size disagree; give one")
        args.max_file_size = args.max_size
    if args.strict:
        args.fail_on = "info"
        args.no_cache = True
    if args.no_cache:
        args.cache = None
    if args.quiet and args.progress:
        raise UsageError("-q/--quiet and --progress contradict each other")
    if args.compat == "modelaudit" and args.format not in ("json", "text"):
        raise UsageError("--compat modelaudit changes -f json only (ModelAudit has no "
                         f"{args.format} output to imitate)")
    if not args.paths:
        raise UsageError("no PATH given (a file, directory, @FILE or hf://ORG/NAME)")


def config_from_args(args: argparse.Namespace) -> ScanConfig:
    return ScanConfig(
        jobs=available_cpus() if args.jobs is None else max(1, args.jobs),
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


def _writer(fmt: str, out: Any, run_id: str, verbose: bool, flatten: bool,
            compat: str = "batchscan", emit: Callable[[str], None] | None = None,
            quiet: bool = False, batched: bool = False) -> Writer:
    if fmt == "jsonl":
        return FlatJsonlWriter(out, batched) if flatten else JsonlWriter(out, batched)
    if fmt == "json" and compat == "modelaudit":
        from batchscan.outputs.modelaudit import ModelAuditJsonWriter

        return ModelAuditJsonWriter(out, verbose=verbose)
    if fmt == "json":
        return JsonWriter(out, run_id)
    if fmt == "sarif":
        return SarifWriter(out, run_id)
    if fmt == "html":
        from batchscan.outputs.html import HtmlWriter

        return HtmlWriter(out, run_id)
    return TextWriter(out, verbose=verbose, emit=emit, quiet=quiet)


def _selection(args: argparse.Namespace, ignored: selection.Ignored,
               ) -> Callable[[Item], bool] | None:
    predicates = []
    if args.shard:
        index, total = selection.parse_shard(args.shard)
        predicates.append(selection.in_shard(index, total))
    if args.include or args.exclude:
        predicates.append(selection.globs(args.include, args.exclude, args.paths))
    predicates.append(ignored.keep)
    return selection.combine(predicates)


def _check_usage(args: argparse.Namespace) -> None:
    """Everything about the invocation that can be judged before any file is read."""
    if args.resume and (args.output is None or args.format != "jsonl"):
        raise UsageError("--resume needs -o FILE and -f jsonl")
    if args.resume and args.flatten:
        raise UsageError("--resume cannot read --flatten rows back")
    if args.retry_failed and not args.resume:
        raise UsageError("--retry-failed needs --resume")
    if args.executor == "dask" and not args.scheduler:
        raise UsageError("--executor dask needs --scheduler")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"-j/--jobs must be >= 1, got {args.jobs}")
    if args.max_depth is not None and args.max_depth < 0:
        raise UsageError(f"--max-depth must be >= 0, got {args.max_depth}")
    for name in (args.output, args.summary):
        if name is not None and Path(name).is_dir():
            raise UsageError(f"{name} is a directory")


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


def _progress_emit(progress: Any, out: Any) -> Callable[[str], None]:
    """Text output while a bar is drawn on the same terminal: `tqdm.write` clears the bar,
    prints the lines and redraws it, so neither overwrites the other."""

    def emit(text: str) -> None:
        progress.write(text.rstrip("\n"), file=out)
        out.flush()

    return emit


@contextlib.contextmanager
def _summary_file(path: str | None) -> Iterator[Any]:
    """`--summary FILE`, opened before the scan: a bad path costs no scan."""
    if path is None:
        yield None
        return
    try:
        handle = open(path, "wb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write --summary {path}: {exc.strerror or exc}") from exc
    with handle:
        yield handle


def run_scan(args: argparse.Namespace, early_signals: list[int] | None = None) -> int:
    if args.list_scanners:
        return list_scanners(args.format == "json")
    _check_scan_args(args)
    _check_usage(args)
    config = config_from_args(args)
    ignored = selection.Ignored(args.paths, args.exclude)
    try:
        keep = _selection(args, ignored)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    # Read the baseline before any output is opened: `--baseline X -o X` must see the old X,
    # and a baseline that cannot be used must stop the run before -o is truncated.
    try:
        known = load_baseline(Path(args.baseline)) if args.baseline else None
    except BaselineError as exc:
        raise UsageError(str(exc)) from exc
    summary = Summary(fail_on=Severity(args.fail_on),
                      fail_on_unsupported=args.fail_on_unsupported)
    binary = args.format in ("json", "jsonl", "sarif")
    stop = threading.Event()
    handler = _StopOnSignal(stop)
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    if early_signals:
        stop.set()  # interrupted while starting: finish an empty, valid output at once
    interrupted = False
    try:
        with contextlib.ExitStack() as files:
            out = files.enter_context(_open_output(args.output, binary, append=args.resume))
            summary_out = files.enter_context(_summary_file(args.summary))
            remaining = None
            if args.resume:
                # Under the output's lock: nobody else appends while it is read.
                checkpoint = selection.load_checkpoint(Path(args.output), args.retry_failed)
                if checkpoint.dropped:  # the file was replaced: append to the new one
                    out = files.enter_context(_open_output(args.output, binary, append=True))
                for line in checkpoint.records:  # the summary covers the whole output
                    with contextlib.suppress(orjson.JSONDecodeError, KeyError, ValueError,
                                             TypeError):
                        summary.add(record_from_dict(orjson.loads(line)))
                remaining = selection.not_done(checkpoint.done)
                del checkpoint
            engine = Engine(config, keep=keep, prune=ignored.prunes, remaining=remaining)
            engine.stop = stop
            show = (args.progress if args.progress is not None
                    else sys.stderr.isatty()) and not args.quiet
            progress: Any = _progress_bar() if show else _NoProgress()
            emit = (_progress_emit(progress, out)
                    if show and args.format == "text" and args.output is None else None)
            local = args.executor != "dask"
            writer = _writer(args.format, out, engine.run_id, args.verbose, args.flatten,
                             args.compat, emit, args.quiet, batched=local)
            if local and isinstance(writer, JsonlWriter | FlatJsonlWriter):
                engine.idle = writer.flush  # whole lines, written when the engine waits
            node_reports: list[dict[str, Any]] = []
            if args.executor == "dask":
                from batchscan.executors import dask as dask_executor

                records = dask_executor.run(engine.items(args.paths), config, engine.run_id,
                                            args.scheduler, shard_size=args.dask_shard_files,
                                            reports=node_reports)
            else:
                records = engine.run(args.paths)
            try:
                for record in records:
                    if known is not None:
                        record = without_known(record, known)
                    writer.write(record)
                    summary.add(record)
                    progress.update(1)
                    if stop.is_set():  # after the write: a finished record is kept
                        raise KeyboardInterrupt
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
                close = getattr(records, "close", None)
                if close is not None:
                    close()  # stop the pool now, not when the generator is collected
            extra: dict[str, Any] = {
                "run_id": engine.run_id,
                "scanner_version": __version__,
                "interrupted": interrupted,
                "sandbox_degraded": degraded(engine.stats.sandbox),
                "pool_rebuilds": engine.stats.pool_rebuilds,
            }
            if args.executor == "dask":
                from batchscan.executors.dask import merge_nodes

                nodes = merge_nodes(node_reports)
                extra["nodes"] = nodes
                extra["sandbox_degraded"] = sorted({f"{n['worker']}: {entry}" for n in nodes
                                                    for entry in n["sandbox_degraded"]})
            summary_doc = summary.as_dict(engine.stats.wall_seconds, extra)
            writer.finish(summary_doc)
            if summary_out is not None:
                summary_out.write(orjson.dumps(summary_doc, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        where = f" {exc.filename}" if exc.filename else ""
        raise UsageError(f"cannot write output{where}: {exc.strerror or exc}") from exc
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if interrupted:
        return EXIT_INTERRUPTED
    return summary.exit_code()


def main(argv: Sequence[str] | None = None, early_signals: list[int] | None = None) -> int:
    """`early_signals`: SIGINT/SIGTERM that arrived before the CLI ran (`launch.py`); the
    list keeps filling until the scan installs its own handler."""
    parser = build_parser()
    args = parser.parse_args(_normalise_argv(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "ui":
            from batchscan.ui.server import serve

            return serve(args, build_parser().parse_args)
        if args.command == "doctor":
            return run_doctor()
        if args.command == "schema":
            return run_schema(args)
        if args.command == "report":
            if early_signals:
                return EXIT_INTERRUPTED
            # no pool to stop: Ctrl-C may interrupt the report anywhere
            signal.signal(signal.SIGINT, signal.default_int_handler)
            return run_report(args)
        return run_scan(args, early_signals if early_signals is not None else [])
    except UsageError as exc:
        sys.stderr.write(f"batchscan: error: {exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:
        if not isinstance(exc.code, str):
            raise
        sys.stderr.write(exc.code.rstrip("\n") + "\n")  # a message: usage, exit 2
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `batchscan ... | head`: the reader left; say nothing more.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_INTERRUPTED
    except OSError as exc:  # a runtime fault outside the scan (an unreadable report input)
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"batchscan: {where}{exc.strerror or exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
