"""`slobench run`, `slobench workloads`, `slobench bench sim` and every `--help`, as a user runs them.

Runs happen in a temporary working directory with the default `--out results`, so the printed
results path is the one a user would see. Requests are few (tens) to keep the file fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import slobench.cli.run as run_mod
import slobench.cli.workloads_cmd as workloads_mod
from slobench.cli import app
from slobench.workloads import list_specs
from slobench.workloads.spec import SPEC_DIR
from tests.run_helpers import interrupt_runs_after

runner = CliRunner()


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide console so table rows and the results path are not wrapped in the captured output."""
    monkeypatch.setattr(run_mod.console, "width", 200)
    monkeypatch.setattr(workloads_mod.console, "width", 200)


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "results").iterdir() if p.is_dir()) if (root / "results").exists() else []


def test_run_end_to_end_writes_results_and_prints_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "--workload", "chatbot", "--scheduler", "vllm", "--rate", "4",
                              "--num-requests", "60"])
    assert res.exit_code == 0, res.output
    [run_dir] = _run_dirs(tmp_path)
    for name in ("manifest.json", "requests.jsonl", "requests.parquet", "summary.json"):
        assert (run_dir / name).is_file(), name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["workload"] == "chatbot" and manifest["seed"] == 0
    records = pd.read_parquet(run_dir / "requests.parquet")
    assert len(records) == 60 and set(records["status"]) == {"finished"}
    assert len((run_dir / "requests.jsonl").read_text().splitlines()) == 60
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_requests"] == 60 and summary["num_finished"] == 60
    assert 0.0 <= summary["attainment"] <= 1.0
    out = res.output
    for row in ("requests sent / finished", "60 / 60", "SLO attainment", "stage 'main'", "tier 'chat'",
                "goodput", "TTFT ms mean/median/p99", "TPOT ms mean/median/p99"):
        assert row in out, row
    assert f"{summary['attainment']:.1%}" in out
    assert f"results: {Path('results') / run_dir.name}" in out
    assert "Traceback" not in out


def test_run_with_duration_generates_that_many_seconds_of_arrivals(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "-w", "coding", "--rate", "4", "--duration", "20"])
    assert res.exit_code == 0, res.output
    [run_dir] = _run_dirs(tmp_path)
    records = pd.read_parquet(run_dir / "requests.parquet")
    assert records["arrival_s"].max() < 20.0
    assert 50 <= len(records) <= 110  # ≈ 4 req/s × 20 s, not the spec's 1500 requests


def test_run_multistage_workload_reports_each_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "-w", "toolcalling", "-n", "12", "--rate", "2"])
    assert res.exit_code == 0, res.output
    assert "stage 'round'" in res.output and "stage 'final'" in res.output
    [run_dir] = _run_dirs(tmp_path)
    assert pd.read_parquet(run_dir / "requests.parquet")["request_id"].nunique() == 12


