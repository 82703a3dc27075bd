"""Scheduler invariants and behaviours: vllm, vllm-v0, sarathi and slos-serve on the simulator.

Property tests (hypothesis) build random replica states and random request streams; scenario tests
script the situations the SLOs-Serve issue names (low load, a burst). Everything is seeded.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slobench.engines.sim import SimConfig, simulate
from slobench.metrics.attainment import request_metrics, stage_metrics
from slobench.metrics.records import records_frame
from slobench.perf import get_latency_model
from slobench.report.summary import RunSummary
from slobench.schedulers.base import Admission, SchedulerView, SeqState, SpecConfig
from slobench.schedulers.registry import make_scheduler
from slobench.schedulers.slos_serve.admission import Candidate, plan_admission
from slobench.workloads.model import SLO, Request, Stage, Workload

PERF = get_latency_model("H100-SXM", "Llama-3.1-8B")
BS = 16
TPOTS = (0.05, 0.1, 0.2)


def _slo(prompt: int, tpot: float) -> SLO:
    return SLO(ttft_s=max(0.05, 5 * PERF.prefill_latency_s(prompt)), tpot_s=tpot)


def _request(i: int, arrival: float, prompt: int, out: int, tpot: float) -> Request:
    return Request(id=i, arrival_s=arrival, app="test", tier=f"t{int(tpot * 1000)}",
                   stages=(Stage(prompt, out, _slo(prompt, tpot)),))


# -- random replica states -------------------------------------------------------------------------
@st.composite
def replica_states(draw: st.DrawFn) -> SchedulerView:
    now = 50.0
    n_run = draw(st.integers(0, 40))
    n_wait = draw(st.integers(0, 40))
    running, waiting = [], []
    for i in range(n_run + n_wait):
        tpot = draw(st.sampled_from(TPOTS))
        prompt = draw(st.integers(1, 4000))
        out = draw(st.integers(2, 400))
        req = _request(i, now - draw(st.floats(0.0, 5.0)), prompt, out, tpot)
        if i < n_run:
            decoding = draw(st.booleans())
            if decoding:
                done = draw(st.integers(1, out - 1))
                seq = SeqState(req=req, stage_start_s=req.arrival_s, num_tokens=prompt + done,
                               num_computed=prompt + done - 1, stage_out=done,
                               first_token_s=req.arrival_s + draw(st.floats(0.01, 1.0)))
            else:
                seq = SeqState(req=req, stage_start_s=req.arrival_s, num_tokens=prompt,
                               num_computed=draw(st.integers(0, prompt - 1)))
            seq.admission = draw(st.sampled_from([Admission.ADMITTED, Admission.BEST_EFFORT]))
            seq.kv_blocks = math.ceil(seq.num_computed / BS)
            running.append(seq)
        else:
            seq = SeqState(req=req, stage_start_s=req.arrival_s, num_tokens=prompt)
            seq.admission = draw(st.sampled_from([Admission.PENDING, Admission.PENDING, Admission.ADMITTED]))
            waiting.append(seq)
    used = sum(s.kv_blocks for s in running)
    total = used + draw(st.integers(0, 3000))
    spec = draw(st.sampled_from([None, SpecConfig(max_draft=4, alpha=0.7)]))
    return SchedulerView(now_s=now, waiting=waiting, running=running, block_size=BS, total_kv_blocks=total,
                         free_kv_blocks=total - used, perf=PERF, spec=spec)


def _check_executable(view: SchedulerView, plan) -> None:  # noqa: ANN001
    """What the simulator enforces: known ids, counts within pending work, KV within capacity."""
    seqs = {s.req_id: s for s in view.running + view.waiting}
    running_ids = {s.req_id for s in view.running}
    free = view.free_kv_blocks
    for rid in plan.preempted:
        assert rid in running_ids and rid not in plan.num_scheduled
        free += seqs[rid].kv_blocks
    for rid, n in plan.num_scheduled.items():
        seq = seqs[rid]
        assert 0 < n <= seq.pending_tokens
        k = plan.spec_tokens.get(rid, 0)
        assert k >= 0 and (k == 0 or n == 1)
        free -= max(0, seq.blocks_for(n + k, BS) - seq.kv_blocks)
    assert free >= 0, "plan needs more KV blocks than the replica has"
    assert set(plan.spec_tokens) <= set(plan.num_scheduled)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(view=replica_states(), name=st.sampled_from(["vllm", "vllm-v0", "sarathi", "slos-serve"]))
def test_plans_are_executable_and_respect_kv(view: SchedulerView, name: str) -> None:
    plan = make_scheduler(name).schedule(view)
    _check_executable(view, plan)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(view=replica_states())
def test_vllm_never_exceeds_token_budget(view: SchedulerView) -> None:
    policy = make_scheduler("vllm", max_num_batched_tokens=2048, max_num_seqs=64)
    plan = policy.schedule(view)
    assert plan.total_tokens <= 2048
    staying = len(view.running) - len(plan.preempted)
    new = [rid for rid in plan.num_scheduled if rid not in {s.req_id for s in view.running}]
    assert staying + len(new) <= max(64, staying)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(view=replica_states())
def test_slos_serve_batches_fit_their_time_budget(view: SchedulerView) -> None:
    """Everything beyond the mandatory decodes fits the time budget the policy set itself."""
    policy = make_scheduler("slos-serve")
    plan = policy.schedule(view)
    if not plan.num_scheduled:
        return
    seqs = {s.req_id: s for s in view.running + view.waiting}
    optional = [rid for rid in plan.num_scheduled if seqs[rid].is_prefilling
                or seqs[rid].admission is Admission.BEST_EFFORT]
    if len(plan.num_scheduled) == 1 and optional:
        return  # the forced-progress batch: one chunk when nothing else fits
    if optional:
        assert plan.budget_s is not None and plan.predicted_latency_s is not None
        assert plan.predicted_latency_s <= plan.budget_s * (1 + 1e-9)
    # Pending requests are never served before admission decides about them (admitted, or expired
    # to best-effort and then given leftover budget).
    for rid in plan.num_scheduled:
        assert seqs[rid].admission is not Admission.PENDING or plan.admission.get(rid) in (
            Admission.ADMITTED, Admission.BEST_EFFORT)
    for k in plan.spec_tokens.values():
        assert view.spec is not None and 0 < k <= view.spec.max_draft


# -- the replay property: admitted requests meet their SLOs -------------------------------------------
def _run(requests: list[Request], name: str, spec: SpecConfig | None = None, oracle: bool = True,
         max_context: int | None = None, **opts: object) -> pd.DataFrame:
    """Simulate ``requests`` under policy ``name``. The scenario tests script the paper's mechanics under its
    assumption (``oracle``: true output lengths); ``oracle=False`` gives the policy the bounds
    (``max_context`` per app, else the replica's KV) and the online predictor, as runs do by default."""
    wl = Workload("test", sorted(requests, key=lambda r: r.arrival_s))
    if max_context is not None:
        wl.spec = {"apps": [{"name": r.app, "lengths": {"max_context": max_context}} for r in requests[:1]]}
    res = simulate(wl, make_scheduler(name, **opts), PERF, SimConfig(spec=spec, seed=0, oracle_lengths=oracle))
    return stage_metrics(records_frame(res.records))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reqs=st.lists(st.tuples(st.floats(0, 3.0), st.integers(1, 6000), st.integers(1, 300), st.sampled_from(TPOTS)),
                  min_size=1, max_size=120),
)
def test_admitted_requests_meet_ttft_when_the_plan_is_replayed(reqs: list[tuple]) -> None:
    """Replaying slos-serve's plans through the same perf model: every admitted request meets TTFT."""
    stages = _run([_request(i, a, p, o, t) for i, (a, p, o, t) in enumerate(reqs)], "slos-serve")
    admitted = stages[stages["admission"] == "admitted"]
    late = admitted[admitted["ttft_s"] > admitted["ttft_slo_s"] * 1.05]
    assert late.empty, late[["request_id", "prompt_tokens", "ttft_s", "ttft_slo_s"]].to_string()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reqs=st.lists(st.tuples(st.floats(0, 3.0), st.integers(1, 6000), st.integers(1, 300), st.sampled_from(TPOTS)),
                  min_size=1, max_size=120),
)
def test_admitted_requests_meet_ttft_without_the_oracle(reqs: list[tuple]) -> None:
    """The same property when the policy only has the max_tokens bound and the online predictor."""
    stages = _run([_request(i, a, p, o, t) for i, (a, p, o, t) in enumerate(reqs)], "slos-serve", oracle=False,
                  max_context=8192)
    admitted = stages[stages["admission"] == "admitted"]
    late = admitted[admitted["ttft_s"] > admitted["ttft_slo_s"] * 1.05]
    assert late.empty, late[["request_id", "prompt_tokens", "ttft_s", "ttft_slo_s"]].to_string()


