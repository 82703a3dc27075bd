"""`slobench validate`: the comparison math on crafted inputs, the command end to end with a synthetic engine
standing in for both the simulator and vLLM (seconds, no vLLM), the one-line refusals, and SLOs derived from a
calibrated profile (front-end cost included; absolute targets scaled by `--slo-from-profile`)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import slobench.cluster.run as runner
from slobench.capacity import validate as v
from slobench.cli import app
from slobench.metrics.records import StageRecord, records_frame
from slobench.report.summary import RunSummary

PROFILE: dict = {
    "slobench_profile": 1,
    "name": "test-cpu",
    "latency": {"kind": "piecewise", "pieces": [[2.0e-5, 0.0, 0.004]]},
    "kv_capacity_tokens": 200_000,
    "frontend": {"constant_s": 0.05, "per_prompt_token_s": 1.0e-4, "per_output_token_s": 0.002},
    "environment": {"hardware": "cpu", "engine": "vllm", "model": "/m", "measured": "iterations"},
}


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "cpu.yaml"
    path.write_text(yaml.safe_dump(PROFILE))
    return path


# --- the math ---------------------------------------------------------------------------------------------


def test_relative_errors_and_stats() -> None:
    e = v.relative_errors([1.2, 0.5, 3.0, np.nan, 1.0], [1.0, 1.0, 2.0, 1.0, 0.0])  # NaN and real 0 dropped
    assert e == pytest.approx([0.2, -0.5, 0.5])
    s = v.error_stats(e)
    assert s.n == 3 and s.mean == pytest.approx(0.2 / 3) and s.mean_abs == pytest.approx(0.4)
    assert s.p90_abs == pytest.approx(np.percentile([0.2, 0.5, 0.5], 90))
    assert v.error_stats([]) == v.ErrorStats(n=0)


def test_capacity_error() -> None:
    assert v.capacity_error(1.1, 1.0) == pytest.approx(0.1)
    assert v.capacity_error(0.5, 1.0) == pytest.approx(-0.5)
    assert v.capacity_error(None, 1.0) is None and v.capacity_error(1.0, 0.0) is None


def test_gain_agreement_ratio_of_ratios() -> None:
    g = v.gain_agreement({"vllm": 2.0, "slos-serve": 5.0}, {"vllm": 1.0, "slos-serve": 2.0}, "vllm", "slos-serve")
    assert g.sim_gain == pytest.approx(2.5) and g.real_gain == pytest.approx(2.0)
    assert g.ratio_of_ratios == pytest.approx(1.25) and g.matches is False
    g2 = v.gain_agreement({"vllm": 2.0, "slos-serve": 4.4}, {"vllm": 1.0, "slos-serve": 2.0}, "vllm", "slos-serve")
    assert g2.ratio_of_ratios == pytest.approx(1.1) and g2.matches is True
    assert v.gain_agreement({"vllm": 2.0}, {"vllm": 1.0}, "vllm", "slos-serve").matches is None


def _probe(label: str, sched: str, rate: float, seed: int, att: float, ttft: float, valid: bool = True) -> dict:
    return {"workload": label, "scheduler": sched, "rate_rps": rate, "seed": seed, "attainment": att,
            "valid": valid, "span_factor": 1.0, "median_ttft_ms": ttft, "p90_ttft_ms": 2 * ttft,
            "p99_ttft_ms": 3 * ttft, "median_tpot_ms": 10.0}


def test_validate_policy_pairs_common_rates_only() -> None:
    probes = pd.DataFrame([
        _probe("c/sim", "vllm", 1.0, 0, 1.0, 110.0), _probe("c/real", "vllm", 1.0, 0, 0.9, 100.0),
        _probe("c/sim", "vllm", 2.0, 0, 0.8, 150.0), _probe("c/real", "vllm", 2.0, 0, 0.4, 100.0),
        _probe("c/sim", "vllm", 4.0, 0, 0.1, 999.0),  # simulated only: not compared
        _probe("c/real", "vllm", 3.0, 0, 0.1, 999.0, valid=False),  # invalid: not compared
        _probe("c/real", "other", 1.0, 0, 0.0, 1.0),  # another policy
    ])
    caps = [{"workload": "c/sim", "scheduler": "vllm", "capacity_rps": 2.2},
            {"workload": "c/real", "scheduler": "vllm", "capacity_rps": 1.0, "lower_rps": 0.9, "upper_rps": 1.5}]
    p = v.validate_policy(probes, caps, "c", "vllm")
    assert p.capacity_error == pytest.approx(1.2) and (p.real_lower_rps, p.real_upper_rps) == (0.9, 1.5)
    assert p.common_rates == 2 and p.common_probes == 2
    assert p.attainment_gap == pytest.approx((0.1 + 0.4) / 2)
    # TTFT: median, p90, p99 at 2 rates → six errors of 0.1 (rate 1) and 0.5 (rate 2); TPOT: 0 everywhere.
    assert p.ttft_error.n == 6 and p.ttft_error.mean == pytest.approx(0.3)
    assert p.tpot_error.n == 2 and p.tpot_error.mean_abs == pytest.approx(0.0)


# --- the command, with a synthetic engine -------------------------------------------------------------------

REAL_KNEE = {"vllm": 3.0, "slos-serve": 6.0}
SIM_KNEE = {"vllm": 3.6, "slos-serve": 6.0}  # the simulator over-predicts vllm by 20%, slos-serve exactly


def _fake_run_once(cfg, **_: object) -> SimpleNamespace:
    """Attainment falls linearly past a knee that depends on the engine; sim TTFT = 1.2 × real, TPOT equal."""
    sim = cfg.engine == "sim"
    knee = (SIM_KNEE if sim else REAL_KNEE)[cfg.scheduler]
    n = 100
    att = 1.0 if cfg.rate_rps <= knee else max(0.0, 1 - (cfg.rate_rps - knee) / knee)
    met = round(att * n)
    rec = StageRecord(request_id=0, stage_idx=0, stage_name="main", num_stages=1, app="chatbot", tier="chat",
                      arrival_s=0.0, stage_start_s=0.0, prompt_tokens=50, output_tokens=3, ttft_slo_s=0.5,
                      tpot_slo_s=0.1, token_times_s=[0.1, 0.12, 0.14], status="finished")
    ttft = 100.0 * cfg.rate_rps * (1.2 if sim else 1.0)
    lat = {"median_ttft_ms": ttft, "p90_ttft_ms": 2 * ttft, "p99_ttft_ms": 3 * ttft, "median_tpot_ms": 20.0,
           "p90_tpot_ms": 25.0, "p99_tpot_ms": 30.0}
    summary = RunSummary(num_requests=n, num_met=met, attainment=met / n, num_finished=n, attainment_ttft=met / n,
                         attainment_tpot=1.0, attainment_admitted_only=met / n, goodput_rps=att * cfg.rate_rps,
                         status_counts={"finished": n}, offered_rate_rps=cfg.rate_rps, latency_ms=lat)
    return SimpleNamespace(records=records_frame([rec]), summary=summary, iterations=pd.DataFrame())


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    import slobench.report.html as html
    import slobench.schedulers.registry as registry

    monkeypatch.setattr(runner, "run_once", _fake_run_once)
    monkeypatch.setattr(registry, "make_scheduler", lambda name, **_: object())
    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")


def test_validate_end_to_end(tmp_path: Path, profile: Path, fake_engine: None) -> None:
    model = tmp_path / "model"
    model.mkdir()
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["validate", "--engine", "vllm", "--model", str(model), "--profile", str(profile),
                                   "--workload", "chatbot", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    [run_dir] = list(out.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    pols = summary["validation"]["policies"]
    for s in ("vllm", "slos-serve"):
        assert {"sim_capacity_rps", "real_capacity_rps", "capacity_error"} <= set(pols[s])
        # attainment ≥ 0.9 up to 1.1 × the knee; a --quick search finds it within its 5% grid
        assert pols[s]["real_capacity_rps"] == pytest.approx(1.1 * REAL_KNEE[s], rel=0.06)
        assert pols[s]["sim_capacity_rps"] == pytest.approx(1.1 * SIM_KNEE[s], rel=0.06)
    assert pols["vllm"]["capacity_error"] == pytest.approx(0.2, abs=0.08)
    assert pols["slos-serve"]["capacity_error"] == pytest.approx(0.0, abs=0.08)
    # The simulator was also probed at every rate the real search probed, so every real probe has a pair.
    probes = pd.read_csv(run_dir / "probes.csv")
    for s in ("vllm", "slos-serve"):
        real = set(probes[(probes.workload == "chatbot/real") & (probes.scheduler == s)].rate_rps)
        sim = set(probes[(probes.workload == "chatbot/sim") & (probes.scheduler == s)].rate_rps)
        assert real <= sim and pols[s]["common_rates"] == len(real)
        assert pols[s]["ttft_error"]["mean"] == pytest.approx(0.2) and pols[s]["tpot_error"]["mean_abs"] == 0.0
    [gain] = summary["validation"]["gains"]
    assert gain["real_gain"] == pytest.approx(2.0, rel=0.1) and gain["matches"] is False  # 1.67× vs 2×
    assert "capacity error" in res.output and "ratio of ratios" in res.output
    assert "SLOs derived from" in str(summary["setup"]) and "front-end 50 ms" in str(summary["setup"])
    assert (run_dir / "figures" / "validation.html").exists() and "validation" in (run_dir / "report.html").read_text()
    # A resume replays every saved probe and writes the same validation.
    res2 = CliRunner().invoke(app, ["resume", str(run_dir)])
    assert res2.exit_code == 0, res2.output
    again = json.loads((run_dir / "summary.json").read_text())["validation"]
    assert again == summary["validation"]


def test_interrupted_validate_compares_what_finished(tmp_path: Path, profile: Path, fake_engine: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the second policy's real search: the first policy's comparison is saved and printed."""
    def interrupting(cfg, **kw: object) -> SimpleNamespace:
        if cfg.scheduler == "slos-serve" and cfg.engine != "sim":
            raise KeyboardInterrupt
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(runner, "run_once", interrupting)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["validate", "--model", str(tmp_path), "--profile", str(profile), "--quick",
                                   "--out", str(out)])
    assert res.exit_code == 130, res.output
    [run_dir] = list(out.iterdir())
    pols = json.loads((run_dir / "summary.json").read_text())["validation"]["policies"]
    assert pols["vllm"]["capacity_error"] == pytest.approx(0.2, abs=0.08)
    assert pols["slos-serve"]["real_capacity_rps"] is None and pols["slos-serve"]["sim_capacity_rps"] is not None
    assert "Simulator vs real engine" in res.output