def test_interrupted_run_keeps_finished_records_and_exits_130(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C midway (simulated: the progress callback raises KeyboardInterrupt after 30 requests)."""
    monkeypatch.chdir(tmp_path)
    interrupt_runs_after(monkeypatch, 30)
    res = runner.invoke(app, ["run", "-w", "chatbot", "-n", "200", "--rate", "4"])
    assert res.exit_code == 130, res.output
    assert "interrupted" in res.output and "Traceback" not in res.output
    [run_dir] = _run_dirs(tmp_path)
    lines = (run_dir / "requests.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 30  # every request finished before Ctrl-C, flushed although fewer than a batch
    assert {r["status"] for r in rows} == {"finished"}
    assert all(len(r["token_times_s"]) == r["output_tokens"] for r in rows)
    assert not (run_dir / "summary.json").exists()


BAD_INPUTS = {
    "negative rate": (["--rate", "-1"], "--rate"),
    "unknown workload": (["--workload", "chatbott"], "unknown workload 'chatbott'"),
    "missing yaml": (["--workload", "nope/missing.yaml"], "workload file not found"),
    "unknown scheduler": (["--scheduler", "fcfs-magic"], "unknown scheduler 'fcfs-magic'"),
    "unknown hardware": (["--hardware", "Z100"], "unknown hardware 'Z100'"),
    "zero requests": (["--num-requests", "0"], "--num-requests"),
    "negative duration": (["--duration", "-5"], "--duration"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_run_inputs_give_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    args, needle = BAD_INPUTS[case]
    res = runner.invoke(app, ["run", *args])
    assert res.exit_code != 0
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in res.output
    assert _run_dirs(tmp_path) == []  # nothing ran, so no results folder is left behind


def test_bad_yaml_file_gives_one_error_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\napps:\n  - name: chatbot\n   tier: chat\n")
    res = runner.invoke(app, ["run", "--workload", str(bad)])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad.yaml" in lines[0] and "YAML syntax error" in lines[0], res.output
    # A bad field: the message names it, and rich markup in messages is printed literally.
    bad.write_text("name: x\napps:\n  - name: reasoning\n    tier: r\n    lengths: {trace: s1k_reasoning}\n"
                   "    slo: {main: {ttft_ms: 100, tpot_ms: 50}}\n")
    res = runner.invoke(app, ["run", "--workload", str(bad)])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "field `apps.0`" in lines[0] and "['think', 'answer']" in lines[0]


def test_bad_local_length_file_gives_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user file that only fails when read (inside the run) still gives one line and no results folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rows.csv").write_text("in_len,out_len\n100,10\nmany,20\n")
    (tmp_path / "mine.yaml").write_text(
        "name: mine\napps:\n  - name: custom\n    tier: t\n"
        "    lengths: {path: rows.csv, prompt_tokens_column: in_len, output_tokens_column: out_len}\n"
        "    slo: {main: {ttft_ms: 500, tpot_ms: 100}}\nnum_requests: 20\n")
    res = runner.invoke(app, ["run", "--workload", "mine.yaml"])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert lines[0].startswith("error: apps.0.lengths.prompt_tokens_column: column 'in_len'") and "'many'" in lines[0]
    assert _run_dirs(tmp_path) == []


def test_workloads_list_shows_every_shipped_spec() -> None:
    res = runner.invoke(app, ["workloads", "list"])
    assert res.exit_code == 0, res.output
    assert str(SPEC_DIR) in res.output  # where to find a spec to copy and edit
    for name in list_specs():
        assert name in res.output


@pytest.mark.parametrize("name", list_specs())
def test_workloads_show_every_shipped_spec(name: str) -> None:
    res = runner.invoke(app, ["workloads", "show", name, "-n", "200"])
    assert res.exit_code == 0, res.output
    assert "rate achieved" in res.output and "IAT CV" in res.output and "SLOs per tier" in res.output


def test_workloads_show_bad_name_is_one_line() -> None:
    res = runner.invoke(app, ["workloads", "show", "nope"])
    assert res.exit_code == 2
    assert [line for line in res.output.splitlines() if line.strip()] == [
        line for line in res.output.splitlines() if line.startswith("error: unknown workload 'nope'")]


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)

    def walk(cmd: object, path: list[str]) -> list[list[str]]:
        out = [path]
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            out += walk(sub, [*path, name])
        return out

    return walk(root, [])


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "slobench")
def test_every_command_has_help_with_an_example(path: list[str]) -> None:
    res = runner.invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Example" in res.output


def test_core_commands_exist() -> None:
    names = {" ".join(p) for p in _command_paths()}
    assert {"run", "workloads list", "workloads show", "bench sim"} <= names


def test_bench_sim_reports_requests_per_wall_second(monkeypatch: pytest.MonkeyPatch) -> None:
    res = runner.invoke(app, ["bench", "sim", "-n", "40", "--repeat", "1"])
    assert res.exit_code == 0, res.output
    assert "simulated requests per wall-second" in res.output and "capacity search" in res.output


def test_sim_path_imports_no_torch_vllm_or_ray(tmp_path: Path) -> None:
    """The base install must run the simulator without the heavy optional stacks."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from slobench.cli import app\n"
        "r = CliRunner().invoke(app, ['run', '-w', 'chatbot', '-n', '20', '--out', sys.argv[1]])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('torch', 'vllm', 'ray', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "results")], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("args", [["run", "--rate", "abc"], ["run", "--nosuch-flag"], ["compare", "--target", "x"]])
def test_unparsable_flags_are_one_red_line(args: list[str]) -> None:
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "╭" not in res.output and "Traceback" not in res.output
