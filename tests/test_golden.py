"""Golden JSONL: the demo tree's records compared exactly, volatile fields stripped.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/test_golden.py` and
review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from batchscan.config import ScanConfig
from batchscan.coordinator import Engine
from batchscan.schema import record_to_dict
from fixtures.generate import demo_tree

GOLDEN = Path(__file__).parent / "golden" / "demo_tree.jsonl"
VOLATILE = ("run_id", "scanned_at", "duration_ms", "scanner_version")


def normalised(root: Path) -> list[dict[str, Any]]:
    records = []
    for record in Engine(ScanConfig(jobs=2)).run([str(root)]):
        data = record_to_dict(record)
        for key in VOLATILE:
            data.pop(key)
        data["path"] = os.path.relpath(data["path"], root)
        if data["error"]:
            data["error"] = data["error"].replace(str(root), "<root>")
        records.append(data)
    return sorted(records, key=lambda r: r["path"])


def test_demo_tree_matches_golden(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    demo_tree(root)
    actual = normalised(root)
    text = b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n" for r in actual)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(text)
    expected = GOLDEN.read_bytes().decode().splitlines()
    assert text.decode().splitlines() == expected
