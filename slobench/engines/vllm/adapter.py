"""slobench's scheduling policies inside vLLM: a V1 scheduler class for ``--scheduler-cls``.

Loaded by vLLM's engine-core process as
``--scheduler-cls slobench.engines.vllm.adapter.PolicySchedulerAdapter``. Every ``schedule()`` call:

1. builds a `SchedulerView` (the same record the simulator builds) from vLLM's request objects:
   ``num_tokens`` = prompt + sampled + in-flight (async placeholders) tokens, ``num_computed`` =
   vLLM's ``num_computed_tokens``; per-stage SLOs, tier and stage lengths from the request's
   ``sampling_params.extra_args`` (sent by the load generator as ``vllm_xargs``); free/total KV
   blocks from vLLM's block pool; the latency model named by ``SLOBENCH_*`` environment variables.
   Output lengths follow `slobench.schedulers.lengths` as in the simulator: the policy sees a public
   request whose stages' lengths are the bound a real server knows (``max_model_len`` − prompt; the
   client's ``max_tokens`` equals the true length, so it is not used) and the view's length predictor,
   fed with each stage's length when it ends. ``slobench_out`` (which makes vLLM produce exactly that
   many tokens and says where a reasoning stage ends, as a real server sees ``</think>`` when it comes)
   reaches the policy only with ``PolicySpec.oracle_lengths``;
2. asks the policy for a `BatchPlan`. The policy is the run's `PolicySpec` (name, options, draft
   acceptance rate), which the launcher passes whole as JSON in ``SLOBENCH_POLICY_SPEC`` (default:
   ``slos-serve`` with its defaults); it is built by `slobench.schedulers.registry.make_policy`, the
   function the simulator uses, offered vLLM's real ``max_num_batched_tokens``/``max_num_seqs``;
3. applies the plan to vLLM, then lets vLLM's own ``schedule()`` build the batch:
   - *rejected* requests are finished (``FINISHED_ABORTED``, stop reason "slobench: rejected by
     admission control") and their streams closed in the next ``update_from_output``;
   - *preempted* requests are preempted the way vLLM does it (recompute), before the batch;
   - *token counts*: vLLM's queues are reordered (planned requests first, in plan order) and each
     request's scheduled tokens are capped at the plan's ``num_scheduled + spec_tokens`` through
     ``_reserve_prefill_lookahead``, the hook vLLM calls for every request (running and waiting)
     right before it allocates KV slots; a request outside the plan is capped at 0 (skipped).
   The result is the plan's exact per-request counts unless vLLM cannot honour them (see
   deviations), so KV allocation, prefix caching, speculative bookkeeping, structured output and
   async scheduling all stay vLLM's own, correct code.
4. records admission decisions and schedule() statistics (one `SchedulerStats`, the type every
   policy uses, with a bounded window of recent call times) in the events file (`sched_events`),
   and every iteration's timing and batch shape in the iterations file (`IterationRecorder`, below;
   what `slobench calibrate` fits the latency model to).
   When a plan schedules nothing while requests wait, ``schedule()`` sleeps 1 ms so vLLM's engine
   loop does not spin a core re-asking.

Deviations from the plan, counted in the ``stats`` events (``short_tokens``, ``preempted_by_vllm``):
a request gets fewer tokens than planned when vLLM's token budget (``max_num_batched_tokens``),
``max_num_seqs``, ``max_model_len`` or a failed KV allocation stops it; on a failed allocation vLLM
preempts the *last* running request itself (our order puts unplanned requests last, so they go
first). A waiting request's prefix-cache hit is invisible to the view (vLLM finds it during
scheduling), so the policy sees the whole prompt as pending and vLLM computes only the uncached
part. Speculative drafts exist only where vLLM's proposer made them: the plan can cut drafts,
never add them. With vLLM's ``priority`` policy queues cannot be reordered (use the default fcfs).

Both vLLM schedulers are covered: `PolicySchedulerAdapter` is a factory that returns the synchronous
variant (subclass of ``Scheduler``; vLLM's CPU build) or the ``AsyncScheduler`` variant (GPU builds'
default) matching ``scheduler_config.async_scheduling``, so a GPU user keeps async scheduling.
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import vllm
from pydantic import ValidationError
from vllm.logger import init_logger
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.engine import EngineCoreOutput, EngineCoreOutputs, FinishReason
from vllm.v1.request import Request as VRequest
from vllm.v1.request import RequestStatus

from slobench.engines.vllm.events import EventWriter
from slobench.engines.vllm.iterations import ITERATIONS_ENV, IterationRecorder
from slobench.engines.vllm.launcher import POLICY_ENV
from slobench.engines.vllm.support import SUPPORTED_TEXT, version_supported
from slobench.errors import UserError
from slobench.schedulers.base import Admission, BatchPlan, SchedulerView, SeqState, SpecConfig
from slobench.schedulers.spec import PolicySpec
from slobench.schedulers.stats import SchedulerStats
from slobench.workloads.model import SLO, Request, Stage

logger = init_logger(f"vllm.{__name__}")  # under "vllm": its handler writes to the server log

if not version_supported(vllm.__version__):
    raise RuntimeError(f"slobench's scheduler adapter supports vllm {SUPPORTED_TEXT}, found {vllm.__version__}; "
                       f"install a supported version (pip install 'vllm{SUPPORTED_TEXT}')")
if not hasattr(Scheduler, "_reserve_prefill_lookahead"):
    raise RuntimeError(f"vllm {vllm.__version__} lacks Scheduler._reserve_prefill_lookahead, the hook slobench "
                       "uses to apply per-request token counts; use a supported vllm")

REJECT_REASON = "slobench: rejected by admission control"
DEFAULT_TTFT_S = 10.0  # requests sent without slobench SLOs (e.g. curl): loose, so they never dominate
DEFAULT_TPOT_S = 1.0
STATS_EVERY_S = 2.0
IDLE_SLEEP_S = 0.001  # pause when the plan schedules nothing (the simulator re-asks after 5 ms)
STATS_WINDOW = 4096  # recent schedule() call times kept for percentiles (sorting them stays < 1 ms)
DEFAULT_POLICY = "slos-serve"  # when no spec is given (vLLM launched by hand with --scheduler-cls)
DEFAULT_DRAFT_ALPHA = 0.7  # acceptance rate the policy assumes for vLLM's drafts when the spec has no draft
# The adapter's counters (always present in its stats, 0 included): plan vs what vLLM scheduled.
COUNTERS = (
    "planned_tokens",  # tokens the plans asked for (num_scheduled + spec_tokens of requests vLLM holds)
    "scheduled_tokens",  # tokens vLLM scheduled
    "short_tokens",  # planned but not scheduled (budget, KV, max_num_seqs)
    "unplanned_tokens",  # scheduled without a plan entry: must stay 0
    "preempted_by_plan",  # preemptions the plan asked for
    "preempted_by_vllm",  # preemptions vLLM made itself (failed KV allocation)
    "rejected",  # requests finished by admission control
)


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


@dataclass
class _Track:
    """What the adapter remembers about one vLLM request between schedule() calls."""

    iid: int
    sid: str
    req: Request  # what the policy sees (public: length bounds, unless the spec says oracle_lengths)
    true_req: Request  # with the client's stage lengths (stage tracking and the predictor's observations)
    bounds: list[int]  # cumulative output tokens at the end of each stage
    stage_start_s: list[float | None]
    first_token_s: list[float | None]
    admission: Admission = Admission.PENDING
    observed: int = 0  # stages whose length the predictor has seen


def policy_spec_from_env() -> PolicySpec:
    """The run's policy spec from ``SLOBENCH_POLICY_SPEC`` (set by the launcher); unset: slos-serve."""
    raw = _env(POLICY_ENV)
    if not raw:
        return PolicySpec(name=DEFAULT_POLICY)
    try:
        return PolicySpec.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"{POLICY_ENV}: not a policy spec ({'.'.join(map(str, err['loc']))}: {err['msg']}); "
                        'give JSON like {"name": "slos-serve", "options": {}}') from None


