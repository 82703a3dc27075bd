"""Reason codes of a qualification point: every code fires on a crafted case; a clean point is VALID."""

from __future__ import annotations

from dataclasses import replace

import pytest

from slobench.capacity.search import ProbeResult, ValidityLimits, check_validity
from slobench.qualify.reasons import (
    NOTE_CODES,
    PointEvidence,
    Reason,
    ReasonCode,
    capacity_reasons,
    evidence_from_summary,
    judge_point,
    point_notes,
    reason_from_validity,
)
from slobench.qualify.statistics import attainment_point_bound, percentile_point_bound
from slobench.qualify.suite import Rules

RULES = Rules(min_duration_s=60, warmup_s=5)
CLEAN = PointEvidence(duration_s=120.0, num_requests=1000, num_met=950, num_arrivals=1050, offered_rate_rps=8.0,
                      achieved_rate_rps=7.95, client_lag_s=0.05, requests_failed=0, requests_total=1050,
                      prefix_cached_tokens=0, prompt_tokens_sent=500_000, prompt_tokens_reported=500_000,
                      usage_mismatches=0, usage_available=True)
CLOSED = replace(CLEAN, requested_concurrency=16, achieved_concurrency=15.8, offered_rate_rps=100.0,
                 achieved_rate_rps=4.0, client_lag_s=60.0)


def codes(reasons: list[Reason]) -> list[ReasonCode]:
    return [r.code for r in reasons]


def test_a_clean_point_is_valid() -> None:
    bounds = [percentile_point_bound(1000, 50, 0.9), attainment_point_bound(950, 1000, 0.9, 0.02)]
    assert judge_point(CLEAN, RULES, bounds=bounds) == []
    assert point_notes(CLEAN, RULES) == []


def test_a_clean_closed_loop_point_is_valid_despite_lag() -> None:
    """A concurrency cap makes requests wait for a slot by design: lag and send rate are not judged there."""
    assert judge_point(CLOSED, RULES) == []


@pytest.mark.parametrize("change, code", [
    (dict(duration_s=30.0), ReasonCode.TOO_SHORT),
    (dict(num_requests=0), ReasonCode.TOO_FEW_REQUESTS),
    (dict(achieved_rate_rps=6.0), ReasonCode.RATE_BELOW_OFFERED),
    (dict(client_lag_s=2.5), ReasonCode.CLIENT_LAG),
    (dict(requests_failed=30), ReasonCode.ERROR_RATE),
    (dict(prefix_cached_tokens=4096), ReasonCode.PREFIX_CACHE_HITS),
    (dict(usage_mismatches=3), ReasonCode.TOKEN_COUNT_MISMATCH),
    (dict(prompt_tokens_reported=499_000), ReasonCode.TOKEN_COUNT_MISMATCH),
    (dict(unfinished=2), ReasonCode.UNFINISHED),
    (dict(stopped_early="stopped early as a FAIL: 3 of the first 40 met"), ReasonCode.STOPPED_EARLY),
])
def test_each_code_fires_alone_on_its_case(change: dict, code: ReasonCode) -> None:
    assert codes(judge_point(replace(CLEAN, **change), RULES)) == [code]


def test_too_few_requests_for_the_statistic_and_the_rules() -> None:
    few = replace(CLEAN, num_requests=40, num_met=40)
    got = judge_point(few, RULES, bounds=[percentile_point_bound(40, 0, 0.9)])
    assert codes(got) == [ReasonCode.TOO_FEW_REQUESTS]
    assert "n=40 < 44 needed for P90 at 99%" in got[0].detail
    floor = RULES.model_copy(update={"min_requests": 2000})
    assert codes(judge_point(CLEAN, floor)) == [ReasonCode.TOO_FEW_REQUESTS]


def test_closed_loop_concurrency_held_below_the_requested() -> None:
    got = judge_point(replace(CLOSED, achieved_concurrency=12.0), RULES)
    assert codes(got) == [ReasonCode.RATE_BELOW_OFFERED] and "requested concurrency 16" in got[0].detail


