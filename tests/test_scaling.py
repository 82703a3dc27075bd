"""`slobench compare --scaling`: capacity per replica for every scheduler × router × replica count.

End to end with the synthetic engine of test_cli_compare (its capacity grows linearly with the replicas, so the
share of linear scaling is known), the bad-input lines, resume of an interrupted scaling run, old summary.json
files without a ``router`` and the per-replica table and figure themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import slobench.cluster.run as runner
from slobench.cli import app
from slobench.errors import UserError
from slobench.report.probes import ExperimentSummary
from slobench.report.scaling import per_replica_figure, per_replica_table, pivot_rows
from tests.run_helpers import one_error_line
from tests.test_cli_compare import _fake_run_once, _interrupting, _no_real_schedulers, _only_dir

SCALING = ["compare", "--workload", "coding", "--schedulers", "vllm,slos-serve", "--scaling", "1,2,4",
           "--routers", "round-robin,slo-aware", "--quick", "-j", "1"]  # serial: the fakes count calls here


@pytest.fixture(autouse=True)
def _no_png(monkeypatch: pytest.MonkeyPatch) -> None:
    import slobench.report.html as html

    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, str]]:
    """The synthetic engine; returns the (scheduler, replicas, router) of every probe it ran."""
    seen: list[tuple[str, int, str]] = []

    def recording(cfg, **kw: object):  # noqa: ANN202 - the fake's SimpleNamespace
        seen.append((cfg.scheduler, cfg.replicas, cfg.router))
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(runner, "run_once", recording)
    _no_real_schedulers(monkeypatch)
    return seen


def _scaling_rows(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "summary.json").read_text())["scaling"]


def test_compare_scaling_writes_rows_per_scheduler_router_and_replicas(
        tmp_path: Path, fake_engine: list[tuple[str, int, str]]) -> None:
    res = CliRunner().invoke(app, [*SCALING, "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    run_dir = _only_dir(tmp_path)
    rows = _scaling_rows(run_dir)
    want = {(s, 1, None) for s in ("vllm", "slos-serve")} | {
        (s, n, r) for s in ("vllm", "slos-serve") for n in (2, 4) for r in ("round-robin", "slo-aware")}
    assert {(r["scheduler"], r["replicas"], r["router"]) for r in rows} == want and len(rows) == len(want)
    assert {r["workload"] for r in rows} == {"coding"}
    # one replica ran without a router choice; every other probe behind the router its search names
    assert {(n, r) for _, n, r in fake_engine} == {(1, "round-robin"), (2, "round-robin"), (2, "slo-aware"),
                                                   (4, "round-robin"), (4, "slo-aware")}
    # the synthetic capacity is linear in the replicas: every share of linear scaling is about 1
    table = pd.read_csv(run_dir / "scaling.csv")
    assert len(table) == 2 * 2 * 3  # the one-replica row repeated under each router
    assert table["linear_share"].between(0.85, 1.15).all(), table
    figs = {p.name for p in (run_dir / "figures").glob("*.html")}
    assert "scaling-per-replica.html" in figs and "replica-scaling.html" not in figs
    report = (run_dir / "report.html").read_text()
    assert "Capacity per replica" in report and "share of linear scaling" in report
    assert "Capacity per replica (req/s)" in res.output  # the terminal table
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["scaling"] == [1, 2, 4] and manifest["plan"]["scaling"] is True
    assert CliRunner().invoke(app, ["report", str(run_dir), "--no-png"]).exit_code == 0  # redraws from the files


def test_scaling_defaults_to_the_router_flag(tmp_path: Path, fake_engine: list[tuple[str, int, str]]) -> None:
    res = CliRunner().invoke(app, ["compare", "--schedulers", "vllm", "--scaling", "2,1", "--router", "power_of_two",
                                   "--quick", "-j", "1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = _scaling_rows(_only_dir(tmp_path))
    assert sorted((r["replicas"], r["router"] or "") for r in rows) == [(1, ""), (2, "power-of-two")]


@pytest.mark.parametrize(("args", "needle"), [
    (["--scaling", "2,4"], "--scaling: must include 1"),
    (["--scaling", "1"], "--scaling: give at least one replica count above 1"),
    (["--scaling", "1,two"], "--scaling: expected comma-separated replica counts"),
    (["--scaling", "0,1,2"], "--scaling: replica counts must be whole numbers ≥ 1"),
    (["--scaling", "1,2", "--routers", "round-robin,nope"], "--routers: unknown router 'nope'; choose from"),
    (["--scaling", "1,2", "--routers", " , "], "--routers: give at least one router"),
    (["--scaling", "1,2", "--router", "nope"], "--router: unknown router 'nope'"),
    (["--routers", "slo-aware"], "--routers: only with --scaling"),
    (["--scaling", "1,2", "--replicas", "2"], "--scaling: searches its own replica counts; drop --replicas"),
    (["--scaling", "1,2", "--routers", "slo-aware", "--router", "vllm-dp"], "drop --router"),
])
def test_scaling_bad_input_is_one_line(tmp_path: Path, fake_engine: list, args: list[str], needle: str) -> None:
    res = CliRunner().invoke(app, ["compare", "--quick", *args, "--out", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert needle in one_error_line(res.output)
    assert not any(tmp_path.iterdir())  # nothing started


def test_interrupted_scaling_run_resumes_to_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_real_schedulers(monkeypatch)
    args = ["compare", "--schedulers", "vllm", "--scaling", "1,2", "--routers", "round-robin,slo-aware", "--quick",
            "-j", "1"]
    monkeypatch.setattr(runner, "run_once", _fake_run_once)
    assert CliRunner().invoke(app, [*args, "--out", str(tmp_path / "clean")]).exit_code == 0
    clean = _scaling_rows(_only_dir(tmp_path / "clean"))
    monkeypatch.setattr(runner, "run_once", _interrupting(9))  # inside the second search
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "cut")])
    assert res.exit_code == 130, res.output
    run_dir = _only_dir(tmp_path / "cut")
    monkeypatch.setattr(runner, "run_once", _fake_run_once)
    res = CliRunner().invoke(app, ["resume", str(run_dir), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert _scaling_rows(run_dir) == clean
    assert (run_dir / "figures" / "scaling-per-replica.html").exists()


def test_old_summary_without_router_loads_and_draws_the_old_figure(tmp_path: Path, fake_engine: list) -> None:
    res = CliRunner().invoke(app, ["capacity", "--scheduler", "vllm", "--quick", "-j", "1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    run_dir = _only_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["scaling"] = [{"scheduler": "vllm", "replicas": 1, "capacity_rps": 3.0},  # as written before `router`
                          {"scheduler": "vllm", "replicas": 2, "capacity_rps": 5.7}]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    rows = ExperimentSummary.read(run_dir / "summary.json").scaling
    assert [(r.router, r.workload) for r in rows] == [(None, None), (None, None)]
    res = CliRunner().invoke(app, ["report", str(run_dir), "--no-png"])
    assert res.exit_code == 0, res.output
    assert (run_dir / "figures" / "replica-scaling.html").exists()
    assert not (run_dir / "figures" / "scaling-per-replica.html").exists() and not (run_dir / "scaling.csv").exists()


def _rows() -> pd.DataFrame:
    """Two schedulers; b's 4-replica search found nothing; router r2 has its own one-replica row (a sweep)."""
    return pd.DataFrame([
        {"workload": "w", "scheduler": "a", "router": None, "replicas": 1, "capacity_rps": 2.0},
        {"workload": "w", "scheduler": "a", "router": "r1", "replicas": 2, "capacity_rps": 3.6},
        {"workload": "w", "scheduler": "a", "router": "r1", "replicas": 4, "capacity_rps": 6.0},
        {"workload": "w", "scheduler": "b", "router": None, "replicas": 1, "capacity_rps": 4.0},
        {"workload": "w", "scheduler": "b", "router": "r1", "replicas": 2, "capacity_rps": 8.0},
        {"workload": "w", "scheduler": "b", "router": "r1", "replicas": 4, "capacity_rps": None},
        {"workload": "w", "scheduler": "b", "router": "r2", "replicas": 1, "capacity_rps": 5.0},
        {"workload": "w", "scheduler": "b", "router": "r2", "replicas": 2, "capacity_rps": 9.0},
    ])