def test_running_decodes_keep_tpot_when_unloaded() -> None:
    rng = np.random.default_rng(1)
    reqs = [_request(i, i * 0.5, int(rng.integers(100, 3000)), int(rng.integers(50, 400)), TPOTS[i % 3])
            for i in range(40)]
    stages = _run(reqs, "slos-serve")
    assert (stages["admission"] == "admitted").all()
    assert stages["met_tpot"].all() and stages["met"].all()


def _coding_summary(name: str, rate: float) -> RunSummary:
    from slobench.cluster.run import run_once, validate_config

    return run_once(validate_config(workload="coding", scheduler=name, rate_rps=rate, num_requests=300)).summary


def test_low_load_slos_serve_attains_at_least_the_baseline() -> None:
    slos = _coding_summary("slos-serve", 1.0)
    for base in ("vllm", "sarathi"):
        assert slos.attainment >= _coding_summary(base, 1.0).attainment
    assert slos.attainment >= 0.97


def test_burst_keeps_admitted_requests_on_slo_while_baseline_collapses() -> None:
    """Steady chat at 2 req/s, then 150 coding-size prompts within 1.5 s (a scripted burst)."""
    rng = np.random.default_rng(7)
    reqs = [_request(i, i * 0.5, int(rng.integers(200, 1500)), int(rng.integers(50, 300)), 0.1) for i in range(40)]
    reqs += [_request(100 + j, 8.0 + rng.uniform(0, 1.5), int(rng.integers(1000, 4000)), int(rng.integers(20, 200)),
                      0.05) for j in range(150)]
    slos = _run(reqs, "slos-serve")
    base = _run(reqs, "vllm")
    slos_req = request_metrics(slos)
    admitted = slos_req[slos_req["admission"] == "admitted"]
    base_req = request_metrics(base)
    assert len(admitted) >= 40
    assert admitted["met"].mean() >= 0.95
    assert base_req["met"].mean() < 0.6  # the baseline collapses: the burst makes nearly everyone late
    assert slos_req["met"].sum() >= 2 * base_req["met"].sum()


