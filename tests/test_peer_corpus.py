"""External check: other scanners' labelled samples (../shared/corpus/peers).

The rates are computed by benchmarks/eval_peers.py with the real engine (worker processes,
sandbox); `malformed` samples are excluded, as the issue asks.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from conftest import PEERS, requires_peers

pytestmark = requires_peers

_spec = importlib.util.spec_from_file_location(
    "eval_peers", Path(__file__).resolve().parent.parent / "benchmarks" / "eval_peers.py")
assert _spec is not None and _spec.loader is not None
eval_peers = importlib.util.module_from_spec(_spec)
sys.modules["eval_peers"] = eval_peers  # dataclasses resolve their module through sys.modules
_spec.loader.exec_module(eval_peers)


@pytest.fixture(scope="module")
def report() -> eval_peers.Report:
    return eval_peers.evaluate(PEERS)


def test_pickle_samples_meet_detection_and_false_positive_targets(
    report: eval_peers.Report,
) -> None:
    flagged, malicious, false_pos, benign = report.rates({"pickle", "pytorch_legacy"})
    assert malicious >= 100 and benign >= 10
    assert flagged / malicious >= 0.97, [
        o.path for o in report.outcomes
        if o.label == "malicious" and not o.flagged and o.format == "pickle"]
    assert false_pos / benign <= 0.05


def test_no_benign_sample_of_any_format_is_flagged(report: eval_peers.Report) -> None:
    assert [o.path for o in report.outcomes if o.label == "benign" and o.flagged] == []


def test_unscanned_formats_are_never_reported_clean(report: eval_peers.Report) -> None:
    # Fail closed: a malicious sample we cannot analyse yet must not look clean.
    silent = [o.path for o in report.outcomes
              if o.label == "malicious" and not o.flagged and o.record.status.value == "clean"]
    assert silent == []
