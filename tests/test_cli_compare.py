"""`slobench compare | capacity | sweep | report` with a synthetic engine in place of the runner."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import slobench.cluster.run as runner
from slobench.cli import app
from slobench.metrics.records import StageRecord, records_frame
from slobench.report.summary import RunSummary

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
    summary = RunSummary(num_requests=n, num_met=met, attainment=met / n, num_finished=n, attainment_ttft=met / n,
                         attainment_tpot=1.0, attainment_admitted_only=met / n, goodput_rps=att * cfg.rate_rps,
                         status_counts={"finished": n}, offered_rate_rps=cfg.rate_rps)
    iters = pd.DataFrame({"time_s": np.arange(10) * 0.02, "prefill_tokens": np.arange(10) * 10,
                          "decode_tokens": np.full(10, 8), "latency_s": np.full(10, 0.02),
                          "budget_s": np.full(10, 0.05)})
    return SimpleNamespace(records=records_frame(recs), summary=summary, iterations=iters)


@pytest.fixture(autouse=True)
def _no_png(monkeypatch: pytest.MonkeyPatch) -> None:
    """PNG export (kaleido + Chromium, seconds) is tested in test_report*.py, not on every CLI run."""
    import slobench.report.html as html

    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")


def _no_real_schedulers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake engine stands in for every scheduler, so the preflight must not build real ones."""
    import slobench.schedulers.registry as registry

    monkeypatch.setattr(registry, "make_scheduler", lambda name, **_: object())


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "run_once", _fake_run_once)
    _no_real_schedulers(monkeypatch)


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
    # `slobench report` rebuilds the very same page from the saved files.
    first = (run_dir / "report.html").read_text()
    figs = sorted(p.name for p in (run_dir / "figures").glob("*.html"))
    (run_dir / "report.html").unlink()
    for p in (run_dir / "figures").glob("*.html"):
        p.unlink()
    res2 = CliRunner().invoke(app, ["report", str(run_dir)])
    assert res2.exit_code == 0, res2.output
    assert (run_dir / "report.html").read_text() == first
    assert sorted(p.name for p in (run_dir / "figures").glob("*.html")) == figs


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


def _interrupting(after: int):
    """The fake engine, raising KeyboardInterrupt (as Ctrl-C would) on probe number ``after + 1``."""
    calls = {"n": 0}

    def run(cfg, **kw: object) -> SimpleNamespace:
        calls["n"] += 1
        if calls["n"] == after + 1:
            raise KeyboardInterrupt
        return _fake_run_once(cfg, **kw)

    return run


def test_interrupt_keeps_probes_and_prints_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_real_schedulers(monkeypatch)
    monkeypatch.setattr(runner, "run_once", _interrupting(2))
    res = CliRunner().invoke(app, ["compare", "--quick", "-j", "1", "--out", str(tmp_path)])
    assert res.exit_code == 130
    run_dir = _only_dir(tmp_path)
    assert len(pd.read_csv(run_dir / "probes.csv")) == 2
    recs = pd.read_parquet(run_dir / "requests.parquet")  # the stage records of both finished probes
    assert sorted(set(recs["rate_rps"])) == [1.0, 2.0]
    assert f"slobench resume {run_dir}" in res.output
    assert f"slobench report {run_dir}" in res.output
    assert json.loads((run_dir / "summary.json").read_text())["complete"] is False


def _frames(run_dir: Path) -> dict[str, pd.DataFrame]:
    return {"probes": pd.read_csv(run_dir / "probes.csv"),
            "requests": pd.read_parquet(run_dir / "requests.parquet"),
            "iterations": pd.read_parquet(run_dir / "iterations.parquet")}


