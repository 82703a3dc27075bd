"""`slobench calibrate`: the grid, the fit and its held-back quality, the front-end fit, the refusals, and (with
vLLM) the whole path at a tiny scale on the test suite's shared adapter server, then the simulator on the profile.

The real test asks the session's pool of vLLM servers (tests/conftest.py `tiny_server`) for exactly the adapter
server tests/test_real_vllm.py uses and leaves it running: in one pytest session both modules share one server;
alone, this module starts it (≈ 25–60 s on a 2-core machine) and the session stops it at its end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from slobench.cli import app
from slobench.engines.vllm.calibrate import design_grid
from slobench.errors import UserError
from slobench.perf.calibration import ZeroLoadSample, fit_frontend, fit_iterations
from slobench.perf.profile_file import load_profile_file

runner = CliRunner()


def _one_line(output: str) -> str:
    errs = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1 and "Traceback" not in output, output
    return errs[0]


def test_grid_covers_every_kind_and_stays_within_the_budget() -> None:
    full = design_grid(max_batched_tokens=512, max_model_len=4096)
    assert {c.kind for c in full} == {"prefill", "decode", "mixed"}
    assert max(c.prompt_tokens for c in full if c.kind == "prefill") == 512  # the budget caps prefill cells
    assert all(c.inject_prompt <= 512 for c in full)
    small = design_grid(points=4, max_batched_tokens=2048)
    assert len(small) == 4 and {c.kind for c in small} == {"prefill", "decode", "mixed"}
    assert len(design_grid(quick=True)) == 6
    with pytest.raises(UserError, match="--points 0"):
        design_grid(points=0)


def _synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """Iterations of T = 20 µs/token + 8 ms, 3% noise: prefills of 16–2048 tokens and decodes of 1–32 seqs."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        if i % 2:
            q = [int(rng.integers(16, 2048))]
            ctx = [0]
        else:
            b = int(rng.integers(1, 33))
            q, ctx = [1] * b, [int(c) for c in rng.integers(10, 600, b)]
        lat = (20e-6 * sum(q) + 8e-3) * rng.lognormal(0, 0.03)
        rows.append({"q_lens": q, "ctx_lens": ctx, "latency_s": lat, "spec_steps": 0})
    return rows


def test_fit_recovers_the_model_and_judges_it_on_held_back_points() -> None:
    fit = fit_iterations(_synthetic_rows(100), name="syn", kv_tokens=1000)
    assert fit.fit.n_holdout == 20 and fit.fit.n_train == 80
    assert fit.fit.r2 > 0.97 and fit.fit.abs_error_pct.p50 < 5
    assert fit.model.time_s(1000) == pytest.approx(0.028, rel=0.05)
    assert fit.model.time_s(1) == pytest.approx(0.008, rel=0.1)
    ids = {id(r) for r in fit.holdout_rows}
    assert len(ids) == 20  # the held-back rows are the ones judged, not refitted


def test_fit_refuses_too_few_iterations() -> None:
    with pytest.raises(UserError, match="only 5 iterations were recorded"):
        fit_iterations(_synthetic_rows(5), name="x", kv_tokens=1)


def test_frontend_fit_recovers_constant_and_per_token_cost() -> None:
    samples = [ZeroLoadSample(p, 0.04 + 2e-5 * p + 0.001 * p / 1000 + 0.01, 0.01 + 0.001 * p / 1000)
               for p in (16, 64, 256, 1024, 2048)]
    fe, r2 = fit_frontend(samples)
    assert fe.constant_s == pytest.approx(0.04, abs=1e-6) and fe.per_prompt_token_s == pytest.approx(2e-5)
    assert r2 == pytest.approx(1.0) and fe.per_output_token_s == 0.0
    fe1, r2_1 = fit_frontend(samples[:1])
    assert r2_1 is None and fe1.constant_s == pytest.approx(samples[0].frontend_s)


def test_openai_engine_and_url_without_iterations_are_one_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["calibrate", "--engine", "openai"])  # the openai path: tests/test_calibrate_openai.py
    assert r.exit_code == 2 and "calibrate --engine openai: give --url" in _one_line(r.output)
    r = runner.invoke(app, ["calibrate", "--url", "http://127.0.0.1:9"])
    assert r.exit_code == 2 and "give --iterations FILE" in _one_line(r.output)
    r = runner.invoke(app, ["calibrate", "--engine", "vllm"])
    assert r.exit_code == 2 and "give --model" in _one_line(r.output)