@pytest.mark.parametrize(("args", "needle"), [
    (["--engine", "sim"], "--engine sim: the simulator is what validate checks"),
    (["--engine", "openai"], "use --engine vllm"),
    (["--profile", "NOPE.yaml"], "file not found"),
    (["--profile", "paper:opt-13b-h100"], "needs a calibrated profile FILE.yaml"),
    (["--no-profile"], "--profile: missing"),
    (["--schedulers", "vllm,bogus"], "unknown scheduler 'bogus'"),
])
def test_validate_bad_inputs(tmp_path: Path, profile: Path, args: list[str], needle: str) -> None:
    base = ["validate", "--model", str(tmp_path), "--out", str(tmp_path / "out")]
    if "--profile" not in args and args != ["--no-profile"]:
        base += ["--profile", str(profile)]
    res = CliRunner().invoke(app, base + [a for a in args if a != "--no-profile"])
    assert res.exit_code == 2, res.output
    assert needle in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "out").exists()  # refused before a results folder is made


# --- SLOs from the calibrated profile -----------------------------------------------------------------------


def test_slowdown_ttft_includes_front_end(profile: Path) -> None:
    from slobench.perf import get_latency_model
    from slobench.perf.base import zero_load_ttft_s
    from slobench.workloads import generate

    perf = get_latency_model(profile=str(profile))
    assert zero_load_ttft_s(perf, 1000) == pytest.approx(0.05 + 0.1 + 0.004 + 0.02 + 0.002)
    wl = generate("chatbot", perf=perf, seed=0, num_requests=20)
    for r in wl.requests:
        st = r.stages[0]
        want = max(0.05, 5 * zero_load_ttft_s(perf, st.prompt_tokens))  # chatbot: 5× slowdown, 50 ms floor
        assert st.slo.ttft_s == pytest.approx(want)
        assert st.slo.ttft_s > 5 * perf.prefill_latency_s(st.prompt_tokens)  # front-end cost counted


def test_slo_from_profile_scales_absolute_targets(profile: Path) -> None:
    from slobench.perf import get_latency_model
    from slobench.perf.profiles import decode_step_s, get_profile, slo_time_scale
    from slobench.workloads import apply_overrides, load_spec

    perf = get_latency_model(profile=str(profile))
    scale = slo_time_scale(perf)
    assert scale == pytest.approx(decode_step_s(perf) / decode_step_s(get_profile("paper:opt-13b-a100-tp2")))
    assert 0 < scale < 1  # a 4 ms step against the paper's ≈ 32 ms
    spec = apply_overrides(load_spec("chatbot"), time_scale=scale)
    slo = spec.apps[0].slo["main"]
    assert slo.tpot_ms == pytest.approx(100 * scale) and slo.ttft_min_ms == pytest.approx(50 * scale)
    assert slo.ttft_slowdown == 5  # already relative to the engine: unchanged
