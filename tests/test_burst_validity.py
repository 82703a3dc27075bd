"""Client timestamps that arrive in bursts mark a real-engine probe INVALID (issue 11, docs/capacity.md
"Validity"): the statistic on crafted streams (healthy, speculative, stalled), the check's place in
`check_validity`, a mock-server run where it stays quiet, and the probes.csv round trip."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from slobench.capacity import validity as v
from slobench.capacity.execute import probe_result
from slobench.capacity.search import ProbeResult, ValidityLimits, check_validity, make_probe
from slobench.metrics.records import StageRecord, records_frame
from slobench.report.probes import ProbeRow, read_probe_rows, write_probe_rows

ITL_S = 0.02  # the server's pace in the crafted streams: one chunk every 20 ms


def _stage(rid: int, times: list[float], arrival: float = 10.0) -> StageRecord:
    return StageRecord(request_id=rid, stage_idx=0, stage_name="main", num_stages=1, app="a", tier="t",
                       arrival_s=arrival, stage_start_s=arrival, prompt_tokens=16, output_tokens=len(times),
                       ttft_slo_s=1.0, tpot_slo_s=0.1, token_times_s=times)


def _healthy(n: int, t0: float = 10.2) -> list[float]:
    return [t0 + i * ITL_S for i in range(n)]


def _stalled(n_before: int, n_stalled: int, t0: float = 10.2) -> list[float]:
    """``n_before`` tokens at the server's pace, then a stall after which the client reads ``n_stalled`` chunks
    back to back (stamped 20 µs apart, as `stream_generation` stamps each chunk it parses)."""
    before = _healthy(n_before, t0)
    t_read = before[-1] + n_stalled * ITL_S
    return before + [t_read + i * 20e-6 for i in range(n_stalled)]


def _frame(stages: list[list[float]], arrival: float = 10.0) -> tuple[pd.DataFrame, np.ndarray]:
    df = records_frame([_stage(i, t, arrival) for i, t in enumerate(stages)])
    return df, np.ones(len(df), dtype=bool)


def test_a_chunk_is_one_timestamp_and_a_clump_is_chunks_read_back_to_back() -> None:
    assert v.clumps([]) == []
    assert v.clumps(_healthy(5)) == [(1, 1)] * 5
    # a speculative step's 3 tokens share one stamp: one chunk, not a burst
    assert v.clumps([1.0, 1.0, 1.0, 1.02]) == [(3, 1), (1, 1)]
    assert v.clumps([1.0, 1.0002, 1.0004, 1.03]) == [(3, 3), (1, 1)]


def test_a_healthy_stream_has_no_bursts() -> None:
    df, m = _frame([_healthy(200), _healthy(50, 11.0), _healthy(1, 12.0)])
    assert v.burst_share(df, m) == 0.0
    assert v.check_bursts(v.burst_share(df, m)) is None


def test_speculative_and_batched_chunks_are_not_bursts() -> None:
    """Several tokens per chunk (a verify step's accepted drafts, a server's stream interval) at a healthy pace:
    every token of a chunk has the chunk's time, which the statistic must not count."""
    rng = np.random.default_rng(0)
    times: list[float] = []
    t = 10.2
    for _ in range(60):
        times += [t] * int(rng.integers(1, 12))  # 1 + up to 10 accepted drafts
        t += ITL_S
    df, m = _frame([times])
    assert v.burst_share(df, m) == 0.0


def test_a_stall_makes_a_burst_and_the_check_fires() -> None:
    """50 tokens at the server's pace, then 50 read at once after a 1 s stall: half the tokens are a burst."""
    df, m = _frame([_stalled(50, 50)])
    share = v.burst_share(df, m)
    assert share == pytest.approx(0.5)
    why = v.check_bursts(share)
    assert why is not None and "50.0% of the measured tokens arrived in bursts" in why and "stalled" in why


def test_short_clumps_and_unmeasured_stages_do_not_count() -> None:
    # A 4-token clump (under BURST_MIN_TOKENS: a delay of a few token times) is not a burst.
    df, m = _frame([_stalled(20, v.BURST_MIN_TOKENS - 1), _healthy(100)])
    assert v.burst_share(df, m) == 0.0
    # The warm-up stage stalled; only the measured one counts.
    df, _ = _frame([_stalled(10, 90), _healthy(100)])
    assert v.burst_share(df, np.array([False, True])) == 0.0
    assert v.burst_share(df, np.array([False, False])) is None


def test_a_few_bursts_stay_under_the_threshold() -> None:
    """One stalled stream of 20 among healthy ones: 10 of 1,000+ tokens, below 5%."""
    df, m = _frame([_stalled(10, 10)] + [_healthy(100, 10.2 + i) for i in range(10)])
    share = v.burst_share(df, m)
    assert share is not None and 0 < share < 0.05 and v.check_bursts(share) is None