def test_arrival_cap_keeps_short_ttft_arrivals_behind_long_prefills() -> None:
    """Long loose-TPOT prompts make long batches; 50 ms-TTFT chat turns arriving mid-batch would wait
    for the batch to end and be lost before admission sees them. Capping batches at the slack of
    recent arrivals keeps them, without hurting the long requests."""
    rng = np.random.default_rng(3)
    reqs = [_request(i, 0.25 * i, 7000, 40, 0.2) for i in range(40)]
    reqs += [_request(100 + j, float(rng.uniform(0.5, 10.0)), int(rng.integers(100, 400)), 30, 0.2)
             for j in range(80)]
    capped = request_metrics(_run(reqs, "slos-serve"))
    uncapped = request_metrics(_run(reqs, "slos-serve", arrival_slack_quantile=None))
    short = capped["request_id"] >= 100
    assert capped.loc[short, "met"].mean() >= 0.9  # measured 97.5%
    assert capped.loc[short, "met"].mean() >= uncapped.loc[short, "met"].mean() + 0.3  # uncapped: 37.5%
    assert capped.loc[~short, "met"].all()


def test_rejection_mode_rejects_instead_of_best_effort() -> None:
    reqs = [_request(j, rng_t, 3000, 50, 0.05) for j, rng_t in enumerate(np.linspace(0, 0.5, 120))]
    stages = _run(reqs, "slos-serve", best_effort=False)
    assert (stages["admission"] == "rejected").any()
    assert not (stages["admission"] == "best_effort").any()
    assert (stages.loc[stages["admission"] == "rejected", "status"] == "rejected").all()


