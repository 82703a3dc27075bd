"""The SLOs-Serve scheduler adapter inside vLLM, driven in-process (no server, no model execution).

vLLM's own `Scheduler`/`AsyncScheduler` objects are built on a tiny model config; model outputs
are faked. This checks what a server test cannot see directly: that each iteration schedules
*exactly* the plan's per-request token counts (sync and async variants), that rejection finishes a
request with a visible reason, that a planned preemption happens, that the factory picks the
variant vLLM would use, and that per-stage SLO state (reasoning's think|answer) is tracked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slobench.testing.kit import require_vllm_or_skip  # noqa: E402

require_vllm_or_skip()

pytestmark = pytest.mark.vllm

from slobench.engines.vllm.launcher import POLICY_ENV  # noqa: E402
from slobench.schedulers.base import Admission, BatchPlan, SchedulerView  # noqa: E402
from slobench.schedulers.spec import PolicySpec  # noqa: E402

POLICY = "tests.test_engines_vllm_adapter"


class ChunkPolicy:
    """Deliberately unlike vLLM: at most ``chunk`` tokens per request, only two requests per step."""

    name = "chunk-test"

    def __init__(self, chunk: int = 7, per_step: int = 2) -> None:
        self.chunk, self.per_step = chunk, per_step
        self.plans: list[dict[int, int]] = []

    def schedule(self, view: SchedulerView) -> BatchPlan:
        plan = BatchPlan()
        seqs = sorted(view.running + view.waiting, key=lambda s: s.req_id)
        step = len(self.plans)
        picked = [s for s in seqs if s.pending_tokens > 0]
        picked = picked[step % max(len(picked), 1):] + picked[: step % max(len(picked), 1)]
        for s in picked[: self.per_step]:
            plan.num_scheduled[s.req_id] = min(s.pending_tokens, self.chunk)
        self.plans.append(dict(plan.num_scheduled))
        return plan


class RejectSecondPolicy(ChunkPolicy):
    """Rejects the second request it sees; serves the others like `ChunkPolicy`."""

    def schedule(self, view: SchedulerView) -> BatchPlan:
        plan = super().schedule(view)
        for s in view.waiting:
            if s.req_id == 1:
                plan.admission[1] = Admission.REJECTED
                plan.num_scheduled.pop(1, None)
        return plan


class PreemptFirstPolicy(ChunkPolicy):
    """Like `ChunkPolicy` with room for everyone, but preempts request 0 at the 4th step."""

    def __init__(self) -> None:
        super().__init__(chunk=64, per_step=8)

    def schedule(self, view: SchedulerView) -> BatchPlan:
        plan = super().schedule(view)
        if len(self.plans) == 4 and any(s.req_id == 0 for s in view.running):
            plan.preempted = [0]
            plan.num_scheduled.pop(0, None)
        return plan


@pytest.fixture(scope="module")
def tiny() -> Path:
    from slobench.testing.kit import tiny_model_dir

    return tiny_model_dir()


def _config(tiny: Path, async_scheduling: bool = False):  # noqa: ANN202
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig

    sc = SchedulerConfig(max_num_seqs=16, max_num_batched_tokens=256, max_model_len=4096,
                         enable_chunked_prefill=True, is_encoder_decoder=False)
    mc = ModelConfig(model=str(tiny), dtype="float32", seed=0)
    cc = CacheConfig(block_size=16, gpu_memory_utilization=0.9, cache_dtype="auto", enable_prefix_caching=False)
    vc = VllmConfig(scheduler_config=sc, model_config=mc, cache_config=cc)
    vc.scheduler_config.async_scheduling = async_scheduling  # the CPU platform turns it off; GPUs turn it on
    cc.num_gpu_blocks = 512
    return vc


def _scheduler(tiny: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, policy: str | PolicySpec,
               async_scheduling: bool):
    """The adapter as vLLM builds it, with the policy spec the launcher would pass (a name here: a class
    of this module)."""
    import torch
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    from slobench.engines.vllm.adapter import PolicySchedulerAdapter

    spec = policy if isinstance(policy, PolicySpec) else PolicySpec(name=f"{POLICY}:{policy}")
    monkeypatch.setenv(POLICY_ENV, spec.model_dump_json())
    monkeypatch.setenv("SLOBENCH_SCHED_EVENTS", str(tmp_path / "events.jsonl"))
    monkeypatch.setenv("SLOBENCH_ITERATIONS", str(tmp_path / "iterations.jsonl"))
    vc = _config(tiny, async_scheduling)
    kv = KVCacheConfig(num_blocks=512, kv_cache_tensors=[], kv_cache_groups=[KVCacheGroupSpec(
        ["layer"], FullAttentionSpec(block_size=16, num_kv_heads=1, head_size=64, dtype=torch.float32))])
    return PolicySchedulerAdapter(vllm_config=vc, kv_cache_config=kv,
                                  structured_output_manager=StructuredOutputManager(vc), block_size=16, log_stats=False)


def _request(i: int, prompt: int, outs: list[int]):  # noqa: ANN202
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    n = len(outs)
    sp = SamplingParams(max_tokens=sum(outs), ignore_eos=True, extra_args={
        "slobench_id": f"sb-{i}", "slobench_out": outs, "slobench_ttft_s": [1.0] * n,
        "slobench_tpot_s": [0.1] * n, "slobench_names": ["think", "answer"][:n] if n == 2 else ["main"],
        "slobench_tier": "t", "slobench_app": "a"})
    return Request(request_id=f"q{i}", prompt_token_ids=list(range(10, 10 + prompt)), sampling_params=sp,
                   pooling_params=None)


def _output(sched, out, sampling: list[str]):  # noqa: ANN001, ANN202
    from vllm.v1.outputs import ModelRunnerOutput

    ids = list(out.num_scheduled_tokens)
    return ModelRunnerOutput(req_ids=ids, req_id_to_index={r: k for k, r in enumerate(ids)},
                             sampled_token_ids=[[7] if r in sampling else [] for r in ids])


def _drive(sched, steps: int, async_mode: bool) -> list[dict[str, int]]:  # noqa: ANN001
    """Run ``steps`` iterations; async keeps one step in flight, as vLLM's batch queue does."""
    got: list[dict[str, int]] = []
    inflight: list[tuple[object, list[str]]] = []
    for _ in range(steps):
        out = sched.schedule()
        got.append(dict(out.num_scheduled_tokens))
        sampling = [r for r in out.num_scheduled_tokens if not sched.requests[r].is_prefill_chunk]
        inflight.append((out, sampling))
        if len(inflight) > (1 if async_mode else 0):
            o, s = inflight.pop(0)
            sched.update_from_output(o, _output(sched, o, s))
    for o, s in inflight:
        sched.update_from_output(o, _output(sched, o, s))
    return got


