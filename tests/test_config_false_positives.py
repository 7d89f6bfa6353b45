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

from batchscan.records import FileResult, Severity, highest_severity
from batchscan.workers.task import WorkerOptions, scan_file

CORPUS = Path(__file__).parent / "fixtures" / "real_models"
SB3 = CORPUS / "stable-baselines3" / "a2c_cartpole.zip"
# Protocol 0: `os.system("true")`. Its base64 does not start with "gA" like protocol 2+.
SYSTEM_P0 = b"cos\nsystem\n(S'true'\ntR."


def scan(path: Path) -> FileResult:
    return scan_file(str(path), WorkerOptions())


def rules_at(result: FileResult, severity: Severity) -> set[str]:
    return {f.rule_id for f in result.findings if f.severity is severity}


def worst(result: FileResult) -> Severity | None:
    return highest_severity(tuple(result.findings))


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


def test_sb3_serialized_is_decoded_like_the_loader_decodes_it(tmp_path: Path) -> None:
    """b64decode(validate=False) drops characters outside the alphabet: so must we."""
    encoded = base64.b64encode(SYSTEM_P0).decode()
    noisy = "!".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))
    assert base64.b64decode(noisy.encode()) == SYSTEM_P0
    result = scan(_sb3_with(tmp_path, "observation_space", noisy))
    assert any(f.severity is Severity.ERROR and f.member == "data!/observation_space/:serialized:"
               for f in result.findings), result.findings


def test_sb3_serialized_benign_data_pickle_is_quiet(tmp_path: Path) -> None:
    blob = pickle.dumps({"shape": (4,), "low": [0.0, 1.5]}, protocol=5)
    result = scan(_sb3_with(tmp_path, "observation_space", base64.b64encode(blob).decode()))
    assert result.error is None and not loud(result)


@pytest.mark.parametrize("value", ["not base64 at all", base64.b64encode(b"\x00" * 40).decode()],
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


# --- Hydra `_target_`: graded like a global in a pickle ----------------------------------------
def _hydra(tmp_path: Path, target: str, suffix: str = ".yaml") -> FileResult:
    path = tmp_path / f"config{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"model": {"_target_": target, "_args_": ["1 + 1"]}}))
    else:
        path.write_text(f"model:\n  _target_: {target}\n  _args_: ['1 + 1']\n")
    return scan(path)


def _pickle_calling(tmp_path: Path, module: str, name: str) -> FileResult:
    """A protocol-2 pickle that imports module.name and calls it with one string (never loaded)."""
    path = tmp_path / "twin.pkl"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x05\x00\x00\x001 + 1"
                     b"\x85R.")
    return scan(path)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize(("target", "severity"), [
    ("mylib.utils.build_from_text", Severity.WARNING),  # an unknown function: cannot classify
    ("mylib.models.UNet", Severity.INFO),  # an unknown class: like PKL003
    ("sympy.sympify", Severity.ERROR),  # evaluates its argument with eval()
    ("tkinter.Tk", Severity.ERROR),  # Tk() executes ~/.<className>.py on init
    ("os.system", Severity.ERROR),
    ("builtins.eval", Severity.ERROR),
    ("subprocess.run", Severity.ERROR),
])
def test_target_graded_like_the_same_call_in_a_pickle(
    tmp_path: Path, suffix: str, target: str, severity: Severity
) -> None:
    config = _hydra(tmp_path, target, suffix)
    module, name = target.rsplit(".", 1)
    in_pickle = _pickle_calling(tmp_path, module, name)
    assert worst(config) is severity, config.findings
    assert worst(in_pickle) is severity, in_pickle.findings


@pytest.mark.parametrize("target", ["torch.optim.Adam", "torch.nn.Linear", "builtins.dict"])
def test_known_safe_targets_stay_quiet(tmp_path: Path, target: str) -> None:
    result = _hydra(tmp_path, target)
    assert not loud(result), loud(result)


# --- YAML python tags ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["size: !!python/tuple [3, 224, 224]\n",
                                  "z: !!python/complex 1+2j\nb: !!python/bytes aGk=\n"])