def test_slos_serve_is_deterministic() -> None:
    from slobench.cluster.run import run_once, validate_config

    cfg = validate_config(workload="mixed", scheduler="slos-serve", rate_rps=6.0, num_requests=200, seed=3)
    a, b = run_once(cfg).records, run_once(cfg).records
    pd.testing.assert_frame_equal(a, b)


def test_speculation_per_tier_and_bounded() -> None:
    rng = np.random.default_rng(2)
    reqs = [_request(i, i * 0.2, int(rng.integers(100, 2000)), 200, TPOTS[i % 2]) for i in range(60)]
    spec = SpecConfig(max_draft=4, alpha=0.8)
    wl = Workload("spec", reqs)
    policy = make_scheduler("slos-serve")
    res = simulate(wl, policy, PERF, SimConfig(spec=spec, seed=0, oracle_lengths=True))
    stages = stage_metrics(records_frame(res.records))
    assert stages["met"].mean() >= 0.95
    lengths = policy._spec  # per-TPOT-tier draft lengths chosen at the last plan
    assert all(0 <= s <= 4 for s in lengths.values())
    if 0.05 in lengths and 0.1 in lengths:
        assert lengths[0.05] >= lengths[0.1]  # tighter tiers speculate at least as long


# -- the admission DP itself ----------------------------------------------------------------------
def _flat_rate(rate_tps: float, batch_s: float = 0.05):  # noqa: ANN202
    return lambda counts: (rate_tps, batch_s)


def test_decode_only_batches_draft_for_speed_when_memory_bound() -> None:
    """No prefill waiting, 128 long-context decodes (memory-bound): drafting decodes faster, so the
    batch speculates although every tier keeps its TPOT without drafts (the per-tier rule's answer)."""
    running = [_decoding(i, prompt=3000, out=4000, done=500) for i in range(128)]
    view = _view(running, [], free=200_000)
    view.spec = SpecConfig(max_draft=4, alpha=0.7)
    plan = make_scheduler("slos-serve").schedule(view)
    ks = {plan.spec_tokens.get(s.req_id, 0) for s in running}
    assert len(ks) == 1 and ks.pop() > 0
    assert plan.predicted_latency_s is not None and plan.predicted_latency_s <= plan.budget_s + 1e-9
    # With a long prompt waiting, the decodes make room for it instead (the authors' rule).
    view.waiting = [_new(1000, 6000)]
    view.waiting[0].admission = Admission.ADMITTED
    plan = make_scheduler("slos-serve").schedule(view)
    assert 1000 in plan.num_scheduled


def test_dp_beats_greedy_edf_when_an_early_big_request_blocks_small_ones() -> None:
    # 1000 tokens/s; deadlines 1.0 s (900 tokens), 1.1 s (400), 1.2 s (400). Greedy EDF admits the
    # first and then nothing fits; the DP declines it and admits the other two.
    reqs = [Candidate(1, 1.0, 900, 0, 0), Candidate(2, 1.1, 400, 0, 0), Candidate(3, 1.2, 400, 0, 0)]
    res = plan_admission(reqs, _flat_rate(1000.0, 0.1), (0,), 0.0, 10_000)
    assert res.admitted == [2, 3] and not res.fallback
    greedy = plan_admission(reqs, _flat_rate(1000.0, 0.1), (0,), 0.0, 10_000, max_transitions=0)
    assert greedy.fallback and greedy.admitted == [1]


def test_dp_keeps_committed_requests_and_respects_memory() -> None:
    reqs = [Candidate(1, 0.5, 2000, 0, 0, committed=True), Candidate(2, 0.6, 100, 0, 50),
            Candidate(3, 3.0, 100, 0, 50)]
    res = plan_admission(reqs, _flat_rate(1000.0, 0.05), (0,), 0.0, 60)
    # Request 1 puts the replica 1500 tokens in debt until 0.5 s: 2 cannot be admitted, 3 can,
    # and only one of them would fit in memory anyway.
    assert res.admitted == [3]


