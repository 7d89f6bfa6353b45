"""Shared helpers: scanning bytes with a format module, and the peer corpus location."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchscan.records import Finding, Severity
from batchscan.workers import pickle as pickle_format
from batchscan.workers.base import ScanContext, Source
from batchscan.workers.registry import context

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "corpus" / "peers"


def scan_pickle(data: bytes, ctx: ScanContext | None = None) -> list[Finding]:
    return list(pickle_format.scan(Source.from_bytes(data, "x.pkl"), ctx or context()))


def worst(findings: list[Finding]) -> Severity | None:
    if not findings:
        return None
    return max((f.severity for f in findings), key=lambda s: s.rank)


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


requires_peers = pytest.mark.skipif(
    not (PEERS / "labels.jsonl").is_file(),
    reason="../shared/corpus/peers is absent (it exists in CI and the project workspace, "
    "not in a user's clone)",
)