@pytest.mark.parametrize("stops", [[3], [1, 4, 7]])
def test_resume_equals_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stops: list[int]) -> None:
    """Interrupt (once or repeatedly, also while resuming), resume: the same files as one clean run."""
    _no_real_schedulers(monkeypatch)
    args = ["compare", "--quick", "--refine-interval", "--schedulers", "vllm,slos-serve", "--seed", "0", "--seed", "1",
            "-j", "1"]  # serial: the interruption counts calls in this process
    monkeypatch.setattr(runner, "run_once", _fake_run_once)
    clean = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "clean")])
    assert clean.exit_code == 0, clean.output
    clean_dir = _only_dir(tmp_path / "clean")

    monkeypatch.setattr(runner, "run_once", _interrupting(stops[0]))
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "cut")])
    assert res.exit_code == 130
    run_dir = _only_dir(tmp_path / "cut")
    saved = len(pd.read_csv(run_dir / "probes.csv"))
    for after in stops[1:]:  # interrupted again while resuming: nothing saved is lost
        monkeypatch.setattr(runner, "run_once", _interrupting(after))
        res = CliRunner().invoke(app, ["resume", str(run_dir), "-j", "1"])
        assert res.exit_code == 130, res.output
        now = len(pd.read_csv(run_dir / "probes.csv"))
        assert now == saved + after
        saved = now
    ran: list[tuple[str, float, int]] = []

    def counting(cfg, **kw: object) -> SimpleNamespace:
        ran.append((cfg.scheduler, cfg.rate_rps, cfg.seed))
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(runner, "run_once", counting)
    res = CliRunner().invoke(app, ["compare", "--resume", str(run_dir), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert f"{saved} saved probes reused" in res.output
    assert len(ran) == len(pd.read_csv(clean_dir / "probes.csv")) - saved  # saved probes were not rerun
    for name, want in _frames(clean_dir).items():
        pd.testing.assert_frame_equal(_frames(run_dir)[name], want, obj=name)
    caps = [json.loads((d / "summary.json").read_text())["capacities"] for d in (clean_dir, run_dir)]
    assert caps[0] == caps[1]
    assert sorted(p.name for p in (run_dir / "figures").glob("*.html")) == \
        sorted(p.name for p in (clean_dir / "figures").glob("*.html"))
    assert not (run_dir / "parts").exists()  # folded into requests.parquet / iterations.parquet


class _Killed(BaseException):
    """Stands for SIGKILL: nothing in slobench catches it, so no final save runs."""


def test_killed_run_keeps_parts_reports_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_real_schedulers(monkeypatch)
    args = ["compare", "--quick", "--schedulers", "vllm"]
    monkeypatch.setattr(runner, "run_once", _fake_run_once)
    assert CliRunner().invoke(app, [*args, "--out", str(tmp_path / "clean")]).exit_code == 0
    clean_dir = _only_dir(tmp_path / "clean")
    calls = {"n": 0}

    def dying(cfg, **kw: object) -> SimpleNamespace:
        calls["n"] += 1
        if calls["n"] == 4:
            raise _Killed
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(runner, "run_once", dying)
    with pytest.raises(_Killed):  # -j 1: every probe in this process (no speculative child counts calls apart)
        CliRunner().invoke(app, [*args, "-j", "1", "--out", str(tmp_path / "cut")])
    run_dir = _only_dir(tmp_path / "cut")
    assert not (run_dir / "requests.parquet").exists()  # never consolidated...
    assert len(list((run_dir / "parts").glob("requests-*.parquet"))) == 3  # ...but every finished probe is there
    res = CliRunner().invoke(app, ["report", str(run_dir)])  # drawable as it is
    assert res.exit_code == 0, res.output
    assert "Partial results" in (run_dir / "report.html").read_text()
    monkeypatch.setattr(runner, "run_once", _fake_run_once)
    res = CliRunner().invoke(app, ["resume", str(run_dir)])
    assert res.exit_code == 0, res.output
    for name, want in _frames(clean_dir).items():
        pd.testing.assert_frame_equal(_frames(run_dir)[name], want, obj=name)
    assert "Partial results" not in (run_dir / "report.html").read_text()


def test_resume_refuses_other_flags_and_bad_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_real_schedulers(monkeypatch)
    monkeypatch.setattr(runner, "run_once", _interrupting(1))
    CliRunner().invoke(app, ["compare", "--quick", "--out", str(tmp_path)])
    run_dir = _only_dir(tmp_path)
    res = CliRunner().invoke(app, ["compare", "--resume", str(run_dir), "--target", "0.8"])
    assert res.exit_code == 2 and "drop --target" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["capacity", "--resume", str(run_dir)])
    assert res.exit_code == 2 and "holds a `compare` run" in res.output
    res = CliRunner().invoke(app, ["resume", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a folder" in res.output
    res = CliRunner().invoke(app, ["resume", str(tmp_path)])
    assert res.exit_code == 2 and "manifest.json not found" in res.output


@pytest.mark.parametrize(("args", "status", "needle"), [
    (["--rate-max", "2"], "above_range", "--rate-max"),  # vllm's knee is 3 req/s
    (["--rate-min", "4", "--rate-start", "8", "--target", "0.99"], "below_range", "--rate-min"),
])
def test_out_of_range_exits_3_with_a_clear_line(tmp_path: Path, fake_engine: None, args: list[str], status: str,
                                                 needle: str) -> None:
    res = CliRunner().invoke(app, ["capacity", "--scheduler", "vllm", "--quick", *args, "--out", str(tmp_path)])
    assert res.exit_code == 3, res.output
    cap = json.loads((_only_dir(tmp_path) / "summary.json").read_text())["capacities"][0]
    assert cap["status"] == status
    line = next(ln for ln in res.output.splitlines() if "coding × vllm:" in ln and "rate" in ln and "→" not in ln)
    assert needle in line and ("lowest rate" in line or "highest rate" in line)
    assert "report:" in res.output  # the results are still drawn


def test_profile_tp_and_several_workloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_real_schedulers(monkeypatch)
    seen: list[object] = []

    def recording(cfg, **kw: object) -> SimpleNamespace:
        seen.append(cfg)
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(runner, "run_once", recording)
    res = CliRunner().invoke(app, ["compare", "--quick", "-j", "1", "--workload", "coding,chatbot",
                                   "--schedulers", "vllm", "--profile", "paper:opt-13b-a100-tp2", "--tp", "2",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert {c.profile for c in seen} == {"paper:opt-13b-a100-tp2"} and {c.tp for c in seen} == {2}
    assert {c.workload for c in seen} == {"coding", "chatbot"}
    figs = {p.name for p in (_only_dir(tmp_path) / "figures").glob("*.html")}
    assert {"attainment-coding.html", "attainment-chatbot.html", "capacity.html"} <= figs


@pytest.mark.parametrize(("args", "needle"), [
    (["--profile", "paper:nope"], "unknown latency profile"),
    (["--hardware", "B9000"], "unknown hardware"),
    (["--workload", "nope"], "unknown workload"),
    (["--schedulers", "vllm,fifo"], "unknown scheduler 'fifo'"),
    (["--rate-min", "5", "--rate-max", "2"], "--rate-min"),
])
def test_compare_bad_input_is_one_line(tmp_path: Path, fake_engine: None, args: list[str], needle: str) -> None:
    res = CliRunner().invoke(app, ["compare", "--quick", *args, "--out", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not any(tmp_path.iterdir())  # nothing started


def test_capacity_on_real_simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe adapter against a real RunResult: simulator + vllm policy, synthetic Poisson requests."""
    from slobench.workloads.model import SLO, Request, Stage, Workload

    def build_workload(cfg, perf) -> Workload:
        rng = np.random.default_rng(cfg.seed)
        n = cfg.num_requests or round(cfg.rate_rps * cfg.duration_s)  # probes are sized by duration now
        arrivals = np.cumsum(rng.exponential(1 / cfg.rate_rps, n))
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


@pytest.mark.parametrize(("args", "needle"), [
    (["compare", "--warmup", "0.95"], "--warmup: must be a share of the probe's duration in [0, 0.9), got 0.95"),
    (["capacity", "--warmup", "-0.1"], "--warmup: must be a share"),
    (["compare", "--confirm", "11"], "--confirm: must be a number of grid rates in 0..10, got 11"),
    (["bench", "schedulers", "--warmup", "1.5"], "--warmup: must be a share"),
    (["bench", "schedulers", "--confirm", "-1"], "--confirm: must be a number of grid rates"),
])
def test_steady_state_options_are_validated_in_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path)] if args[0] != "bench" else args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not any(tmp_path.iterdir())  # nothing started


def test_compare_prints_how_probes_were_sized_and_what_the_search_confirmed(tmp_path: Path,
                                                                            fake_engine: list) -> None:
    res = CliRunner().invoke(app, ["compare", "--schedulers", "vllm", "--no-refine-interval", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "crossing confirmed: the next 2 grid rates" in res.output
    assert "≈1200 requests per replica per probe" in res.output and "warm-up" in res.output
    summary = json.loads((_only_dir(tmp_path) / "summary.json").read_text())
    (cap,) = summary["capacities"]
    assert cap["notes"].startswith("crossing confirmed") and cap["probe_requests"] == 1200 and cap["warmup"] == 0.1


def test_setup_says_what_the_numbers_rest_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """summary.json, the report and the printed outcome name the information, ground truth, SLOs and probes."""
    _no_real_schedulers(monkeypatch)
    monkeypatch.setattr(runner, "run_once", _fake_run_once)
    res = CliRunner().invoke(app, ["compare", "--quick", "-j", "1", "--oracle-lengths", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    run_dir = _only_dir(tmp_path)
    [setup] = json.loads((run_dir / "summary.json").read_text())["setup"]
    assert setup["output lengths"].startswith("oracle")
    assert "TPOT 50 ms" in setup["SLOs"] and "noise (CV 0.05)" in setup["ground truth"]
    assert setup["SLOs derived from"].startswith("zero-load prefill of roofline:Llama-3.1-8B@H100-SXM (no front-end")
    assert "oracle: policies know" in res.output
    report = (run_dir / "report.html").read_text()
    assert "What these numbers rest on" in report and "oracle: policies know" in report
    res = CliRunner().invoke(app, ["compare", "--quick", "-j", "1", "--out", str(tmp_path / "real")])
    [setup] = json.loads((_only_dir(tmp_path / "real") / "summary.json").read_text())["setup"]
    assert setup["output lengths"].startswith("realistic")


def test_compare_passes_the_simulator_ground_truth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list = []

    def recording(cfg, **kw: object) -> SimpleNamespace:
        seen.append(cfg)
        return _fake_run_once(cfg, **kw)

    _no_real_schedulers(monkeypatch)
    monkeypatch.setattr(runner, "run_once", recording)
    res = CliRunner().invoke(app, ["compare", "--quick", "-j", "1", "--truth-bias", "0.3", "--truth-noise", "0",
                                   "--schedule-cost", "off", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert {(c.truth_bias, c.truth_noise_cv, c.schedule_cost) for c in seen} == {(0.3, 0.0, "off")}
    [setup] = json.loads((_only_dir(tmp_path) / "summary.json").read_text())["setup"]
    assert "× 1.3 ×" in setup["ground truth"] and "not charged" in setup["ground truth"]
    bad = CliRunner().invoke(app, ["compare", "--quick", "--truth-bias", "-1", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--truth-bias" in bad.output and not (tmp_path / "bad").exists()


def test_capacity_that_does_not_hold_in_a_longer_run_is_stepped_down(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A metastable fake engine: probes of compare's size pass up to 3 req/s, runs 4× longer only up to 2.
    compare must report the rate that held, keep the hold probes in probes.csv (span_factor 4, resumable by
    their own key) and say what it did."""
    from slobench.capacity.store import Collector

    def metastable(cfg, **kw: object) -> SimpleNamespace:
        probe_s = max(1200 / cfg.rate_rps, 120.0)  # compare's probe size (plan.probe_size)
        long = cfg.duration_s is not None and cfg.duration_s > 1.5 * probe_s
        seen = SimpleNamespace(num_requests=cfg.num_requests, scheduler="long" if long else cfg.scheduler,
                               replicas=cfg.replicas, rate_rps=cfg.rate_rps, seed=cfg.seed)
        return _fake_run_once(seen, **kw)

    monkeypatch.setitem(KNEES, "long", 2.0)
    monkeypatch.setattr(runner, "run_once", metastable)
    _no_real_schedulers(monkeypatch)
    res = CliRunner().invoke(app, ["compare", "--schedulers", "vllm", "--no-refine-interval", "--confirm", "0",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "did not hold in a 4× longer probe" in res.output and "hold check" in res.output
    assert "capacity re-run 4× longer and stepped down until it holds" in res.output  # the setup says so
    run_dir = _only_dir(tmp_path)
    (cap,) = json.loads((run_dir / "summary.json").read_text())["capacities"]
    assert 2.0 <= cap["capacity_rps"] <= 2.21 and "stepped down" in cap["notes"]  # 90% of 100 at ≤ 2.2 req/s
    probes = pd.read_csv(run_dir / "probes.csv")
    held = probes[probes["span_factor"] == 4]
    assert len(held) >= 2 and held["rate_rps"].max() > 3.0 and cap["capacity_rps"] in set(held["rate_rps"])
    store = Collector(run_dir, 0.9, "t")
    assert store.load_previous() == len(probes)  # search and hold probes at one rate keep separate keys
    assert ("coding", "vllm", cap["capacity_rps"], 0, 4.0) in store.previous
    assert (run_dir / "report.html").exists()
    bad = CliRunner().invoke(app, ["compare", "--hold", "1", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--hold: must be 0 (no hold check) or a factor in (1, 20], got 1" in bad.output
