"""Copy a chosen few generated artefacts into the committed fast subset.

    python -m benchmarks.real_artefacts.pick bench-data/real-models tests/fixtures/real_models

`CHOSEN` names each file by `<library>/<path>` under OUT/files with the false-positive class
(issue 16) it represents. Its `expect` in the written manifest comes from the benchmark's own
scan (OUT/scan.jsonl): "clean" when the file has no WARNING or ERROR today, else the class.
tests/test_real_models_corpus.py marks the latter `xfail(strict=True)`, so fixing a class
turns its tests into unexpected passes, and the fixer sets their `expect` to "clean".
Files that legitimately warn under the severity contract (pickled functions and classes ship
code) are left out: the subset is what must end up with no WARNING at all.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

MAX_FILE = 200 * 1024
MAX_TOTAL = 3 * 1024 * 1024

TS_GETATTR = "TorchScript codegen: getattr(self, '0') for Sequential/ModuleList (ZIP012)"
TS_RAISE = "TorchScript codegen: ops.prim.RaiseException(..., 'builtins.ValueError') (ZIP012)"
ARROW = "pandas 3 pyarrow-backed strings: pyarrow.lib._restore_array/py_buffer (PKL002)"
ZONEINFO = "tz-aware timestamp: getattr(zoneinfo.ZoneInfo, '_unpickle') (PKL001)"
DILL = "dill plain data: dill._dill._create_array/_load_type (PKL001)"
METHOD = "method descriptor getattr(builtins.str, 'split') (PKL001)"
PARTIAL = "functools.partial(torch.nn.LayerNorm) in torchvision ViT (PKL002)"
DCP_META = "torch.distributed.checkpoint .metadata dataclasses read as network/RPC (PKL001)"
DCP_DEPTH = "torch.distributed.checkpoint .distcp over the nesting limit of 8 (ENG002)"
FASTAI = "fastai Learner.export: MethodType/getattr/inspect.Signature/BUILD __module__ (PKL001)"
SB3 = "stable-baselines3 :serialized: cloudpickles in data reported without content (CFG010)"
JOBLIB_MEMORY = "joblib.Memory func_code.py of a ufunc is not Python (PYS004)"
CLEAN = "clean"

CHOSEN: dict[str, str] = {
    "torchscript/scripted_sequential_mlp.pt": TS_GETATTR,
    "torchscript/scripted_modulelist_parameterlist.pt": TS_GETATTR,
    "torchscript/frozen_sequential_mlp.pt": TS_GETATTR,
    "torchscript/scripted_checks_raise.pt": TS_RAISE,
    "torchscript/scripted_layer_norm_gelu.pt": TS_RAISE,
    "torchscript/scripted_tiny.pt": CLEAN,
    "torchscript/traced_mlp.pt": TS_GETATTR,
    "torchscript/lite_tiny.ptl": CLEAN,
    "torchvision/vit_b_16_full.pt": PARTIAL,
    "torchvision/vit_b_16_scripted.pt": TS_GETATTR,
    "torch-dcp/mlp_dcp/.metadata": DCP_META,
    "torch-dcp/mlp_dcp/__0_0.distcp": DCP_DEPTH,
    "torch-dcp/transformer_dcp/__0_0.distcp": DCP_DEPTH,
    "pandas/strings.pkl": ARROW,
    "pandas/categorical.pkl": ARROW,
    "pandas/tz_timestamps.pkl": ZONEINFO,
    "pandas/timestamp_tz.pkl": ZONEINFO,
    "pandas/numeric.pkl": ARROW,
    "pandas/series.pkl": CLEAN,
    "dill/plain_p4.pkl": DILL,
    "dill/numpy_p4.pkl": DILL,
    "dill/types_p4.pkl": DILL,
    "dill/array_module_p4.pkl": DILL,
    "cloudpickle/plain.pkl": CLEAN,
    "sklearn/countvectorizer_str_split_p4.pkl": METHOD,
    "sklearn/pipeline_p4.pkl": CLEAN,
    "sklearn/logreg.z.joblib": CLEAN,
    "fastai/tabular_export.pkl": FASTAI,
    "stable-baselines3/a2c_cartpole.zip": SB3,
    "joblib/cachedir/joblib/numpy/sqrt/func_code.py": JOBLIB_MEMORY,
    "torch/mlp_state_dict.pt": CLEAN,
    "torch/checkpoint_adam.pt": CLEAN,
    "torch/mlp_full_module.legacy.pth": CLEAN,
    "transformers/trainer/checkpoint-2/rng_state.pth": CLEAN,
    "transformers/trainer/checkpoint-2/scheduler.pt": CLEAN,
    "transformers/llama-causallm/config.json": CLEAN,
    "chat-templates/llama-3.1-standalone/chat_template.jinja": CLEAN,
    "chat-templates/qwen3-inline/tokenizer_config.json": CLEAN,
    "chat-templates/deepseek-r1/chat_template.jinja": CLEAN,
    "chat-templates/mistral-v0.3/tokenizer_config.json": CLEAN,
    "peft/lora/adapter_config.json": CLEAN,
    "sentence-transformers/mean-normalize/modules.json": CLEAN,
    "diffusers/schedulers/DDPMScheduler/scheduler_config.json": CLEAN,
    "keras/text_vectorization.keras": CLEAN,
    "keras/dense.h5": CLEAN,
    "tensorflow/frozen_graph.pb": CLEAN,
    "onnx/mlp.onnx": CLEAN,
    "gguf/qwen2-tiny.gguf": CLEAN,
    "lightning/manual.ckpt": CLEAN,
    "xgboost/booster.json": CLEAN,
    "lightgbm/model.txt": CLEAN,
    "catboost/model.cbm": CLEAN,
    "gensim/word2vec.model": CLEAN,
    "spacy/docs.spacy": CLEAN,
    "safetensors/numpy_float32.safetensors": CLEAN,
    "numpy/objects.npy": CLEAN,
}


def _loud_files(out: Path) -> set[str]:
    """Files (relative to OUT/files) with a WARNING or ERROR finding in OUT/scan.jsonl."""
    root = (out / "files").resolve()
    loud = set()
    for line in (out / "scan.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("max_severity") in ("warning", "error") or record["status"] == "error":
            loud.add(Path(record["path"]).resolve().relative_to(root).as_posix())
    return loud


def main(argv: list[str]) -> int:
    out, target = Path(argv[0]), Path(argv[1])
    manifests = {m.stem: json.loads(m.read_text()) for m in (out / "manifest").glob("*.json")}
    shutil.rmtree(target, ignore_errors=True)
    loud = _loud_files(out)
    rows = []
    total = 0
    for name, fp_class in CHOSEN.items():
        expect = fp_class if name in loud else CLEAN
        if name in loud and fp_class == CLEAN:
            raise SystemExit(f"{name} was chosen as clean but is flagged: give it a class")
        library, rel = name.split("/", 1)
        source = out / "files" / library / rel
        size = source.stat().st_size
        if size > MAX_FILE:
            raise SystemExit(f"{name} is {size} bytes (over {MAX_FILE})")
        total += size
        destination = target / library / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        manifest = manifests[library]
        how = next((a["how"] for a in manifest["artefacts"] if a["path"] == rel), "")
        rows.append({"file": f"{library}/{rel}", "library": library,
                     "versions": manifest["versions"], "how": how, "expect": expect})
    if total > MAX_TOTAL:
        raise SystemExit(f"the subset is {total} bytes (over {MAX_TOTAL})")
    (target / "manifest.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(rows)} files, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