@pytest.mark.parametrize("async_mode", [False, True], ids=["sync", "async"])
def test_plan_token_counts_applied_exactly(tiny: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           async_mode: bool) -> None:
    from slobench.engines.vllm.adapter import PolicyAsyncScheduler, PolicySyncScheduler

    sched = _scheduler(tiny, monkeypatch, tmp_path, "ChunkPolicy", async_mode)
    assert isinstance(sched, PolicyAsyncScheduler if async_mode else PolicySyncScheduler)
    for i, p in enumerate([40, 100, 20]):
        sched.add_request(_request(i, p, [3]))
    got = _drive(sched, 40, async_mode)
    plans = sched._policy.plans
    for step, (plan, scheduled) in enumerate(zip(plans, got, strict=True)):
        want = {f"q{i}": n for i, n in plan.items()}
        assert scheduled == want, f"step {step}: vLLM scheduled {scheduled}, plan said {want}"
    assert sum(len(p) for p in plans) > 20 and not sched.requests  # everything ran to the end
    stats = sched._stats.as_dict()
    assert stats["short_tokens"] == 0 and stats["unplanned_tokens"] == 0
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "loaded" and events[0]["variant"] == ("async" if async_mode else "sync")
    admitted = {e["id"] for e in events if e["event"] == "admission" and e["decision"] == "admitted"}
    assert admitted == {"sb-0", "sb-1", "sb-2"}


