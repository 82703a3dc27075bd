"""Metric definitions on hand-computed records (docs/metrics.md)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from slobench.metrics.attainment import request_metrics, stage_metrics, summarize
from slobench.metrics.records import StageRecord, records_frame


def _rec(rid: int, times: list[float], *, start: float = 0.0, ttft: float = 1.0, tpot: float = 0.1,
         n: int | None = None,
         stage_idx: int = 0, num_stages: int = 1, status: str = "finished", admission: str = "admitted") -> StageRecord:
    return StageRecord(
        request_id=rid, stage_idx=stage_idx, stage_name=f"s{stage_idx}", num_stages=num_stages, app="a", tier="t",
        arrival_s=0.0, stage_start_s=start, prompt_tokens=10, output_tokens=len(times) if n is None else n,
        ttft_slo_s=ttft, tpot_slo_s=tpot, token_times_s=times, status=status, admission=admission,
    )


def test_ttft_tpot_itl_as_vllm_computes_them() -> None:
    df = stage_metrics(records_frame([_rec(0, [0.5, 0.6, 0.8, 0.9])]))
    row = df.iloc[0]
    assert row.ttft_s == pytest.approx(0.5)
    assert row.tpot_s == pytest.approx((0.9 - 0.5) / 3)
    assert row.max_itl_s == pytest.approx(0.2)


def test_per_token_deadlines_allow_catching_up_but_not_falling_behind() -> None:
    # t0 = max(0 + 1.0, 0.5) = 1.0; token i due at 1.0 + i*0.105
    on_pace = _rec(0, [0.5, 0.6, 1.2, 1.3])  # slow gap early is fine: deadlines anchor at t0 = 1.0
    behind = _rec(1, [0.5, 0.6, 0.7, 1.5])  # token 3 due at 1.315
    df = stage_metrics(records_frame([on_pace, behind]))
    assert list(df["met_tpot"]) == [True, False]
    assert list(df["met_ttft"]) == [True, True]


def test_ttft_tolerance_is_five_percent() -> None:
    df = stage_metrics(records_frame([_rec(0, [1.04]), _rec(1, [1.06])]))
    assert list(df["met"]) == [True, False]


def test_missing_tokens_failed_and_unreached_stages_are_misses() -> None:
    recs = [
        _rec(0, [0.5, 0.6], n=3),  # a token missing
        _rec(1, [0.5], status="failed"),
        _rec(2, [0.5], stage_idx=0, num_stages=2),  # second stage never recorded
        _rec(3, [0.5, 0.6]),
    ]
    req = request_metrics(stage_metrics(records_frame(recs)))
    assert list(req["met"]) == [False, False, False, True]


def test_summary_attainment_over_all_arrivals_and_best_effort_accounting() -> None:
    recs = [_rec(0, [0.5]), _rec(1, [0.5], admission="best_effort"), _rec(2, [5.0]), _rec(3, [], status="rejected",
                                                                                           admission="rejected")]
    s = summarize(records_frame(recs), duration_s=2.0)
    assert s["num_requests"] == 4
    assert s["attainment"] == pytest.approx(0.5)
    assert s["attainment_admitted_only"] == pytest.approx(0.25)
    assert s["goodput_rps"] == pytest.approx(1.0)
    assert s["admission_counts"]["rejected"] == 1
    assert not math.isnan(s["ttft_s"]["p50"])


def test_single_stage_verdict_agrees_with_the_vectorised_definition() -> None:
    """`stage_met` (one record, no frame: the early-fail monitor's) must give `stage_metrics`'s ``met`` exactly."""
    import numpy as np

    from slobench.metrics.attainment import stage_met

    rng = np.random.default_rng(3)
    recs = []
    for i in range(400):
        n = int(rng.integers(1, 12))
        start = float(rng.uniform(0, 50))
        first = start + float(rng.exponential(0.3))
        gaps = rng.exponential(float(rng.choice([0.02, 0.05, 0.08])), size=n - 1)
        times = list(first + np.concatenate([[0.0], np.cumsum(gaps)]))
        expected = n + int(rng.integers(-1, 2)) if i % 7 else n
        recs.append(StageRecord(request_id=i, stage_idx=0, stage_name="s", num_stages=1, app="a", tier="t",
                                arrival_s=start, stage_start_s=start, prompt_tokens=5, output_tokens=max(expected, 1),
                                ttft_slo_s=0.3, tpot_slo_s=0.05, token_times_s=times if i % 11 else [],
                                status="finished" if i % 13 else "failed"))
    frame = stage_metrics(records_frame(recs))
    single = [stage_met(r.status, r.stage_start_s, r.ttft_slo_s, r.tpot_slo_s, r.output_tokens, r.token_times_s)
              for r in recs]
    assert single == frame["met"].tolist()
    assert 0.1 < sum(single) / len(single) < 0.9  # both verdicts occur


def test_single_stage_request_metrics_equal_groupby() -> None:
    """One stage per request: `request_metrics`' shortcut gives the groupby-aggregate's frame, dtypes included
    (shuffled rows, unfinished stages with no tokens, a rejected request)."""
    from slobench.cluster.run import run_once, validate_config

    df = run_once(validate_config(workload="coding", scheduler="slos-serve", num_requests=120, seed=2,
                                  rate_rps=40.0, drain_timeout_s=1.0)).records
    stages = stage_metrics(df).sample(frac=1.0, random_state=0)
    stages.loc[stages.index[0], "admission"] = "rejected"
    assert stages["request_id"].is_unique and stages["last_token_s"].isna().any()
    g = stages.groupby("request_id", sort=True)
    ref = g.agg(app=("app", "first"), tier=("tier", "first"), arrival_s=("arrival_s", "first"),
                admission=("admission", "first"), num_stages=("num_stages", "first"),
                stages_seen=("stage_idx", "count"), met=("met", "all"), met_ttft=("met_ttft", "all"),
                met_tpot=("met_tpot", "all"), complete=("complete", "all"), finish_s=("last_token_s", "max"))
    whole = ref["stages_seen"] >= ref["num_stages"]
    for col in ("met", "met_ttft", "met_tpot", "complete"):
        ref[col] = ref[col] & whole
    pd.testing.assert_frame_equal(request_metrics(stages), ref.reset_index())
