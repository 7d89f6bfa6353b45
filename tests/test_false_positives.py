"""Issue 16: each false-positive class of real libraries' files, fixed at its root, next to its
malicious twin: the same shape carrying a harmless payload (`os.system("true")`) that must stay
flagged. Benign files come from tests/fixtures/real_models/ (written by the real libraries);
twins are built here from them and are never loaded.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from batchscan.records import FileResult, Severity
from batchscan.workers import torchscript_code
from batchscan.workers.task import WorkerOptions, scan_file

CORPUS = Path(__file__).parent / "fixtures" / "real_models"


def scan(path: Path) -> FileResult:
    return scan_file(str(path), WorkerOptions())


def loud(result: FileResult, rule: str | None = None) -> list[tuple[str, str, str]]:
    return [(f.rule_id, f.severity.value, f.message) for f in result.findings
            if f.severity.rank >= Severity.WARNING.rank and (rule is None or f.rule_id == rule)]


def errors(result: FileResult, rule: str) -> list[str]:
    return [f.message for f in result.findings
            if f.rule_id == rule and f.severity is Severity.ERROR]


# --- TorchScript codegen ----------------------------------------------------------------------
def _with_code(real: Path, out: Path, code: str) -> Path:
    """The real scripted archive with one more code/ source (a twin never loaded)."""
    src = zipfile.ZipFile(real)
    prefix = src.namelist()[0].split("/", 1)[0]
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(f"{prefix}/code/__torch__/evil.py", code)
    return out


TS_BENIGN = ["torchscript/scripted_sequential_mlp.pt", "torchscript/scripted_checks_raise.pt",
             "torchscript/traced_mlp.pt", "torchvision/vit_b_16_scripted.pt"]


@pytest.mark.parametrize("name", TS_BENIGN)
def test_torchscript_codegen_shapes_are_clean(name: str) -> None:
    assert loud(scan(CORPUS / name)) == []


TS_TWINS = {
    "os_system": 'def forward(self, x):\n    return os.system("true")\n',
    "getattr_module": 'def forward(self, x):\n    return getattr(os, "system")("true")\n',
    "getattr_dunder": 'def forward(self, x):\n    g = getattr(self, "__globals__")\n    return x\n',
    "getattr_computed": 'def forward(self, x, n: str):\n    return getattr(self, n)\n',
    "raise_non_builtin": 'def forward(self, x):\n'
                         '    ops.prim.RaiseException("true", "os.system")\n',
    "raise_builtins_eval": 'def forward(self, x):\n'
                           '    ops.prim.RaiseException("1", "builtins.eval")\n',
    "eval": 'def forward(self, x):\n    return eval("1")\n',
    "torch_load": 'def forward(self, x):\n    return torch.load("/tmp/x")\n',
    "builtins_attr": 'def forward(self, x):\n    return builtins.exec("1")\n',
}


@pytest.mark.parametrize("code", TS_TWINS.values(), ids=TS_TWINS.keys())
def test_torchscript_twin_stays_error(tmp_path: Path, code: str) -> None:
    twin = _with_code(CORPUS / TS_BENIGN[0], tmp_path / "twin.pt", code)
    assert errors(scan(twin), "ZIP012")


def test_torchscript_custom_op_is_warning(tmp_path: Path) -> None:
    code = "def forward(self, x):\n    return ops.my_ns.run(x)\n"
    twin = _with_code(CORPUS / TS_BENIGN[0], tmp_path / "twin.pt", code)
    found = [f for f in scan(twin).findings if f.rule_id == "ZIP012"]
    assert [f.severity for f in found] == [Severity.WARNING]
    assert "ops.my_ns.run" in found[0].message


def test_torchscript_unparsable_source_falls_back_to_text() -> None:
    assert [r.what for r in torchscript_code.reaches("def f(:\n os.system('true')")] == [
        "os.system"]


def test_torchscript_parameters_named_like_builtins_are_locals() -> None:
    assert torchscript_code.reaches("def f(input: Tensor) -> Tensor:\n    return input\n") == []


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()
