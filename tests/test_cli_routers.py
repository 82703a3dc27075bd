"""`--router`, `--router-refresh-ms` and `--max-concurrency` on the commands, as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slobench.cli import app

runner = CliRunner()


def _one_line(args: list[str]) -> str:
    res = runner.invoke(app, args)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    return lines[0]


@pytest.mark.parametrize(("args", "says"), [
    (["--router", "p2c"], "--router: unknown router; choose one of: round-robin, vllm-dp, power-of-two"),
    (["--router-refresh-ms", "-5"], "--router-refresh-ms: must be a number of milliseconds ≥ 0"),
    (["--router-refresh-ms", "nan"], "--router-refresh-ms: must be a number of milliseconds ≥ 0"),
    (["--max-concurrency", "0"], "--max-concurrency: must be ≥ 1"),
])
def test_run_refuses_bad_routing_in_one_line(args: list[str], says: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert says in _one_line(["run", "--workload", "chatbot", "-n", "10", *args])
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("command", ["compare", "capacity"])
def test_capacity_commands_refuse_an_unknown_router_in_one_line(command: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    line = _one_line([command, "--workload", "chatbot", "--replicas", "2", "--router", "nope", "--quick"])
    assert "--router: unknown router" in line


def test_run_records_the_routing_in_manifest_and_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "--workload", "chatbot", "-n", "20", "--replicas", "2", "--router", "vllm-dp",
                              "--router-refresh-ms", "0", "--max-concurrency", "3"])
    assert res.exit_code == 0, res.output
    [run_dir] = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    config = json.loads((run_dir / "manifest.json").read_text())["config"]
    assert (config["router"], config["router_refresh_ms"], config["max_concurrency"]) == ("vllm-dp", 0.0, 3)
    sim = json.loads((run_dir / "summary.json").read_text())["engine_info"]["simulator"]
    assert (sim["router"], sim["router_refresh_s"], sim["max_concurrency"]) == ("vllm-dp", 0.0, 3)


def test_capacity_plans_carry_routing_only_where_not_default(tmp_path: Path) -> None:
    from slobench.capacity.plan import SearchSpec, SweepGrid, run_kwargs, setup_text, sweep_specs

    base = {"hardware": "H100-SXM", "model": "Llama-3.1-8B", "tp": 1, "profile": None, "replicas": 2,
            "engine": "sim", "num_requests": None, "quick": True}
    assert not {"router", "router_refresh_ms", "max_concurrency"} & set(run_kwargs(**base, routing={
        "router": "round-robin", "router_refresh_ms": 100.0, "max_concurrency": None}))
    kw = run_kwargs(**base, routing={"router": "vllm-dp", "router_refresh_ms": 0.0, "max_concurrency": 8})
    assert "×2 replicas (vllm-dp), ≤8 in flight" in setup_text(kw)
    cfg = SearchSpec("chatbot", "vllm", kw | {"workload": "chatbot"}).config(4.0, 0)
    assert (cfg.router, cfg.router_refresh_ms, cfg.max_concurrency) == ("vllm-dp", 0.0, 8)
    grid = SweepGrid(workload="chatbot", grid={"replicas": [2], "router": ["slo-aware", "power-of-two"]})
    routers = [s.config(4.0, 0).router for s in sweep_specs(grid, tmp_path, quick=True)]
    assert sorted(set(routers)) == ["power-of-two", "slo-aware"]
