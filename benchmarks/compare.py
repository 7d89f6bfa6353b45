"""batchscan against the floors (and the peers) on the same warm registry tree, in one run.

    .venv/bin/python benchmarks/compare.py small|large [--dir DIR] [--jobs 2] [--with-peers]
                                           [--repeat N] [--tree-python PY]

Rows, each a whole process tree measured by benchmarks/measure.py (wall time, CPU time of
the tree, peak RSS of the command's own process and of its largest descendant):

- `find`: the walk floor;
- `cat`, 2 processes: reading every byte;
- `sha256sum`, 2 processes: hashing every byte (batchscan hashes every file);
- `hashlib sha256`, 2 processes: the same with Python's hashlib, which batchscan uses (OpenSSL,
  with the CPU's SHA extensions where coreutils here has none): the hash part of the floor;
- `pickletools.genops`, 2 processes, over the pickle parts only (whole files that start like
  a pickle, the `.pkl` members of zips): the floor issue 18 first compared against. It reads
  4 bytes of every other file, so on a Hub-like tree (mostly JSON by bytes) it leaves out
  most of the work any scanner must do;
- `parse floor`, 2 processes: every byte hashed with hashlib's sha256 (what batchscan uses)
  and each file parsed by the fastest bare parser of its format, with no check at all:
  `pickletools.genops` over the pickle parts as above, `orjson.loads` for `.json` files (the
  reference issue 18 names for JSON), libyaml's composer for `.yaml`/`.yml`, orjson over a
  safetensors header. Every other format costs only its hash here, so this is a lower bound
  on a scanner that hashes and parses what it checks;
- `batchscan scan TREE -j 2`: every format scanned, sha256 on, JSONL written;
- with `--with-peers`, from a venv under bench-data/peers-venv that the script creates
  (pip install picklescan modelscan modelaudit): picklescan and modelscan on the tree with its
  symlink loop and dangling links removed for them (picklescan aborts on either), and
  ModelAudit on a 100-file sample copied out of the tree; its time is extrapolated to the
  whole tree by file count and marked so.

Then it prints batchscan's per-format worker throughput from the records of its last run:
files, MB, the sum of `duration_ms` and MB/s per `format` (new formats show up by
themselves), and checks the records against the tree's MANIFEST.json: every planted file
flagged, nothing unreadable, dangling or looping reported clean, one record per entry, and
prints the ratios. The tree comes from registry_tree.py, written by `--tree-python` (an
interpreter with torch and tokenizers, default /work/realvenv/bin/python) when it is not there
yet, and is warmed (read once) first.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import measure

HERE = Path(__file__).resolve().parent

GENOPS = r"""
import pickletools, sys, zipfile
def parts(path):
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == b"PK\x03\x04":
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".pkl"):
                    with archive.open(name) as member:
                        yield member
    elif head[:1] == b"\x80":
        with open(path, "rb") as handle:
            yield handle
for line in open(sys.argv[1]):
    try:
        for stream in parts(line.rstrip("\n")):
            for _ in pickletools.genops(stream):
                pass
    except Exception:
        pass
"""
# The parse floor (see the docstring): hash every byte, parse pickles, JSON, YAML and
# safetensors headers with the fastest bare parser, check nothing.
PARSE = GENOPS.split("for line in open")[0] + r"""
import hashlib, orjson, yaml
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
for line in open(sys.argv[1]):
    path = line.rstrip("\n")
    try:
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, "sha256")
            handle.seek(0)
            head = handle.read(8)
            handle.seek(0)
            lowered = path.lower()
            if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
                for stream in parts(path):
                    for _ in pickletools.genops(stream):
                        pass
            elif lowered.endswith(".json"):
                orjson.loads(handle.read())
            elif lowered.endswith((".yaml", ".yml")):
                list(yaml.compose_all(handle.read(), Loader=LOADER))
            elif lowered.endswith(".safetensors"):
                handle.seek(8)
                orjson.loads(handle.read(int.from_bytes(head, "little")))
    except Exception:
        pass
"""
HASH = r"""
import hashlib, sys
for line in open(sys.argv[1]):
    with open(line.rstrip("\n"), "rb") as handle:
        hashlib.file_digest(handle, "sha256")
