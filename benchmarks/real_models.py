"""False positives of batchscan on benign artefacts written by real ML libraries (issue 16).

    python benchmarks/real_models.py [--out bench-data/real-models]
        [--python /venv-with-torch/bin/python --python /venv-with-tf/bin/python]
        [--no-generate] [--regenerate] [--jobs 2] [--json summary.json]

1. Generate: each `--python` interpreter runs `python -m benchmarks.real_artefacts OUT`, which
   writes what its installed libraries can write (torch, transformers, Keras, ...; see
   benchmarks/real_artefacts/__init__.py) into OUT/files/<library>/ and records the versions
   and how each file was made in OUT/manifest/<library>.json. Libraries already written are
   kept, so a second interpreter only fills in what the first lacked (`pip install
   '.[fixtures-real]'` has the list; torch is pinned there, see pyproject.toml).
2. Scan OUT/files with this checkout's batchscan (the `batchscan` next to this interpreter)
   into OUT/scan.jsonl.
3. Report: artefacts per library, findings per library and per rule, each flagged artefact
   with its rule, message and evidence, the libraries that could not be written and why, and
   the totals with two sets of rates (share of artefacts whose worst finding is ERROR /
   WARNING): raw, and false positives. Every artefact is benign, but some ship code by value
   (a pickled lambda, closure or local class: the generator sets `"ships_code": true` on its
   manifest row where it pickles one). By the severity contract such code is a WARNING, so an
   artefact labelled ships_code whose worst finding is a WARNING is not a false positive; an
   ERROR on it still is. Every remaining false-positive WARNING is listed with its reason.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEVERITIES = ("error", "warning", "info")
NOT_SCANNED = ("error", "timeout", "oom", "crashed", "too_large", "skipped")


def generate(out: Path, pythons: list[str], regenerate: bool) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false",
               TF_CPP_MIN_LOG_LEVEL="3", HF_HUB_OFFLINE="1", MLFLOW_TRACKING_URI="file:///tmp/"
               "batchscan-mlruns", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", USE_TF="0",
               USE_FLAX="0")
    for index, python in enumerate(pythons):
        command = [python, "-m", "benchmarks.real_artefacts", str(out)]
        if regenerate and index == 0:
            command.append("--force")
        print(f"generating with {python}", file=sys.stderr, flush=True)
        subprocess.run(command, cwd=ROOT, env=env, check=True)


def batchscan_command() -> list[str]:
    beside = Path(sys.executable).with_name("batchscan")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("batchscan")
    if found is None:
        raise SystemExit("batchscan not found: run this with the checkout's .venv/bin/python")
    return [found]


def scan(out: Path, jobs: int) -> Path:
    results = out / "scan.jsonl"
    results.unlink(missing_ok=True)
    command = [*batchscan_command(), "scan", str(out / "files"), "-f", "jsonl", "-o",
               str(results), "-j", str(jobs), "--no-progress", "--fail-on", "error"]
    done = subprocess.run(command, check=False)
    # 2: some files could not be fully scanned; they are listed in the report
    if done.returncode not in (0, 1, 2):
        raise SystemExit(f"batchscan exited with {done.returncode}")
    return results


def library_of(path: str, files_root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(files_root.resolve()).parts[0]
    except ValueError:
        return "?"


def load_manifests(out: Path) -> list[dict[str, Any]]:
    folder = out / "manifest"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def ships_code(manifests: list[dict[str, Any]]) -> set[str]:
    """`<library>/<path>` of every artefact the generator labelled as shipping code."""
    return {f"{m['library']}/{a['path']}" for m in manifests for a in m.get("artefacts", [])
            if a.get("ships_code") is True}


def report(out: Path, results: Path, summary_path: Path | None) -> dict[str, Any]:
    files_root = out / "files"
    records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    manifests = load_manifests(out)
    code_artefacts = ships_code(manifests)
    expected_warning: list[str] = []  # ships code, worst finding a WARNING: not an FP
    fp_worst: collections.Counter[str] = collections.Counter()
    fp_warning: list[tuple[str, list[dict[str, Any]]]] = []
    per_lib: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    per_rule: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    flagged: list[tuple[str, str, dict[str, Any]]] = []
    not_scanned: list[dict[str, Any]] = []
    worst_counts: collections.Counter[str] = collections.Counter()
    for record in records:
        lib = library_of(record["path"], files_root)
        counts = per_lib[lib]
        counts["artefacts"] += 1
        worst = record.get("max_severity")
        if worst in SEVERITIES:
            counts[f"files_{worst}"] += 1
            worst_counts[worst] += 1
        try:
            rel_path = Path(record["path"]).resolve().relative_to(files_root.resolve()).as_posix()
        except ValueError:
            rel_path = record["path"]
        if worst == "warning" and rel_path in code_artefacts:
            expected_warning.append(rel_path)
        elif worst in SEVERITIES:
            fp_worst[worst] += 1
            if worst == "warning":
                fp_warning.append((rel_path, [f for f in record.get("findings") or []
                                              if f.get("severity") == "warning"]))
        if record["status"] in NOT_SCANNED:
            counts["not_scanned"] += 1
            not_scanned.append(record)
        for finding in record.get("findings") or []:
            severity = finding["severity"]
            if severity not in SEVERITIES:
                continue
            counts[severity] += 1
            per_rule[(finding["rule_id"], severity)][lib] += 1
            if severity in ("error", "warning"):
                rel = Path(record["path"]).resolve().relative_to(files_root.resolve())
                flagged.append((lib, rel.as_posix(), finding))
    total = len(records)
    libraries = sorted(lib for lib, c in per_lib.items() if c["artefacts"])
    print(f"== artefacts and findings per library ({out}) ==")
    print(f"{'library':<24}{'version':<22}{'files':>6}{'ERR':>6}{'WARN':>6}{'INFO':>6}"
          f"{'files ERR':>11}{'files WARN':>12}{'unscanned':>11}")
    versions = {m["library"]: m["versions"] for m in manifests}
    for lib in libraries:
        c = per_lib[lib]
        first = next((kv for kv in versions.get(lib, {}).items() if kv[1] != "missing"),
                     ("", "?"))
        print(f"{lib:<24}{first[1]:<22}{c['artefacts']:>6}{c['error']:>6}{c['warning']:>6}"
              f"{c['info']:>6}{c['files_error']:>11}{c['files_warning']:>12}"
              f"{c['not_scanned']:>11}")
    print("\n== findings per rule (count by library) ==")
    for (rule, severity), by_lib in sorted(per_rule.items(),
                                           key=lambda kv: (SEVERITIES.index(kv[0][1]), kv[0][0])):
        libs = ", ".join(f"{lib} {n}" for lib, n in by_lib.most_common())
        print(f"{rule:<8}{severity:<8}{sum(by_lib.values()):>5}  {libs}")
    print("\n== flagged artefacts (WARNING and ERROR), same finding shapes folded ==")
    grouped: dict[str, collections.Counter[tuple[str, str, str]]] = collections.defaultdict(
        collections.Counter)
    examples: dict[tuple[str, str, str, str], str] = {}
    for lib, rel, finding in flagged:
        key = (finding["severity"].upper(), finding["rule_id"], finding["message"][:160])
        grouped[f"{lib}|{rel}"][key] += 1
        examples.setdefault((rel, *key), (finding.get("evidence") or "").replace("\n", "\\n"))
    for name in sorted(grouped):
        rel = name.split("|", 1)[1]
        print(rel)
        for (severity, rule, message), count in grouped[name].most_common():
            evidence = examples[(rel, severity, rule, message)][:160]
            print(f"    {severity:<8}{rule:<8}x{count:<4}{message}\n"
                  f"                        evidence: {evidence}")
    if not_scanned:
        print("\n== not fully scanned ==")
        for record in not_scanned:
            print(f"{record['status']:<10}{record['path']}: {record.get('error')}")
    missing = [m for m in manifests if m["status"] != "written"]
    if missing:
        print("\n== libraries not (fully) written ==")
        for m in missing:
            print(f"{m['library']:<24}{m['status']:<9}{m['reason'][:150]}")
    print("\n== artefacts that ship code (labelled by the generator) with WARNING as worst: "
          "expected by the severity contract, not false positives ==")
    for rel in sorted(expected_warning) or ["(none)"]:
        print(f"    {rel}")
    print("\n== remaining false-positive WARNINGs (worst finding WARNING, no shipped code) ==")
    for rel, warnings in sorted(fp_warning) or [("(none)", [])]:
        print(rel)
        for finding in warnings:
            print(f"    {finding['rule_id']:<8}{finding['message'][:200]}")
    error_files = worst_counts["error"]
    warning_files = worst_counts["warning"]
    summary = {
        "artefacts": total, "libraries": len(libraries), "files_error": error_files,
        "files_warning": warning_files, "files_info": worst_counts["info"],
        "error_rate": error_files / total if total else 0.0,
        "warning_rate": warning_files / total if total else 0.0,
        "ships_code": len(code_artefacts), "ships_code_warning": len(expected_warning),
        "fp_error_rate": fp_worst["error"] / total if total else 0.0,
        "fp_warning_rate": fp_worst["warning"] / total if total else 0.0,
        "findings": {s: sum(c[s] for c in per_lib.values()) for s in SEVERITIES},
        "not_scanned": len(not_scanned),
        "per_library": {lib: dict(per_lib[lib]) for lib in libraries},
        "per_rule": {f"{r}/{s}": dict(c) for (r, s), c in per_rule.items()},
    }
    if summary_path is not None:
        summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\nTOTAL {total} artefacts from {len(libraries)} libraries: "
          f"{error_files} with ERROR ({summary['error_rate']:.2%}), "
          f"{warning_files} with WARNING as worst ({summary['warning_rate']:.2%}); "
          f"findings: {summary['findings']['error']} ERROR, "
          f"{summary['findings']['warning']} WARNING, {summary['findings']['info']} INFO; "
          f"{len(not_scanned)} not fully scanned")
    print(f"FALSE POSITIVES (excluding {len(expected_warning)} artefacts that ship code and "
          f"have WARNING as worst): {fp_worst['error']} with ERROR "
          f"({summary['fp_error_rate']:.2%}), {fp_worst['warning']} with WARNING as worst "
          f"({summary['fp_warning_rate']:.2%})")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-data" / "real-models")
    parser.add_argument("--python", action="append", default=[],
                        help="an interpreter with ML libraries installed (repeatable)")
    parser.add_argument("--no-generate", action="store_true")
    parser.add_argument("--regenerate", action="store_true",
                        help="rewrite every library, not only the missing ones")
    parser.add_argument("--no-scan", action="store_true", help="report on OUT/scan.jsonl")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    if not args.no_generate:
        generate(out, args.python or [sys.executable], args.regenerate)
    results = out / "scan.jsonl" if args.no_scan else scan(out, args.jobs)
    report(out, results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