def test_per_replica_table_divides_by_replicas_and_measures_from_one_replica() -> None:
    table = per_replica_table(_rows()).set_index(["scheduler", "router", "replicas"])
    assert table.loc[("a", "r1", 1), "per_replica_rps"] == 2.0  # the shared one-replica row, under r1
    assert table.loc[("a", "r1", 4), "per_replica_rps"] == pytest.approx(1.5)
    assert table.loc[("a", "r1", 4), "linear_share"] == pytest.approx(0.75)
    assert table.loc[("b", "r1", 2), "linear_share"] == pytest.approx(1.0)
    assert pd.isna(table.loc[("b", "r1", 4), "linear_share"])  # no capacity found: no share
    assert table.loc[("b", "r2", 2), "linear_share"] == pytest.approx(0.9)  # r2's own one-replica row
    counts, rows = pivot_rows(per_replica_table(_rows()))
    assert counts == [1, 2, 4]
    assert ("w", "a", "r1", ["2", "1.8 (90%)", "1.5 (75%)"]) in rows
    assert ("w", "b", "r1", ["4", "4 (100%)", "–"]) in rows


def test_per_replica_figure_has_a_panel_per_scheduler_and_a_flat_ideal() -> None:
    fig = per_replica_figure(per_replica_table(_rows()))
    ideal = [t for t in fig.data if t.name == "linear scaling"]
    assert [list(t.y) for t in ideal] == [[2.0, 2.0], [4.0, 4.0]]  # per scheduler, at its one-replica capacity
    assert sum(t.showlegend for t in ideal) == 1
    assert {t.name for t in fig.data} == {"r1", "r2", "linear scaling"}
    assert len(fig.layout.annotations) == 2  # the two panel titles


