"""Output-length information (issue 10): policies see the max_tokens bound and an online predictor, never
the true lengths, unless the run says ``oracle_lengths`` (the SLOs-Serve paper's assumption)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slobench.cli import app
from slobench.cluster.run import RunConfig, validate_config
from slobench.engines.sim import SimConfig, simulate
from slobench.errors import UserError
from slobench.perf import get_latency_model
from slobench.schedulers.base import SchedulerView, SeqState
from slobench.schedulers.lengths import ONLINE, ORACLE, OnlineLengths, OracleLengths, make_length_info
from slobench.schedulers.spec import PolicySpec
from slobench.schedulers.vllm_v1 import VLLMScheduler
from slobench.workloads.model import SLO, Request, Stage, Workload

runner = CliRunner()
SLO_ = SLO(ttft_s=1.0, tpot_s=0.05)


def _req(i: int, outs: list[int], app: str = "chat", tier: str = "t", prompt: int = 100,
         names: tuple[str, ...] = ("think", "answer")) -> Request:
    if len(outs) == 1:
        stages = (Stage(prompt, outs[0], SLO_, name="main"),)
    else:
        stages = (Stage(prompt, outs[0], SLO_, name=names[0]), Stage(0, outs[1], SLO_, name=names[1]))
    return Request(id=i, arrival_s=0.1 * i, app=app, tier=tier, stages=stages)


class Spy(VLLMScheduler):
    """vLLM's policy that also writes down every output length it could read."""

    def __init__(self) -> None:
        super().__init__(max_num_batched_tokens=2048, max_num_seqs=64)
        self.seen: dict[tuple[int, int], set[int]] = {}
        self.remaining: list[tuple[int, int, int]] = []
        self.kinds: set[str] = set()

    def _schedule(self, view: SchedulerView):  # noqa: ANN202
        assert view.lengths is not None
        self.kinds.add(view.lengths.kind)
        for seq in view.waiting + view.running:
            for j, st in enumerate(seq.req.stages):
                self.seen.setdefault((seq.req_id, j), set()).add(st.output_tokens)
            self.remaining.append((seq.req_id, seq.stage_out, seq.remaining_output))
        return super()._schedule(view)


def _workload(max_context: int | None = 4096) -> Workload:
    reqs = [_req(i, [37 + 5 * i, 11 + i]) for i in range(12)] + [_req(12 + i, [23 + i], app="code") for i in range(6)]
    spec = {"apps": [{"name": "chat", "lengths": {"max_context": max_context}}]} if max_context else {}
    return Workload(name="t", requests=reqs, spec=spec)


def test_policy_reads_only_the_bound_without_the_oracle() -> None:
    wl = _workload()
    spy = Spy()
    perf = get_latency_model()
    res = simulate(wl, spy, perf, SimConfig(kv_capacity_tokens=200_000))
    assert spy.kinds == {ONLINE}
    truth = {(r.id, j): st.output_tokens for r in wl.requests for j, st in enumerate(r.stages)}
    for (rid, j), seen in spy.seen.items():
        req = wl.requests[rid]
        # chat: the spec's max_context minus the prompts so far; code (no spec entry): the replica's KV size
        limit = 4096 if req.app == "chat" else 200_000
        assert seen == {limit - req.stages[0].prompt_tokens}, (rid, j, seen)
        assert truth[(rid, j)] not in seen
    # the engine still runs every request to its true length, and the records carry the truth
    assert all(r.status.value == "finished" for r in res.records)
    assert {(r.request_id, r.stage_idx): r.output_tokens for r in res.records} == truth
    assert all(len(r.token_times_s) == truth[(r.request_id, r.stage_idx)] for r in res.records)


def test_oracle_policy_reads_the_truth() -> None:
    wl = _workload()
    spy = Spy()
    simulate(wl, spy, get_latency_model(), SimConfig(kv_capacity_tokens=200_000, oracle_lengths=True))
    assert spy.kinds == {ORACLE}
    for (rid, j), seen in spy.seen.items():
        assert seen == {wl.requests[rid].stages[j].output_tokens}


def _seq(req: Request, stage_idx: int = 0, out: int = 0) -> SeqState:
    return SeqState(req=req, stage_idx=stage_idx, stage_out=out, num_tokens=req.stages[0].prompt_tokens + out)


