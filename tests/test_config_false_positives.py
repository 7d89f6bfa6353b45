"""Issue 16, config side: each false-positive or blind-spot class of configuration files
(JSON, YAML, MLflow metadata) next to its malicious twin. Twins carry a harmless payload
(`os.system("true")`), are built here from bytes and are never loaded.
"""

from __future__ import annotations

import base64
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from batchscan.records import FileResult, Severity
from batchscan.workers.task import WorkerOptions, scan_file

CORPUS = Path(__file__).parent / "fixtures" / "real_models"
SB3 = CORPUS / "stable-baselines3" / "a2c_cartpole.zip"
# Protocol 0: `os.system("true")`. Its base64 does not start with "gA" like protocol 2+.
SYSTEM_P0 = b"cos\nsystem\n(S'true'\ntR."


def scan(path: Path) -> FileResult:
    return scan_file(str(path), WorkerOptions())


def rules_at(result: FileResult, severity: Severity) -> set[str]:
    return {f.rule_id for f in result.findings if f.severity is severity}


def loud(result: FileResult) -> list[tuple[str, str]]:
    return [(f.rule_id, f.message) for f in result.findings
            if f.severity.rank >= Severity.WARNING.rank]


# --- stable-baselines3 `:serialized:` cloudpickles ---------------------------------------------
def _sb3_with(tmp_path: Path, key: str, serialized: str) -> Path:
    """The real A2C.save archive with one `:serialized:` value replaced."""
    out = tmp_path / "twin.zip"
    with zipfile.ZipFile(SB3) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "data":
                document = json.loads(data)
                document[key][":serialized:"] = serialized
                data = json.dumps(document, indent=4).encode()
            dst.writestr(info, data)
    return out


def test_sb3_serialized_pickles_are_decoded_and_scanned() -> None:
    result = scan(SB3)
    assert result.error is None and not loud(result), loud(result)
    members = {f.member for f in result.findings if f.rule_id == "PKL003"}
    # The inner pickles' own findings name what they contain, under `data!/<key>/:serialized:`.
    assert "data!/observation_space/:serialized:" in members
    assert any("gymnasium.spaces.box.Box" in f.message for f in result.findings)


@pytest.mark.parametrize("payload", [SYSTEM_P0, pickle.dumps(0, protocol=4)[:2] + SYSTEM_P0[:-1]
                                     + b"."], ids=["protocol0", "after-proto-opcode"])
def test_sb3_serialized_os_system_is_error(tmp_path: Path, payload: bytes) -> None:
    twin = _sb3_with(tmp_path, "observation_space", base64.b64encode(payload).decode())
    result = scan(twin)
    dangerous = [f for f in result.findings if f.severity is Severity.ERROR]
    assert dangerous and all(f.member == "data!/observation_space/:serialized:"
                             for f in dangerous), result.findings
    assert any("os.system" in (f.message + (f.evidence or "")) for f in dangerous)


def test_sb3_serialized_benign_data_pickle_is_quiet(tmp_path: Path) -> None:
    blob = pickle.dumps({"shape": (4,), "low": [0.0, 1.5]}, protocol=5)
    result = scan(_sb3_with(tmp_path, "observation_space", base64.b64encode(blob).decode()))
    assert result.error is None and not loud(result)


@pytest.mark.parametrize("value", ["not base64 at all!", base64.b64encode(b"\x00" * 40).decode()],
                         ids=["bad-base64", "not-a-pickle"])
def test_sb3_serialized_that_cannot_be_analysed_fails_closed(tmp_path: Path, value: str) -> None:
    result = scan(_sb3_with(tmp_path, "observation_space", value))
    assert result.error is not None and "observation_space/:serialized:" in result.error


def test_sb3_serialized_over_budget_fails_closed(tmp_path: Path) -> None:
    from batchscan.workers.base import Limits

    twin = _sb3_with(tmp_path, "observation_space",
                     base64.b64encode(pickle.dumps(b"x" * 4096, protocol=5)).decode())
    result = scan_file(str(twin), WorkerOptions(limits=Limits(max_nested_pickle_bytes=1024)))
    assert result.error is not None and "serialized" in result.error