def test_paper_script_searches_router_by_policy_pairs(tmp_path: Path) -> None:
    from scripts.paper_figures import HEADLINE, load_experiment, sections

    exp = load_experiment(Path("scripts/paper_experiment.yaml"))
    [(_, specs, scaling)] = [s for s in sections(exp, tmp_path, quick=True) if s[0] == "replicas"]
    routers = exp.replicas.routers if exp.replicas else []
    assert scaling and len(routers) >= 2
    points = {(s.scheduler, s.run_kwargs["replicas"], s.run_kwargs.get("router")) for s in specs}
    assert points == {(p, 1, None) for p in exp.schedulers} | {
        (p, n, r) for p in exp.schedulers for n in exp.replicas.values if n > 1 for r in routers}
    assert "scaling-per-replica" in HEADLINE["replicas"]


@pytest.mark.parametrize(("body", "needle"), [
    ("replicas: {workload: coding, values: [2, 4]}", "replicas.values: must include 1"),
    ("replicas: {workload: coding, values: [1, 2], routers: [round-robin, nope]}", "replicas.routers: unknown router"),
])
def test_paper_script_refuses_a_bad_replica_section(tmp_path: Path, body: str, needle: str) -> None:
    from scripts.paper_figures import load_experiment

    path = tmp_path / "exp.yaml"
    path.write_text(f"schedulers: [vllm]\nscenarios: [coding]\n{body}\n")
    with pytest.raises(UserError, match=needle):
        load_experiment(path)