# --- the real path ----------------------------------------------------------------------------------------


@pytest.fixture
def shared_adapter_server(tiny_server):  # noqa: ANN001, ANN201 - (Path, VLLMServer)
    """The test suite's adapter server on the tiny model, from the session's pool (tests/conftest.py)."""
    from slobench.testing.kit import adapter_policy, tiny_model_dir

    return tiny_model_dir(), tiny_server(adapter_policy())


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_calibrate_tiny_grid_then_simulate_and_validate_with_the_profile(shared_adapter_server, tmp_path: Path) -> None:  # noqa: ANN001
    tiny, srv = shared_adapter_server
    out = tmp_path / "tiny.yaml"
    r = runner.invoke(app, ["calibrate", "--url", srv.base_url, "--iterations", str(srv.iterations_path),
                            "--model", str(tiny), "--hardware", "cpu", "--quick", "--points", "4",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    prof = load_profile_file(out)
    assert prof.environment.measured == "iterations" and prof.environment.hardware == "cpu"
    assert prof.fit is not None and prof.fit.n_holdout >= 1 and prof.fit.n_train >= 6
    assert prof.kv_capacity_tokens > 10_000  # vLLM's own block pool (1 GiB on the CPU build)
    assert prof.frontend.constant_s > 0  # HTTP + the API-server hop cost something
    from slobench.perf import get_latency_model

    m = get_latency_model(profile=str(out))
    assert 1e-4 < m.batch_latency_s([1], [32]) < 1.0  # a decode step: milliseconds, not seconds or nothing
    assert m.prefill_latency_s(1000) < 10.0
    lines = [json.loads(x) for x in out.with_name("tiny.measurements.jsonl").read_text().splitlines()]
    iters = [x for x in lines if x["kind"] == "iteration"]
    assert len(iters) == prof.fit.n_train + prof.fit.n_holdout
    assert all(x["planned"] == x["scheduled"] for x in iters)  # the in-server policy's plans ran as planned
    assert sum(x["kind"] == "zero_load" for x in lines) >= 1
    # The simulator on that profile: the run is labelled with the profile's hardware, and TTFT carries the
    # front-end cost (a TTFT below it would mean the cost was not charged).
    r = runner.invoke(app, ["run", "--profile", str(out), "-w", "chatbot", "-n", "30", "--rate", "2",
                            "--out", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["hardware"] == "cpu" and summary["num_finished"] == 30
    records = [json.loads(x) for x in next((tmp_path / "runs").glob("*/requests.jsonl")).read_text().splitlines()]
    ttft = min(x["token_times_s"][0] - x["stage_start_s"] for x in records)
    assert ttft >= prof.frontend.constant_s
    assert yaml.safe_load(out.read_text())["slobench_profile"] == 1
    # `validate` at CI scale on that profile: stock vLLM (the session's server), a tiny workload (TTFT 500 ms,
    # TPOT 50 ms: the CPU server misses them by 2–4 req/s), 12-request probes; what is checked is that the path
    # runs end to end and writes its comparison (the capacity error itself is a measurement for
    # docs/calibration.md, not a CI figure).
    from slobench.testing.kit import tiny_workload

    wl = tiny_workload(tmp_path / "wl", n_rows=32)
    r = runner.invoke(app, ["validate", "--engine", "vllm", "--model", str(tiny), "--profile", str(out),
                            "--workload", str(wl), "--schedulers", "vllm", "--quick", "--num-requests", "12",
                            "--rate-start", "1", "--rate-max", "4", "--out", str(tmp_path / "val")])
    assert r.exit_code in (0, 3), r.output  # 3: a search found no capacity in range (a finding, not a crash)
    val = json.loads(next((tmp_path / "val").glob("*/summary.json")).read_text())["validation"]
    row = val["policies"]["vllm"]
    assert {"sim_capacity_rps", "real_capacity_rps", "capacity_error"} <= set(row)
    assert row["common_probes"] >= 1 and row["ttft_error"]["n"] >= 1  # both sides probed the same rates


def test_ctrl_c_keeps_the_points_measured_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the third grid point: the first two points' iterations (and what the interrupted one had
    recorded) are returned, flagged as interrupted, for the caller to fit and write."""
    import slobench.engines.vllm.calibrate as cal

    iters = tmp_path / "iterations.jsonl"
    iters.write_text("")
    calls = {"n": 0}

    async def fake_cell(cell, ep, synth, next_id):  # noqa: ANN001, ANN202
        calls["n"] += 1
        with iters.open("a") as fh:
            fh.write(json.dumps({"q": [cell.prompt_tokens], "ctx": [0], "num_seqs": 1, "latency_s": 0.01,
                                 "sched_s": 0.001, "prefill_tokens": cell.prompt_tokens}) + "\n")
        if calls["n"] == 4:  # the warm-up is call 1: this is the third grid point
            raise KeyboardInterrupt
        return 0.0, 0.05

    monkeypatch.setattr(cal, "_run_cell", fake_cell)
    grid = [cal.Cell("prefill", p) for p in (16, 64, 256, 1024)]
    meas = cal.measure(cal.CalibrationTarget("http://x/v1", "m", iters), grid)
    assert meas.interrupted and meas.cells_done == 2 and meas.cells_total == 4
    assert [x["q"] for x in meas.iterations] == [[16], [64], [256]]  # the warm-up's line is not a measurement
    assert [z.prompt_tokens for z in meas.zero_load] == [16, 64]
    assert meas.zero_load[0].engine_prefill_s == pytest.approx(0.011)


def test_bias_by_kind_points_at_the_part_of_the_model_that_is_off() -> None:
    """Decodes that cost 3× what Σtokens says (a per-sequence cost the piecewise form cannot express) show up
    as a negative decode bias; repeated identical batches give the noise floor."""
    from slobench.perf.calibration import bias_by_kind, repeat_noise_pct
    from slobench.perf.profiles import PiecewiseLinearModel

    model = PiecewiseLinearModel([(1e-5, 0.0, 0.01)], 1000)
    prefill = {"q_lens": [1000], "ctx_lens": [0], "spec_steps": 0, "latency_s": 0.02}
    decode = {"q_lens": [1, 1], "ctx_lens": [50, 60], "spec_steps": 0, "latency_s": 3 * model.time_s(2)}
    bias = bias_by_kind(model, [prefill, decode])
    assert bias["prefill"] == 0.0 and bias["decode"] == pytest.approx(-66.7, abs=0.1) and "mixed" not in bias
    again = dict(prefill, latency_s=0.022)
    assert repeat_noise_pct([prefill, again, decode]) == pytest.approx(4.8, abs=0.1)
    assert repeat_noise_pct([prefill, decode]) is None


def test_decode_cost_per_sequence_and_context_is_fitted_when_the_engine_has_it() -> None:
    """An engine whose iteration pays 2 ms per sequence and 5 µs per cached token besides 20 µs per token: the
    Σtokens-only form is biased on decodes, so calibration picks the form with the extra terms, and a profile
    file carries them to the simulator."""
    from slobench.perf.profile_file import LatencySection, to_model

    rng = np.random.default_rng(1)
    rows = []
    for i in range(120):
        if i % 2:
            q, ctx = [int(rng.integers(16, 2048))], [0]
        else:
            b = int(rng.integers(1, 33))
            q, ctx = [1] * b, [int(c) for c in rng.integers(100, 4000, b)]
        lat = (20e-6 * sum(q) + 2e-3 * len(q) + 5e-6 * sum(ctx) + 8e-3) * rng.lognormal(0, 0.02)
        rows.append({"q_lens": q, "ctx_lens": ctx, "latency_s": lat, "spec_steps": 0})
    fit = fit_iterations(rows, name="seq", kv_tokens=1000)
    m = fit.model
    assert m.per_seq_s == pytest.approx(2e-3, rel=0.15) and m.per_ctx_token_s == pytest.approx(5e-6, rel=0.15)
    assert abs(fit.fit.bias_pct["decode"]) < 3 and fit.fit.abs_error_pct.p50 < 3
    lat = LatencySection(pieces=[list(p) for p in m.pieces], per_seq_s=m.per_seq_s,
                         per_context_token_s=m.per_ctx_token_s)
    from slobench.perf.profile_file import EnvironmentSection, ProfileFile

    prof = ProfileFile(name="seq", latency=lat, kv_capacity_tokens=1000,
                       environment=EnvironmentSection(hardware="cpu", engine="vllm"))
    sim_model = to_model(prof)
    decode = ([1] * 8, [1000] * 8)
    assert sim_model.batch_latency_s(*decode) == pytest.approx(m.batch_latency_s(*decode))
    assert sim_model.latency_from_stats(8.0, 8000.0, 8000.0, 8.0, 8) == pytest.approx(m.batch_latency_s(*decode))
