"""A deterministic, realistic model-registry tree for the registry-scale benchmarks.

    python benchmarks/registry_tree.py small|large [--dir bench-data/registry-small]

Layout: `registry/ORG/MODEL/REVISION/...` (3 to 6 folders deep, some revisions keep
`checkpoints/step-N/` folders) holding many small pickles and torch state_dicts, a few
50-200 MB checkpoints (and two ~1 GB ones in `large`), safetensors, JSON configs and READMEs;
`hf-cache/hub/models--ORG--NAME/{blobs,snapshots,refs}` with snapshot files symlinked to
shared blobs; a few planted harmless-malicious files (payload `os.system("true")`, built
from opcodes or by the test fixture generators, never loaded); a few unreadable files
(mode 000), dangling links and one symlink loop. `MANIFEST.json` at the top lists the
planted, unreadable, dangling and loop paths for `compare.py` to check.

Presets: `small` is about 2,000 entries and 280 MB, `large` about 10,000 entries and
3.4 GB. Writing real checkpoints needs torch (the `fixtures` extra). A tree is written once
and reused while its `.complete-PRESET` marker exists.
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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixtures.containers import EVIL, npy_object, torch_zip
from fixtures.formats import SSTI, gguf


@dataclass(frozen=True)
class Preset:
    orgs: int
    models_per_org: int
    small_pickles: int
    state_dicts: int
    safetensors: int
    configs: int
    readmes: int
    checkpoints_mb: tuple[int, ...]  # 50-200 MB torch checkpoints
    giant_mb: tuple[int, ...]  # ~1 GB torch checkpoints
    cache_models: int  # models in the Hugging Face cache layout


PRESETS = {
    "small": Preset(orgs=6, models_per_org=10, small_pickles=760, state_dicts=340,
                    safetensors=120, configs=320, readmes=140, checkpoints_mb=(70, 120),
                    giant_mb=(), cache_models=5),
    "large": Preset(orgs=20, models_per_org=25, small_pickles=3300, state_dicts=1700,
                    safetensors=520, configs=1400, readmes=700,
                    checkpoints_mb=(50, 70, 90, 110, 130, 150, 170, 200), giant_mb=(1000, 1000),
                    cache_models=20),
}
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


def _config(rng: random.Random, i: int) -> bytes:
    return json.dumps({
        "architectures": [rng.choice(["BertModel", "LlamaForCausalLM", "ViTModel"])],
        "model_type": rng.choice(["bert", "llama", "vit"]), "hidden_size": 64 * (i % 16 + 1),
        "num_hidden_layers": i % 24 + 1, "torch_dtype": "float32", "vocab_size": 32000,
    }, indent=2).encode()


def _readme(i: int) -> bytes:
    return (f"---\nlicense: apache-2.0\ntags: [test]\n---\n# Model {i}\n\n"
            "Fine-tuned for a benchmark.\n" * (1 + i % 5)).encode()


class Writer:
    """Writes the tree and remembers what compare.py must check."""

    def __init__(self, root: Path, preset: Preset, seed: int = 20261126):
        self.root = root
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
        for org in range(p.orgs):
            for model in range(p.models_per_org):
                base = Path("registry") / f"org{org:02d}" / f"model-{model:03d}"
                for rev in range(1 + (org + model) % 2):
                    folder = base / f"rev{rev}"
                    self.folders.append(folder)
                    if (org + model) % 4 == 0:
                        for step in (1000, 2000):
                            self.folders.append(folder / "checkpoints" / f"step-{step}")

    def files(self) -> None:
        p, rng = self.preset, self.rng
        for i in range(p.small_pickles):
            self.write(self.folder() / f"artifact-{i:05d}.pkl", _small_pickle(rng, i))
        for i in range(p.safetensors):
            size = rng.randint(10_000, 600_000)
            self.write(self.folder() / f"model-{i:05d}.safetensors", _safetensors(rng, size))
        for i in range(p.configs):
            self.write(self.folder() / f"config-{i:05d}.json", _config(rng, i))
        for i in range(p.readmes):
            self.write(self.folder() / f"README-{i:05d}.md", _readme(i))
        self.torch_files()

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
                "config.json": _config(rng, i),
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
                        data = data.replace(b'"float32"', b'"bfloat16"')  # a new blob
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


def generate(preset_name: str, root: Path) -> dict[str, Any]:
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
    writer = Writer(root, PRESETS[preset_name])
    writer.layout()
    writer.files()
    writer.hf_cache()
    writer.hazards()
    entries = sum(1 for _ in _entries(root))
    size = sum(p.lstat().st_size for p in _entries(root) if p.is_file() and not p.is_symlink())
    manifest = {"preset": preset_name, "entries": entries, "bytes": size, **writer.manifest}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    marker.touch()
    return manifest


def _entries(root: Path) -> Any:
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            yield Path(folder) / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("--dir", help="default: bench-data/registry-PRESET")
    args = parser.parse_args()
    root = Path(args.dir or f"bench-data/registry-{args.preset}")
    manifest = generate(args.preset, root)
    print(f"{root}: {manifest['entries']} entries, {manifest['bytes'] / 1e6:.0f} MB, "
          f"{len(manifest['planted'])} planted, {len(manifest['unreadable'])} unreadable, "
          f"{len(manifest['dangling'])} dangling links, {len(manifest['loop'])} loop")


if __name__ == "__main__":
    main()
