"""Issue 10, "honest capacity": the simulator's ground truth is not the policy's planning model, schedule()
time is charged, the engine's limits are shown and enforced, preemption requeues like vLLM V1, and the
prefix cache is a real LRU block pool. Every test is seeded and deterministic."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from slobench.engines.sim import SchedulerContractError, SimConfig, simulate
from slobench.errors import UserError
from slobench.perf.schedule_cost import NOISE_CHUNK, ScheduleCost, TruthFactors, lognormal_params, schedule_cost_for
from slobench.schedulers.base import BatchPlan, SchedulerView
from slobench.schedulers.vllm_v1 import VLLMScheduler
from slobench.workloads.model import SLO, Request, Stage, Workload
from tests.conftest import LinearLatency


def _workload(n: int, rate: float, prompt: int, output: int, seed: int) -> Workload:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    reqs = [Request(id=i, arrival_s=float(t), app="chat", tier="t", stages=(Stage(prompt, output, SLO(1.0, 0.1)),))
            for i, t in enumerate(arrivals)]
    return Workload(name="w", requests=reqs, seed=seed)


class _StatsLatency(LinearLatency):
    """LinearLatency with the engine's sums path, so the steady-decode shortcut is taken."""

    def latency_from_stats(self, s_q: float, s_c: float, s_qc: float, s_qq: float, n: int,
                           spec_steps: int = 0) -> float:
        return self.base_s + self.per_token_s * s_q + self.per_ctx_s * s_c