def test_conditional_expectation_and_quantile_match_the_empirical_distribution() -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(1, 3000, size=500)
    lp = OnlineLengths(max_context={"chat": 100_000}, min_samples=8)
    for n in data:
        lp.observe("chat", "t", "main", int(n))
    for h in lp._hist.values():
        h.refresh(lp.refresh_fraction)  # batches: the last few observations may wait for the next rebuild
    req = _req(0, [10])
    for k in (0, 1, 100, 999, 2500, 2950):
        tail = data[data > k]
        seq = _seq(req, out=k)
        assert lp.expected_remaining(seq) == pytest.approx(tail.mean() - k)
        for q in (0.5, 0.9, 1.0):
            got = lp.quantile_remaining(seq, q)
            # the q-quantile (lower, of the sorted tail) of L - k given L > k
            want = np.sort(tail)[max(0, int(np.ceil(q * len(tail))) - 1)] - k
            assert got == want
    # a stage that outlived everything seen: half as long again as it has, within its bound
    assert lp.expected_remaining(_seq(req, out=5000)) == 2500
    assert lp.quantile_remaining(_seq(req, out=5000), 0.9) == 2500


def test_predictor_is_per_app_tier_and_stage_with_a_documented_cold_start() -> None:
    lp = OnlineLengths(max_context={"chat": 8192, "code": 8192}, min_samples=4)  # (default 1)
    chat, code = _req(0, [1], app="chat"), _req(1, [1], app="code")
    # cold: nothing seen → the bound (max_context − prompt)
    assert lp.expected_remaining(_seq(chat)) == 8192 - 100
    for _ in range(4):
        lp.observe("chat", "t", "main", 100)
        lp.observe("code", "t", "main", 1000)
    assert lp.expected_remaining(_seq(chat)) == 100
    assert lp.expected_remaining(_seq(code)) == 1000
    # another tier of chat: pooled over chat's tiers until it has its own history
    other_tier = _req(2, [1], app="chat", tier="gold")
    assert lp.expected_remaining(_seq(other_tier)) == 100
    for _ in range(4):
        lp.observe("chat", "gold", "main", 300)
    assert lp.expected_remaining(_seq(other_tier)) == 300
    # stages are separate: reasoning's think and answer
    r = _req(3, [1, 1], app="reasoning")
    for _ in range(4):
        lp.observe("reasoning", "t", "think", 4000)
        lp.observe("reasoning", "t", "answer", 700)
    assert lp.expected_remaining(_seq(r)) == 4000
    assert lp.expected_remaining(_seq(r), stage_idx=1) == 700
    assert lp.expected_remaining(_seq(r, 1, 200)) == 500
    # an app nobody has seen, with a stage name others have: pooled over apps
    assert lp.expected_remaining(_seq(_req(4, [1], app="new"))) == pytest.approx((100 * 4 + 1000 * 4 + 300 * 4) / 12)


def test_oracle_returns_the_truth_and_the_factory_picks_by_spec() -> None:
    r = _req(0, [40, 9])
    o = OracleLengths()
    assert o.public(r) is r
    assert o.expected_remaining(_seq(r, 0, 15)) == 25 and o.quantile_remaining(_seq(r, 0, 15), 0.9) == 25
    assert o.expected_remaining(_seq(r, 0, 15), stage_idx=1) == 9
    assert isinstance(make_length_info(True, None, 1000), OracleLengths)
    online = make_length_info(False, {"apps": [{"name": "chat", "lengths": {"max_context": 500}}]}, 1000)
    assert isinstance(online, OnlineLengths) and online.public(r).stages[1].output_tokens == 400


def test_slos_serve_plans_with_predicted_lengths_not_the_truth() -> None:
    """The policy's KV projection uses the predictor: the same view with a different predictor changes it,
    with the oracle it is the true final context."""
    from slobench.schedulers.slos_serve import SLOsServeScheduler
    from slobench.schedulers.slos_serve.policy import _rest_of_turn

    r = _req(0, [4000, 700], app="reasoning")
    lp = OnlineLengths(max_context={"reasoning": 16384}, min_samples=1)
    view = SchedulerView(now_s=0.0, waiting=[], running=[], block_size=16, total_kv_blocks=1000,
                         free_kv_blocks=1000, perf=get_latency_model(), lengths=lp)
    pub = _seq(lp.public(r), 0, 1000)
    assert _rest_of_turn(pub, view)[0] == 100 + 1000 + (16384 - 100 - 1000) + (16384 - 100)  # cold: bounds
    lp.observe("reasoning", "t", "think", 2000)
    lp.observe("reasoning", "t", "answer", 500)
    assert _rest_of_turn(pub, view)[0] == 100 + 1000 + 1000 + 500
    view.lengths = OracleLengths()
    assert _rest_of_turn(_seq(r, 0, 1000), view)[0] == 100 + 4000 + 700
    SLOsServeScheduler(kv_length_quantile=0.9)
    with pytest.raises(UserError, match="kv_length_quantile"):
        SLOsServeScheduler(kv_length_quantile=1.5)


