"""Fast paths of the config scanners give the slow paths' results (issue 18).

YAML: libyaml composes; what it refuses goes to PyYAML's composer. Every document here is
scanned both ways (the fast composer switched off by monkeypatch) and the findings must be
the same, payloads included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchscan.records import FileResult
from batchscan.workers import yaml_config
from batchscan.workers.task import WorkerOptions, scan_file


def scan(tmp_path: Path, name: str, data: bytes | str) -> FileResult:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return scan_file(str(path), WorkerOptions())


def summary(result: FileResult) -> tuple[object, ...]:
    return (result.format, result.derived_status(), result.error,
            sorted((f.rule_id, f.severity.value, f.message) for f in result.findings))


DEEP_TAG = "".join(f"{'  ' * i}k{i}:\n" for i in range(60)) + \
    "  " * 60 + "run: !!python/object/apply:os.system [\"true\"]\n"
YAML_CASES = {
    "tag": "x: !!python/object/apply:os.system [\"true\"]\n",
    "deep_tag": DEEP_TAG,
    "target_in_list": "layers:\n- {a: 1}\n- nested:\n    _target_: os.system\n    _args_: [true]\n",
    "template": "chat_template: \"{{ cycler.__init__.__globals__.os.popen('true') }}\"\n",
    "alias": "a: &x {_target_: subprocess.run}\nb: *x\nc: [*x, *x]\n",
    "multi_doc": "a: 1\n---\nb: !!python/name:os.system\n",
    "custom_tag": "x: !MyTag 3\n",
    "invalid": "a: [1, 2\nb: {\n",
    "control_char": "a: \"x\x07y\"\nb: !!python/object/apply:os.system [\"true\"]\n",
    "nested_flow_2000": "a: " + "[" * 2000 + "]" * 2000 + "\n",
    # deeper than the plain-data walk recurses: not fully scanned on either path
    "nested_flow_600": "a: " + "[" * 600 + "!!python/name:os.system x" + "]" * 600 + "\n",
    "benign_hydra": "model:\n  _target_: torch.nn.Linear\n  in_features: 4\n",
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_yaml_fast_composer_agrees_with_pyyaml(tmp_path: Path, case: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fast = scan(tmp_path / "fast", "c.yaml", YAML_CASES[case])
    monkeypatch.setattr(yaml_config, "_FAST", None)
    slow = scan(tmp_path / "slow", "c.yaml", YAML_CASES[case])
    assert summary(fast) == summary(slow)


@pytest.mark.parametrize("case", ["tag", "deep_tag", "target_in_list", "template", "alias",
                                  "multi_doc"])
def test_yaml_payloads_are_found(tmp_path: Path, case: str) -> None:
    result = scan(tmp_path, "c.yaml", YAML_CASES[case])
    assert any(f.severity.value == "error" for f in result.findings), result.findings


def test_yaml_fast_composer_is_used_when_available() -> None:
    """The speed-up is real only if this PyYAML has libyaml (the wheel does)."""
    assert yaml_config._FAST is not None
