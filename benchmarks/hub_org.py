"""Hub overhead: a fake-Hub org of 200 small repos (2,000 files) against the same files on disk.

    python benchmarks/hub_org.py [--repos 200] [--files-per-repo 10] [--jobs 2]

The fake Hub (tests/fixtures/fakehub.py) runs in this process on 127.0.0.1; batchscan talks to
it with the real huggingface_hub client (`hf://benchorg`: one paged author listing, then per
repo an info and a tree call, then one download per file). The same files are written under
bench-data/hub_org/ and scanned as a directory. Prints both wall times, the difference per
file, and HTTP requests per file. The fake server is a Python ThreadingHTTPServer on the same
2 cores, so part of the overhead is the server's own CPU: a real Hub's latency replaces it.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import sys
from pathlib import Path

import measure

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixtures.fakehub import FakeHub, Files, serve

COMMIT = "b0" * 20


def repo_files(rng: random.Random, index: int) -> Files:
    """Ten files a small model repo might hold; one repo in 50 carries a planted payload."""
    weights = {f"layer{j}.weight": rng.randbytes(rng.randint(500, 4000)) for j in range(4)}
    files: Files = {
        "config.json": f'{{"model_type": "bert", "hidden_size": {64 * (index % 8 + 1)}}}'.encode(),
        "tokenizer_config.json": b'{"model_max_length": 512, "do_lower_case": true}',
        "generation_config.json": b'{"max_new_tokens": 32}',
        "README.md": f"# model {index}\n\nA small test model.\n".encode(),
        "pytorch_model.bin": pickle.dumps(weights, protocol=4),
        "training_args.bin": pickle.dumps({"lr": 1e-4, "epochs": 3, "seed": index}, protocol=2),
        "vocab.txt": "\n".join(f"tok{j}" for j in range(rng.randint(100, 800))).encode(),
        "special_tokens_map.json": b'{"unk_token": "[UNK]"}',
        "optimizer.pt": pickle.dumps([rng.random() for _ in range(200)], protocol=4),
        "scheduler.pt": pickle.dumps({"last_epoch": index}, protocol=4),
    }
    if index % 50 == 7:  # a harmless os.system("true") call, built as opcodes, never loaded
        files["training_args.bin"] = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--files-per-repo", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dir", default="bench-data/hub_org")
    args = parser.parse_args()

    rng = random.Random(42)
    models = {}
    root = Path(args.dir)
    for i in range(args.repos):
        files = dict(list(repo_files(rng, i).items())[: args.files_per_repo])
        repo = f"benchorg/model-{i:03d}"
        models[repo] = {"main": (COMMIT, files)}
        for name, data in files.items():
            path = root / repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    total = sum(len(files) for _, files in (r["main"] for r in models.values()))
    FakeHub.models, FakeHub.page = models, 100
    cmd = [sys.executable, "-m", "batchscan", "scan", "-f", "jsonl", "-j", str(args.jobs),
           "--no-progress"]
    local = measure.run([*cmd, str(root)])
    with serve() as endpoint:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        env.pop("HF_TOKEN", None)
        remote = measure.run([*cmd, "hf://benchorg"], env=env)
        requests = len(FakeHub.log)
    for name, result in (("local", local), ("hub", remote)):
        lines = result.stdout.count(b"\n")
        flagged = result.stdout.count(b'"status":"findings"')
        print(f"{name:6s} wall {result.wall:6.2f} s  cpu {result.cpu:6.2f} s  records {lines}"
              f"  flagged {flagged}  coordinator RSS {result.peak_root_kib / 1024:.0f} MB"
              f"  exit {result.returncode}")
    extra = remote.wall - local.wall
    print(f"{total} files in {args.repos} repos; hub overhead {extra:.2f} s in all, "
          f"{1000 * extra / total:.2f} ms per file; {requests / total:.2f} HTTP requests "
          f"per file ({requests} in all)")


if __name__ == "__main__":
    main()
