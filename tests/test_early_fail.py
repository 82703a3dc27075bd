"""A real-engine probe that has certainly failed stops early (issue 11): the monitor's rule, the load generator
stopping on it, and a capacity probe row saying why. No vLLM needed (the mock OpenAI server)."""

from __future__ import annotations

import pytest

from slobench.capacity.execute import probe_result
from slobench.capacity.search import ProbeResult, ValidityLimits, check_validity, make_probe
from slobench.cluster.run import run_once, validate_config
from slobench.metrics.early_fail import EarlyFail
from slobench.metrics.records import StageRecord
from slobench.testing.mock_server import MockServer


def _rec(rid: int, *, met: bool, arrival: float = 10.0, stage: int = 0, stages: int = 1) -> StageRecord:
    """A finished stage whose first token is on time (met) or 5 s late (missed)."""
    first = arrival + (0.1 if met else 5.0)
    return StageRecord(request_id=rid, stage_idx=stage, stage_name="s", num_stages=stages, app="a", tier="t",
                       arrival_s=arrival, stage_start_s=arrival, prompt_tokens=10, output_tokens=3,
                       ttft_slo_s=1.0, tpot_slo_s=0.1, token_times_s=[first, first + 0.05, first + 0.1])


def test_stops_only_once_the_upper_bound_is_below_the_target() -> None:
    mon = EarlyFail(target=0.9, warmup_s=5.0, min_decided=50)
    for i in range(49):  # every request missed, but fewer than min_decided: keep going
        assert not mon.add(_rec(i, met=False))
    assert mon.add(_rec(49, met=False)) and mon.reason is not None
    assert "0 of the first 50 measured requests" in mon.reason and "< target 90%" in mon.reason
    assert mon.add(_rec(50, met=True))  # sticky


def test_a_passing_probe_never_stops_and_warmup_is_not_counted() -> None:
    mon = EarlyFail(target=0.9, warmup_s=5.0, min_decided=10)
    for i in range(100):  # warm-up requests all missed: not counted
        assert not mon.add(_rec(i, met=False, arrival=1.0))
    for i in range(100, 1100):  # 92% met
        assert not mon.add(_rec(i, met=i % 25 not in (0, 1)))
    assert mon.reason is None and mon.decided == 1000 and mon.met == 920


def test_a_request_is_decided_by_its_last_stage() -> None:
    mon = EarlyFail(target=0.9, min_decided=1)
    assert not mon.add(_rec(7, met=True, stage=0, stages=2)) and mon.decided == 0
    mon.add(_rec(7, met=False, stage=1, stages=2))
    assert mon.decided == 1 and mon.met == 0


def test_certain_fail_is_the_probes_reason() -> None:
    why = "stopped early as a FAIL: 3 of the first 60 …"
    assert check_validity(ProbeResult(3, 60, unfinished=500, stopped_early=why), ValidityLimits()) == why


@pytest.fixture
def slow_mock():
    """The first token after 1 s: no request meets chatbot's TTFT SLO (5× its prefill, ≥ 50 ms)."""
    srv = MockServer(ttft_s=1.0, tpot_s=0.002).start()
    yield srv
    srv.stop()


def test_openai_probe_that_fails_stops_early_and_says_so(slow_mock: MockServer) -> None:
    cfg = validate_config(workload="chatbot", engine="openai", url=slow_mock.url, rate_rps=40.0, num_requests=800,
                          engine_options={"vocab_size": 1024}, early_fail_target=0.9, drain_timeout_s=60)
    res = run_once(cfg)
    assert res.summary.stopped_early is not None and "stopped early as a FAIL" in res.summary.stopped_early
    statuses = res.records["status"].value_counts()
    # The whole load is 800 requests over 20 s; the stop comes once 50 are decided (≈ 2–4 s in on a quiet machine,
    # later on a busy one): most of the load is never sent, and what was in flight is unfinished.
    assert statuses.get("finished", 0) < 400 and statuses.get("unfinished", 0) > 300
    assert len(slow_mock.requests) < 500
    p = make_probe(40.0, 0, probe_result(res, 40.0), ValidityLimits())
    assert not p.valid and p.reason.startswith("stopped early as a FAIL") and p.attainment < 0.9
    assert p.row()["stopped_early"] == p.reason