def test_surplus_rules_differ_and_ours_admits_at_least_as_many() -> None:
    rng = np.random.default_rng(0)
    more = less = 0
    for _ in range(200):
        n = 12
        dl = np.sort(rng.uniform(0.05, 1.0, n))
        reqs = [Candidate(i, float(dl[i]), int(rng.integers(50, 900)), int(rng.integers(0, 2)), 0) for i in range(n)]

        def rate(counts: tuple[int, ...]) -> tuple[float, float]:
            return max(0.0, 4000.0 - 150.0 * counts[0] - 60.0 * counts[1]), 0.05

        more += len(plan_admission(reqs, rate, (0, 0), 0.0, 10**6, surplus_rule="more").admitted)
        less += len(plan_admission(reqs, rate, (0, 0), 0.0, 10**6, surplus_rule="less").admitted)
    assert more > less


def test_fallback_is_counted_in_stats() -> None:
    reqs = [_request(i, 0.001 * i, 500, 20, TPOTS[i % 3]) for i in range(200)]
    policy = make_scheduler("slos-serve", dp_max_transitions=10)
    simulate(Workload("fb", reqs), policy, PERF, SimConfig())
    stats = policy.stats.as_dict()
    assert stats["dp_fallbacks"] >= 1 and stats["plans"] >= stats["dp_fallbacks"]
    assert stats["overhead_ms"]["p99"] > 0


# -- baselines' defining behaviour ------------------------------------------------------------------
def _view(running: list[SeqState], waiting: list[SeqState], free: int = 100_000) -> SchedulerView:
    return SchedulerView(now_s=10.0, waiting=waiting, running=running, block_size=BS, total_kv_blocks=free,
                         free_kv_blocks=free - sum(s.kv_blocks for s in running), perf=PERF)


def _decoding(i: int, tpot: float = 0.05, prompt: int = 1000, out: int = 100, done: int = 10) -> SeqState:
    """An admitted request that arrived at 9.0 s, got its first token at 9.1 s and has decoded ``done``."""
    req = _request(i, 9.0, prompt, out, tpot)
    s = SeqState(req=req, stage_start_s=9.0, num_tokens=prompt + done, num_computed=prompt + done - 1,
                 stage_out=done, first_token_s=9.1, admission=Admission.ADMITTED)
    s.kv_blocks = math.ceil(s.num_computed / BS)
    return s


def _new(i: int, prompt: int, tpot: float = 0.05) -> SeqState:
    return SeqState(req=_request(i, 9.99, prompt, 50, tpot), stage_start_s=9.99, num_tokens=prompt)


def test_decodes_do_not_skip_for_best_effort_prefill_that_has_no_kv() -> None:
    """KV full, admitted decodes far ahead of their deadlines, best-effort prompts waiting: skipping the
    decodes would buy prefill that cannot get a block, and the replica would idle (seen on reasoning)."""
    running = [_decoding(i, prompt=1000, out=2000, done=500) for i in range(10)]
    waiting = [_new(100 + j, 3000) for j in range(5)]
    for seq in waiting:
        seq.admission = Admission.BEST_EFFORT
    view = _view(running, waiting, free=sum(s.kv_blocks for s in running))
    assert view.free_kv_blocks == 0 and all(s.next_token_deadline_s - view.now_s > 10 for s in running)
    plan = make_scheduler("slos-serve").schedule(view)
    assert sorted(plan.num_scheduled) == list(range(10))


def test_decodes_do_not_skip_for_admitted_prefill_beyond_the_sequence_limit() -> None:
    """At the engine's sequence limit (max_num_seqs), admitted decodes far ahead of their deadlines, admitted prompts
    waiting: no prompt can start, so skipping the decodes would only stretch their lives (and hold the slots
    longer). With one free slot, the decodes that skip make room for the one prompt that can start."""
    import dataclasses

    running = [_decoding(i, prompt=1000, out=2000, done=500) for i in range(10)]
    waiting = [_new(100 + j, 6000) for j in range(5)]
    for seq in waiting:
        seq.admission = Admission.ADMITTED
    view = _view(running, waiting)
    assert all(s.next_token_deadline_s - view.now_s > 10 for s in running)
    unlimited = make_scheduler("slos-serve").schedule(view)
    assert not set(range(10)) <= set(unlimited.num_scheduled)  # no limit: decodes skip for the waiting prefill
    full = make_scheduler("slos-serve").schedule(dataclasses.replace(view, max_num_seqs=10))
    assert sorted(full.num_scheduled) == list(range(10))  # at the limit: every decode runs, no prompt can start
    one_slot = make_scheduler("slos-serve").schedule(dataclasses.replace(view, max_num_seqs=11))
    assert not set(range(10)) <= set(one_slot.num_scheduled) and set(one_slot.num_scheduled) & {100}


