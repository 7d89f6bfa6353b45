"""Trees and runs for the UI tests (generated; the malicious pickle calls os.system("true")
and is only ever written, never loaded)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import orjson

# protocol 0: GLOBAL os.system, MARK, STRING 'true', TUPLE, REDUCE, STOP
EVIL = b"cos\nsystem\n(S'true'\ntR."
XSS_NAME = "<img src=x onerror=alert(1)>.pkl"


def model_tree(root: Path, benign: int = 10) -> Path:
    """`benign` clean pickles in two folders, one evil pickle, one with an XSS name."""
    for i in range(benign):
        folder = root / f"org{i % 2}" / "model"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"w{i}.pkl").write_bytes(pickle.dumps({"layer": i, "w": [0.5] * 8}, 4))
    (root / "org0" / "evil.pkl").write_bytes(EVIL)
    (root / "org1" / XSS_NAME).write_bytes(EVIL)
    return root


def slow_tree(root: Path, files: int, seconds: float) -> Path:
    """Files each scanned alone (over 1 MiB) that sleep in the worker (fault injection)."""
    root.mkdir(parents=True, exist_ok=True)
    body = f"BATCHSCAN-FAULT sleep {seconds}\n".encode().ljust(1024 * 1024 + 16, b"\n")
    for i in range(files):
        (root / f"slow{i:03d}.bin").write_bytes(body)
    return root


def record(path: str, status: str = "clean", findings: list[dict[str, Any]] | None = None,
           sha256: str | None = None, size: int = 10, fmt: str = "pickle") -> dict[str, Any]:
    findings = findings or []
    rank = {"debug": 0, "info": 1, "warning": 2, "error": 3}
    top = max((f["severity"] for f in findings), key=rank.__getitem__) if findings else None
    return {"schema_version": 2, "run_id": "r", "path": path, "source": "file", "size": size,
            "sha256": sha256, "format": fmt, "status": status, "max_severity": top,
            "findings": findings, "error": None, "scanned_at": "2026-01-01T00:00:00.000Z",
            "duration_ms": 1.0, "scanner_version": "0.1.0", "cached": False}


def finding(rule: str = "PKL001", severity: str = "error", member: str | None = None,
            evidence: str | None = "os.system('true')", offset: int | None = 3
            ) -> dict[str, Any]:
    return {"rule_id": rule, "severity": severity, "message": f"{rule} here", "member": member,
            "offset": offset, "evidence": evidence, "cwe": "CWE-502"}


def write_run(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path