# --- the option: PolicySpec, RunConfig, manifest, summary, CLI ----------------------------------------------
def test_oracle_option_round_trips_through_spec_and_config() -> None:
    spec = PolicySpec(name="slos-serve", oracle_lengths=True)
    assert PolicySpec.model_validate_json(spec.model_dump_json()) == spec
    assert PolicySpec(name="vllm").oracle_lengths is False
    cfg = validate_config(workload="chatbot", scheduler="slos-serve", oracle_lengths=True)
    assert cfg.policy.oracle_lengths is True and cfg.policy.name == "slos-serve"
    again = RunConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg
    cfg2 = validate_config(workload="chatbot", policy={"name": "vllm", "oracle_lengths": True})
    assert cfg2.policy.oracle_lengths is True
    with pytest.raises(UserError, match="--oracle-lengths: given twice"):
        validate_config(workload="chatbot", policy={"name": "vllm", "oracle_lengths": True}, oracle_lengths=False)


@pytest.mark.parametrize("bad", ["yes", 1, None, [True]])
def test_non_bool_oracle_lengths_is_one_user_error_line(bad: object) -> None:
    with pytest.raises(UserError) as exc:
        validate_config(workload="chatbot", scheduler="slos-serve", oracle_lengths=bad)
    msg = str(exc.value)
    assert msg.startswith("--oracle-lengths:") and "\n" not in msg


def test_cli_flag_reaches_manifest_and_summary(tmp_path: Path) -> None:
    for flag, want in (([], ONLINE), (["--oracle-lengths"], ORACLE)):
        out = tmp_path / want
        r = runner.invoke(app, ["run", "-w", "reasoning", "-n", "12", "--rate", "1", "--scheduler", "slos-serve",
                                "--out", str(out), *flag])
        assert r.exit_code == 0, r.output
        [run_dir] = list(out.iterdir())
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["config"]["policy"]["oracle_lengths"] is (want == ORACLE)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["information"] == {"output_lengths": want}


def test_cli_bench_and_capacity_take_the_flag() -> None:
    for cmd in (["bench", "schedulers"], ["capacity"], ["compare"]):
        r = runner.invoke(app, [*cmd, "--help"], terminal_width=200)
        assert r.exit_code == 0 and "--oracle-lengths" in r.output, cmd


# --- feedback from observed iteration times (slos_serve/feedback.py) ----------------------------------------
def test_latency_feedback_learns_the_ratio_and_scales_predictions() -> None:
    from slobench.schedulers.slos_serve.feedback import LatencyFeedback

    perf = get_latency_model()
    fb = LatencyFeedback()
    now = 0.0
    for _ in range(200):  # iterations run 30% longer than the model predicts
        fb.observe(now)
        pred = 0.02
        fb.planned(pred)
        now += 1.3 * pred
    fb.observe(now)
    assert fb.ratio == pytest.approx(1.3, rel=1e-3) and fb.samples == 200
    scaled = fb.scaled(perf)
    q, c = np.array([512, 1]), np.array([0, 900])
    assert scaled.batch_latency_s(q, c) == pytest.approx(fb.ratio * perf.batch_latency_s(q, c))
    assert scaled.prefill_latency_s(300) == pytest.approx(fb.ratio * perf.prefill_latency_s(300))
    assert scaled.kv_capacity_tokens() == perf.kv_capacity_tokens()
    # idle gaps (nothing planned) are not samples; an exact model stays exactly unscaled
    fb2 = LatencyFeedback()
    fb2.observe(0.0)
    fb2.planned(None)
    fb2.observe(50.0)
    assert fb2.samples == 0 and fb2.scaled(perf) is perf