def test_vllm_v0_runs_whole_prompts_before_any_decode() -> None:
    plan = make_scheduler("vllm-v0").schedule(_view([_decoding(0), _decoding(1)], [_new(2, 6000), _new(3, 3000)]))
    assert plan.num_scheduled == {2: 6000, 3: 3000}
    plan = make_scheduler("vllm-v0").schedule(_view([_decoding(0), _decoding(1)], []))
    assert plan.num_scheduled == {0: 1, 1: 1}


def test_sarathi_budget_is_the_tightest_tpot() -> None:
    view = _view([_decoding(i, 0.1) for i in range(8)] + [_decoding(9, 0.05)], [_new(20, 8000, 0.1)])
    plan = make_scheduler("sarathi").schedule(view)
    assert plan.num_scheduled[20] < 8000  # chunked
    seqs = {s.req_id: s for s in view.running + view.waiting}
    t = PERF.batch_latency_s([n for n in plan.num_scheduled.values()],
                             [seqs[r].num_computed for r in plan.num_scheduled])
    assert 0.04 < t <= 0.05  # filled up to, and not beyond, the tightest TPOT present


def test_vllm_uses_its_token_budget_and_chunks() -> None:
    view = _view([_decoding(i) for i in range(4)], [_new(10, 12000)])
    plan = make_scheduler("vllm", max_num_batched_tokens=8192).schedule(view)
    assert plan.num_scheduled[10] == 8192 - 4


def test_summary_reports_overhead() -> None:
    from slobench.cluster.run import run_once, validate_config

    s = run_once(validate_config(workload="chatbot", scheduler="slos-serve", rate_rps=2.0, num_requests=60)).summary
    ov = s.scheduler_stats["overhead_ms"]
    assert 0 < ov["p50"] <= ov["p99"]


def test_projected_kv_peak_is_the_peak_of_the_sum_not_the_sum_of_peaks() -> None:
    from slobench.schedulers.slos_serve.memory import projected_peak_blocks

    # A: 100 tokens growing to 200 at 1 token/s (finishes at t=100); B: 150 growing to 160 (t=10).
    ctx, final, tpot = np.array([100.0, 150.0]), np.array([200.0, 160.0]), np.array([1.0, 1.0])
    peak = projected_peak_blocks(ctx, final, tpot, block_size=1)
    # At t=10: A holds 110, B holds 160 → 270 (+1 block each for rounding); later only A (≤ 200).
    assert peak == 270 + 2
    assert peak < 200 + 160 + 2  # reserving final sizes would have claimed 362
    assert projected_peak_blocks(np.array([]), np.array([]), np.array([]), 16) == 0


