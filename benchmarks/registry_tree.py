"""A deterministic, realistic model-registry tree for the registry-scale benchmarks.

    /work/realvenv/bin/python benchmarks/registry_tree.py small|large [--dir DIR]

Layout: `registry/ORG/MODEL/REVISION/...` (3 to 6 folders deep, some revisions keep
`checkpoints/step-N/` folders). Every revision is a Hugging Face repository of one family
(llama, bert, t5, whisper, vit, a diffusers pipeline; see hub_repo.py) with its small text
files: README.md, .gitattributes, config.json, generation_config.json,
special_tokens_map.json, tokenizer_config.json (llama ones with a real chat template),
preprocessor or scheduler configs, and in the first revision a real-size tokenizer.json
(0.7-26 MB, written by the `tokenizers` library: BPE 128k/151k/262k entries, Unigram, WordPiece).
Besides: many small pickles and torch state_dicts, a few 50-200 MB checkpoints (two ~1 GB ones
in `large`), safetensors, GGUF headers, Keras H5 files, Hydra YAML configs;
`hf-cache/hub/models--ORG--NAME/{blobs,snapshots,refs}` with snapshot files symlinked to
shared blobs; planted harmless-malicious files (payload `os.system("true")`, built from
opcodes or by the test fixture generators, never loaded), unreadable files (mode 000),
dangling links and one symlink loop. `MANIFEST.json` lists the planted, unreadable, dangling
and loop paths for `compare.py` to check. Most files are small text, as in a Hub org.

Interpreters: the tree needs torch and tokenizers (both in /work/realvenv; the project's
.venv has neither) and h5py for the Keras files (the project's .venv has it: `--h5-python`,
default that venv, is run for them). A tree is written once and reused while its
`.complete-PRESET` marker exists; `compare.py` runs this script with `--tree-python` when the
marker is missing.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import pickle
import random
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixtures.containers import EVIL, npy_object, torch_zip
from fixtures.formats import SSTI, gguf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_repo import FAMILIES, TEMPLATES, TOKENIZER_OF, TOKENIZERS, repo_files, tokenizer_json

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Preset:
    orgs: int
    models_per_org: int
    small_pickles: int
    state_dicts: int
    safetensors: int
    ggufs: int
    keras_h5: int
    yamls: int
    checkpoints_mb: tuple[int, ...]  # 50-200 MB torch checkpoints
    giant_mb: tuple[int, ...]  # ~1 GB torch checkpoints
    cache_models: int  # models in the Hugging Face cache layout
    big_tokenizers: tuple[str, ...]  # the large BPE vocabularies the llama repos cycle through
    formats3_copies: int = 2  # copies of the issue-20 formats' benign files (formats3/*.py)


PRESETS = {
    "small": Preset(orgs=6, models_per_org=10, small_pickles=200, state_dicts=150,
                    safetensors=120, ggufs=12, keras_h5=8, yamls=40, checkpoints_mb=(70, 120),
                    giant_mb=(), cache_models=5, big_tokenizers=("llama", "qwen"),
                    formats3_copies=2),
    "large": Preset(orgs=20, models_per_org=25, small_pickles=1500, state_dicts=1000,
                    safetensors=520, ggufs=40, keras_h5=30, yamls=150,
                    checkpoints_mb=(50, 70, 90, 110, 130, 150, 170, 200), giant_mb=(1000, 1000),
                    cache_models=20, big_tokenizers=("llama", "qwen", "gemma"),
                    formats3_copies=10),
}
# which family each model is: most are LLMs and encoders, as on the Hub
FAMILY_WEIGHTS = {"llama": 5, "bert": 5, "t5": 3, "whisper": 2, "vit": 3, "diffusers": 2}
PLANTED_CALL = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."  # never loaded


def _small_pickle(rng: random.Random, i: int) -> bytes:
    target = rng.randint(1_000, 50_000)
    kind = i % 3
    obj: object
    if kind == 0:  # a state-dict-like mapping of float blobs
        obj = {f"layer{j}.weight": rng.randbytes(max(1, target // 4)) for j in range(4)}
    elif kind == 1:  # label encoders, vocabularies: many small opcodes
        obj = [{"id": j, "label": f"c{j % 17}", "p": j / 3} for j in range(target // 40)]
    else:
        obj = {"name": f"m{i}", "vocab": [f"tok{j}" for j in range(target // 12)],
               "shape": (3, 224, 224)}
    return pickle.dumps(obj, protocol=rng.choice([2, 4, 5]))


def _safetensors(rng: random.Random, size: int) -> bytes:
    tensors, offset, header = max(1, size // 65536), 0, {}
    each = max(4, size // tensors // 4 * 4)
    for j in range(tensors):
        header[f"model.layers.{j}.weight"] = {"dtype": "F32", "shape": [each // 4],
                                              "data_offsets": [offset, offset + each]}
        offset += each
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + rng.randbytes(offset)


def _yaml(rng: random.Random, i: int) -> bytes:
    return (f"# Hydra config {i}\ndefaults:\n  - _self_\n  - optimizer: adamw\n"
            f"model:\n  _target_: torch.nn.Linear\n  in_features: {64 * (i % 8 + 1)}\n"
            f"  out_features: {rng.randint(2, 1000)}\noptimizer:\n"
            f"  _target_: torch.optim.AdamW\n  lr: {rng.choice([1e-4, 3e-4, 1e-3])}\n"
            f"  weight_decay: 0.01\ntrainer:\n  max_epochs: {rng.randint(1, 100)}\n"
            f"  precision: bf16-mixed\n  devices: 8\ndata:\n  batch_size: 32\n"
            f"  paths: [{', '.join(f'/data/shard-{j:03d}' for j in range(i % 20))}]\n").encode()


class Writer:
    """Writes the tree and remembers what compare.py must check."""

    def __init__(self, root: Path, preset: Preset, seed: int = 20261126,
                 h5_python: str = sys.executable):
        self.root = root
        self.h5_python = h5_python
        self.preset = preset
        self.rng = random.Random(seed)
        self.manifest: dict[str, list[str]] = {"planted": [], "unreadable": [], "dangling": [],
                                               "loop": []}
        self.folders: list[Path] = []

    def write(self, relative: Path, data: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def folder(self) -> Path:
        return self.rng.choice(self.folders)

    def layout(self) -> None:
        p = self.preset
        families = [f for f in FAMILIES for _ in range(FAMILY_WEIGHTS[f])]
        self.repos: list[tuple[Path, str, int]] = []  # (folder, family, revision)
        for org in range(p.orgs):
            for model in range(p.models_per_org):
                base = Path("registry") / f"org{org:02d}" / f"model-{model:03d}"
                family = families[(org * 7 + model * 3) % len(families)]
                for rev in range(1 + (org + model) % 2):
                    folder = base / f"rev{rev}"
                    self.folders.append(folder)
                    self.repos.append((folder, family, rev))
                    if (org + model) % 4 == 0:
                        for step in (1000, 2000):
                            self.folders.append(folder / "checkpoints" / f"step-{step}")

    def tokenizer(self, family: str, index: int) -> bytes:
        """The family's tokenizer.json (llama repos cycle through the preset's big BPEs)."""
        key = family
        if family == "llama":
            key = self.preset.big_tokenizers[index % len(self.preset.big_tokenizers)]
        if key not in self.tokenizers:
            kind, vocab = TOKENIZERS[key]
            self.tokenizers[key] = tokenizer_json(kind, vocab)
        return self.tokenizers[key]

    def repositories(self) -> None:
        self.tokenizers: dict[str, bytes] = {}
        for index, (folder, family, rev) in enumerate(self.repos):
            tokenizer = None
            if rev == 0 and family in TOKENIZER_OF:
                tokenizer = self.tokenizer(family, index)
            for name, data in repo_files(family, self.rng, str(folder), tokenizer).items():
                self.write(folder / name, data)

    def files(self) -> None:
        p, rng = self.preset, self.rng
        self.repositories()
        for i in range(p.small_pickles):
            self.write(self.folder() / f"artifact-{i:05d}.pkl", _small_pickle(rng, i))
        for i in range(p.safetensors):
            size = rng.randint(10_000, 600_000)
            self.write(self.folder() / f"model-{i:05d}.safetensors", _safetensors(rng, size))
        for i in range(p.ggufs):  # headers of quantised llama exports (tensor data stubbed)
            self.write(self.folder() / f"model-q4_k_m-{i:03d}.gguf", gguf(
                {"general.architecture": "llama", "general.name": f"model {i}",
                 "llama.context_length": 8192, "tokenizer.ggml.model": "gpt2",
                 "tokenizer.chat_template": TEMPLATES[i % len(TEMPLATES)]}, tensors=32 + i))
        for i in range(p.yamls):
            self.write(self.folder() / f"config-{i:04d}.yaml", _yaml(rng, i))
        self.keras_files()
        self.torch_files()

    def keras_files(self) -> None:
        """Keras 2 HDF5 models, written by h5py in the `--h5-python` interpreter."""
        paths = []
        for i in range(self.preset.keras_h5):
            path = self.root / self.folder() / f"keras-model-{i:03d}.h5"
            path.parent.mkdir(parents=True, exist_ok=True)
            paths.append(str(path))
        code = ("import sys; sys.path.insert(0, sys.argv[1]);"
                "from fixtures.formats import keras_config, keras_h5; from pathlib import Path;"
                "[keras_h5(Path(p), keras_config(False)) for p in sys.argv[2:]]")
        subprocess.run([self.h5_python, "-c", code, str(REPO_ROOT / "tests"), *paths],
                       check=True)

    def torch_files(self) -> None:
        import torch
        from torch import nn

        p, rng = self.preset, self.rng
        torch.manual_seed(0)
        for i in range(p.state_dicts):
            width = 8 + i % 56
            model = nn.Sequential(nn.Linear(width, width * 2), nn.ReLU(),
                                  nn.Linear(width * 2, 4))
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)
            self.write(self.folder() / f"pytorch_model-{i:05d}.bin", buffer.getvalue())
        for i, megabytes in enumerate(p.checkpoints_mb + p.giant_mb):
            layers = max(1, megabytes // 16)  # 16 MiB float32 tensors, filled by a constant
            state = {f"layers.{j}.weight": torch.full((2048, 2048), float(j))
                     for j in range(layers)}
            path = self.root / self.folder() / f"checkpoint-{megabytes}mb-{i}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": state, "step": 1000 * i, "optimizer": {"lr": 1e-4}}, path)
            del state
        del rng

    def hf_cache(self) -> None:
        rng = self.rng
        for i in range(self.preset.cache_models):
            repo = self.root / "hf-cache" / "hub" / f"models--cacheorg--model-{i:02d}"
            blobs: dict[str, bytes] = {
                "config.json": repo_files("llama", rng, "cache", None)["config.json"],
                "model.safetensors": _safetensors(rng, 4_000_000),
                "pytorch_model.bin": _small_pickle(rng, i),
            }
            if i == 1:  # a planted payload reached only through a snapshot link
                blobs["training_args.bin"] = PLANTED_CALL
            commits = [hashlib.sha1(f"{i}-{c}".encode()).hexdigest() for c in range(2)]
            for c, commit in enumerate(commits):
                snapshot = repo / "snapshots" / commit
                snapshot.mkdir(parents=True, exist_ok=True)
                for name, data in blobs.items():
                    if c == 1 and name == "config.json":
                        data = data.replace(b'"bfloat16"', b'"float16"')  # a new blob
                    digest = hashlib.sha256(data).hexdigest()
                    blob = repo / "blobs" / digest
                    blob.parent.mkdir(parents=True, exist_ok=True)
                    if not blob.exists():
                        blob.write_bytes(data)
                    (snapshot / name).symlink_to(Path("../../blobs") / digest)
                    if name == "training_args.bin":  # its records name the snapshot files
                        self.manifest["planted"].append(
                            f"hf://cacheorg/model-{i:02d}@{commit}/{name}")
            (repo / "refs").mkdir(exist_ok=True)
            (repo / "refs" / "main").write_text(commits[-1])

    def hazards(self) -> None:
        planted = {
            "evil-args.pkl": PLANTED_CALL,
            "pytorch_model.bin": torch_zip(EVIL),
            "embeddings.npy": npy_object(EVIL),
            "pipeline.joblib.gz": gzip.compress(EVIL, mtime=0),
            "params.yaml": b"optimizer: !!python/object/apply:os.system [\"true\"]\n",
            "model.gguf": gguf({"general.architecture": "llama",
                                "tokenizer.chat_template": SSTI}),
        }
        # repository files of a realistic size with the payload where a loader acts on it
        llama = repo_files("llama", self.rng, "planted", None)
        template = json.loads(llama["tokenizer_config.json"])
        template["chat_template"] = SSTI
        planted["tokenizer_config.json"] = json.dumps(template, indent=2).encode()
        config = json.loads(llama["config.json"])
        config["auto_map"] = {"AutoModelForCausalLM": "other-org/helper--modeling_x.Model"}
        planted["config.json"] = json.dumps(config, indent=2).encode()
        for name, data in planted.items():
            path = self.write(self.folder() / "planted" / name, data)
            self.manifest["planted"].append(str(path))
        for i in range(3):
            path = self.write(self.folder() / f"locked-{i}.pkl", _small_pickle(self.rng, i))
            path.chmod(0)
            self.manifest["unreadable"].append(str(path))
        for i in range(3):
            link = self.root / self.folder() / f"dangling-{i}.bin"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f"../missing-blob-{i}")
            self.manifest["dangling"].append(str(link))
        loop = self.root / "registry" / "org00" / "model-000" / "rev0" / "loop"
        loop.parent.mkdir(parents=True, exist_ok=True)
        loop.symlink_to("..")
        self.manifest["loop"].append(str(loop))


def generate(preset_name: str, root: Path, h5_python: str | None = None) -> dict[str, Any]:
    """Write the tree (once) and return its manifest."""
    marker = root / f".complete-{preset_name}"
    manifest_path = root / "MANIFEST.json"
    if marker.exists():
        return dict(json.loads(manifest_path.read_text()))
    if root.exists():
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                path.chmod(0o644)
        import shutil

        shutil.rmtree(root)
    h5 = h5_python or str(REPO_ROOT / ".venv" / "bin" / "python")
    writer = Writer(root, PRESETS[preset_name], h5_python=h5)
    writer.layout()
    writer.files()
    writer.hf_cache()
    _formats3(root / "registry" / "formats3", PRESETS[preset_name].formats3_copies)
    writer.hazards()
    entries = sum(1 for _ in _entries(root))
    size = sum(p.lstat().st_size for p in _entries(root) if p.is_file() and not p.is_symlink())
    manifest = {"preset": preset_name, "entries": entries, "bytes": size, **writer.manifest}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    marker.touch()
    return manifest


def _formats3(folder: Path, copies: int) -> None:
    """The benign files of the formats added by issue 20 (TFLite, ExecuTorch, Core ML, Paddle,
    MXNet, XGBoost, LightGBM, CatBoost, skops, Flax, Orbax, R, NeMo, .mar, RAR, OCI, TensorRT,
    llamafile, OpenVINO, PMML: benchmarks/formats3/), so compare.py's per-format table has a
    row for each."""
    import importlib

    sys.path.insert(0, str(Path(__file__).resolve().parent / "formats3"))
    for name in ("fmt_bin", "fmt_tree", "fmt_pack"):
        importlib.import_module(name).write(folder / name, copies)


def _entries(root: Path) -> Any:
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            yield Path(folder) / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("--dir", help="default: bench-data/registry-PRESET")
    parser.add_argument("--h5-python", help="an interpreter with h5py (default: .venv's)")
    args = parser.parse_args()
    root = Path(args.dir or f"bench-data/registry-{args.preset}")
    manifest = generate(args.preset, root, args.h5_python)
    print(f"{root}: {manifest['entries']} entries, {manifest['bytes'] / 1e6:.0f} MB, "
          f"{len(manifest['planted'])} planted, {len(manifest['unreadable'])} unreadable, "
          f"{len(manifest['dangling'])} dangling links, {len(manifest['loop'])} loop")


if __name__ == "__main__":
    main()