class _NoSteady:
    """Hides a policy's `steady_decode`: every iteration is a real `schedule` call (the slow path)."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner, self.name = inner, inner.name

    def schedule(self, view: SchedulerView) -> BatchPlan:
        return self.inner.schedule(view)


def _log(res) -> dict:  # noqa: ANN001
    return res.iterations.as_dict()


# --- 1. ground truth ≠ planning model ---------------------------------------------------------------------


def test_zero_bias_zero_noise_no_cost_is_exactly_the_planning_model() -> None:
    perf = _StatsLatency(base_s=0.01, per_token_s=5e-5, per_ctx_s=1e-7)
    res = simulate(_workload(300, 20.0, 300, 60, seed=1), VLLMScheduler(), perf,
                   SimConfig(truth_bias=0.0, truth_noise_cv=0.0, schedule_cost="off", seed=3))
    log = _log(res)
    assert log["latency_s"] == log["predicted_s"]  # exact, every iteration
    assert set(log["schedule_s"]) == {0.0}
    # Back-to-back iterations: the clock advanced by exactly the predicted latency.
    t = log["time_s"]
    back_to_back = [(t[i] - t[i - 1], log["predicted_s"][i]) for i in range(1, len(t))
                    if t[i] - t[i - 1] <= log["predicted_s"][i] * (1 + 1e-12)]
    assert len(back_to_back) > len(t) // 2
    for i in range(1, len(t)):
        assert t[i] >= t[i - 1] + log["predicted_s"][i] * (1 - 1e-12)


def test_bias_scales_every_iteration_and_noise_has_mean_one_and_the_cv() -> None:
    perf = _StatsLatency()
    wl = _workload(400, 20.0, 200, 80, seed=2)
    biased = _log(simulate(wl, VLLMScheduler(), perf, SimConfig(truth_bias=0.25, seed=1)))
    assert all(a == p * 1.25 for a, p in zip(biased["latency_s"], biased["predicted_s"], strict=True))
    noisy = _log(simulate(wl, VLLMScheduler(), perf, SimConfig(truth_noise_cv=0.1, seed=1)))
    f = np.array(noisy["latency_s"]) / np.array(noisy["predicted_s"])
    assert len(f) > 1000  # mean within 0.01: ~4 standard errors
    assert abs(f.mean() - 1.0) < 0.01 and abs(f.std() / f.mean() - 0.1) < 0.01
    again = _log(simulate(wl, VLLMScheduler(), perf, SimConfig(truth_noise_cv=0.1, seed=1)))
    other = _log(simulate(wl, VLLMScheduler(), perf, SimConfig(truth_noise_cv=0.1, seed=2)))
    assert again == noisy and other["latency_s"] != noisy["latency_s"]


def test_truth_factors_stream_is_its_own_generator_in_chunks() -> None:
    mu, sigma = lognormal_params(0.2)
    want = 1.1 * np.random.default_rng([7, 0x7472757468]).lognormal(mu, sigma, 2 * NOISE_CHUNK)
    tf = TruthFactors(7, 0.1, 0.2)
    got = tf.buf + tf.refill()
    assert got == want.tolist()
    assert TruthFactors(7, 0.0, 0.0).buf == [1.0] * NOISE_CHUNK


@pytest.mark.parametrize(("cost", "kv_tokens"), [("off", 40_000), ("model", 40_000), ("model", 5_000),
                                               ("model", None), ("model", 20_000)])
def test_steady_decode_path_equals_slow_path_with_noise_and_cost(cost: str, kv_tokens: int | None) -> None:
    """The shortcut draws one factor per iteration in the same order, charges the same cost and takes blocks
    from the pool in the same order (5,000 tokens of KV: preemptions and evictions). None / 20,000: the
    roofline model, whose `decode_latencies` prices each window vectorised."""
    from slobench.perf import get_latency_model

    if kv_tokens is None or kv_tokens == 20_000:
        perf = get_latency_model()
        if kv_tokens:
            perf.kv_capacity_tokens = lambda: 20_000  # tight KV: preemptions, evictions in the window
    else:
        perf = _StatsLatency(base_s=0.008, per_token_s=4e-5, per_ctx_s=2e-7, kv_tokens=kv_tokens)
    wl = _workload(250, 15.0 if kv_tokens != 20_000 else 40.0, 400, 150, seed=4)
    cfg = SimConfig(truth_bias=0.1, truth_noise_cv=0.2, schedule_cost=cost, seed=9,
                    schedule_cost_model=ScheduleCost(a=2e-4, b=3e-6, c=1e-6, source="test", a_idle=3e-5,
                                                     c_idle=4e-7))  # both regimes: the steady path charges idle
    pol = VLLMScheduler()
    fast = simulate(wl, pol, perf, cfg)
    slow = simulate(wl, _NoSteady(VLLMScheduler()), perf, cfg)
    assert pol.stats.counters.get("steady_iterations", 0) > 150  # the shortcut really ran
    assert (sum(r.num_preemptions for r in fast.records) > 0) == (kv_tokens is not None and kv_tokens < 30_000)
    assert _log(fast) == _log(slow)
    assert [r.token_times_s for r in fast.records] == [r.token_times_s for r in slow.records]


# --- 2. schedule() cost ------------------------------------------------------------------------------------


class _CountWaiting(_NoSteady):
    """`_NoSteady` that notes how many sequences waited and ran at each call."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        super().__init__(inner)
        self.waiting: list[int] = []
        self.running: list[int] = []

    def schedule(self, view: SchedulerView) -> BatchPlan:
        self.waiting.append(len(view.waiting))
        self.running.append(len(view.running))
        return self.inner.schedule(view)


def test_calls_with_nothing_waiting_are_charged_the_idle_fit() -> None:
    """Two regimes (`ScheduleCost`): a call with work waiting pays a + b·w + c·r, one with nothing waiting pays
    a_idle + c_idle·r (slos-serve's decode-only calls cost a tenth of its planning ones: docs/simulator.md)."""
    perf = _StatsLatency()
    cost = ScheduleCost(a=1e-3, b=1e-5, c=2e-6, source="test", a_idle=2e-4, c_idle=3e-6)
    pol = _CountWaiting(VLLMScheduler())
    res = simulate(_workload(200, 30.0, 200, 40, seed=5), pol, perf,
                   SimConfig(schedule_cost="model", schedule_cost_model=cost, seed=1))
    log = _log(res)
    assert len(log["schedule_s"]) == len(pol.waiting)  # one call per step
    assert 0 < sum(w > 0 for w in pol.waiting) < len(pol.waiting)  # both regimes occur
    want = [1e-3 + 1e-5 * w + 2e-6 * r if w else 2e-4 + 3e-6 * r for w, r in zip(pol.waiting, pol.running,
                                                                              strict=True)]
    assert log["schedule_s"] == pytest.approx(want, rel=1e-12)
    # Without an idle fit the busy formula prices every call: the pre-split model, unchanged.
    one = ScheduleCost(a=1e-3, b=1e-5, c=2e-6, source="test")
    assert one.seconds(0, 10) == 1e-3 + 2e-6 * 10 and cost.seconds(0, 10) == 2e-4 + 3e-6 * 10
    assert cost.seconds(3, 10) == one.seconds(3, 10)
    assert cost.as_dict()["idle_a_s"] == 2e-4 and one.as_dict()["idle_a_s"] == 1e-3