def _as_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    return list(value) if isinstance(value, (list, tuple)) else [value]


class _PolicyAdapterMixin:
    """The adapter; mixed into vLLM's ``Scheduler`` or ``AsyncScheduler`` (see module docstring)."""

    variant = "sync"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slob_init()

    # ---- set-up -------------------------------------------------------------------------------
    def _slob_init(self) -> None:
        from slobench.perf import get_latency_model
        from slobench.schedulers.registry import make_policy

        sc = self.scheduler_config
        spec = policy_spec_from_env()
        self._policy_spec = spec
        self._policy_name = spec.name
        model = _env("SLOBENCH_PERF_MODEL") or self.vllm_config.model_config.model
        self._perf = get_latency_model(hardware=_env("SLOBENCH_HARDWARE", "H100-SXM"), model=model,
                                       tp=int(_env("SLOBENCH_TP", "1")), profile=_env("SLOBENCH_PROFILE") or None)
        gpu = getattr(self._perf, "gpu", None)
        # Offer budget-based policies vLLM's real limits; the spec's own options win, and policies that
        # take no such options get only theirs.
        limits = {"max_num_batched_tokens": sc.max_num_batched_tokens, "max_num_seqs": sc.max_num_seqs}
        self._policy = make_policy(spec, gpu_memory_bytes=getattr(gpu, "memory_bytes", None),
                                   gpu_name=getattr(gpu, "name", ""), offered=limits)
        policy_stats = getattr(self._policy, "stats", None)
        if isinstance(policy_stats, SchedulerStats) and policy_stats.window is None:
            policy_stats.window = STATS_WINDOW  # a server runs for days: keep the policy's own timings bounded too
        # vLLM's drafts are its own (speculative_config); the spec's draft says what acceptance to assume.
        alpha = spec.draft.alpha if spec.draft is not None else DEFAULT_DRAFT_ALPHA
        self._spec = SpecConfig(max_draft=self.num_spec_tokens, alpha=alpha) if self.num_spec_tokens else None
        from slobench.schedulers.lengths import make_length_info

        # What the policy may know about output lengths (schedulers.lengths): bounds = max_model_len − prompt.
        self._lengths = make_length_info(spec.oracle_lengths, None, self.vllm_config.model_config.max_model_len)
        self._tracks: dict[str, _Track] = {}
        self._by_iid: dict[int, str] = {}
        self._next_iid = 0
        self._caps: dict[str, int] | None = None
        self._rejected_out: list[tuple[int, str]] = []
        self._stats = SchedulerStats(window=STATS_WINDOW, counters=dict.fromkeys(COUNTERS, 0))  # whole calls
        self._policy_time = SchedulerStats(window=STATS_WINDOW)  # the policy's schedule() alone
        self._stats_written_s = 0.0
        self._events = EventWriter(_env("SLOBENCH_SCHED_EVENTS") or None)
        self._iters = IterationRecorder(_env(ITERATIONS_ENV) or None)
        if self.policy.value != "fcfs":
            logger.warning("slobench adapter: vLLM scheduling policy %s cannot be reordered; use fcfs",
                           self.policy.value)
        self._events.write("loaded", policy=self._policy_name, options=spec.options, information=self._lengths.kind,
                           draft_alpha=self._spec.alpha if self._spec else None, variant=self.variant,
                           vllm=vllm.__version__, cls=type(self).__name__, perf=repr(self._perf),
                           max_num_batched_tokens=sc.max_num_batched_tokens, max_num_seqs=sc.max_num_seqs,
                           kv_blocks=self.kv_cache_manager.block_pool.num_gpu_blocks, block_size=self.block_size,
                           max_model_len=self.vllm_config.model_config.max_model_len)
        logger.info("slobench scheduler adapter loaded: policy=%s variant=%s (vllm %s)", self._policy_name,
                    self.variant, vllm.__version__)

    # ---- vLLM request -> slobench view -------------------------------------------------------
    def _track(self, r: VRequest) -> _Track:
        tr = self._tracks.get(r.request_id)
        if tr is not None:
            return tr
        xa = (r.sampling_params.extra_args if r.sampling_params is not None else None) or {}
        outs = [int(x) for x in (_as_list(xa.get("slobench_out")) or [r.max_tokens])]
        n = len(outs)
        ttft = [float(x) for x in (_as_list(xa.get("slobench_ttft_s")) or [DEFAULT_TTFT_S] * n)]
        tpot = [float(x) for x in (_as_list(xa.get("slobench_tpot_s")) or [DEFAULT_TPOT_S] * n)]
        names = [str(x) for x in (_as_list(xa.get("slobench_names")) or ["main"] * n)]
        if not (len(ttft) == len(tpot) == len(names) == n):
            n = 1
            outs, ttft, tpot, names = [r.max_tokens], ttft[:1], tpot[:1], names[:1]
        stages = tuple(
            Stage(prompt_tokens=r.num_prompt_tokens if i == 0 else 0, output_tokens=outs[i],
                  slo=SLO(ttft_s=ttft[i], tpot_s=tpot[i]), name=names[i])
            for i in range(n)
        )
        iid = self._next_iid
        self._next_iid += 1
        req = Request(id=iid, arrival_s=r.arrival_time, app=str(xa.get("slobench_app", "unknown")),
                      tier=str(xa.get("slobench_tier", "default")), stages=stages)
        bounds = list(itertools.accumulate(outs))
        tr = _Track(iid=iid, sid=str(xa.get("slobench_id", r.request_id)), req=self._lengths.public(req),
                    true_req=req, bounds=bounds,
                    stage_start_s=[r.arrival_time] + [None] * (n - 1), first_token_s=[None] * n)
        self._tracks[r.request_id] = tr
        self._by_iid[iid] = r.request_id
        return tr

    def _seq(self, r: VRequest, now: float, running: bool) -> SeqState:
        tr = self._track(r)
        out = r.num_output_tokens + r.num_output_placeholders
        k = min(bisect.bisect_right(tr.bounds, out), len(tr.bounds) - 1)
        done_before = tr.bounds[k - 1] if k > 0 else 0
        start = tr.stage_start_s[k]
        num_tokens = r.num_tokens + r.num_output_placeholders
        if out >= r.max_tokens:  # async: the last token is already in flight, nothing left to schedule
            num_tokens = min(num_tokens, r.num_computed_tokens)
        return SeqState(
            req=tr.req, stage_idx=k, stage_start_s=start if start is not None else now,
            num_tokens=num_tokens, num_computed=r.num_computed_tokens,
            stage_out=out - done_before, first_token_s=tr.first_token_s[k], admission=tr.admission,
            kv_blocks=math.ceil(r.num_computed_tokens / self.block_size) if running else 0,
            num_preemptions=r.num_preemptions,
        )

    def _view(self, now: float) -> SchedulerView:
        pool = self.kv_cache_manager.block_pool
        waiting = [self._seq(r, now, False) for r in (*self.kv_holding_waiting, *self.waiting)]
        running = [self._seq(r, now, True) for r in self.running]
        return SchedulerView(
            now_s=now, waiting=waiting, running=running, block_size=self.block_size,
            total_kv_blocks=pool.num_gpu_blocks, free_kv_blocks=pool.get_num_free_blocks(), perf=self._perf,
            spec=self._spec, lengths=self._lengths,
            # vLLM will not run more than these: a plan beyond them is cut short (``short_tokens``)
            max_num_batched_tokens=self.scheduler_config.max_num_batched_tokens,
            max_num_seqs=self.scheduler_config.max_num_seqs,
        )

    # ---- applying the plan -------------------------------------------------------------------
    def _apply_admission(self, plan: BatchPlan) -> None:
        reject: list[str] = []
        for iid, decision in plan.admission.items():
            rid = self._by_iid.get(iid)
            tr = self._tracks.get(rid) if rid else None
            if tr is None or tr.admission is decision:
                continue
            tr.admission = decision
            self._events.write("admission", id=tr.sid, decision=decision.value)
            if decision is Admission.REJECTED:
                reject.append(rid)
        if reject:
            for r in self.finish_requests(reject, RequestStatus.FINISHED_ABORTED):
                r.stop_reason = REJECT_REASON
                self._rejected_out.append((r.client_index, r.request_id))
                self._stats.count("rejected")

    def _apply_preemptions(self, plan: BatchPlan) -> int:
        applied = 0
        for iid in plan.preempted:
            rid = self._by_iid.get(iid)
            req = self.requests.get(rid) if rid else None
            if req is None or req not in self.running:
                continue
            self.running.remove(req)
            self._preempt_request(req, time.monotonic())
            applied += 1
        self._stats.count("preempted_by_plan", applied)
        return applied

    @staticmethod
    def _reorder(queue: Any, first: list[str]) -> None:
        """Put the planned requests first (plan order) in an FCFS deque; others keep their order."""
        if not isinstance(queue, deque) or not queue:
            return
        rank = {rid: i for i, rid in enumerate(first)}
        items = list(queue)
        planned = sorted((r for r in items if r.request_id in rank), key=lambda r: rank[r.request_id])
        rest = [r for r in items if r.request_id not in rank]
        queue.clear()
        queue.extend(planned + rest)

    def _reserve_prefill_lookahead(self, request: VRequest, num_computed_tokens: int, num_new_tokens: int) -> int:
        """vLLM's last word on a request's token count before KV allocation: cap it at the plan's."""
        n = super()._reserve_prefill_lookahead(request, num_computed_tokens, num_new_tokens)
        if self._caps is None:
            return n
        cap = self._caps.get(request.request_id, 0)
        if (self.num_spec_tokens and request.status != RequestStatus.RUNNING and cap > 0
                and n == 1 + self.num_spec_tokens and request.num_tokens - num_computed_tokens == 1):
            return n  # vLLM pads a resumed decode to 1 + k drafts and asserts that size
        return min(n, cap)

    def schedule(self, *args: Any, **kwargs: Any):  # noqa: ANN201 - vLLM's SchedulerOutput
        t_start = time.perf_counter()
        now = time.time()
        self._prune()
        view = self._view(now)
        t_pol = time.perf_counter()
        plan = self._policy.schedule(view)
        policy_s = time.perf_counter() - t_pol
        self._apply_admission(plan)
        applied = self._apply_preemptions(plan)
        caps: dict[str, int] = {}
        order: list[str] = []
        for iid, n in plan.num_scheduled.items():
            rid = self._by_iid.get(iid)
            if rid is None or rid not in self.requests:
                continue
            caps[rid] = int(n) + int(plan.spec_tokens.get(iid, 0))
            order.append(rid)
        running_rank = {rid: i for i, rid in enumerate(order)}
        self.running.sort(key=lambda r: running_rank.get(r.request_id, len(order)))  # stable: rest keep order
        self._reorder(self.kv_holding_waiting, order)
        self._reorder(self.waiting, order)
        self._caps = caps
        try:
            out = super().schedule(*args, **kwargs)
        finally:
            self._caps = None
        self._account(caps, out, applied)
        self._iters.scheduled(out, self.requests, t_start, time.perf_counter(), sum(caps.values()))
        if not out.num_scheduled_tokens and not self._rejected_out and self.requests:
            # The policy holds every request back (e.g. pacing decodes to their deadlines): vLLM's
            # engine loop would call schedule() again at once and spin a core; yield it briefly.
            time.sleep(IDLE_SLEEP_S)
        self._policy_time.record_call(policy_s)
        self._stats.record_call(time.perf_counter() - t_start)
        if time.time() - self._stats_written_s > STATS_EVERY_S:
            self._write_stats()
        return out

    def _account(self, caps: dict[str, int], out: Any, preempted_by_plan: int) -> None:
        got = out.num_scheduled_tokens
        count = self._stats.count
        count("planned_tokens", sum(caps.values()))
        count("scheduled_tokens", sum(got.values()))
        count("short_tokens", sum(max(cap - got.get(rid, 0), 0) for rid, cap in caps.items()))
        for rid, n in got.items():
            if rid not in caps:
                count("unplanned_tokens", n)
            tr = self._tracks.get(rid)
            if tr is not None and tr.admission is Admission.PENDING:
                tr.admission = Admission.ADMITTED
                self._events.write("admission", id=tr.sid, decision=Admission.ADMITTED.value)
        count("preempted_by_vllm", max(len(out.preempted_req_ids or ()) - preempted_by_plan, 0))

    def update_from_output(self, scheduler_output: Any, model_runner_output: Any):  # noqa: ANN201
        t_update = time.perf_counter()
        outputs = super().update_from_output(scheduler_output, model_runner_output)
        self._iters.updated(scheduler_output, t_update, time.perf_counter())
        now = time.time()
        completed = {o.request_id for eco in outputs.values() for o in eco.outputs
                     if o.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)}
        for rid in scheduler_output.num_scheduled_tokens:
            tr = self._tracks.get(rid)
            r = self.requests.get(rid)
            if tr is None:
                continue
            if r is None or r.is_finished():
                if rid in completed:  # every stage ran to its end: the predictor learns their lengths
                    self._observe(tr, len(tr.bounds))
                self._forget(rid)
                continue
            out = r.num_output_tokens
            for k, end in enumerate(tr.bounds):
                begin = tr.bounds[k - 1] if k else 0
                if out > begin and tr.first_token_s[k] is None:
                    tr.first_token_s[k] = now
                if out >= end and k + 1 < len(tr.bounds) and tr.stage_start_s[k + 1] is None:
                    tr.stage_start_s[k + 1] = now  # the next stage starts at this stage's last token
                    self._observe(tr, k + 1)
        if not self.requests and self._stats.calls:
            self._write_stats()  # idle: make the numbers of a finished run visible right away
        if self._rejected_out:
            for client_index, rid in self._rejected_out:
                eco = outputs.get(client_index)
                if eco is None:
                    eco = outputs[client_index] = EngineCoreOutputs(outputs=[])
                eco.outputs.append(EngineCoreOutput(request_id=rid, new_token_ids=[],
                                                    finish_reason=FinishReason.ABORT, stop_reason=REJECT_REASON))
                self._forget(rid)
            self._rejected_out = []
        return outputs

    def _observe(self, tr: _Track, upto: int) -> None:
        """Stages before ``upto`` have ended: give the length predictor the ones it has not seen."""
        req = tr.true_req
        for k in range(tr.observed, upto):
            self._lengths.observe(req.app, req.tier, req.stages[k].name, req.stages[k].output_tokens)
        tr.observed = max(tr.observed, upto)

    # ---- housekeeping ------------------------------------------------------------------------
    def _forget(self, rid: str) -> None:
        tr = self._tracks.pop(rid, None)
        if tr is not None:
            self._by_iid.pop(tr.iid, None)

    def _prune(self) -> None:
        """Drop tracks of requests vLLM no longer holds (aborted by clients, finished elsewhere)."""
        if len(self._tracks) > 2 * len(self.requests) + 64:
            for rid in [rid for rid in self._tracks if rid not in self.requests]:
                self._forget(rid)

    def stats_dict(self) -> dict[str, Any]:
        """The ``stats`` event: calls, the counters above, ``overhead_ms`` (whole schedule() call: view +
        policy + vLLM's own batch building) and ``policy_ms`` (the policy alone), each {p50, p99, max, mean}
        over the last `STATS_WINDOW` calls, and the policy's own statistics (``policy``) when it keeps any."""
        out = self._stats.as_dict()
        out["information"] = {"output_lengths": self._lengths.kind}
        if "overhead_ms" in (pol := self._policy_time.as_dict()):
            out["policy_ms"] = pol["overhead_ms"]
        own = getattr(self._policy, "stats", None)
        if isinstance(own, SchedulerStats):
            out["policy"] = own.as_dict()
        return out

    def _write_stats(self) -> None:
        self._stats_written_s = time.time()
        self._events.write("stats", **self.stats_dict())

    def shutdown(self) -> None:
        self._write_stats()
        self._events.close()
        self._iters.close()
        super().shutdown()


class PolicySyncScheduler(_PolicyAdapterMixin, Scheduler):
    """The adapter on vLLM's synchronous ``Scheduler`` (CPU builds; async scheduling off)."""

    variant = "sync"


class PolicyAsyncScheduler(_PolicyAdapterMixin, AsyncScheduler):
    """The adapter on vLLM's ``AsyncScheduler`` (GPU builds' default: scheduling overlaps execution)."""

    variant = "async"


def variant_for(async_scheduling: bool | None) -> type[Scheduler]:
    """The adapter class vLLM would pair with its own choice of scheduler."""
    return PolicyAsyncScheduler if async_scheduling else PolicySyncScheduler


class PolicySchedulerAdapter:
    """What ``--scheduler-cls`` names: builds the sync or async variant to match vLLM's config.

    vLLM decides ``async_scheduling`` from the platform and options before it instantiates the
    scheduler class; a single class name therefore cannot know it in advance, a factory can.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        vllm_config = kwargs.get("vllm_config", args[0] if args else None)
        async_sched = getattr(getattr(vllm_config, "scheduler_config", None), "async_scheduling", False)
        return variant_for(async_sched)(*args, **kwargs)