def test_router_benchmark_verdicts_tell_worse_from_a_tie_by_the_intervals() -> None:
    """scripts/router_scaling.py answers "is slo-aware ever worse?" from its CSV: worse only when lower and the
    search intervals do not overlap; a lower capacity inside overlapping intervals is a tie."""
    from scripts.router_scaling import SINGLE, verdicts

    def row(wl: str, pol: str, router: str, n: int, cap: float, lo: float, hi: float) -> dict[str, str]:
        return {"workload": wl, "policy": pol, "router": router, "replicas": str(n), "refresh_ms": "100",
                "capacity_rps": str(cap), "capacity_per_replica_rps": str(cap / n), "lower_rps": str(lo),
                "upper_rps": str(hi), "status": "ok", "probes": "9", "wall_s": "1"}

    rows = [row("coding", "slos-serve", SINGLE, 1, 13.0, 13.0, 13.5), row("coding", "vllm", SINGLE, 1, 4.0, 4.0, 4.2),
            # R = 2: slo-aware lower but the intervals overlap → tie
            row("coding", "slos-serve", "slo-aware", 2, 26.0, 26.0, 27.0),
            row("coding", "slos-serve", "round-robin", 2, 26.5, 26.5, 27.0),
            row("coding", "slos-serve", "power-of-two", 2, 25.0, 25.0, 26.5),
            # R = 4: slo-aware far below round-robin → worse (power-of-two not measured there)
            row("coding", "slos-serve", "slo-aware", 4, 17.0, 17.0, 17.3),
            row("coding", "slos-serve", "round-robin", 4, 50.8, 50.8, 51.8),
            row("coding", "vllm", "vllm-dp", 2, 8.0, 8.0, 8.3)]
    text = verdicts(rows)
    lines = {ln.split("|")[2].strip(): ln for ln in text.splitlines() if ln.startswith("| coding |")}
    assert "tie (intervals overlap)" in lines["2"]
    assert "worse than round-robin" in lines["4"] and "—" in lines["4"]  # power-of-two not measured at R = 4
    gain = next(ln for ln in text.splitlines() if ln.startswith("| coding | 3.25×"))
    assert gain.split("|")[2:4] == [" 3.25× ", " 3.25× "]  # 13/4 at R = 1; 26/8 at R = 2


def test_router_benchmark_hold_check_runs_each_capacity_longer_and_judges_it(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``--holds 10``: one run per measured point at its capacity, 10× the probe's span, another seed; a capacity
    past the knee fails, one below holds; a rerun checks nothing twice."""
    import scripts.router_scaling as bench

    seen = []

    def fake(cfg, **kw: object):  # noqa: ANN001, ANN202
        seen.append(cfg)
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(runner, "run_once", fake)
    base = {"workload": "coding", "policy": "slos-serve", "replicas": "2", "refresh_ms": "100",
            "lower_rps": "1", "upper_rps": "2", "status": "ok", "probes": "9", "wall_s": "1"}
    # the fake's knee: 6.6 req/s per replica, 13.2 for two
    for router, cap in [("slo-aware", 12.0), ("round-robin", 15.0)]:
        bench.append_row(tmp_path / "router_scaling.csv", base | {"router": router, "capacity_rps": cap,
                                                                  "capacity_per_replica_rps": cap / 2})
    argv = ["--holds", "10", "--out", str(tmp_path), "--workloads", "coding", "--policies", "slos-serve",
            "--routers", "slo-aware,round-robin,power-of-two", "--replicas", "2"]
    assert bench.main(argv) == 0
    rows = {r["router"]: r for r in bench.read_rows(tmp_path / "router_holds.csv")}
    assert set(rows) == {"slo-aware", "round-robin"}  # power-of-two was never measured: nothing to check
    assert rows["slo-aware"]["passed"] == "True" and rows["round-robin"]["passed"] == "False"
    assert "< 88%" in rows["round-robin"]["why"]
    probe = bench._spec("coding", "slos-serve", "slo-aware", 2, 100.0, bench.argparse.Namespace(  # noqa: SLF001
        hardware="H100-SXM", model="Llama-3.1-8B", profile=None, num_requests=None, quick=False)).config(12.0, 1)
    assert {(c.replicas, c.router, c.seed) for c in seen} == {(2, "slo-aware", 1), (2, "round-robin", 1)}
    assert seen[0].duration_s - seen[0].warmup_s == pytest.approx(10 * (probe.duration_s - probe.warmup_s))
    assert "1 of 2 capacities hold" in (tmp_path / "router_holds.md").read_text()
    assert bench.main(argv) == 0 and len(seen) == 2  # resumed: both already checked
