"""`slobench compare | capacity | sweep | report` with a synthetic engine in place of the runner."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import slobench.runner as runner
from slobench.cli import app
from slobench.metrics.records import StageRecord, records_frame

KNEES = {"vllm": 3.0, "slos-serve": 6.6}


def _fake_run_once(cfg, **_: object) -> SimpleNamespace:
    """Known attainment curve per scheduler; records/iterations shaped like the real runner's."""
    n = cfg.num_requests or 100
    knee = KNEES.get(cfg.scheduler, 5.0) * cfg.replicas
    att = 1.0 if cfg.rate_rps <= knee else max(0.0, 1 - (cfg.rate_rps - knee) / knee)
    met = round(att * n)
    rng = np.random.default_rng(cfg.seed)
    recs = []
    for i in range(min(n, 20)):
        start = i / cfg.rate_rps
        first = start + rng.uniform(0.05, 0.3)
        recs.append(StageRecord(
            request_id=i, stage_idx=0, stage_name="main", num_stages=1, app="coding", tier="t", arrival_s=start,
            stage_start_s=start, prompt_tokens=50, output_tokens=5, ttft_slo_s=0.4, tpot_slo_s=0.05,
            token_times_s=list(first + 0.03 * np.arange(5)), status="finished"))
    summary = {"num_requests": n, "num_met": met, "attainment": met / n, "num_finished": n,
               "status_counts": {"finished": n}, "offered_rate_rps": cfg.rate_rps}
    iters = pd.DataFrame({"time_s": np.arange(10) * 0.02, "prefill_tokens": np.arange(10) * 10,
                          "decode_tokens": np.full(10, 8), "latency_s": np.full(10, 0.02),
                          "budget_s": np.full(10, 0.05)})
    return SimpleNamespace(records=records_frame(recs), summary=summary, iterations=iters)


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "run_once", _fake_run_once)


def _only_dir(root: Path) -> Path:
    dirs = [p for p in root.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_compare_writes_results_and_report(tmp_path: Path, fake_engine: None) -> None:
    res = CliRunner().invoke(app, ["compare", "--workload", "coding", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    run_dir = _only_dir(tmp_path)
    for name in ("probes.csv", "summary.json", "requests.parquet", "report.html", "manifest.json"):
        assert (run_dir / name).exists(), name
    caps = {c["scheduler"]: c for c in json.loads((run_dir / "summary.json").read_text())["capacities"]}
    assert caps["vllm"]["capacity_rps"] == pytest.approx(3.3, rel=0.06)
    assert caps["slos-serve"]["capacity_rps"] == pytest.approx(7.26, rel=0.06)
    probes = pd.read_csv(run_dir / "probes.csv")
    # Same seeds, same rate grid start for both schedulers.
    assert set(probes["seed"]) == {0}
    assert "report:" in res.output and "2." in res.output  # ratio column
    # Rebuild from files.
    (run_dir / "report.html").unlink()
    res2 = CliRunner().invoke(app, ["report", str(run_dir)])
    assert res2.exit_code == 0, res2.output
    assert (run_dir / "report.html").exists()


def test_capacity_single_scheduler(tmp_path: Path, fake_engine: None) -> None:
    res = CliRunner().invoke(app, ["capacity", "--scheduler", "vllm", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    summary = json.loads((_only_dir(tmp_path) / "summary.json").read_text())
    assert [c["scheduler"] for c in summary["capacities"]] == ["vllm"]


def test_sweep_rate_grid_and_replicas(tmp_path: Path, fake_engine: None) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text("workload: coding\nschedulers: [vllm]\nrates: [1, 2, 4]\nnum_requests: 50\n"
                    "grid:\n  replicas: [1, 2]\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["sweep", "--grid", str(grid), "--out", str(out)])
    assert res.exit_code == 0, res.output
    probes = pd.read_csv(_only_dir(out) / "probes.csv")
    assert len(probes) == 6 and set(probes["replicas"]) == {1, 2}
    assert {"workload", "scheduler", "rate_rps", "seed", "attainment", "valid"} <= set(probes.columns)


@pytest.mark.parametrize(("body", "needle"), [
    ("workload: coding\ngrid:\n  color: [1]\n", "unknown grid axis"),
    ("workload: coding\nrates: [-1]\n", "rates"),
    ("schedulers: [vllm]\n", "workload"),
    ("workload: [coding\n", "not valid YAML"),
])
def test_sweep_bad_yaml_is_one_line(tmp_path: Path, body: str, needle: str) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(body)
    res = CliRunner().invoke(app, ["sweep", "--grid", str(grid), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert needle in res.output and "Traceback" not in res.output


def test_report_on_missing_dir(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a folder" in res.output


def test_interrupt_keeps_probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    def flaky(cfg, **kw: object) -> SimpleNamespace:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(runner, "run_once", flaky)
    res = CliRunner().invoke(app, ["compare", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 130
    run_dir = _only_dir(tmp_path)
    assert len(pd.read_csv(run_dir / "probes.csv")) == 2
    assert "slobench report" in res.output


def test_capacity_on_real_simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe adapter against a real RunResult: simulator + vllm policy, synthetic Poisson requests."""
    from slobench.workloads.model import SLO, Request, Stage, Workload

    def build_workload(cfg, perf) -> Workload:
        rng = np.random.default_rng(cfg.seed)
        arrivals = np.cumsum(rng.exponential(1 / cfg.rate_rps, cfg.num_requests))
        return Workload(name="synthetic", requests=[
            Request(id=i, arrival_s=float(a), app="coding", tier="tight", stages=(
                Stage(int(rng.integers(200, 2000)), int(rng.integers(20, 200)), SLO(1.0, 0.05)),))
            for i, a in enumerate(arrivals)])

    monkeypatch.setattr(runner, "build_workload", build_workload)
    res = CliRunner().invoke(app, ["capacity", "--scheduler", "vllm", "--quick", "--num-requests", "150",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    run_dir = _only_dir(tmp_path)
    cap = json.loads((run_dir / "summary.json").read_text())["capacities"][0]
    assert cap["status"] == "ok" and 1 < cap["capacity_rps"] < 1000
    probes = pd.read_csv(run_dir / "probes.csv")
    assert probes["valid"].iloc[0]  # light load is a trustworthy probe
    assert (run_dir / "report.html").exists() and (run_dir / "iterations.parquet").exists()