def test_bench_schedulers_cli_prints_capacities_ratios_and_overhead(monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    from typer.testing import CliRunner

    import slobench.capacity.bench as bench
    from slobench.cli import app

    # The overhead line is measured on real schedule() calls, 20 of each kind instead of 200: the line and its
    # numbers are the subject here, not their precision (the default costs ≈ 10 s per command on 2 cores).
    monkeypatch.setattr(bench, "overhead", functools.partial(bench.overhead, trials=20, steady_calls=20))
    res = CliRunner().invoke(app, ["bench", "schedulers", "--workloads", "coding", "--schedulers", "vllm,slos-serve",
                                   "--quick", "-n", "60", "--seed", "0", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert "÷ vllm" in res.output and "geomean" in res.output and "re-planning" in res.output
    assert "seed 0, 1" in res.output and "coding × slos-serve:" in res.output
    bad = CliRunner().invoke(app, ["bench", "schedulers", "--schedulers", "nosuch"])
    assert bad.exit_code == 2 and "unknown 'nosuch'" in bad.output
    spec = CliRunner().invoke(app, ["bench", "schedulers", "--workloads", "coding", "--schedulers",
                                    "vllm", "--quick", "-n", "60", "--spec-alpha", "0.7"])
    assert spec.exit_code == 0, spec.output
    assert "speculation α=0.7 k≤4" in " ".join(spec.output.split())  # the title wraps with the table
    bad_alpha = CliRunner().invoke(app, ["bench", "schedulers", "--spec-alpha", "1.5"])
    assert bad_alpha.exit_code == 2 and "--spec-alpha" in bad_alpha.output


def test_capacity_table_is_the_same_in_parallel_and_pools_seeds() -> None:
    """`--jobs` only changes the wall time; pooled seeds are what every probe runs."""
    from slobench.capacity.bench import capacity_table

    quick = {"run_kwargs": {"min_duration_s": 0.0}, "confirm": 0, "rel_tol": 0.05}  # short probes: the test is jobs
    kw = {"num_requests": 60, "seeds": (0, 1)} | quick
    serial = capacity_table(["coding"], ["vllm", "slos-serve"], **kw)
    parallel = capacity_table(["coding"], ["vllm", "slos-serve"], jobs=2, **kw)
    assert [(r.scheduler, r.capacity_rps, r.probes) for r in serial] == \
        [(r.scheduler, r.capacity_rps, r.probes) for r in parallel]
    one_seed = capacity_table(["coding"], ["vllm"], num_requests=60, seeds=(0,), **quick)
    assert one_seed[0].capacity_rps is not None and serial[0].capacity_rps is not None


def test_slos_serve_linear_quantile_is_numpys() -> None:
    """The policy's arrival-slack quantile replaces np.quantile and must return the same float, bit for bit."""
    import random

    from slobench.schedulers.slos_serve.policy import _linear_quantile

    rng = random.Random(3)
    for _ in range(3000):
        n = rng.randint(1, 70)
        vals = [rng.choice([0.0, rng.uniform(0, 2), rng.uniform(0, 1e-3), 0.5]) for _ in range(n)]
        q = rng.choice([0.1, 0.5, 0.9, 0.0, 1.0, 0.25, rng.random()])
        assert _linear_quantile(sorted(vals), q) == float(np.quantile(np.array(vals), q))


def test_slos_serve_with_perf_copies_every_field() -> None:
    """`_with_perf` passes SchedulerView's fields positionally: a field added later must not silently take its
    default in the copy the policy plans with."""
    from dataclasses import fields

    from slobench.schedulers.slos_serve.policy import _with_perf

    values = {f.name: object() for f in fields(SchedulerView)}
    view = SchedulerView(**values)
    new_perf = object()
    copy = _with_perf(view, new_perf)  # type: ignore[arg-type]
    assert copy.perf is new_perf and view.perf is values["perf"]
    for name, value in values.items():
        if name != "perf":
            assert getattr(copy, name) is value, name


def test_public_request_copies_every_field() -> None:
    """`OnlineLengths.public` builds Request and Stage positionally: a field added later must not silently take
    its default in the policy's copy; only the output lengths change (to their bounds)."""
    from dataclasses import fields

    from slobench.schedulers.lengths import OnlineLengths

    stages = (Stage(100, 50, SLO(1.0, 0.05), 0.0, "think"), Stage(7, 20, SLO(2.0, 0.1), 1.5, "answer"))
    req = Request(id=3, arrival_s=1.25, app="a", tier="t", stages=stages, text="hi", prefix_blocks=(1, 2),
                  prefix_block_tokens=64)
    pub = OnlineLengths(max_context={"a": 1000}).public(req)
    for f in fields(Request):
        if f.name != "stages":
            assert getattr(pub, f.name) == getattr(req, f.name), f.name
    assert [s.output_tokens for s in pub.stages] == [900, 893]
    for got, orig in zip(pub.stages, stages, strict=True):
        for f in fields(Stage):
            if f.name != "output_tokens":
                assert getattr(got, f.name) == getattr(orig, f.name), f.name