"""
PEERS = ("picklescan", "modelscan", "modelaudit")
# No network here: ModelAudit's telemetry would retry DNS failures for seconds per run.
PEER_ENV = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}


def regular_files(root: Path) -> list[Path]:
    out = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if not path.is_symlink() and path.is_file() and name != "MANIFEST.json":
                out.append(path)
    return sorted(out)


def split(paths: list[Path], parts: int, scratch: Path) -> list[Path]:
    """File lists of about equal bytes each (largest first into the lightest list)."""
    lists: list[list[str]] = [[] for _ in range(parts)]
    weights = [0] * parts
    for path in sorted(paths, key=lambda p: -p.stat().st_size):
        lightest = weights.index(min(weights))
        lists[lightest].append(str(path))
        weights[lightest] += path.stat().st_size
    out = []
    for i, names in enumerate(lists):
        target = scratch / f"list-{i}.txt"
        target.write_text("".join(n + "\n" for n in names))
        out.append(target)
    return out


def peers_venv(root: Path) -> Path:
    venv = root / "peers-venv"
    if not (venv / "bin" / "modelaudit").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PEERS], check=True)
    return venv / "bin"


def needles(manifest: dict[str, Any], root: Path) -> list[str]:
    """How each planted file shows up in a peer's report: its path under the tree, or for a
    Hub-cache name `hf://ORG/NAME@COMMIT/FILE` the snapshot path that links to the blob."""
    out = []
    for planted in manifest["planted"]:
        if planted.startswith("hf://"):
            repo, _, rest = planted[len("hf://"):].partition("@")
            commit, _, name = rest.partition("/")
            out.append(f"models--{repo.replace('/', '--')}/snapshots/{commit}/{name}")
        else:
            out.append(str(Path(planted).relative_to(root)))
    return out


def named(result: measure.Measured, wanted: list[str]) -> str:
    text = (result.stdout + result.stderr).decode("utf-8", "replace")
    return f"planted named in its report: {sum(1 for w in wanted if w in text)}/{len(wanted)}"


def check(out: Path, manifest: dict[str, Any], files: int) -> list[str]:
    records = [json.loads(line) for line in out.open("rb")]
    by_path = {r["path"]: r for r in records}
    lines = []
    statuses = collections.Counter(r["status"] for r in records)
    lines.append(f"records: {len(records)} ({dict(sorted(statuses.items()))})")
    missed = [p for p in manifest["planted"]
              if by_path.get(p, {}).get("max_severity") not in ("error", "warning")]
    lines.append(f"planted flagged: {len(manifest['planted']) - len(missed)}"
                 f"/{len(manifest['planted'])}" + (f"  MISSED {missed}" if missed else ""))
    for kind in ("unreadable", "dangling", "loop"):
        got = [by_path.get(p, {}).get("status", "no record") for p in manifest[kind]]
        lines.append(f"{kind}: {got}")
    if os.geteuid() == 0:
        lines.append("(running as root: mode 000 does not stop reads, so the unreadable files "
                     "were read and scanned like any other)")
    clean_bad = [p for kind in ("dangling", "loop") for p in manifest[kind]
                 if by_path.get(p, {}).get("status") == "clean"]
    if os.geteuid() != 0:
        clean_bad += [p for p in manifest["unreadable"]
                      if by_path.get(p, {}).get("status") == "clean"]
    lines.append("nothing unreadable reported clean: " + ("yes" if not clean_bad else
                                                        f"NO {clean_bad}"))
    failed = [r["path"] for r in records if r["status"] in ("crashed", "timeout", "oom")]
    lines.append(f"crashed/timeout/oom: {len(failed)}; regular files in the tree: {files}")
    return lines


def throughput(out: Path) -> list[str]:
    """Per-format worker time: files, MB, sum of duration_ms, MB/s (from the records)."""
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for line in out.open("rb"):
        record = json.loads(line)
        if record.get("duration_ms") is None or record["status"] in ("skipped",):
            continue
        row = totals[record["format"]]
        row[0] += 1
        row[1] += (record.get("size") or 0) / 1e6
        row[2] += record["duration_ms"]
    lines = [f"{'format':16} {'files':>6} {'MB':>9} {'worker ms':>10} {'MB/s':>8} "
             f"{'ms/file':>8}"]
    for name, (count, megabytes, ms) in sorted(totals.items(), key=lambda kv: -kv[1][2]):
        rate = f"{megabytes / ms * 1000:8.0f}" if ms else f"{'-':>8}"
        lines.append(f"{name:16} {count:6.0f} {megabytes:9.1f} {ms:10.0f} {rate} "
                     f"{ms / count:8.2f}")
    return lines


def load_tree(preset: str, root: Path, tree_python: str) -> dict[str, Any]:
    if not (root / f".complete-{preset}").exists():
        subprocess.run([tree_python, str(HERE / "registry_tree.py"), preset, "--dir",
                        str(root), "--h5-python", sys.executable], check=True)
    return dict(json.loads((root / "MANIFEST.json").read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=("small", "large"))
    parser.add_argument("--dir", help="default: bench-data/registry-PRESET")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--with-peers", action="store_true")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each command N times and keep the median wall time")
    parser.add_argument("--tree-python", default="/work/realvenv/bin/python",
                        help="interpreter with torch and tokenizers that writes the tree")
    args = parser.parse_args()
    root = Path(args.dir or f"bench-data/registry-{args.preset}")
    manifest = load_tree(args.preset, root, args.tree_python)
    files = regular_files(root)
    total = sum(p.stat().st_size for p in files)
    scratch = Path(tempfile.mkdtemp(prefix="batchscan-compare-"))
    lists = split(files, 2, scratch)
    two = " & ".join(f"{{cmd}} {lst}" for lst in lists) + " & wait"
    subprocess.run(["sh", "-c", two.format(cmd="xargs -d '\\n' cat >/dev/null <")], check=True)

    rows: list[tuple[str, measure.Measured, str]] = []
    def timed(cmd: list[str], env: dict[str, str] | None = None) -> measure.Measured:
        """The run with the median wall time of `--repeat` runs."""
        runs = sorted((measure.run(cmd, env=env) for _ in range(args.repeat)),
                      key=lambda m: m.wall)
        return runs[len(runs) // 2]

    rows.append(("find", timed(["find", str(root)]), ""))
    rows.append(("cat, 2 processes", timed(
        ["sh", "-c", two.format(cmd="xargs -d '\\n' cat >/dev/null <")]), ""))
    rows.append(("sha256sum, 2 processes", timed(
        ["sh", "-c", two.format(cmd="xargs -d '\\n' sha256sum >/dev/null <")]), ""))
    rows.append(("hashlib sha256, 2 processes",
                 timed(["sh", "-c", two.format(cmd=f"{sys.executable} -c '{HASH}'")]), ""))
    genops = timed(["sh", "-c", two.format(cmd=f"{sys.executable} -c '{GENOPS}'")])
    rows.append(("pickletools.genops, 2 processes", genops, ""))
    floor = timed(["sh", "-c", two.format(cmd=f"{sys.executable} -c '{PARSE}'")])
    rows.append(("parse floor, 2 processes", floor, ""))
    out = scratch / "batchscan.jsonl"
    scan = timed([sys.executable, "-m", "batchscan", "scan", str(root), "-f", "jsonl",
                        "-o", str(out), "-j", str(args.jobs), "--no-progress"])
    rows.append((f"batchscan -j {args.jobs} (sha256 on)", scan, f"exit {scan.returncode}"))

    if args.with_peers:
        bin_dir = peers_venv(root.parent)
        # picklescan aborts the whole scan on a symlink loop or a dangling link (FileNotFoundError):
        # the peers get the tree without those links.
        links = {Path(p): Path(p).readlink() for p in manifest["loop"] + manifest["dangling"]}
        for link in links:
            link.unlink()
        try:
            for name, cmd in (("picklescan", [str(bin_dir / "picklescan"), "-p", str(root)]),
                              ("modelscan", [str(bin_dir / "modelscan"), "-p", str(root)])):
                result = timed(cmd, env=PEER_ENV)
                rows.append((f"{name} (no bad links)", result,
                             f"exit {result.returncode}; {named(result, needles(manifest, root))}"))
        finally:
            for link, target in links.items():
                link.symlink_to(target)
        sample = scratch / "sample"
        step = max(1, len(files) // 100)
        for i, path in enumerate(files[::step][:100]):
            (sample / str(i)).mkdir(parents=True)
            shutil.copy(path, sample / str(i) / path.name)
        audit = timed([str(bin_dir / "modelaudit"), "scan", str(sample)], env=PEER_ENV)
        factor = len(files) / 100
        rows.append(("modelaudit, 100-file sample", audit, f"exit {audit.returncode}"))
        extrapolated = measure.Measured(audit.wall * factor, audit.cpu * factor,
                                        audit.returncode, b"", b"", audit.peak_root_kib,
                                        audit.peak_other_kib)
        rows.append((f"modelaudit x{factor:.1f} (EXTRAPOLATED)", extrapolated, ""))

    print(f"tree {root}: {manifest['entries']} entries, {len(files)} regular files, "
          f"{total / 1e6:.0f} MB; warm page cache; {os.cpu_count()} CPUs; "
          f"median of {args.repeat} run(s) per row")
    print(f"{'what':36} {'wall s':>8} {'cpu s':>8} {'x genops':>9} {'x floor':>8} "
          f"{'RSS own/child MB':>17}")
    for name, result, note in rows:
        rss = f"{result.peak_root_kib / 1024:.0f}/{result.peak_other_kib / 1024:.0f}"
        print(f"{name:36} {result.wall:8.2f} {result.cpu:8.2f} "
              f"{result.wall / genops.wall:9.2f} {result.wall / floor.wall:8.2f} {rss:>17}  "
              f"{note}")
    for line in check(out, manifest, len(files)):
        print(line)
    print("batchscan worker time per format (last run's records):")
    for line in throughput(out):
        print("  " + line)
    walk = scan.samples
    if walk:
        print(f"batchscan coordinator RSS peak {scan.peak_root_kib / 1024:.0f} MB over "
              f"{len(walk)} samples; largest child {scan.peak_other_kib / 1024:.0f} MB")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