def test_model_cost_is_charged_before_each_step() -> None:
    perf = _StatsLatency()
    cost = ScheduleCost(a=1e-3, b=1e-5, c=2e-5, source="test")
    res = simulate(_workload(200, 30.0, 200, 40, seed=5), _NoSteady(VLLMScheduler()), perf,
                   SimConfig(schedule_cost="model", schedule_cost_model=cost, seed=1))
    log = _log(res)
    assert min(log["schedule_s"]) >= 1e-3
    off = _log(simulate(_workload(200, 30.0, 200, 40, seed=5), _NoSteady(VLLMScheduler()), perf,
                        SimConfig(schedule_cost="off", seed=1)))
    assert res.end_time_s > off["time_s"][-1]
    t = log["time_s"]
    steps = [t[i] - t[i - 1] for i in range(1, len(t))]
    want = [log["schedule_s"][i] + log["latency_s"][i] for i in range(1, len(t))]
    assert sum(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(steps, want, strict=True)) > len(t) // 2
    assert all(a >= b * (1 - 1e-12) for a, b in zip(steps, want, strict=True))


def test_fitted_coefficients_cover_every_registry_policy_and_unknowns_get_the_default() -> None:
    from slobench.perf.schedule_cost import schedule_cost_table
    from slobench.schedulers.registry import SCHEDULERS

    table = schedule_cost_table()
    assert set(table["policies"]) == set(SCHEDULERS)
    for name in SCHEDULERS:
        c = schedule_cost_for(name)
        assert c.source == f"fitted:{name}" and c.a >= 0 and c.b >= 0 and c.c >= 0
    mine = schedule_cost_for("my.module:Policy")
    assert mine.source.startswith("default")
    assert mine.a == max(p["a"] for p in table["policies"].values())
    # Per regime: an entry without an idle fit prices idle calls with its one formula.
    assert mine.idle[0] == max((p.get("idle") or p)["a"] for p in table["policies"].values())
    # slos-serve's planning calls and decode-only calls are fitted apart (the one line overcharged decode-only
    # calls 8×), timed in CPU time; each entry says where and how it was measured.
    slos = schedule_cost_for("slos-serve")
    assert slos.a_idle is not None and slos.a_idle < slos.a
    for entry in table["policies"].values():
        assert {"machine", "date", "timer"} <= set(entry["fitted"])
    assert "thread" in table["policies"]["slos-serve"]["fitted"]["timer"]


def test_run_records_truth_and_cost_in_summary_and_wall_is_not_deterministic(tmp_path) -> None:  # noqa: ANN001
    from slobench.cluster.run import run_once, validate_config

    res = run_once(validate_config(workload="chatbot", num_requests=40, seed=1, truth_bias=0.1,
                                   truth_noise_cv=0.07), run_dir=tmp_path)
    info = json.loads((tmp_path / "summary.json").read_text())["engine_info"]
    assert info["deterministic"] is True
    sim = info["simulator"]
    assert (sim["truth_bias"], sim["truth_noise_cv"], sim["schedule_cost"]) == (0.1, 0.07, "model")
    assert sim["schedule_cost_coefficients"]["source"] == "fitted:vllm"
    # Where the policy's own coefficients were measured, and how (they may come from another fit than others').
    from slobench.perf.schedule_cost import schedule_cost_table

    assert sim["schedule_cost_fit"]["timer"] == schedule_cost_table()["policies"]["vllm"]["fitted"]["timer"]
    assert (sim["max_num_batched_tokens"], sim["max_num_seqs"]) == (8192, 1024)
    assert res.summary.engine_info == info
    wall = run_once(validate_config(workload="chatbot", num_requests=40, seed=1, schedule_cost="wall"))
    assert wall.summary.engine_info["deterministic"] is False
    assert wall.summary.engine_info["simulator"]["schedule_cost_coefficients"] is None