def test_yaml_python_data_tags_are_info(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hparams.yaml"
    path.write_text(text)
    result = scan(path)
    assert worst(result) is Severity.INFO and "YML004" in rules_at(result, Severity.INFO)


@pytest.mark.parametrize("text", [
    "x: !!python/object/apply:os.system ['true']\n",
    "x: !!python/name:os.system ''\n",
    "x: !!python/module:os ''\n",
    "x: !!python/object/new:subprocess.Popen [['true']]\n",
    # a tuple tag does not make its contents harmless
    "x: !!python/tuple [!!python/object/apply:os.system ['true']]\n",
])
def test_yaml_python_tags_that_import_or_call_stay_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hparams.yaml"
    path.write_text(text)
    assert "YML001" in rules_at(scan(path), Severity.ERROR)


# --- MLflow: MLmodel and environment files ------------------------------------------------------
MLFLOW = Path("/work/real-models-data/files/mlflow")
MLMODEL = """flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: {loader}
    model_path: model.pkl
    code: {code}
  sklearn:
    code: null
    pickled_model: model.pkl
mlflow_version: 3.17.2
"""


def test_mlmodel_without_extension_is_parsed_as_yaml(tmp_path: Path) -> None:
    path = tmp_path / "MLmodel"
    path.write_text(MLMODEL.format(loader="mlflow.sklearn", code="null"))
    result = scan(path)
    assert result.format == "yaml" and result.error is None and not result.findings
    # Its python tags are found like in any YAML file.
    path.write_text(MLMODEL.format(loader="mlflow.sklearn", code="null")
                    + "x: !!python/object/apply:os.system ['true']\n")
    assert "YML001" in rules_at(scan(path), Severity.ERROR)


@pytest.mark.parametrize(("loader", "code", "rule"), [
    ("my_loader", "null", "MLF001"),  # shipped loader: runs on mlflow.pyfunc.load_model
    ("mlflow_evil.sklearn", "null", "MLF001"),
    ("mlflow.sklearn", "[code]", "MLF002"),  # code paths shipping .py files
    ("mlflow.pyfunc.model", "code/loader.py", "MLF002"),
])
def test_mlmodel_loader_and_code_paths_are_warnings(
    tmp_path: Path, loader: str, code: str, rule: str
) -> None:
    path = tmp_path / "MLmodel"
    path.write_text(MLMODEL.format(loader=loader, code=code))
    assert rule in rules_at(scan(path), Severity.WARNING)


@pytest.mark.parametrize("line", [
    "--extra-index-url https://pypi.example.invalid/simple",
    "--index-url=https://pypi.example.invalid/simple",
    "-i https://pypi.example.invalid/simple",
    "-ihttps://pypi.example.invalid/simple",
    "--find-links /tmp/wheels",
    "--trusted-host pypi.example.invalid",
    "-e git+https://example.invalid/x.git#egg=x",
    "git+https://example.invalid/x.git",
    "mypkg @ https://example.invalid/mypkg-1.0.tar.gz",
    "./vendor/mypkg",
    "mypkg-1.0-py3-none-any.whl",
    "-r https://example.invalid/more.txt",
    "mypkg==1.0 --config-settings=--build-option=x",
])
def test_environment_files_installing_from_elsewhere_are_warnings(tmp_path: Path,
                                                                 line: str) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"mlflow==3.17.2\n{line}\n")
    conda = tmp_path / "conda.yaml"
    conda.write_text("channels:\n- conda-forge\ndependencies:\n- python=3.11.7\n- pip:\n"
                     f"  - mlflow==3.17.2\n  - {json.dumps(line)}\n")
    python_env = tmp_path / "python_env.yaml"
    python_env.write_text(f"python: 3.11.7\nbuild_dependencies:\n- pip==23.2.1\ndependencies:\n"
                          f"- -r requirements.txt\n- {json.dumps(line)}\n")
    for path in (requirements, conda, python_env):
        result = scan(path)
        assert "MLF003" in rules_at(result, Severity.WARNING), (path.name, result.findings)


@pytest.mark.parametrize("name", ["requirements.txt", "conda.yaml", "python_env.yaml", "MLmodel"])
def test_real_mlflow_metadata_stays_clean(name: str) -> None:
    folders = [d for d in sorted(MLFLOW.glob("*")) if (d / name).is_file()]
    if not folders:
        pytest.skip(f"{MLFLOW} not present (written by benchmarks/real_models.py)")
    for folder in folders:
        result = scan(folder / name)
        assert result.error is None and not result.findings, (folder.name, result.findings)


def test_mlmodel_models_from_code_path_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "MLmodel"
    path.write_text("flavors:\n  python_function:\n    loader_module: "
                    "mlflow.pyfunc.loaders.code_model\n    model_code_path: code/model.py\n")
    result = scan(path)
    assert rules_at(result, Severity.WARNING) == {"MLF002"}, result.findings


@pytest.mark.parametrize("padding", [400, 70_000])
def test_sb3_data_padded_with_whitespace_is_still_json(tmp_path: Path, padding: int) -> None:
    """json.loads (and so stable-baselines3's load) skips leading whitespace of any length."""
    twin = _sb3_with(tmp_path, "observation_space", base64.b64encode(SYSTEM_P0).decode())
    padded = tmp_path / "padded.zip"
    with zipfile.ZipFile(twin) as src, zipfile.ZipFile(padded, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, b" \n" * padding + data if info.filename == "data" else data)
    result = scan(padded)
    assert any(f.severity is Severity.ERROR and f.member == "data!/observation_space/:serialized:"
               for f in result.findings), result.findings
