"""Detection and false-positive rates on other scanners' labelled samples.

    python benchmarks/eval_peers.py [--corpus ../shared/corpus/peers] [--format pickle ...]

Scans every sample of `labels.jsonl` (except `malformed` ones) with the real engine and prints,
per corpus format, how many malicious samples were flagged at WARNING or above and how many
benign ones were, then every miss and every false positive. Samples are only read by
batchscan's static scanners, never loaded.
"""

from __future__ import annotations

import argparse
import collections
import json
from dataclasses import dataclass, field
from pathlib import Path

from batchscan.config import ScanConfig
from batchscan.coordinator import Engine
from batchscan.records import ScanRecord, Severity

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "peers"


@dataclass
class Outcome:
    label: str
    format: str
    technique: str
    path: str
    flagged: bool
    record: ScanRecord


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def rates(self, formats: set[str] | None = None) -> tuple[int, int, int, int]:
        """(malicious flagged, malicious total, benign flagged, benign total)."""
        chosen = [o for o in self.outcomes if formats is None or o.format in formats]
        mal = [o for o in chosen if o.label == "malicious"]
        ben = [o for o in chosen if o.label == "benign"]
        return (sum(o.flagged for o in mal), len(mal), sum(o.flagged for o in ben), len(ben))


def is_flagged(record: ScanRecord) -> bool:
    top = record.max_severity
    return top is not None and top.rank >= Severity.WARNING.rank


def evaluate(corpus: Path = DEFAULT_CORPUS, formats: set[str] | None = None,
             jobs: int = 2) -> Report:
    labels = [json.loads(line) for line in (corpus / "labels.jsonl").read_text().splitlines()]
    chosen = [e for e in labels if e["label"] != "malformed"
              and (formats is None or e["format"] in formats)]
    by_path = {str(corpus / e["path"]): e for e in chosen}
    engine = Engine(ScanConfig(jobs=jobs, timeout=60, follow_symlinks="args"))
    report = Report()
    # A directory sample (a SavedModel) yields several records; it is flagged if any is.
    grouped: dict[str, list[ScanRecord]] = collections.defaultdict(list)
    for record in engine.run(list(by_path)):
        owner = next((p for p in by_path if record.path == p or record.path.startswith(p + "/")),
                     record.path)
        grouped[owner].append(record)
    for path, entry in by_path.items():
        records = grouped.get(path, [])
        flagged = any(is_flagged(r) for r in records)
        report.outcomes.extend(
            [Outcome(entry["label"], entry["format"], entry["technique"], entry["path"],
                     flagged, r) for r in records[:1]]
        )
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--format", action="append", dest="formats")
    args = parser.parse_args()
    formats = set(args.formats) if args.formats else None
    report = evaluate(args.corpus, formats)
    per_format = sorted({o.format for o in report.outcomes})
    print(f"{'format':18} {'malicious flagged':>18} {'benign flagged':>15}")
    for fmt in per_format:
        mf, mt, bf, bt = report.rates({fmt})
        print(f"{fmt:18} {mf:>9}/{mt:<8} {bf:>7}/{bt:<7}")
    mf, mt, bf, bt = report.rates()
    print(f"{'all':18} {mf:>9}/{mt:<8} {bf:>7}/{bt:<7}")
    print("\nmisses (malicious, not flagged at WARNING+):")
    for o in report.outcomes:
        if o.label == "malicious" and not o.flagged:
            print(f"  {o.path} [{o.format}/{o.technique}] -> {o.record.status.value}"
                  f" {o.record.error or ''}")
    print("\nfalse positives (benign, flagged):")
    for o in report.outcomes:
        if o.label == "benign" and o.flagged:
            rules = sorted({f.rule_id for f in o.record.findings})
            print(f"  {o.path} [{o.format}/{o.technique}] -> {rules}")


if __name__ == "__main__":
    main()