def test_closed_loop_client_lag_is_judged_from_the_slot_freeing() -> None:
    """Waiting for a slot is the design; a load generator slow to send once a slot is free is not."""
    assert judge_point(replace(CLOSED, send_lag_s=0.03), RULES) == []
    got = judge_point(replace(CLOSED, send_lag_s=2.0), RULES)
    assert codes(got) == [ReasonCode.CLIENT_LAG] and "after a slot freed" in got[0].detail


def test_rate_tolerance_widens_for_few_arrivals_and_ignores_overshoot() -> None:
    small = replace(CLEAN, num_arrivals=100, num_requests=100, achieved_rate_rps=6.9)  # 14% below; 4/√100 = 40%
    assert judge_point(small, RULES) == []
    assert judge_point(replace(CLEAN, achieved_rate_rps=12.0), RULES) == []


def test_prefix_hits_are_fine_where_the_scenario_shares_prefixes() -> None:
    assert judge_point(replace(CLEAN, prefix_cached_tokens=4096), RULES, prefix_cache_expected=True) == []


def test_token_mismatch_tolerance() -> None:
    loose = RULES.model_copy(update={"max_token_mismatch_share": 0.01})
    assert judge_point(replace(CLEAN, prompt_tokens_reported=499_000), loose) == []


def test_usage_not_available_is_a_note_unless_required() -> None:
    ev = replace(CLEAN, usage_available=False, prompt_tokens_sent=0, prompt_tokens_reported=0, usage_mismatches=0)
    assert judge_point(ev, RULES) == []
    assert codes(point_notes(ev, RULES)) == [ReasonCode.USAGE_NOT_AVAILABLE]
    assert ReasonCode.USAGE_NOT_AVAILABLE in NOTE_CODES
    strict = RULES.model_copy(update={"require_usage": True})
    assert codes(judge_point(ev, strict)) == [ReasonCode.USAGE_NOT_AVAILABLE]
    assert point_notes(ev, strict) == []
    assert point_notes(replace(ev, usage_available=None), RULES) == []  # the simulator: no server, no note


# --- the capacity search's validity -----------------------------------------------------------------------

BAD_PROBE = ProbeResult(num_met=10, num_requests=100, backlog_growth=80.0, backlog_arrivals=100, backlog_mean=40.0,
                        drain_ratio=7.0, offered_tok_s=5e4, ceiling_tok_s=3e4, kv_full_share=0.2)


def test_capacity_checks_each_get_their_code() -> None:
    got = codes(capacity_reasons(BAD_PROBE))
    assert got == [ReasonCode.COMPUTE_CEILING, ReasonCode.KV_FULL, ReasonCode.BACKLOG_GROWTH, ReasonCode.NO_DRAIN]
    assert capacity_reasons(ProbeResult(num_met=90, num_requests=100, backlog_growth=0.0, backlog_arrivals=100,
                                        backlog_mean=3.0, drain_ratio=0.0, offered_tok_s=1e4, ceiling_tok_s=3e4,
                                        kv_full_share=0.0)) == []
    no_ceiling = ValidityLimits(check_ceiling=False)
    assert ReasonCode.COMPUTE_CEILING not in codes(capacity_reasons(BAD_PROBE, no_ceiling))
    stopped = replace(BAD_PROBE, stopped_early="stopped early as a FAIL: …")
    assert codes(capacity_reasons(stopped))[0] is ReasonCode.STOPPED_EARLY


def test_judge_point_adds_the_capacity_reasons_once() -> None:
    got = codes(judge_point(CLEAN, RULES, capacity=BAD_PROBE))
    assert got == [ReasonCode.COMPUTE_CEILING, ReasonCode.KV_FULL, ReasonCode.BACKLOG_GROWTH, ReasonCode.NO_DRAIN]
    both = codes(judge_point(replace(CLEAN, stopped_early="x"), RULES,
                             capacity=replace(BAD_PROBE, stopped_early="x")))
    assert both.count(ReasonCode.STOPPED_EARLY) == 1