@pytest.mark.parametrize(("kwargs", "flag"), [
    ({"truth_bias": -1.0}, "--truth-bias"), ({"truth_bias": float("nan")}, "--truth-bias"),
    ({"truth_noise_cv": -0.1}, "--truth-noise"), ({"truth_noise_cv": 3.0}, "--truth-noise"),
    ({"schedule_cost": "sometimes"}, "--schedule-cost"),
])
def test_bad_truth_and_cost_inputs_are_one_line_naming_the_flag(kwargs: dict, flag: str) -> None:
    from slobench.cluster.run import validate_config

    with pytest.raises(UserError) as exc:
        validate_config(workload="chatbot", **kwargs)
    msg = str(exc.value)
    assert msg.startswith(flag + ":") and "\n" not in msg


# --- 3. engine limits --------------------------------------------------------------------------------------


class _Greedy:
    """Schedules every pending token of everything (ignores any limit)."""

    name = "greedy"

    def __init__(self) -> None:
        self.views: list[SchedulerView] = []

    def schedule(self, view: SchedulerView) -> BatchPlan:
        self.views.append(view)
        return BatchPlan(num_scheduled={s.req_id: s.pending_tokens for s in view.running + view.waiting})


def test_limits_reach_the_view_and_a_plan_over_them_is_a_contract_error() -> None:
    wl = _workload(20, 100.0, 600, 4, seed=6)
    pol = _Greedy()
    with pytest.raises(SchedulerContractError, match="max_num_batched_tokens=1000"):
        simulate(wl, pol, LinearLatency(), SimConfig(max_num_batched_tokens=1000, max_num_seqs=64))
    assert (pol.views[0].max_num_batched_tokens, pol.views[0].max_num_seqs) == (1000, 64)
    with pytest.raises(SchedulerContractError, match="max_num_seqs=2"):
        simulate(_workload(20, 1000.0, 10, 4, seed=6), _Greedy(), LinearLatency(),
                 SimConfig(max_num_batched_tokens=100_000, max_num_seqs=2))


def test_vllm_policy_takes_its_limits_from_the_view() -> None:
    wl = _workload(60, 200.0, 500, 20, seed=7)
    res = simulate(wl, VLLMScheduler(), LinearLatency(), SimConfig(max_num_batched_tokens=700, max_num_seqs=3))
    log = _log(res)
    assert max(p + d for p, d in zip(log["prefill_tokens"], log["decode_tokens"], strict=True)) == 700
    assert max(log["num_seqs"]) == 3


def test_slos_serve_keeps_its_plans_within_the_engine_limits() -> None:
    """Issue 11: slos-serve planned without the engine's token budget (inside vLLM, 16% of its planned tokens never
    ran). Under a tight budget the simulator, which refuses a plan over the limits, now runs it to the end."""
    from slobench.schedulers.registry import make_scheduler

    wl = _workload(30, 20.0, 600, 8, seed=8)
    res = simulate(wl, make_scheduler("slos-serve"), LinearLatency(), SimConfig(max_num_batched_tokens=300,
                                                                                max_num_seqs=4))
    log = _log(res)
    assert max(p + d for p, d in zip(log["prefill_tokens"], log["decode_tokens"], strict=True)) <= 300
    assert max(log["num_seqs"]) <= 4 and sum(r.status == "finished" for r in res.records) == 30


# --- 4. preemption order -----------------------------------------------------------------------------------


class _PreemptTwo:
    """vLLM-like: when both oldest requests decode, preempts the two newest running at once (newest first,
    as vLLM pops them), then records the waiting queue the next call sees."""

    name = "preempt-two"

    def __init__(self) -> None:
        self.done = False
        self.after: list[int] | None = None
        self.victims: list[int] = []

    def schedule(self, view: SchedulerView) -> BatchPlan:
        if self.done and self.after is None:
            self.after = [s.req_id for s in view.waiting]
        if not self.done and len(view.running) == 4 and all(s.stage_out > 0 for s in view.running):
            self.done = True
            self.victims = [view.running[-1].req_id, view.running[-2].req_id]
            return BatchPlan(preempted=list(self.victims))
        plan = BatchPlan()
        for s in view.running + view.waiting:
            plan.num_scheduled[s.req_id] = s.pending_tokens
        return plan