def test_check_validity_judges_bursts_after_the_client_lag() -> None:
    lim = ValidityLimits(max_burst_share=v.BURST_SHARE_LIMIT)
    bursty = ProbeResult(90, 100, offered_rate_rps=2.0, achieved_rate_rps=2.0, client_lag_s=0.1, burst_share=0.2)
    assert "arrived in bursts" in (check_validity(bursty, lim) or "")
    lagging = ProbeResult(90, 100, offered_rate_rps=2.0, achieved_rate_rps=2.0, client_lag_s=3.0, burst_share=0.2)
    assert (check_validity(lagging, lim) or "").startswith("client lagged")
    assert check_validity(ProbeResult(90, 100, burst_share=0.04), lim) is None
    assert check_validity(ProbeResult(90, 100, burst_share=None), lim) is None  # the simulator: not measured
    assert check_validity(bursty, ValidityLimits(max_burst_share=0.25)) is None
    assert check_validity(bursty, ValidityLimits()) is None  # opt-in: measured on real CPU vLLM, 25–93% (docs)


def _run_result(engine: str, df: pd.DataFrame) -> SimpleNamespace:
    """The parts of a `RunResult` that `probe_result` reads, for a run whose records are ``df``."""
    summary = SimpleNamespace(engine=engine, num_met=len(df), num_requests=len(df), status_counts={}, warmup_s=0.0,
                              achieved_rate_rps=2.0, offered_rate_rps=2.0, client_lag_s=0.05, num_arrivals=len(df),
                              stopped_early=None, engine_info={}, goodput_rps=None, latency_ms={})
    return SimpleNamespace(summary=summary, records=df, config=None, iterations=pd.DataFrame())


def test_probe_result_measures_bursts_on_real_engines_only() -> None:
    stalled = [_stalled(50, 50, 10.2 + 0.5 * i) for i in range(4)]
    df = records_frame([_stage(i, t, 10.0 + 0.5 * i) for i, t in enumerate(stalled)])
    df["status"] = "finished"
    real = probe_result(_run_result("vllm", df), 2.0)
    assert real.burst_share == pytest.approx(0.5)
    p = make_probe(2.0, 0, real, ValidityLimits(max_burst_share=v.BURST_SHARE_LIMIT))
    assert not p.valid and "arrived in bursts" in p.reason and p.row()["burst_share"] == pytest.approx(0.5)
    assert probe_result(_run_result("sim", df), 2.0).burst_share is None  # exact timestamps: not judged


def _workload_yaml(folder: Path, n: int = 30) -> Path:
    """A chatbot-like workload with 24–48 output tokens per request (long enough for a stall to clump)."""
    rng = np.random.default_rng(0)
    csv = folder / "w.csv"
    csv.write_text("prompt_tokens,output_tokens\n" + "".join(
        f"{p},{o}\n" for p, o in zip(rng.integers(16, 65, n), rng.integers(24, 49, n), strict=True)))
    spec = folder / "w.yaml"
    spec.write_text("name: bursts\napps:\n  - name: chatbot\n    tier: chat\n"
                    f"    lengths: {{path: {csv}, prompt_tokens_column: prompt_tokens, output_tokens_column: "
                    "output_tokens}\n    slo:\n      main: {ttft_ms: 500, tpot_ms: 100}\n"
                    f"arrival: {{process: poisson}}\nrate_rps: 4.0\nnum_requests: {n}\n")
    return spec


def test_a_mock_server_run_has_no_bursts(tmp_path: Path) -> None:
    """The openai engine against the mock server in this process at a light load (≈ 3 streams at 20 ms a token):
    the client reads every chunk as it comes, so the probe's burst share stays under the threshold (measured
    0–0.8% on this 2-core machine, docs/capacity.md "Validity")."""
    from slobench.cluster.run import run_once, validate_config
    from slobench.testing.mock_server import MockServer

    srv = MockServer(ttft_s=0.02, tpot_s=ITL_S).start()
    try:
        cfg = validate_config(workload=str(_workload_yaml(tmp_path)), engine="openai", url=srv.url, rate_rps=4.0,
                              num_requests=30, engine_options={"vocab_size": 1024}, drain_timeout_s=60)
        res = run_once(cfg)
    finally:
        srv.stop()
    pr = probe_result(res, 4.0)
    assert res.records["token_times_s"].map(len).sum() > 700
    assert pr.burst_share is not None and pr.burst_share < v.BURST_SHARE_LIMIT, pr.burst_share
    assert v.check_bursts(pr.burst_share) is None


def test_burst_share_round_trips_through_probes_csv_and_old_files_load(tmp_path: Path) -> None:
    p = make_probe(2.0, 0, ProbeResult(50, 60, client_lag_s=0.1, burst_share=0.125),
                   ValidityLimits(max_burst_share=v.BURST_SHARE_LIMIT))
    assert not p.valid
    row = ProbeRow.model_validate({"workload": "w", "scheduler": "vllm", "schema_version": 4} | p.row())
    path = tmp_path / "probes.csv"
    write_probe_rows(path, [row])
    back = read_probe_rows(path)[0]
    assert back.burst_share == pytest.approx(0.125) and back.reason == p.reason
    old = pd.read_csv(path).drop(columns=["burst_share"])  # a file written before the column existed
    old.to_csv(path, index=False)
    assert read_probe_rows(path)[0].burst_share is None
