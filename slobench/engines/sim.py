"""Discrete-event simulator: the default engine.

Events are request arrivals, stage inputs becoming ready (after a client-side tool gap) and the
end of each iteration. Each iteration builds a `SchedulerView`, asks the policy for a `BatchPlan`
(the same interface the vLLM adapter uses), advances time by the perf model's predicted latency,
updates KV blocks and emits token timestamps. Deterministic for a seed (speculative acceptance is
the only randomness). Token accounting follows vLLM (see `schedulers/base.py`).

Multi-stage requests: a continuation stage (reasoning's answer) starts at the iteration that
emitted the previous stage's last token and keeps its KV; a stage after a tool gap frees the KV
during the gap, and when prefix caching is on (vLLM V1's default) its earlier context counts as
computed (a cache hit) but must be re-allocated, so only the new tokens are prefilled.

Cross-request prefix cache (requests carrying ``prefix_blocks``, e.g. Mooncake's ``hash_ids``): each replica
keeps a hash → cached-tokens LRU map of prefix blocks whose prefill finished there; a request reaching the
engine counts its leading cached blocks as computed (vLLM's automatic prefix caching, capped at prompt − 1
tokens, block-aligned). Memory is charged for hits (conservative; see `replica_loop` and docs/simulator.md).
Requests without ``prefix_blocks`` never touch the map: their results are bit-identical to before.

`simulate` runs one replica; `SimEngine` is the `Engine` over a replica set: it routes the load
over the replicas (`slobench.schedulers.routers`), builds one policy per replica from the job's
`PolicySpec`, simulates each replica and merges records, iteration logs and policy statistics.
"""

from __future__ import annotations

import gc
import heapq
import math
import operator
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from slobench.engines.base import ClosedLoopLoad, EngineJob, EngineResult, OpenLoopLoad, unsupported_load
from slobench.metrics.records import StageRecord, Status
from slobench.perf.base import LatencyModel
from slobench.perf.schedule_cost import NOISE_CHUNK, ScheduleCost, TruthFactors
from slobench.schedulers.base import Admission, BatchPlan, Scheduler, SchedulerView, SeqState, SpecConfig
from slobench.workloads.model import Request, Workload
from slobench.workloads.prefix import cached_prefix_tokens

if TYPE_CHECKING:
    from slobench.schedulers.lengths import LengthInfo


def _accepted(rng: np.random.Generator, alpha: float, k: int) -> int:
    """Accepted drafts of one verify: min(Geometric, k) — each draft accepted with prob. α in turn."""
    from slobench.perf.speculative import sample_accepted

    return int(sample_accepted(rng, alpha, k))


class SchedulerContractError(RuntimeError):
    """A policy returned a plan the engine cannot execute (a bug in the policy, not user input)."""


@dataclass
class SimConfig:
    block_size: int = 16
    kv_capacity_tokens: int | None = None  # None: ask the perf model
    spec: SpecConfig | None = None
    prefix_caching: bool = True
    drain_timeout_s: float = 600.0  # stop this long after the last arrival; the rest is "unfinished"
    idle_tick_s: float = 0.005  # when a policy schedules nothing but holds work, re-ask after this
    seed: int = 0
    replica: int = 0
    # Ground truth vs planning model (docs/simulator.md): an iteration takes predicted × (1 + truth_bias) × noise,
    # noise lognormal with mean 1 and CV truth_noise_cv. The defaults here reproduce the planning model exactly
    # (direct callers and tests); runs get RunConfig's defaults.
    truth_bias: float = 0.0
    truth_noise_cv: float = 0.0
    # schedule() time charged to simulated time: "model" (schedule_cost_model's seconds), "wall" (measured,
    # not reproducible) or "off".
    schedule_cost: str = "off"
    schedule_cost_model: ScheduleCost | None = None
    # The engine's batch limits, shown to the policy in its view and enforced on its plans (None: unchecked).
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    oracle_lengths: bool = False  # the policy sees true output lengths (else public requests + a predictor)


@dataclass
class IterationLog:
    time_s: list[float] = field(default_factory=list)  # end of the iteration
    latency_s: list[float] = field(default_factory=list)  # the forward step's true duration
    predicted_s: list[float] = field(default_factory=list)  # what the planning model predicted for it
    schedule_s: list[float] = field(default_factory=list)  # schedule() time charged before the step
    num_seqs: list[int] = field(default_factory=list)
    prefill_tokens: list[int] = field(default_factory=list)
    decode_tokens: list[int] = field(default_factory=list)
    budget_s: list[float] = field(default_factory=list)
    kv_used_blocks: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def as_columns(self) -> dict[str, list | np.ndarray]:
        """`as_dict` with each non-empty column as a numpy array, for building the iteration frame.

        pandas infers a column's dtype from a Python list element by element (~0.1 s for a 50k-iteration
        run, a tenth of it); ``np.array`` gives the same dtype (int64 for ints, float64 for floats, also when
        mixed with ints) at C speed. Empty columns stay lists (pandas makes those ``object``, numpy would not).
        """
        return {k: np.array(v) if len(v) else v for k, v in self.as_dict().items()}


@dataclass
class SimResult:
    records: list[StageRecord]
    iterations: IterationLog
    end_time_s: float
    num_iterations: int
    # Cross-request prefix cache counters (`PREFIX_KEYS`); empty when no request carried prefix_blocks.
    prefix_cache: dict[str, int] = field(default_factory=dict)


# What `SimResult.prefix_cache` counts: requests with prefix_blocks, their first-stage prompt tokens, the tokens
# counted as computed on arrival (hits) and those still hit when first scheduled (after evictions meanwhile),
# requests with a hit, and cache entries (prefix blocks) evicted to make room.
PREFIX_KEYS = ("requests", "prompt_tokens", "hit_tokens", "requests_hit", "evicted_blocks")


def prefix_hit(cache: dict[int, int], req: Request, block_size: int) -> tuple[int, int]:
    """(tokens, blocks) of ``req``'s prompt whose prefix blocks are in ``cache`` (`cached_prefix_tokens`: capped
    at prompt − 1), the tokens rounded down to the engine's KV block size (vLLM hits whole blocks)."""
    got, blocks = cached_prefix_tokens(cache, req)
    return got // block_size * block_size, blocks