def test_several_victims_requeue_oldest_first_like_vllm_v1() -> None:
    reqs = [Request(id=i, arrival_s=0.001 * i, app="a", tier="t", stages=(Stage(40, 30, SLO(1.0, 0.1)),))
            for i in range(4)] + [Request(id=9, arrival_s=10.0, app="a", tier="t", stages=(Stage(8, 2, SLO(1, 1)),))]
    pol = _PreemptTwo()
    simulate(Workload(name="p", requests=reqs, seed=0), pol, LinearLatency(), SimConfig())
    assert pol.victims == [3, 2]
    assert pol.after == [2, 3]  # each victim prepended as preempted: the oldest ends at the head


# --- 5. prefix cache ---------------------------------------------------------------------------------------


class _Recorder:
    """Wraps a policy; keeps (num_computed, kv_blocks) of request ``rid`` whenever it waits."""

    def __init__(self, inner, rid: int) -> None:  # noqa: ANN001
        self.inner, self.name, self.rid, self.seen = inner, inner.name, rid, []

    def schedule(self, view: SchedulerView) -> BatchPlan:
        for s in view.waiting:
            if s.req_id == self.rid:
                self.seen.append((s.num_tokens, s.num_computed, s.kv_blocks))
        return self.inner.schedule(view)


def test_preempted_request_resumes_from_its_cached_blocks_unless_evicted() -> None:
    # Request 0 (prompt 100) decodes; _PreemptTwo is reused with 4 running: 3 and 2 are preempted.
    reqs = [Request(id=i, arrival_s=0.001 * i, app="a", tier="t", stages=(Stage(100, 30, SLO(1.0, 0.1)),))
            for i in range(4)] + [Request(id=9, arrival_s=10.0, app="a", tier="t", stages=(Stage(8, 2, SLO(1, 1)),))]
    wl = Workload(name="p", requests=reqs, seed=0)
    rec = _Recorder(_PreemptTwo(), rid=3)
    simulate(wl, rec, LinearLatency(), SimConfig(block_size=16))
    num_tokens, computed, kv = rec.seen[-1]
    assert kv == 0 and computed == ((num_tokens - 1) // 16) * 16 > 0  # full blocks kept: a cache hit
    rec = _Recorder(_PreemptTwo(), rid=3)
    simulate(wl, rec, LinearLatency(), SimConfig(block_size=16, prefix_caching=False))
    assert rec.seen[-1][1] == 0  # no cache: recompute from scratch


def _tool_workload(big_prompt: int) -> Workload:
    r0 = Request(id=0, arrival_s=0.0, app="tool", tier="t", stages=(
        Stage(320, 2, SLO(1.0, 0.1)), Stage(16, 2, SLO(1.0, 0.1), gap_s=1.0)))
    r1 = Request(id=1, arrival_s=0.5, app="chat", tier="t", stages=(Stage(big_prompt, 2, SLO(1.0, 0.1)),))
    return Workload(name="g", requests=[r0, r1], seed=0)


@pytest.mark.parametrize(("big_prompt", "kept_blocks"), [(160, 20), (800, 13), (1008, 0)])
def test_tool_gap_context_hits_only_what_was_not_evicted(big_prompt: int, kept_blocks: int) -> None:
    # 64 blocks of 16 tokens. Request 0 holds 21 blocks (322 tokens computed = 20 full blocks + 1 partial),
    # frees them at its gap; request 1 then takes big_prompt/16 + 1 blocks: the 43 never-used blocks first, then
    # the partial block, then request 0's full blocks from its last one down (800: 51 = 43 + 1 + 7 → 13 left).
    rec = _Recorder(VLLMScheduler(), rid=0)
    simulate(_tool_workload(big_prompt), rec, LinearLatency(kv_tokens=64 * 16), SimConfig(block_size=16))
    after_gap = [c for n, c, _ in rec.seen if n > 322]
    assert after_gap and after_gap[0] == kept_blocks * 16
