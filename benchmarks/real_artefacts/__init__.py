"""Benign artefacts written by real ML libraries' own save functions (issue 16).

Each module here writes one family of libraries; `WRITERS` below is the explicit list the
command line (`python -m benchmarks.real_artefacts OUT`) and `benchmarks/real_models.py` walk.
A writer whose library does not import is recorded as missing, so a second interpreter (a venv
with TensorFlow, or transformers 4) can fill in the rest of the same folder:

    OUT/files/<library>/...      the artefacts (the folder that is scanned)
    OUT/manifest/<library>.json  library, version, status, and for each file how it was written

Everything is tiny (a few layers, small vocabularies) and random-initialised: nothing comes
from a hub. Nothing written here is ever loaded by the scanner.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path


@dataclass
class Out:
    """Where one writer puts its files, and how each was made (for the manifest)."""

    root: Path
    library: str
    notes: dict[str, str] = field(default_factory=dict)
    # Files (or folders) that ship code by value: a pickled function, lambda or class whose
    # code runs when the model calls it (a WARNING by the severity contract, not a false
    # positive). Set where the writer pickles such an object, never from file names.
    code: set[str] = field(default_factory=set)

    @property
    def base(self) -> Path:
        return self.root / "files" / self.library

    def path(self, name: str, how: str, *, ships_code: bool = False) -> Path:
        """The path for `name` (a file or a folder), created up to its parent, noted with `how`;
        `ships_code` when what is written there pickles a function or class by value."""
        target = self.base / name
        target.parent.mkdir(parents=True, exist_ok=True)
        self.notes[name] = how
        if ships_code:
            self.code.add(name)
        return target

    def ships_code(self, name: str) -> None:
        """Mark a file a library wrote under a folder of ours (mlflow's python_model.pkl)."""
        self.code.add(name)

    def files(self) -> list[dict[str, str | bool]]:
        rows = []
        for path in sorted(p for p in self.base.rglob("*") if p.is_file() or p.is_symlink()):
            rel = path.relative_to(self.base).as_posix()
            matches = [p for p in self.notes
                       if rel == p or rel.startswith(p.rstrip("/") + "/")]
            how = self.notes[max(matches, key=len)] if matches else ""
            row: dict[str, str | bool] = {"path": rel, "how": how,
                                          "size": str(path.lstat().st_size)}
            if any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in self.code):
                row["ships_code"] = True
            rows.append(row)
        return rows


@dataclass(frozen=True)
class Writer:
    library: str
    distributions: tuple[str, ...]
    module: str
    function: str

    def versions(self) -> dict[str, str]:
        found = {}
        for name in self.distributions:
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = "missing"
        return found

    def load(self) -> Callable[[Out], None]:
        import importlib

        module = importlib.import_module(f"benchmarks.real_artefacts.{self.module}")
        fn: Callable[[Out], None] = getattr(module, self.function)
        return fn


def _w(library: str, dists: str, module: str, function: str) -> Writer:
    return Writer(library, tuple(dists.split()), module, function)


WRITERS: tuple[Writer, ...] = (
    _w("torch", "torch", "torch_files", "write_torch"),
    _w("torchscript", "torch", "torch_files", "write_torchscript"),
    _w("torch-dcp", "torch", "torch_files", "write_dcp"),
    _w("timm", "timm torch", "vision", "write_timm"),
    _w("torchvision", "torchvision torch", "vision", "write_torchvision"),
    _w("transformers", "transformers tokenizers safetensors torch", "hf", "write_transformers"),
    _w("transformers4", "transformers tokenizers torch", "hf", "write_transformers4"),
    _w("tokenizers", "tokenizers", "hf", "write_tokenizers"),
    _w("chat-templates", "transformers", "hf", "write_chat_templates"),
    _w("safetensors", "safetensors numpy", "hf", "write_safetensors"),
    _w("diffusers", "diffusers torch", "hf", "write_diffusers"),
    _w("peft", "peft torch", "hf", "write_peft"),
    _w("sentence-transformers", "sentence-transformers torch", "hf", "write_sentence_transformers"),
    _w("sklearn", "scikit-learn joblib", "tabular", "write_sklearn"),
    _w("xgboost", "xgboost", "tabular", "write_xgboost"),
    _w("lightgbm", "lightgbm", "tabular", "write_lightgbm"),
    _w("catboost", "catboost", "tabular", "write_catboost"),
    _w("keras", "keras tensorflow tensorflow-cpu", "keras_tf", "write_keras"),
    _w("tensorflow", "tensorflow tensorflow-cpu", "keras_tf", "write_tensorflow"),
    _w("onnx", "onnx", "misc", "write_onnx"),
    _w("gguf", "gguf", "misc", "write_gguf"),
    _w("mlflow", "mlflow mlflow-skinny", "misc", "write_mlflow"),
    _w("lightning", "lightning pytorch-lightning", "misc", "write_lightning"),
    _w("fastai", "fastai", "misc", "write_fastai"),
    _w("stable-baselines3", "stable-baselines3", "misc", "write_sb3"),
    _w("gensim", "gensim", "misc", "write_gensim"),
    _w("spacy", "spacy", "misc", "write_spacy"),
    _w("pandas", "pandas pyarrow", "data", "write_pandas"),
    _w("dill", "dill", "data", "write_dill"),
    _w("cloudpickle", "cloudpickle", "data", "write_cloudpickle"),
    _w("numpy", "numpy", "data", "write_numpy"),
    _w("joblib", "joblib", "data", "write_joblib"),
)


def write_manifest(root: Path, writer: Writer, status: str, reason: str, out: Out | None) -> None:
    folder = root / "manifest"
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "library": writer.library,
        "versions": writer.versions(),
        "status": status,
        "reason": reason,
        "artefacts": out.files() if out is not None else [],
    }
    (folder / f"{writer.library}.json").write_text(json.dumps(record, indent=1) + "\n")