class _Live:
    """Engine-private bookkeeping of a sequence next to its scheduler-visible `SeqState`.

    ``where`` says which engine queue holds the sequence (so the batch loop needs no per-iteration
    set of waiting ids); ``out_target`` caches the current stage's output length (read every token);
    ``seg`` is the prefix-cache segment holding its freed, still cached blocks (see `simulate`), or None.
    ``req`` is the true request; ``seq.req`` is what the policy sees (`schedulers.lengths`).
    """

    __slots__ = ("seq", "record", "done", "where", "out_target", "seg", "req", "ingress_s", "pfx", "hit")

    def __init__(self, seq: SeqState, record: StageRecord, req: Request | None = None) -> None:
        self.seq = seq
        self.record = record
        self.done = False
        self.where = _ELSEWHERE
        self.req = req if req is not None else seq.req
        self.out_target = self.req.stages[seq.stage_idx].output_tokens
        self.seg: list | None = None
        self.ingress_s = 0.0  # front-end delay of the stage now waiting in the gap heap (client → engine)
        self.pfx: int | None = None  # prefix blocks of its own already in the replica's prefix cache (None: untracked)
        self.hit = 0  # cross-request hit tokens granted on arrival, until it is first scheduled (then settled)


# _Live.where: the engine queue a sequence is in (a tool gap or finished = elsewhere).
_ELSEWHERE, _WAITING, _RUNNING = 0, 1, 2


def _remove_identity(items: list[SeqState], seq: SeqState) -> None:
    """``items.remove(seq)`` by identity: SeqState is a dataclass whose ``==`` compares every field (slow)."""
    for i, s in enumerate(items):
        if s is seq:
            del items[i]
            return
    raise ValueError("sequence not in list")


_STEADY_WINDOW = 64  # decode-only iterations planned at a time (KV growth is precomputed for them)