@pytest.mark.parametrize("probe, code", [
    (ProbeResult(10, 100, stopped_early="stopped early as a FAIL: 3 of 40"), ReasonCode.STOPPED_EARLY),
    (ProbeResult(0, 0), ReasonCode.TOO_FEW_REQUESTS),
    (ProbeResult(90, 100, offered_rate_rps=10.0, achieved_rate_rps=5.0, num_arrivals=1000),
     ReasonCode.RATE_BELOW_OFFERED),
    (ProbeResult(90, 100, offered_rate_rps=10.0, achieved_rate_rps=15.0, num_arrivals=1000),
     ReasonCode.CAPACITY_VALIDITY),
    (ProbeResult(90, 100, client_lag_s=3.0), ReasonCode.CLIENT_LAG),
    (ProbeResult(90, 100, unfinished=4), ReasonCode.UNFINISHED),
    (ProbeResult(90, 100, offered_tok_s=5e4, ceiling_tok_s=3e4), ReasonCode.COMPUTE_CEILING),
    (ProbeResult(90, 100, kv_full_share=0.5), ReasonCode.KV_FULL),
    (ProbeResult(90, 100, backlog_growth=80.0, backlog_arrivals=100, backlog_mean=40.0), ReasonCode.BACKLOG_GROWTH),
    (ProbeResult(90, 100, drain_ratio=9.0), ReasonCode.NO_DRAIN),
])
def test_check_validity_texts_map_to_codes(probe: ProbeResult, code: ReasonCode) -> None:
    text = check_validity(probe, ValidityLimits())
    assert text is not None
    r = reason_from_validity(text)
    assert r.code is code and r.detail == text


def test_an_unknown_validity_text_keeps_its_words() -> None:
    assert reason_from_validity("something new") == Reason(ReasonCode.CAPACITY_VALIDITY, "something new")
    assert f"{ReasonCode.KV_FULL}" == "kv_full" and Reason(ReasonCode.KV_FULL, "x").line() == "kv_full: x"


# --- evidence from summary.json ---------------------------------------------------------------------------

SIM_SUMMARY = {
    "num_requests": 130, "num_met": 124, "num_arrivals": 143, "warmup_s": 2.0, "last_arrival_s": 20.0,
    "offered_rate_rps": 7.1, "achieved_rate_rps": None, "client_lag_s": None, "client": {},
    "status_counts": {"finished": 140, "failed": 2, "unfinished": 1},
    "engine_info": {"simulator": {"prefix_cache": {"hit_tokens": 640, "requests": 10}}},
    "e2el_s": {"mean": 1.5}, "stopped_early": None,
}
REAL_SUMMARY = {
    "num_requests": 400, "num_met": 380, "num_arrivals": 420, "warmup_s": 10.0, "last_arrival_s": 130.0,
    "offered_rate_rps": 3.5, "achieved_rate_rps": 3.49, "client_lag_s": 0.02,
    "client": {"requests_sent": 420, "http_errors": 1, "transport_errors": 2, "usage_mismatches": 0,
               "prompt_tokens_sent": 90_000, "prompt_tokens_reported": 90_000},
    "status_counts": {"finished": 417, "failed": 3}, "engine_info": {}, "e2el_s": {"mean": None},
}


def test_evidence_from_a_simulator_summary() -> None:
    ev = evidence_from_summary(SIM_SUMMARY)
    assert ev.duration_s == 18.0 and ev.num_requests == 130 and ev.num_met == 124
    assert ev.requests_failed == 2 and ev.requests_total == 143 and ev.unfinished == 1
    assert ev.prefix_cached_tokens == 640 and ev.achieved_rate_rps is None
    assert ev.usage_available is None and ev.prompt_tokens_sent is None and ev.requested_concurrency is None