def test_rejected_request_is_finished_with_a_reason(tiny: Path, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    from vllm.v1.engine import FinishReason

    from slobench.engines.vllm.adapter import REJECT_REASON

    sched = _scheduler(tiny, monkeypatch, tmp_path, "RejectSecondPolicy", False)
    for i in range(3):
        sched.add_request(_request(i, 30, [2]))
    out = sched.schedule()
    assert "q1" not in out.num_scheduled_tokens and "q1" not in sched.requests
    engine_out = sched.update_from_output(out, _output(sched, out, []))
    rejected = [o for eco in engine_out.values() for o in eco.outputs if o.request_id == "q1"]
    assert len(rejected) == 1 and rejected[0].finish_reason == FinishReason.ABORT
    assert rejected[0].stop_reason == REJECT_REASON
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert {"event": "admission", "id": "sb-1", "decision": "rejected"}.items() <= next(
        e for e in events if e.get("id") == "sb-1").items()


def test_planned_preemption(tiny: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vllm.v1.request import RequestStatus

    sched = _scheduler(tiny, monkeypatch, tmp_path, "PreemptFirstPolicy", False)
    for i in range(2):
        sched.add_request(_request(i, 20, [30]))
    _drive(sched, 3, False)
    q0 = sched.requests["q0"]
    assert q0.status == RequestStatus.RUNNING and q0.num_computed_tokens > 0
    out = sched.schedule()  # 4th step: the plan preempts q0
    assert "q0" in out.preempted_req_ids and "q0" not in out.num_scheduled_tokens
    assert q0.status == RequestStatus.PREEMPTED and q0.num_computed_tokens == 0 and q0 in list(sched.waiting)
    assert sched._stats.counters["preempted_by_plan"] == 1


def test_stage_split_tracked_for_reasoning(tiny: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sched = _scheduler(tiny, monkeypatch, tmp_path, "ChunkPolicy", False)
    sched.add_request(_request(0, 10, [3, 2]))  # think 3 tokens, answer 2
    seen = []
    for _ in range(6):
        out = sched.schedule()
        sched.update_from_output(out, _output(sched, out, list(out.num_scheduled_tokens)))
        if "q0" in sched.requests:
            seq = sched._view(0.0).running[0]
            seen.append((seq.stage_idx, seq.stage_out, seq.stage.name))
    assert seen[:4] == [(0, 1, "think"), (0, 2, "think"), (1, 0, "answer"), (1, 1, "answer")]
    track = sched._tracks.get("q0")
    assert track is None or track.stage_start_s[1] is not None


def test_factory_matches_vllm_choice() -> None:
    from slobench.engines.vllm.adapter import PolicyAsyncScheduler, PolicySyncScheduler, variant_for

    assert variant_for(True) is PolicyAsyncScheduler and variant_for(False) is PolicySyncScheduler
    from vllm.v1.core.sched.async_scheduler import AsyncScheduler

    assert issubclass(PolicyAsyncScheduler, AsyncScheduler)


def test_policy_options_given_once_reach_the_adapter(tiny: Path, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    """The run's PolicySpec, as the launcher passes it, builds the policy inside vLLM with its options
    (through the registry function the simulator uses), and the plan it makes is what vLLM schedules."""
    from slobench.testing.policies import Fcfs

    spec = PolicySpec(name="slobench.testing.policies:Fcfs", options={"token_budget": 7, "max_seqs": 2},
                      draft={"alpha": 0.55})
    sched = _scheduler(tiny, monkeypatch, tmp_path, spec, False)
    assert isinstance(sched._policy, Fcfs) and (sched._policy.token_budget, sched._policy.max_seqs) == (7, 2)
    for i in range(3):
        sched.add_request(_request(i, 20, [2]))
    got = _drive(sched, 12, False)
    assert got[0] == {"q0": 7} and all(sum(step.values()) <= 7 for step in got)
    stats = sched.stats_dict()
    assert stats["calls"] == 12 and stats["unplanned_tokens"] == 0 and stats["scheduled_tokens"] > 0
    assert {"p50", "p99"} <= set(stats["overhead_ms"]) and {"p50", "p99"} <= set(stats["policy_ms"])
    assert stats["policy"]["calls"] == 12  # the policy's own SchedulerStats, the same type
    loaded = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[0])
    assert loaded["policy"] == spec.name and loaded["options"] == {"token_budget": 7, "max_seqs": 2}


@pytest.mark.parametrize(("options", "budget"), [({}, 256), ({"max_num_batched_tokens": 100}, 100)])
def test_registry_policy_gets_vllm_limits_unless_its_options_say_otherwise(
        tiny: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, options: dict, budget: int) -> None:
    sched = _scheduler(tiny, monkeypatch, tmp_path, PolicySpec(name="vllm", options=options), False)
    assert sched._policy.max_num_batched_tokens == budget and sched._policy.max_num_seqs == 16


def test_stats_window_is_bounded(tiny: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from slobench.engines.vllm import adapter

    monkeypatch.setattr(adapter, "STATS_WINDOW", 8)
    sched = _scheduler(tiny, monkeypatch, tmp_path, "ChunkPolicy", False)
    sched.add_request(_request(0, 10, [40]))
    _drive(sched, 45, False)
    assert sched._stats.calls == 45 and len(sched._stats.call_s) <= 16 and len(sched._policy_time.call_s) <= 16


def test_slos_serve_plans_within_vllm_budget_and_iterations_are_recorded(
        tiny: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Issue 11: inside vLLM, slos-serve planned beyond ``max_num_batched_tokens`` and vLLM cut 16% of its
    tokens. The view now carries vLLM's limits (256 tokens, 16 seqs here) and every planned token must run;
    each executed batch is a line in the iterations file with its shape and planned == scheduled."""
    from slobench.engines.vllm.iterations import read_iterations

    sched = _scheduler(tiny, monkeypatch, tmp_path, PolicySpec(name="slos-serve", oracle_lengths=True), False)
    assert sched._view(0.0).max_num_batched_tokens == 256 and sched._view(0.0).max_num_seqs == 16
    for i, p in enumerate([300, 200, 150, 120, 90, 60]):  # 920 prompt tokens: several budgets' worth
        sched.add_request(_request(i, p, [4]))
    got = _drive(sched, 60, False)
    stats = sched._stats.as_dict()
    assert not sched.requests, "every request ran to its end"
    assert max(sum(step.values()) for step in got) <= 256
    assert stats["planned_tokens"] == stats["scheduled_tokens"] > 920 and stats["short_tokens"] == 0
    assert stats["unplanned_tokens"] == 0
    rows, _ = read_iterations(tmp_path / "iterations.jsonl")
    assert len(rows) == sum(1 for step in got if step)
    assert all(r["planned"] == r["scheduled"] == sum(r["q"]) for r in rows)
    assert sum(r["prefill_tokens"] for r in rows) == 920 and any(r["decode_seqs"] for r in rows)
    assert all(r["latency_s"] >= r["exec_s"] >= 0 and r["num_seqs"] == len(r["ctx"]) for r in rows)
    assert rows[0]["ctx"] == [0] * rows[0]["num_seqs"]  # the first batch: nothing cached yet