def _steady_window(running: list[SeqState], by_id: dict[int, _Live], bs: int) -> tuple[list[int], list[_Live]] | None:
    """New KV blocks per decode-only iteration for the next few, and each running sequence's `_Live`.

    The window ends before the first iteration in which some sequence emits its stage's last token (stage
    ends go through the full loop). None when that leaves fewer than two iterations, or a sequence is not
    simply decoding (one pending token, a first token out, KV covering what is computed).
    """
    lives: list[_Live] = []
    steps = _STEADY_WINDOW
    # Iteration j computes token num_computed + j + 1; a sequence needs a new block when that passes
    # kv_blocks·bs, i.e. at j = first, first + bs, … with first = kv_blocks·bs − num_computed. With first < bs
    # (the usual case) that is every j ≡ first (mod bs), so a count per residue gives the whole window.
    per_residue = [0] * bs
    far: list[int] = []  # sequences holding a block or more ahead (first ≥ bs)
    for seq in running:
        computed = seq.num_computed
        first = seq.kv_blocks * bs - computed
        if seq.num_tokens - computed != 1 or seq.stage_out == 0 or first < 0:
            return None
        lv = by_id[seq.req.id]
        left = lv.out_target - seq.stage_out - 1
        if left < steps:
            steps = left
            if steps < 2:
                return None
        lives.append(lv)
        if first < bs:
            per_residue[first] += 1
        else:
            far.append(first)
    new_blocks = (per_residue * (steps // bs + 1))[:steps]
    for first in far:
        for j in range(first, steps, bs):
            new_blocks[j] += 1
    return new_blocks, lives


def _timed(check: Callable[[SchedulerView], bool], view: SchedulerView, out_s: list[float]) -> bool:
    """``check(view)``, its wall time left in ``out_s[0]`` (reported as the policy's time for skipped calls)."""
    t0 = time.perf_counter()
    ok = check(view)
    out_s[0] = time.perf_counter() - t0
    return ok


def _stage_record(req: Request, idx: int, start_s: float, replica: int) -> StageRecord:
    st = req.stages[idx]
    return StageRecord(
        request_id=req.id, stage_idx=idx, stage_name=st.name, num_stages=len(req.stages), app=req.app,
        tier=req.tier, arrival_s=req.arrival_s, stage_start_s=start_s, prompt_tokens=st.prompt_tokens,
        output_tokens=st.output_tokens, ttft_slo_s=st.slo.ttft_s, tpot_slo_s=st.slo.tpot_s,
        admission=Admission.PENDING, status=Status.UNFINISHED, replica=replica,
    )


def simulate(
    workload: Workload,
    scheduler: Scheduler,
    perf: LatencyModel,
    config: SimConfig | None = None,
    *,
    on_record: Callable[[StageRecord], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SimResult:
    """`_simulate` with the cyclic garbage collector paused.

    The loop allocates many short-lived lists (views, plans, log slices) while the heap of records and token
    timestamps grows, so the collector runs often and each older-generation pass walks that whole heap:
    measured 10–20% of a chatbot run. The simulator creates no reference cycles that need collecting during
    a run; the collector is restored (and catches up) when it returns or raises.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _simulate(workload, scheduler, perf, config, on_record=on_record, on_progress=on_progress)
    finally:
        if was_enabled:
            gc.enable()


def kv_capacity_tokens(cfg: SimConfig, perf: LatencyModel) -> int:
    """The replica's KV cache in tokens: the config's when set, else the perf model's."""
    return cfg.kv_capacity_tokens if cfg.kv_capacity_tokens is not None else perf.kv_capacity_tokens()


def check_fits(reqs: list[Request], kv_tokens: int, block_size: int) -> None:
    """Refuse (as a policy-independent contract error) a request that could never fit one replica's KV."""
    total_blocks = kv_tokens // block_size
    for r in reqs:
        if math.ceil(r.max_context_tokens / block_size) > total_blocks:
            raise SchedulerContractError(
                f"request {r.id} needs {r.max_context_tokens} tokens of KV but the replica holds {kv_tokens}"
            )


def _simulate(
    workload: Workload,
    scheduler: Scheduler,
    perf: LatencyModel,
    config: SimConfig | None = None,
    *,
    on_record: Callable[[StageRecord], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SimResult:
    """One replica with its whole request stream known up front: `replica_loop` run to its end.

    The gate is at infinity (no event outside the replica), so the loop never pauses: the single-replica
    path is the same code, at the same speed, as the replica stepper the multi-replica driver uses.
    """
    cfg = config or SimConfig()
    reqs = sorted(workload.requests, key=lambda r: (r.arrival_s, r.id))
    kv_tokens = kv_capacity_tokens(cfg, perf)
    check_fits(reqs, kv_tokens, cfg.block_size)
    from slobench.schedulers.lengths import make_length_info

    lengths = make_length_info(cfg.oracle_lengths, workload.spec, kv_tokens)
    horizon = (reqs[-1].arrival_s if reqs else 0.0) + cfg.drain_timeout_s
    loop = replica_loop(reqs, scheduler, perf, cfg, lengths, [math.inf, horizon],
                        on_record=on_record, on_progress=on_progress)
    try:
        next(loop)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("replica_loop paused with no event outside the replica")  # unreachable: the gate is ∞


# What a paused `replica_loop` yields: (its clock, its waiting queue, its running list, its free KV blocks).
# The lists are the loop's own (no copies): valid until the loop is resumed; readers must not change them.
Pause = tuple[float, list[SeqState], list[SeqState], int]


def replica_loop(
    reqs: list[Request],
    scheduler: Scheduler,
    perf: LatencyModel,
    cfg: SimConfig,
    lengths: LengthInfo,
    gate: list[float],
    *,
    on_record: Callable[[StageRecord], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_done: Callable[[int, float], None] | None = None,
    prefix_cache: OrderedDict[int, int] | None = None,
) -> Generator[Pause, None, SimResult]:
    """Run ``reqs`` through ``scheduler`` on a replica whose iterations take ``perf``'s time.

    A resumable replica (a generator), so that a driver can advance R replicas in lockstep and route each
    request at its arrival time (`slobench.engines.sim_cluster`). ``reqs`` is the replica's own arrival list,
    in (arrival_s, id) order; the driver may append to it while the loop is paused. ``gate = [bound, horizon]``
    is owned by the driver: the loop makes every decision at a time < ``bound`` on its own, and pauses
    (yields a `Pause`) at the first point where a decision would depend on an event at ``bound`` the driver has
    not resolved yet — an arrival that may be routed here, a routing-state refresh, a closed-loop send. A pause
    carries the time of the loop's next decision should nothing be routed to it (its clock when the gate is
    already due; its next own event or idle tick when it waits). It re-reads the gate when resumed.
    ``horizon`` is when the run stops (the last arrival + drain timeout).
    ``on_done(request_id, t)`` is called when a request leaves (finished, rejected, or unfinished at the end).
    ``prefix_cache``: the replica's cross-request prefix map (hash → tokens, LRU order), owned by the caller so
    a router can read it while the loop is paused; None: a private one.

    ``on_record`` is called with every stage record as soon as it is final (streamed to disk by
    the runner, so an interrupted run keeps finished requests); ``on_progress`` with the number of
    requests finished so far.

    Speed (a capacity search runs this ~10× per engine): the loop does O(batch) work per iteration
    plus the policy's own cost. The engine keeps its queues as lists of `SeqState` (the view gets
    cheap copies, never per-iteration rebuilds), tracks which queue a sequence is in on its `_Live`,
    and removes newly running sequences from the head of the waiting queue by slicing when the policy
    took them in queue order (FCFS policies always do).
    """
    rng = np.random.default_rng(cfg.seed)
    spec_cfg = cfg.spec
    bs = cfg.block_size
    kv_tokens = kv_capacity_tokens(cfg, perf)
    total_blocks = kv_tokens // bs
    free_blocks = total_blocks
    # Output-length information (issue 10): the policy sees public requests (``lengths.public``) and a predictor.
    next_arrival = 0
    # Front-end cost (a calibrated profile's ``frontend``; docs/calibration.md): a request reaches the engine
    # ``ingress`` after the client sent it, and every token reaches the client ``egress_s`` after the engine
    # emitted it. Records keep client times (so TTFT includes both); the policy sees engine arrival times, as
    # inside vLLM. Requests pass the front-end in the order they were sent (FIFO). Shipped profiles and the
    # roofline model have none: arrival times are then used unchanged.
    fe = getattr(perf, "frontend", None)
    if fe is not None and fe.is_zero:
        fe = None
    egress_s = fe.per_output_token_s if fe is not None else 0.0

    def engine_arrival(i: int) -> float:
        """When ``reqs[i]`` reaches the engine (its send time plus the front-end's ingress delay)."""
        r = reqs[i]
        return r.arrival_s if fe is None else r.arrival_s + fe.ingress_s(r.stages[0].prompt_tokens)

    next_arrival_s = engine_arrival(0) if reqs else math.inf
    if gate[0] < next_arrival_s:
        next_arrival_s = gate[0]  # from here on: the earlier of our next own arrival and the gate
    gap_heap: list[tuple[float, int, _Live]] = []
    waiting: list[SeqState] = []
    running: list[SeqState] = []
    by_id: dict[int, _Live] = {}
    records: list[StageRecord] = []
    log = IterationLog()
    # latency_s is filled at the end as predicted_s × factor (the same products the loop advanced the clock by),
    # so the steady loop logs per step only what it must; factors are logged a window at a time.
    factors: list[float] = []
    log_time, log_factor, log_seqs = log.time_s.append, factors.append, log.num_seqs.append
    log_prefill, log_decode = log.prefill_tokens.append, log.decode_tokens.append
    log_budget, log_kv = log.budget_s.append, log.kv_used_blocks.append
    log_pred, log_sched = log.predicted_s.append, log.schedule_s.append
    now = 0.0
    horizon = gate[1]
    finished_requests = 0
    iterations = 0
    admitted = Admission.ADMITTED
    pending_adm = Admission.PENDING
    # Models that can price a batch from its sums (Σq, Σctx, Σq·ctx, Σq², n) get them accumulated
    # here as exact integers: the same numbers `batch_latency_s` derives from the arrays, without
    # building two numpy arrays per iteration (~4 µs, a fifth of an iteration's cost at small batches).
    from_stats: Callable[..., float] | None = getattr(perf, "latency_from_stats", None)
    # Policies that say when their plan repeats (`SteadyDecode`) let decode-only stretches skip `schedule`.
    steady: Callable[[SchedulerView], bool] | None = getattr(scheduler, "steady_decode", None)
    note_steady: Callable[[int, float], None] | None = getattr(scheduler, "note_steady_calls", None)
    if from_stats is None or note_steady is None:
        steady = None
    # Policies with per-call state (`SteadyReplay`) replay a decode-only window's calls instead.
    replay: Callable[..., tuple[int, list[float]]] | None = getattr(scheduler, "steady_replay", None)
    check_s = [0.0]
    # Ground truth: predicted × factor, one factor per forward step, the same draws in the slow and steady paths.
    truth = TruthFactors(cfg.seed, cfg.truth_bias, cfg.truth_noise_cv)
    tbuf, ti, tlen = truth.buf, 0, NOISE_CHUNK  # tlen: len(tbuf) (a steady window may join two chunks)
    # schedule() cost: ca + cb·len(waiting) + cc·len(running) seconds per call with work waiting, ca0 +
    # cc0·len(running) with nothing waiting ("model", `ScheduleCost.seconds`), measured ("wall": no steady-decode
    # shortcut then, every iteration is a real call), or nothing ("off").
    wall_cost = cfg.schedule_cost == "wall"
    cost = cfg.schedule_cost_model if cfg.schedule_cost == "model" and cfg.schedule_cost_model else ScheduleCost()
    ca, cb, cc = cost.a, cost.b, cost.c
    ca0, cc0 = cost.idle
    # Queue lengths beyond the fit's are priced as the largest fitted one (no extrapolation; `ScheduleCost`).
    cmw = cost.max_waiting if cost.max_waiting is not None else 1 << 62
    cmr = cost.max_running if cost.max_running is not None else 1 << 62
    if wall_cost:
        steady = None
    max_tokens, max_seqs = cfg.max_num_batched_tokens, cfg.max_num_seqs
    # Prefix cache (vLLM's block pool): free blocks keep their content until allocation evicts them, least
    # recently freed first. The free pool is `fresh` never-used blocks (allocated first) followed by `segs`, the
    # freed blocks in eviction order, run-length encoded: [owner _Live or None, blocks left]. A sequence's freed
    # blocks go in as one content-less segment (its partial/unneeded blocks, evicted first) then one owned
    # segment of its full blocks, evicted from its last block down (vLLM frees a request's blocks in reverse).
    # The owner's num_computed always equals its owned segment's blocks × block size: evicting a block lowers
    # it (prefix hits must be contiguous); scheduling the owner claims the segment (the hits leave the pool).
    # Invariant: fresh + Σ segment blocks == free_blocks. Every operation is O(segments touched).
    caching = cfg.prefix_caching
    fresh = total_blocks
    segs: deque[list] = deque()
    # Cross-request prefix cache: hash → tokens its block covers, least recently used first. A block enters when
    # the prefill of its tokens completes and is touched by every hit. Its content lives in the free pool:
    # whenever allocation leaves fewer free tokens than the map covers, least recently used entries are
    # evicted. Conservative on two counts (docs/simulator.md): entries that a running request still holds
    # count against the free pool too, and a hit request allocates KV for its hit blocks (memory is not
    # shared, compute is saved). Untouched unless some request carries prefix_blocks.
    pcache: OrderedDict[int, int] = prefix_cache if prefix_cache is not None else OrderedDict()
    pc_tok = [sum(pcache.values())]  # tokens the map covers (a list: closures update it without a cell rebind)
    pstats = dict.fromkeys(PREFIX_KEYS, 0)
    tracked = [False]  # some request carried prefix_blocks (report pstats)

    def pc_insert(lv: _Live, done: int) -> None:
        """Enter ``lv``'s prefix blocks whose tokens are all computed (``done`` tokens) into the map."""
        req = lv.req
        hashes = req.prefix_blocks
        full = req.prefix_block_tokens
        prompt = req.stages[0].prompt_tokens
        i = lv.pfx or 0
        n = len(hashes)
        while i < n:
            start = i * full
            end = start + full if start + full < prompt else prompt
            if end <= start:
                i = n  # hashes beyond the prompt (a trace's last partial block rounding): nothing to cache
                break
            if done < end:
                break
            h = hashes[i]
            old = pcache.get(h)
            if old is None:
                pcache[h] = end - start
                pc_tok[0] += end - start
            else:
                pcache.move_to_end(h)
            i += 1
        lv.pfx = i

    def pc_evict(free_tokens: int) -> None:
        """Evict least recently used prefix blocks until the map fits in ``free_tokens``."""
        while pc_tok[0] > free_tokens and pcache:
            _, c = pcache.popitem(last=False)
            pc_tok[0] -= c
            pstats["evicted_blocks"] += 1

    def take(m: int) -> None:
        """Allocate ``m`` blocks from the free pool (free_blocks already lowered): fresh first, then evict."""
        nonlocal fresh
        if m <= fresh:
            fresh -= m
            return
        m -= fresh
        fresh = 0
        while m:
            seg = segs[0]
            r = seg[1]
            if r <= m:
                segs.popleft()
                m -= r
                left = 0
            else:
                left = r - m
                m = 0
            seg[1] = left
            owner = seg[0]
            if owner is not None and left != r:
                s = owner.seq
                if s.num_computed > left * bs:
                    s.num_computed = left * bs
                if not left:
                    owner.seg = None

    def release(lv: _Live, seq: SeqState, keep: bool) -> int:
        """Put ``seq``'s KV blocks in the pool (the caller adds them to ``free_blocks`` first: a closure that
        rebinds it would make it a cell variable, slower in the loop); with ``keep`` its full blocks stay cached
        for it. Returns the tokens still cached (its new num_computed; 0 without prefix caching)."""
        k = seq.kv_blocks
        seq.kv_blocks = 0
        if not caching or not k:
            return 0
        full = seq.num_computed // bs if keep else 0
        if full > k:
            full = k
        if k > full:
            if segs and segs[-1][0] is None:
                segs[-1][1] += k - full
            else:
                segs.append([None, k - full])
        if full:
            seg = [lv, full]
            segs.append(seg)
            lv.seg = seg
        return full * bs

    def emit(rec: StageRecord) -> None:
        if egress_s and rec.token_times_s:
            rec.token_times_s = [t + egress_s for t in rec.token_times_s]
        records.append(rec)
        if on_record is not None:
            on_record(rec)

    def finish_request(live: _Live, status: Status, t: float) -> None:
        nonlocal finished_requests
        live.done = True
        live.where = _ELSEWHERE
        if live.seg is not None:  # its cached blocks stay in the pool, now nobody's
            live.seg[0] = None
            live.seg = None
        live.record.status = status if live.record.status is Status.UNFINISHED else live.record.status
        emit(live.record)
        req = live.req  # the true request: unreached stages' records carry true lengths
        for j in range(live.seq.stage_idx + 1, len(req.stages)):  # stages never reached
            rec = _stage_record(req, j, float("nan"), cfg.replica)
            rec.admission = live.record.admission
            rec.status = Status.REJECTED if status is Status.REJECTED else Status.UNFINISHED
            emit(rec)
        by_id.pop(req.id, None)
        finished_requests += 1
        if on_progress is not None:
            on_progress(finished_requests)
        if on_done is not None:
            on_done(req.id, t)

    while True:
        # 1. Admit everything that has happened by `now`.
        if next_arrival_s <= now:
            while True:
                n_reqs = len(reqs)
                while next_arrival < n_reqs and (at := engine_arrival(next_arrival)) <= now:
                    r = reqs[next_arrival]
                    seq = SeqState(req=lengths.public(r), stage_idx=0, stage_start_s=at,
                                   num_tokens=r.stages[0].prompt_tokens)
                    live = _Live(seq, _stage_record(r, 0, r.arrival_s, cfg.replica), r)
                    live.where = _WAITING
                    if r.prefix_blocks and caching:
                        tracked[0] = True
                        live.pfx = 0
                        pstats["requests"] += 1
                        pstats["prompt_tokens"] += r.stages[0].prompt_tokens
                        hit, nb = prefix_hit(pcache, r, bs)
                        if hit:
                            seq.num_computed = live.hit = hit
                            for h in r.prefix_blocks[:nb]:
                                pcache.move_to_end(h)
                    waiting.append(seq)
                    by_id[r.id] = live
                    next_arrival += 1
                if gate[0] > now:
                    break
                # An event outside this replica is due by now (an arrival that may be ours): let the driver
                # resolve it before deciding anything at `now`.
                yield now, waiting, running, free_blocks
                horizon = gate[1]
            next_arrival_s = engine_arrival(next_arrival) if next_arrival < len(reqs) else math.inf
            if gate[0] < next_arrival_s:
                next_arrival_s = gate[0]
        while gap_heap and gap_heap[0][0] <= now:
            ready_s, _, live = heapq.heappop(gap_heap)
            live.seq.stage_start_s = ready_s
            live.record.stage_start_s = ready_s - live.ingress_s  # the client sent it before the engine got it
            live.where = _WAITING
            waiting.append(live.seq)

        if not waiting and not running:
            nxt = min(next_arrival_s, gap_heap[0][0] if gap_heap else math.inf)
            if nxt >= gate[0]:
                # Idle until our own next event, unless the gate (an event outside) brings us work first: pause,
                # telling the driver when we would next act, rather than step to the gate (two idle replicas
                # would then leapfrog each other's gates).
                while True:
                    own_s = engine_arrival(next_arrival) if next_arrival < len(reqs) else math.inf
                    nxt = min(own_s, gap_heap[0][0] if gap_heap else math.inf)
                    if gate[0] >= nxt:
                        break
                    yield nxt, waiting, running, free_blocks
                    horizon = gate[1]
                next_arrival_s = own_s if own_s < gate[0] else gate[0]
            if nxt == math.inf:
                break
            now = nxt
            continue
        if now > horizon:
            break

        # Copies, so a policy that reorders its view's lists cannot reorder the engine's queues.
        view = SchedulerView(
            now_s=now, waiting=list(waiting), running=list(running),
            block_size=bs, total_kv_blocks=total_blocks, free_kv_blocks=free_blocks, perf=perf, spec=spec_cfg,
            max_num_batched_tokens=max_tokens, max_num_seqs=max_seqs,
            lengths=lengths,
        )
        if steady is not None and not waiting and _timed(steady, view, check_s):
            t_check = check_s[0]
            window = _steady_window(running, by_id, bs)
            if window is not None:
                # Decode-only iterations on the policy's word (`SteadyDecode`): the same arithmetic as
                # steps 3-4 below, in the same order, without a `schedule` call and a plan per iteration.
                new_blocks, lives = window
                n_run = len(running)
                s_c = 0
                for seq in running:
                    s_c += seq.num_computed
                t_event = min(next_arrival_s, gap_heap[0][0] if gap_heap else math.inf)
                nows: list[float] = []
                sched_s = ca0 + cc0 * (n_run if n_run < cmr else cmr)  # the slow path's, nothing waiting
                free0 = free_blocks
                f_n = float(n_run)
                if ti + len(new_blocks) > tlen:  # the window may cross into the next chunk: join them
                    tbuf = tbuf[ti:] + truth.refill()
                    ti, tlen = 0, len(tbuf)
                fac = tbuf[ti:ti + len(new_blocks)]  # this window's noise factors, one per step
                lats: list[float] = []
                now0 = now
                for j, need in enumerate(new_blocks):
                    if j and (now >= t_event or now > horizon):
                        break  # an arrival or tool-gap input is due (or the horizon passed): back to the loop
                    if need > free_blocks:
                        break  # the policy would preempt: let it
                    free_blocks -= need
                    latency = from_stats(f_n, float(s_c), float(s_c), f_n, n_run, 0)
                    now += sched_s + latency * fac[j]
                    nows.append(now)
                    lats.append(latency)
                    s_c += n_run
                steps = len(nows)
                budgets: list[float] = []
                if steps and replay is not None:
                    # A stateful policy (`SteadyReplay`) takes the calls it would have had, in order, and says
                    # how many of them it would have planned this way; the window ends there.
                    starts = [now0, *nows[:-1]]
                    frees = list(accumulate(new_blocks[:steps], operator.sub, initial=free0))
                    kept, budgets = replay(view, starts, frees, new_blocks[:steps], lats)
                    if kept < steps:
                        steps = kept
                        del nows[steps:]
                        free_blocks = frees[steps]
                        now = nows[-1] if steps else now0
                if steps:
                    log.predicted_s.extend(lats[:steps])
                    ti += steps
                    if caching and free0 != free_blocks:
                        take(free0 - free_blocks)  # one take of the window's blocks = one per step, in order
                        if pcache:
                            pc_evict(free_blocks * bs)
                    factors.extend(fac[:steps])
                    kv_used = accumulate(new_blocks[:steps], initial=total_blocks - free0)
                    next(kv_used)  # the KV in use before the window
                    log.kv_used_blocks.extend(kv_used)
                    log.time_s.extend(nows)
                    log.schedule_s.extend([sched_s] * steps)
                    log.num_seqs.extend([n_run] * steps)
                    log.prefill_tokens.extend([0] * steps)
                    log.decode_tokens.extend([n_run] * steps)
                    log.budget_s.extend(budgets[:steps] if replay is not None else [math.nan] * steps)
                    for lv in lives:
                        seq = lv.seq
                        first_new = seq.kv_blocks * bs - seq.num_computed  # step of its first new block
                        if first_new < steps:
                            seq.kv_blocks += (steps - 1 - first_new) // bs + 1
                        seq.num_computed += steps
                        seq.num_tokens += steps
                        seq.stage_out += steps
                        lv.record.token_times_s.extend(nows)
                    iterations += steps
                    note_steady(steps, t_check)
                    continue
        if wall_cost:
            t_call = time.perf_counter()
            plan: BatchPlan = scheduler.schedule(view)
            sched_s = time.perf_counter() - t_call
        else:
            plan = scheduler.schedule(view)
            n_w, n_r = len(waiting), len(running)
            if n_w:
                sched_s = ca + cb * (n_w if n_w < cmw else cmw) + cc * (n_r if n_r < cmr else cmr)
            else:
                sched_s = ca0 + cc0 * (n_r if n_r < cmr else cmr)

        # 2. Apply preemptions and admission decisions.
        if plan.preempted:
            # vLLM V1 prepends each victim to waiting as it preempts it (`waiting.prepend_request`), so after
            # preempting newest-first the oldest victim is at the head: the plan's order, reversed.
            victims: list[SeqState] = []
            for rid in plan.preempted:
                lv = by_id.get(rid)
                if lv is None or lv.where != _RUNNING:
                    continue  # not running: nothing to preempt
                s = lv.seq
                victims.append(s)
                free_blocks += s.kv_blocks
                s.num_computed = release(lv, s, True)  # its full blocks stay cached until evicted
                s.num_preemptions += 1
                lv.record.num_preemptions += 1
                lv.where = _WAITING
            if victims:
                gone = {id(s) for s in victims}
                running = [s for s in running if id(s) not in gone]
                victims.reverse()
                waiting = victims + waiting
        if plan.admission:
            rejected: set[int] = set()
            for rid, decision in plan.admission.items():
                lv = by_id.get(rid)
                if lv is None:
                    continue
                lv.seq.admission = decision
                lv.record.admission = decision
                if decision is Admission.REJECTED:
                    rejected.add(rid)
            if rejected:
                for s in [s for s in waiting + running if s.req.id in rejected]:
                    lv = by_id[s.req.id]
                    free_blocks += s.kv_blocks
                    release(lv, s, False)
                    finish_request(lv, Status.REJECTED, now)
                if gate[0] < next_arrival_s:
                    next_arrival_s = gate[0]  # a driver that must act on the freed slot moved the gate
                waiting = [s for s in waiting if s.req.id not in rejected]
                running = [s for s in running if s.req.id not in rejected]

        scheduled = plan.num_scheduled
        if not scheduled:
            busy_until = now + sched_s
            t_next = min(next_arrival_s, gap_heap[0][0] if gap_heap else math.inf, now + cfg.idle_tick_s)
            if t_next >= gate[0]:
                # The gate may come first, and whether it brings us an arrival decides when we look again (a
                # tick landing on a foreign arrival would be an extra schedule() call): pause until it is resolved.
                while True:
                    own_s = engine_arrival(next_arrival) if next_arrival < len(reqs) else math.inf
                    t_next = min(own_s, gap_heap[0][0] if gap_heap else math.inf, now + cfg.idle_tick_s)
                    if gate[0] >= t_next:
                        break
                    yield t_next, waiting, running, free_blocks  # our next decision, unless the gate brings work
                    horizon = gate[1]
                next_arrival_s = own_s if own_s < gate[0] else gate[0]
            now = t_next
            if now < busy_until:
                now = busy_until  # the policy's call itself took this long
            continue

        # 3. Allocate KV, build the batch, predict its latency.
        n_sched = len(scheduled)
        q_list: list[int] = []
        ctx_list: list[int] = []
        s_q = s_c = s_qc = s_qq = 0
        batch: list[tuple[_Live, int, int]] = []
        newly_running: list[_Live] = []
        spec_tokens = plan.spec_tokens
        prefill_tok = decode_tok = 0
        max_k = 0
        new_total = 0  # blocks to take from the pool after the loop (hits are claimed first, then evictions)
        for rid, n in scheduled.items():
            lv = by_id.get(rid)
            if lv is None:
                raise SchedulerContractError(f"{scheduler.name}: bad token count {n} for request {rid}")
            seq = lv.seq
            computed = seq.num_computed
            if lv.hit:  # first scheduled since its cross-request hit: entries evicted meanwhile no longer count
                still = prefix_hit(pcache, lv.req, bs)[0]
                if still < computed:
                    seq.num_computed = computed = still
                pstats["hit_tokens"] += computed
                pstats["requests_hit"] += computed > 0
                lv.hit = 0
            if n <= 0 or n > seq.num_tokens - computed:
                raise SchedulerContractError(f"{scheduler.name}: bad token count {n} for request {rid}")
            k = spec_tokens.get(rid, 0) if spec_tokens else 0
            need = -(-(computed + n + k) // bs) - seq.kv_blocks  # = seq.blocks_for(n + k, bs) - held
            if need > free_blocks:
                raise SchedulerContractError(
                    f"{scheduler.name}: request {rid} needs {need} KV blocks, only {free_blocks} free"
                )
            if need > 0:
                free_blocks -= need
                seq.kv_blocks += need
                seg = lv.seg
                if seg is not None:  # its cached blocks are hits: they leave the pool, only the rest is new
                    new_total += need - seg[1]
                    seg[1] = 0
                    lv.seg = None
                else:
                    new_total += need
            q = n + k
            if from_stats is None:
                q_list.append(q)
                ctx_list.append(computed)
            else:
                s_q += q
                s_c += computed
                s_qc += q * computed
                s_qq += q * q
            if seq.num_tokens - computed > 1 or seq.stage_out == 0:
                prefill_tok += n
                if lv.pfx is not None:
                    pc_insert(lv, computed + n)
            else:
                decode_tok += n + k
            if k > max_k:
                max_k = k
            batch.append((lv, n, k))
            if lv.where == _WAITING:
                newly_running.append(lv)
        if newly_running:
            m = len(newly_running)
            if m <= len(waiting) and all(waiting[i] is newly_running[i].seq for i in range(m)):
                del waiting[:m]  # the head of the queue, in order: no O(queue) rebuild
            else:
                moved = {id(lv.seq) for lv in newly_running}
                waiting = [s for s in waiting if id(s) not in moved]
            for lv in newly_running:
                lv.where = _RUNNING
                running.append(lv.seq)
                if lv.seq.admission is pending_adm:
                    lv.seq.admission = admitted
                    lv.record.admission = admitted
        if new_total and caching:
            take(new_total)
            if pcache:
                pc_evict(free_blocks * bs)
        if from_stats is None:
            if max_tokens is not None:
                s_q = sum(q_list)
            latency = perf.batch_latency_s(np.array(q_list, dtype=np.int64), np.array(ctx_list, dtype=np.int64), max_k)
        else:
            latency = from_stats(float(s_q), float(s_c), float(s_qc), float(s_qq), n_sched, max_k)
        if max_tokens is not None and s_q > max_tokens:
            raise SchedulerContractError(
                f"{scheduler.name}: plan of {s_q} tokens exceeds max_num_batched_tokens={max_tokens}")
        if max_seqs is not None and len(running) > max_seqs:
            raise SchedulerContractError(
                f"{scheduler.name}: {len(running)} running sequences exceed max_num_seqs={max_seqs}")
        if ti == tlen:
            tbuf, ti, tlen = truth.refill(), 0, NOISE_CHUNK
        factor = tbuf[ti]
        ti += 1
        now += sched_s + latency * factor
        iterations += 1
        log_time(now)
        log_pred(latency)
        log_sched(sched_s)
        log_factor(factor)
        log_seqs(n_sched)
        log_prefill(prefill_tok)
        log_decode(decode_tok)
        log_budget(plan.budget_s if plan.budget_s is not None else math.nan)
        log_kv(total_blocks - free_blocks)

        # 4. Advance every scheduled sequence; sample tokens for those that caught up.
        ended: list[_Live] = []
        for lv, n, k in batch:
            seq = lv.seq
            computed = seq.num_computed + n
            seq.num_computed = computed
            if computed < seq.num_tokens:
                continue  # mid-prefill chunk (or recompute)
            accepted = _accepted(rng, spec_cfg.alpha, k) if k and spec_cfg else 0
            left = lv.out_target - seq.stage_out
            emit_n = 1 + accepted if 1 + accepted < left else left
            seq.num_computed = computed + emit_n - 1
            seq.num_tokens += emit_n
            if seq.stage_out == 0:
                seq.first_token_s = now
            seq.stage_out += emit_n
            if emit_n == 1:
                lv.record.token_times_s.append(now)
            else:
                lv.record.token_times_s.extend([now] * emit_n)
            if seq.stage_out >= lv.out_target:
                ended.append(lv)

        # 5. Stage and request completions.
        for lv in ended:
            seq = lv.seq
            lv.record.status = Status.FINISHED
            req = lv.req  # the true request; the policy's copy (seq.req) may carry bounds only
            lengths.observe(req.app, req.tier, req.stages[seq.stage_idx].name, seq.stage_out)
            nxt_idx = seq.stage_idx + 1
            if nxt_idx >= len(req.stages):
                free_blocks += seq.kv_blocks
                release(lv, seq, False)  # its blocks stay in the pool (cached content nobody will ask for)
                _remove_identity(running, seq)
                finish_request(lv, Status.FINISHED, now)
                if gate[0] < next_arrival_s:
                    next_arrival_s = gate[0]  # a driver that must act on the freed slot moved the gate
                continue
            emit(lv.record)
            nxt_stage = req.stages[nxt_idx]
            seq.stage_idx = nxt_idx
            seq.stage_out = 0
            seq.first_token_s = None
            lv.out_target = nxt_stage.output_tokens
            lv.record = _stage_record(req, nxt_idx, now + egress_s, cfg.replica)  # the client's view of "now"
            lv.record.admission = seq.admission
            if nxt_stage.is_continuation:
                seq.stage_start_s = now
                continue
            # Tool gap: free the KV; its full blocks stay cached (a hit when the next round's input arrives
            # after gap_s, unless evicted meanwhile).
            _remove_identity(running, seq)
            lv.where = _ELSEWHERE
            free_blocks += seq.kv_blocks
            seq.num_computed = release(lv, seq, True)
            seq.num_tokens += nxt_stage.prompt_tokens
            ready = now + egress_s + nxt_stage.gap_s
            if fe is not None:  # the next round is a new HTTP request carrying the whole context
                lv.ingress_s = fe.ingress_s(seq.num_tokens)
                ready += lv.ingress_s
            heapq.heappush(gap_heap, (ready, req.id, lv))

    # Horizon reached or nothing left: whatever is still in flight is unfinished.
    leftovers = [by_id[s.req.id] for s in waiting] + [by_id[s.req.id] for s in running] + [lv for _, _, lv in gap_heap]
    for lv in sorted(leftovers, key=lambda lv: lv.seq.req_id):
        finish_request(lv, Status.UNFINISHED, now)
    while next_arrival < len(reqs):  # never arrived before the horizon (cannot happen unless drain < 0)
        r = reqs[next_arrival]
        finish_request(_Live(SeqState(req=r), _stage_record(r, 0, r.arrival_s, cfg.replica)), Status.UNFINISHED, now)
        next_arrival += 1
    log.latency_s = (np.array(log.predicted_s) * np.array(factors)).tolist()  # the products the clock used
    return SimResult(records=records, iterations=log, end_time_s=now, num_iterations=iterations,
                     prefix_cache=pstats if tracked[0] else {})


class SimEngine:
    """The discrete-event simulator as an `Engine` (``--engine sim``): R replicas behind a router.

    One replica under an open-loop load is `simulate` itself. Otherwise `sim_cluster.simulate_replicas`
    advances the replicas in lockstep and routes each request when it is sent (with the job's router and
    stats refresh interval); a `ClosedLoopLoad` caps the requests in flight. Replica r simulates with seed
    ``job.seed + r`` and its own policy instance, built from ``job.policy``; their `SchedulerStats` are merged
    into one. Records, iteration logs and stats are reported replica by replica, in replica order.
    """

    name = "sim"

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()  # block size, KV capacity, prefix caching (seed, replica: per job)

    def run(self, job: EngineJob) -> EngineResult:
        from slobench.schedulers.registry import make_policy

        load = job.load
        if not isinstance(load, OpenLoopLoad | ClosedLoopLoad):
            raise unsupported_load(self.name, load)
        workload = load.workload
        concurrency = load.concurrency if isinstance(load, ClosedLoopLoad) else None
        gpu = getattr(job.perf, "gpu", None)
        gpu_mem, gpu_name = getattr(gpu, "memory_bytes", None), getattr(gpu, "name", "")
        spec = job.policy.draft.spec_config() if job.policy.draft is not None else None
        total = len(workload.requests)
        base = self.config
        if base.schedule_cost == "model" and base.schedule_cost_model is None:
            from slobench.perf.schedule_cost import schedule_cost_for

            base = replace(base, schedule_cost_model=schedule_cost_for(job.policy.name))
        policies: list[Scheduler] = []
        configs: list[SimConfig] = []
        for replica in range(max(1, job.replicas.count)):
            policy = make_policy(job.policy, gpu_memory_bytes=gpu_mem, gpu_name=gpu_name)
            limits = engine_limits(base, policy, gpu_mem, gpu_name)
            policies.append(policy)
            configs.append(replace(base, spec=spec, seed=job.seed + replica, replica=replica,
                                   drain_timeout_s=job.drain_timeout_s, oracle_lengths=job.policy.oracle_lengths,
                                   **limits))

        def progress(n: int) -> None:
            if job.on_progress is not None:
                job.on_progress(n, total)

        if len(policies) == 1 and concurrency is None:
            sims = [simulate(workload, policies[0], job.perf, configs[0], on_record=job.on_record,
                             on_progress=progress)]
        else:
            from slobench.engines.sim_cluster import simulate_replicas
            from slobench.schedulers.routers import make_router

            sims = simulate_replicas(workload, policies, job.perf, configs, make_router(job.replicas.router, job.seed),
                                     refresh_s=job.replicas.refresh_s, concurrency=concurrency,
                                     on_record=job.on_record, on_progress=progress)
        records: list[StageRecord] = []
        iterations: list[pd.DataFrame] = []
        stats = None
        for replica, (sim, policy) in enumerate(zip(sims, policies, strict=True)):
            records.extend(sim.records)
            it = pd.DataFrame(sim.iterations.as_columns())
            it["replica"] = replica
            iterations.append(it)
            replica_stats = getattr(policy, "stats", None)
            if stats is None:
                stats = replica_stats
            elif replica_stats is not None:
                stats.merge(replica_stats)  # one summary for all replicas of the policy
        client = None
        if concurrency is not None:
            from slobench.engines.sim_cluster import closed_loop_evidence

            client = closed_loop_evidence(workload, records, concurrency)
        info = simulator_info(configs[-1])
        counters = [sim.prefix_cache for sim in sims if sim.prefix_cache]
        if counters:  # summed over replicas; only for workloads whose requests carry prefix_blocks
            info["prefix_cache"] = {k: sum(c[k] for c in counters) for k in PREFIX_KEYS}
        if concurrency is not None:
            info["max_concurrency"] = concurrency
        if len(policies) > 1:
            info |= {"router": job.replicas.router, "router_refresh_s": job.replicas.refresh_s}
        return EngineResult(
            records=records,
            iterations=pd.concat(iterations, ignore_index=True) if iterations else pd.DataFrame(),
            scheduler_stats=stats.as_dict() if stats is not None and hasattr(stats, "as_dict") else None,
            client=client,
            info={"simulator": info, "deterministic": info.get("deterministic", True)},
        )


def engine_limits(cfg: SimConfig, policy: object, gpu_memory_bytes: float | None, gpu_name: str) -> dict[str, int]:
    """The simulated engine's ``max_num_batched_tokens`` / ``max_num_seqs``: the config's when set, else the
    policy's own setting (V0 and Sarathi model engines configured with their caps), else vLLM V1's server
    defaults for the GPU (8192 / 1024 on an H100-class GPU) — what a real ``--engine vllm`` run would have."""
    from slobench.schedulers.vllm_v1 import vllm_defaults

    defaults = vllm_defaults(gpu_memory_bytes, gpu_name)
    out: dict[str, int] = {}
    for key in ("max_num_batched_tokens", "max_num_seqs"):
        given = getattr(cfg, key)
        own = getattr(policy, key, None)
        out[key] = given if given is not None else own if isinstance(own, int) and own > 0 else defaults[key]
    return out


def simulator_info(cfg: SimConfig) -> dict:
    """What the run's summary.json records about the simulator's ground truth (``engine_info.simulator``)."""
    cost = cfg.schedule_cost_model if cfg.schedule_cost == "model" else None
    info = {
        "truth_bias": cfg.truth_bias, "truth_noise_cv": cfg.truth_noise_cv, "schedule_cost": cfg.schedule_cost,
        "schedule_cost_coefficients": cost.as_dict() if cost is not None else None,
        "max_num_batched_tokens": cfg.max_num_batched_tokens, "max_num_seqs": cfg.max_num_seqs,
        "prefix_caching": cfg.prefix_caching, "block_size": cfg.block_size,
        "deterministic": cfg.schedule_cost != "wall",
    }
    if cost is not None:
        from slobench.perf.schedule_cost import schedule_cost_table

        table = schedule_cost_table()
        fit = {k: table.get(k) for k in ("machine", "date", "script")}
        name = cost.source.removeprefix("fitted:")
        entry = table.get("policies", {}).get(name) if cost.source.startswith("fitted:") else None
        if entry and isinstance(entry.get("fitted"), dict):  # where this policy's own coefficients were measured
            fit |= entry["fitted"]
        info["schedule_cost_fit"] = fit
    return info