def test_evidence_from_a_real_engine_summary() -> None:
    ev = evidence_from_summary(REAL_SUMMARY)
    assert ev.duration_s == 120.0 and ev.achieved_rate_rps == 3.49 and ev.client_lag_s == 0.02
    assert ev.requests_failed == 3 and ev.requests_total == 420
    assert ev.prompt_tokens_sent == ev.prompt_tokens_reported == 90_000 and ev.usage_available is True
    assert ev.prefix_cached_tokens is None
    text_prompts = evidence_from_summary(REAL_SUMMARY | {"client": REAL_SUMMARY["client"] | {
        "prompt_tokens_sent": 0, "prompt_tokens_reported": 0}})
    assert text_prompts.usage_available is None  # an older client cannot tell "no usage" from text prompts
    explicit = evidence_from_summary(REAL_SUMMARY | {"client": REAL_SUMMARY["client"] | {"usage_reported": 0,
                                                                                         "cached_prompt_tokens": 7}})
    assert explicit.usage_available is False and explicit.prefix_cached_tokens == 7


def test_evidence_of_a_closed_loop_summary_uses_littles_law() -> None:
    closed = SIM_SUMMARY | {"client": {"max_concurrency": 8, "waited_for_slot": 100}, "num_requests": 288,
                            "last_arrival_s": 66.0, "e2el_s": {"mean": 1.75}}
    ev = evidence_from_summary(closed)
    assert ev.requested_concurrency == 8
    assert ev.achieved_concurrency == pytest.approx(288 / 64 * 1.75)
    assert ev.requests_total == 143  # stage statuses, not client counters (the simulator has none)


def test_evidence_of_a_real_simulator_run_judges_clean() -> None:
    """End to end on the simulator: run → summary.json dict → evidence → VALID at a light load."""
    from slobench.cluster.run import RunConfig, run_once

    res = run_once(RunConfig(workload="chatbot", rate_rps=4, duration_s=30, warmup_s=2))
    ev = evidence_from_summary(res.summary.as_dict())
    assert ev.num_requests == res.summary.num_requests and ev.duration_s == pytest.approx(
        res.summary.last_arrival_s - 2.0)
    rules = Rules(min_duration_s=20, warmup_s=2, attainment_margin=0.15)
    bounds = [percentile_point_bound(ev.num_requests, ev.num_requests - (ev.num_met or 0), 0.9)]
    assert judge_point(ev, rules, bounds=bounds) == []


@pytest.mark.parametrize("server, code", [
    (dict(), None),
    (dict(usage=False), ReasonCode.USAGE_NOT_AVAILABLE),
    (dict(cached_tokens=16), ReasonCode.PREFIX_CACHE_HITS),
])
def test_the_load_generators_counters_feed_the_evidence(server: dict, code: ReasonCode | None) -> None:
    """Against the mock OpenAI server: the client counts usage blocks and cached prompt tokens, and the
    evidence built from its counters fires usage_not_available (a note) or prefix_cache_hits."""
    from slobench.engines.openai.client import run_load
    from slobench.engines.openai.protocol import Endpoint
    from slobench.testing.mock_server import MockServer
    from slobench.workloads.model import SLO, Request, Stage, Workload

    slo = SLO(ttft_s=1.0, tpot_s=0.5)
    wl = Workload("t", [Request(i, 0.01 * i, "chatbot", "c", (Stage(20, 4, slo),)) for i in range(3)])
    srv = MockServer(**server).start()
    try:
        stats = run_load(wl, Endpoint(base_url=srv.url, model="mock"), seed=0, vocab_size=1024).stats.summary()
    finally:
        srv.stop()
    assert stats["usage_reported"] == (0 if server.get("usage") is False else 3)
    assert stats["cached_prompt_tokens"] == (48 if "cached_tokens" in server else None)
    ev = evidence_from_summary(REAL_SUMMARY | {"client": stats})
    assert ev.usage_available is (server.get("usage") is not False)
    found = codes(judge_point(ev, RULES) + point_notes(ev, RULES))
    assert found == ([] if code is None else [code])
