"""Steady-state validity checks (slobench.capacity.validity): each fires on a crafted overloaded case and stays
quiet on a crafted stable one; the warm-up is excluded from the counts; probes are sized by duration."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from slobench.capacity import validity as v
from slobench.capacity.plan import probe_size, run_kwargs
from slobench.capacity.search import ProbeResult, ValidityLimits, capacity_search, check_validity
from slobench.errors import UserError
from slobench.metrics.attainment import measured_flags, summarize
from slobench.metrics.records import StageRecord, records_frame


def _poisson(rate: float, n: int, seed: int = 0) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).exponential(1 / rate, n))


# --- (a) backlog growth ---------------------------------------------------------------------------------------

def test_backlog_stays_flat_for_a_stable_queue_and_check_is_quiet() -> None:
    arr = _poisson(10.0, 3000)
    fin = arr + np.random.default_rng(1).exponential(2.0, arr.size)  # every request served in ~2 s
    b = v.backlog_growth(arr, fin, 30.0, float(arr[-1]))
    assert abs(b.growth) < 10 and 10 < b.mean < 30 and b.arrivals > 2500
    assert v.check_backlog(b.growth, b.arrivals, b.mean) is None


def test_a_replica_still_filling_up_is_not_a_growing_backlog() -> None:
    # requests take 20 s each: the in-system count ramps up for 20 s, then stays near 200
    arr = _poisson(10.0, 1000)
    fin = arr + 20.0
    b = v.backlog_growth(arr, fin, 5.0, float(arr[-1]))
    assert abs(b.growth) < 20 and v.check_backlog(b.growth, b.arrivals, b.mean) is None


def test_backlog_grows_when_the_replica_serves_slower_than_arrivals_and_check_fires() -> None:
    arr = _poisson(10.0, 3000)
    fin = np.arange(1, arr.size + 1) / 8.0 + 1.0  # served one by one at 8 req/s: 20% short of the offered 10
    b = v.backlog_growth(arr, fin, 30.0, float(arr[-1]))
    assert b.end > b.start and b.growth == pytest.approx(0.2 * b.arrivals, rel=0.15)
    why = v.check_backlog(b.growth, b.arrivals, b.mean)
    assert why is not None and "backlog grew" in why and "does not drain" in why


def test_requests_that_never_finish_stay_in_the_system_rejected_ones_leave() -> None:
    recs = [StageRecord(request_id=i, stage_idx=0, stage_name="main", num_stages=1, app="a", tier="t", arrival_s=i,
                        stage_start_s=i, prompt_tokens=10, output_tokens=2, ttft_slo_s=1, tpot_slo_s=0.1,
                        token_times_s=[i + 0.5, i + 0.6] if s == "finished" else [], status=s)
            for i, s in enumerate(["finished", "rejected", "unfinished"])]
    f = v.request_finish_times(records_frame(recs))
    assert list(f["finish_s"]) == [0.6, 1.0, math.inf]


# --- (b) drain after the last arrival -------------------------------------------------------------------------

def _stage(i: int, start: float, last: float, out: int = 5) -> StageRecord:
    times = list(np.linspace(start + 0.1, last, out))
    return StageRecord(request_id=i, stage_idx=0, stage_name="main", num_stages=1, app="a", tier="t",
                       arrival_s=start, stage_start_s=start, prompt_tokens=10, output_tokens=out, ttft_slo_s=0.5,
                       tpot_slo_s=0.1, token_times_s=times)


def test_drain_ratio_on_time_is_quiet_and_late_fires() -> None:
    e2e = 0.5 + 4 * 0.1
    on_time = records_frame([_stage(i, float(i), i + 0.8) for i in range(50)])
    r = v.drain_ratio(on_time, np.ones(50, bool))
    assert r is not None and r < 0 and v.check_drain(r) is None
    late = records_frame([_stage(i, float(i), i + 0.8) for i in range(49)] + [_stage(49, 49.0, 49.0 + 10 * e2e)])
    r = v.drain_ratio(late, np.ones(50, bool))
    assert r == pytest.approx(10 - 1.05, rel=1e-6)
    assert "e2e SLO after its deadline" in v.check_drain(r)
    # a late request of the warm-up does not count: the last *measured* one decides
    assert v.drain_ratio(late, np.arange(50) < 49) < 0


def test_drain_leaves_out_requests_admission_declined_but_not_admitted_or_undecided_ones() -> None:
    e2e = 0.5 + 4 * 0.1
    late = records_frame([_stage(i, float(i), i + 0.8) for i in range(49)] + [_stage(49, 49.0, 49.0 + 10 * e2e)])
    for admission in ("pending", "admitted"):  # baselines leave every request pending; slos-serve admits
        late["admission"] = admission
        assert v.check_drain(v.drain_ratio(late, np.ones(50, bool))) is not None
    # the late one was declined (best-effort): a miss already, and no sign that the committed work fell behind
    late.loc[late["request_id"] == 49, "admission"] = "best_effort"
    r = v.drain_ratio(late, np.ones(50, bool))
    assert r is not None and r < 0 and v.check_drain(r) is None
    # every measured request declined: nothing the server took on is left to judge
    late["admission"] = "best_effort"
    assert v.drain_ratio(late, np.ones(50, bool)) is None


# --- (c) offered tokens vs the compute ceiling ----------------------------------------------------------------

def test_ceiling_fires_above_the_latency_models_full_batch_throughput() -> None:
    from slobench.perf import get_latency_model

    perf = get_latency_model()
    stages = records_frame([_stage(i, i / 10.0, i / 10.0 + 1, out=200) for i in range(100)])
    stages["prompt_tokens"] = 1000
    tok = v.offered_tokens(stages)
    assert tok is not None and tok.prefill == 100_000 and tok.decode == 20_000
    assert tok.decode_ctx == pytest.approx(1100)
    ceiling = v.ceiling_tokens_per_s(perf, tok)
    # one H100 computes ~30k tok/s of this mix at full 8192-token batches; a busy run offers ~12k
    assert 20_000 < ceiling < 50_000 and tok.per_s == pytest.approx(120_000 / 9.9)
    assert v.check_ceiling(tok.per_s, ceiling) is None
    why = v.check_ceiling(3 * ceiling, ceiling)
    assert why is not None and "above the replicas' ceiling" in why


def test_validity_runs_every_steady_state_check_and_the_search_refuses_them() -> None:
    lim = ValidityLimits()
    ok = ProbeResult(900, 1000, backlog_growth=3.0, backlog_arrivals=1000, backlog_mean=40.0, drain_ratio=-0.5,
                     offered_tok_s=10_000, ceiling_tok_s=30_000)
    assert check_validity(ok, lim) is None
    assert "backlog grew" in check_validity(ProbeResult(900, 1000, backlog_growth=300, backlog_arrivals=1000), lim)
    assert "e2e SLO" in check_validity(ProbeResult(900, 1000, drain_ratio=7.0), lim)
    assert "ceiling" in check_validity(ProbeResult(900, 1000, offered_tok_s=4e4, ceiling_tok_s=3e4), lim)
    assert "KV cache ≥ 95% full for 4.0%" in check_validity(ProbeResult(990, 1000, kv_full_share=0.04), lim)
    assert check_validity(ProbeResult(990, 1000, kv_full_share=0.005), lim) is None
    # attainment passes everywhere, but above 8 req/s the offered load exceeds the ceiling: capacity ≤ 8
    res = capacity_search(lambda r, s: ProbeResult(950, 1000, offered_tok_s=4000 * r, ceiling_tok_s=32_000),
                          target=0.9)
    assert res.status == "ok" and res.capacity_rps <= 8 and all(not p.valid for p in res.probes if p.rate_rps > 8)


def test_kv_full_share_counts_the_time_a_replica_holds_a_nearly_full_cache() -> None:
    """Replica 0 is ≥ 95% full from 20 to 50 s and from 90 s on, of a 0–100 s window (40%); replica 1 never is
    (940 < 950); the value logged before the window and the one holding past its end are clipped to it."""
    its = pd.DataFrame({
        "replica": [0] * 5 + [1] * 3,
        "time_s": [-5.0, 20.0, 40.0, 50.0, 90.0, 10.0, 50.0, 95.0],
        "kv_used_blocks": [100, 990, 960, 500, 999, 900, 940, 0],
    })
    share = v.kv_full_share(its, 1000, 0.0, 100.0)
    assert share == pytest.approx(0.40)
    assert v.kv_full_share(its[its["replica"] == 1], 1000, 0.0, 100.0) == 0.0
    assert v.kv_full_share(its.drop(columns="kv_used_blocks"), 1000, 0.0, 100.0) is None
    assert v.check_kv_full(share) is not None and v.check_kv_full(0.0) is None and v.check_kv_full(None) is None


# --- warm-up and sizing ---------------------------------------------------------------------------------------

def test_warmup_requests_run_but_are_not_counted() -> None:
    # the first 10 requests (arriving before 10 s) miss; everyone after meets
    recs = [_stage(i, float(i), i + (5.0 if i < 10 else 0.8)) for i in range(100)]
    df = records_frame(recs)
    assert summarize(df)["attainment"] == pytest.approx(0.9)
    s = summarize(df, warmup_s=10.0)
    assert (s["attainment"], s["num_requests"], s["num_arrivals"], s["num_warmup"]) == (1.0, 90, 100, 10)
    assert list(measured_flags(df["arrival_s"], 10.0)) == [False] * 10 + [True] * 90


def test_probe_duration_scales_with_replicas_and_rate() -> None:
    kw = run_kwargs(hardware="H100-SXM", model="Llama-3.1-8B", tp=1, profile=None, replicas=2, engine="sim",
                    num_requests=1000, quick=False, warmup=0.2)
    size = probe_size(kw, 4.0)
    assert size["duration_s"] == pytest.approx(500.0) and size["warmup_s"] == pytest.approx(100.0)
    assert "num_requests" not in size and "probe_requests" not in size
    # 1000·2/40 = 50 s < the 120 s floor: 120 s, whose 20% (24 s) is below the 30 s warm-up floor: 126 s
    short = probe_size(kw, 40.0)
    assert short["warmup_s"] == pytest.approx(30.0) and short["duration_s"] == pytest.approx(126.0)
    bare = kw | {"min_duration_s": 0.0}  # --quick: no duration floor
    assert probe_size(bare, 40.0)["duration_s"] == pytest.approx(70.0)  # 50 s + (30 − 10) s of warm-up
    tiny = probe_size(bare, 400.0)  # 5 s: the warm-up is at most the measured window (4 s), the probe 8 s
    assert tiny["warmup_s"] == pytest.approx(4.0) and tiny["duration_s"] == pytest.approx(8.0)
    assert probe_size({"num_requests": 600}, 4.0) == {"num_requests": 600}  # plans saved before: a fixed count
    with pytest.raises(UserError, match="--warmup: must be a share"):
        run_kwargs(hardware="H100-SXM", model="x", tp=1, profile=None, replicas=1, engine="sim", num_requests=None,
                   quick=False, warmup=0.95)


def test_a_sized_probe_really_runs_that_long_and_flags_its_warmup() -> None:
    from slobench.capacity.execute import probe_result
    from slobench.capacity.plan import SearchSpec
    from slobench.cluster.run import run_once

    kw = run_kwargs(hardware="H100-SXM", model="Llama-3.1-8B", tp=1, profile=None, replicas=1, engine="sim",
                    num_requests=200, quick=False)
    cfg = SearchSpec("coding", "vllm", kw | {"workload": "coding"}).config(2.0, 0)
    res = run_once(cfg)
    # 200 requests at 2 req/s = 100 s < the 120 s floor; its 10% (12 s) < the 30 s warm-up floor: 138 s in all
    assert cfg.duration_s == pytest.approx(138.0) and cfg.warmup_s == pytest.approx(30.0)
    df: pd.DataFrame = res.records
    assert "measured" in df and df.loc[~df["measured"], "arrival_s"].max() < 30.0
    p = probe_result(res, 2.0)
    assert p.num_requests == int(df["measured"].sum()) and p.num_arrivals == len(df)
    assert p.warmup_s == pytest.approx(30.0) and p.ceiling_tok_s > p.offered_tok_s > 0
    assert check_validity(p, ValidityLimits()) is None