def test_latency_feedback_is_a_no_op_when_the_model_is_exact() -> None:
    """In the simulator the planning model is the ground truth: every ratio is 1, nothing is scaled."""
    from slobench.schedulers.slos_serve import SLOsServeScheduler

    wl = _workload()
    pol = SLOsServeScheduler()
    simulate(wl, pol, get_latency_model(), SimConfig(kv_capacity_tokens=200_000))
    assert pol._feedback.samples > 10 and pol._feedback.ratio == pytest.approx(1.0, abs=1e-9)
    assert "latency_scaled_calls" not in pol.stats.counters


# --- the vLLM adapter follows the same rule ----------------------------------------------------------------
class AdapterSpy:
    """A policy for the vLLM adapter test: schedules everything, writes down the lengths it could read."""

    name = "adapter-spy"
    seen: list[tuple[int, ...]] = []
    infos: list[object] = []

    def schedule(self, view: SchedulerView):  # noqa: ANN201
        from slobench.schedulers.base import BatchPlan

        plan = BatchPlan()
        for s in view.running + view.waiting:
            AdapterSpy.seen.append(tuple(st.output_tokens for st in s.req.stages))
            plan.num_scheduled[s.req_id] = s.pending_tokens
        AdapterSpy.infos.append(view.lengths)
        return plan


@pytest.mark.parametrize("oracle", [False, True], ids=["online", "oracle"])
def test_vllm_adapter_gives_the_policy_the_bound_and_feeds_the_predictor(oracle: bool, monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    from slobench.testing.kit import require_vllm_or_skip

    require_vllm_or_skip()
    from slobench.testing.kit import tiny_model_dir
    from tests.test_engines_vllm_adapter import _output, _request, _scheduler

    AdapterSpy.seen.clear()
    AdapterSpy.infos.clear()
    spec = PolicySpec(name="tests.test_lengths:AdapterSpy", oracle_lengths=oracle)
    sched = _scheduler(tiny_model_dir(), monkeypatch, tmp_path, spec, False)
    sched.add_request(_request(0, 10, [3, 2]))  # think 3 tokens, answer 2; the client's max_tokens is 5
    for _ in range(8):
        out = sched.schedule()
        sched.update_from_output(out, _output(sched, out, list(out.num_scheduled_tokens)))
    info = AdapterSpy.infos[-1]
    if oracle:
        assert set(AdapterSpy.seen) == {(3, 2)} and info.kind == ORACLE
    else:
        bound = sched.max_model_len - 10  # max_model_len − prompt: not the truth, nor the client's max_tokens (5)
        assert set(AdapterSpy.seen) == {(bound, bound)} and info.kind == ONLINE
        assert info.samples("a", "t", "think") == 1 and info.samples("a", "t", "answer") == 1
        assert info.expected_remaining(_seq(_req(9, [1, 1], app="a"))) == 3
    assert sched.stats_dict()["information"] == {"output_lengths": ORACLE if oracle else ONLINE}


def test_latency_feedback_recovers_attainment_when_the_engine_is_slower_than_the_model() -> None:
    """The engine runs 1.3× slower than the policy's planning model (as on a GPU the model misjudges):
    with feedback the policy plans with the observed ratio and keeps far more requests on SLO."""
    from slobench.cluster.run import RunConfig, build_latency_model, build_workload
    from slobench.metrics.attainment import summarize
    from slobench.metrics.records import records_frame
    from slobench.schedulers.slos_serve import SLOsServeScheduler
    from slobench.schedulers.slos_serve.feedback import ScaledLatency

    cfg = RunConfig(workload="coding", scheduler="slos-serve", rate_rps=8, num_requests=200, seed=0)
    model = build_latency_model(cfg)
    work = build_workload(cfg, model)

    class Planner(SLOsServeScheduler):
        def schedule(self, view: SchedulerView):  # noqa: ANN201
            view.perf = model  # plans with the model; the engine's iterations take 1.3× as long
            return super().schedule(view)

    got = {}
    for fb in (False, True):
        pol = Planner(latency_feedback=fb)
        res = simulate(work, pol, ScaledLatency(model, 1.3), SimConfig())
        got[fb] = summarize(records_frame(res.records), duration_s=work.duration_s)["attainment"]
        if fb:
            assert pol._feedback.ratio == pytest.approx(1.3, rel=0.02)
    assert got[True] >= got[False] + 0.1, got
