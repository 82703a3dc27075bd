"""SLOs-Serve's online loop (arXiv 2504.08784): admit by DP, batch by per-token deadlines.

Every `schedule()` call (one per engine iteration):

1. **Sort the requests** into admitted decodes, admitted prefills (new stages of admitted
   requests and recompute after preemption are *committed*), best-effort work, and *pending*
   requests that admission has not accepted yet.
2. **Expire** pending requests that can no longer meet their TTFT even on an idle replica: they
   become best-effort (or are rejected, ``best_effort=False``). A best-effort request still counts
   as a miss if it misses, but it can no longer hurt admitted ones.
3. **Re-plan** when new requests arrived or every ``replan_interval_s``: the DP of `admission.py`
   over pending (≤ ``max_candidates``, earliest deadline first) and committed requests decides who
   is admitted; declined requests stay pending and are retried at the next plan until step 2
   expires them. Speculation lengths per tier (`speculation.py`) and the prefill-rate model the DP
   uses (`rate_model.py`) are refreshed here too.
4. **Batch**: the iteration's time budget ``L`` is the smallest slack to the next per-token
   deadline among admitted decodes (token n is due at ``t0 + (n−1)·TPOT``), capped by the
   tightest tier pace present and by the ``arrival_slack_quantile`` of recent arrivals' TTFT slack
   (deadline minus zero-load prefill): a request arriving mid-batch waits for the batch to end,
   so batches longer than the slack of short-TTFT arrivals would lose them before admission even
   sees them. Neither cap goes below the length at which the batch's fixed cost is ≤ 1 −
   ``min_batch_efficiency`` of it (the paper's A100 fits have ~30 ms fixed costs).
   When waiting prefill that could run (KV beyond the admitted requests' growth for best-effort
   prompts, a free sequence slot under the engine's ``max_num_seqs`` for new ones) would not fit
   beside every decode, a decode whose next deadline is a whole TPOT beyond this batch skips it
   (loose tiers run in fewer batches); otherwise every
   decode runs, so requests finish early and free their KV. Late decodes have already missed and
   do not shrink the budget. Admitted prefills fill the rest of the budget in EDF order (chunked
   to fit the latency model's prediction), then best-effort decodes and prefills take what is left.
   With a draft model, decodes use the per-tier lengths while prefill waits, and in a decode-only
   batch the one length with the most expected tokens per second (`_fastest_spec`).
5. **KV**: admission promises only what the admitted requests' projected KV peak leaves
   (`memory.py`); best-effort work uses only blocks beyond that projection and is preempted first;
   if the projection was wrong, the newest admitted request is recompute-preempted (vLLM's rule).

Information (issue 10): without ``PolicySpec.oracle_lengths`` the requests in the view are public
copies whose stage lengths are the max_tokens bound; every remaining-length estimate here comes from
``view.lengths`` (`slobench.schedulers.lengths`: the conditional mean of the remaining length given the
tokens produced, or its ``kv_length_quantile``). Drafts are capped by the bound, as in vLLM. With
``latency_feedback`` the latency model is scaled by the observed ÷ predicted iteration time
(`feedback.py`).

Pure Python, deterministic (no wall-clock input to any decision unless ``dp_time_limit_s`` is
set), no I/O, imports no engine: the vLLM adapter runs this same object.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Literal

import numpy as np

from slobench.errors import UserError
from slobench.perf.speculative import expected_tokens, tokens_per_verify
from slobench.schedulers.base import Admission, BatchPlan, SchedulerView, SeqState
from slobench.schedulers.batching import BatchDraft
from slobench.schedulers.slos_serve.admission import Candidate, plan_admission
from slobench.schedulers.slos_serve.feedback import LatencyFeedback
from slobench.schedulers.slos_serve.memory import projected_peak_blocks
from slobench.schedulers.slos_serve.rate_model import PrefillRateModel, make_tier
from slobench.schedulers.slos_serve.speculation import choose_spec_lengths
from slobench.schedulers.stats import SchedulerStats, TimedSchedule


def _predicted_out(view: SchedulerView, seq: SeqState, stage_idx: int, q: float | None) -> float:
    """Output tokens still to come in stage ``stage_idx`` (the current one, or a later one from 0), as the
    policy knows them: the length predictor's conditional mean (``q`` None) or q-quantile
    (`slobench.schedulers.lengths`; the truth under the oracle); without one (views built by hand), the
    public request's stage length — the max_tokens bound."""
    lengths = view.lengths
    if lengths is None:
        done = seq.stage_out if stage_idx == seq.stage_idx else 0
        return float(max(0, seq.req.stages[stage_idx].output_tokens - done))
    if q is None:
        return lengths.expected_remaining(seq, stage_idx)
    return float(lengths.quantile_remaining(seq, q, stage_idx))


def _rest_of_turn(seq: SeqState, view: SchedulerView, q: float | None = None) -> tuple[float, float]:
    """(context at the end of this stage and its continuation stages, seconds those tokens take at
    their own TPOT paces) — a reasoning answer continues the thinking context at its own pace.
    Output lengths are predicted (`_predicted_out`: the mean, or the ``q``-quantile)."""
    left = _predicted_out(view, seq, seq.stage_idx, q)
    tokens = seq.num_tokens + left
    seconds = left * seq.stage.slo.tpot_s
    stages = seq.req.stages
    for j in range(seq.stage_idx + 1, len(stages)):
        st = stages[j]
        if not st.is_continuation:
            break
        out = _predicted_out(view, seq, j, q)
        tokens += out
        seconds += out * st.slo.tpot_s
    return tokens, seconds


def _linear_quantile(ordered: list[float], q: float) -> float:
    """``float(np.quantile(values, q))`` (method "linear") of the sorted ``ordered``, with numpy's own
    arithmetic (index ``(n−1)·q``; ``_lerp``: ``a + (b−a)·γ``, or ``b − (b−a)·(1−γ)`` when γ ≥ 0.5), so the
    result is the same float: np.quantile cost ~25 µs a call on a 64-value window, ~6% of a slos-serve run.
    ``tests/test_schedulers.py`` checks it against numpy."""
    n = len(ordered)
    v = (n - 1) * q
    if v >= n - 1:
        return float(ordered[-1])
    i = math.floor(v)
    a, b = ordered[i], ordered[i + 1]
    gamma = v - i
    diff = b - a
    return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)


def _with_perf(view: SchedulerView, perf: object) -> SchedulerView:
    """``dataclasses.replace(view, perf=perf)`` without its per-call field introspection (every field passed
    positionally, ~3× faster than copying slot by slot): it runs on every call planned with a scaled model.
    ``tests/test_schedulers.py`` checks that it copies every field."""
    return SchedulerView(view.now_s, view.waiting, view.running, view.block_size, view.total_kv_blocks,
                         view.free_kv_blocks, perf, view.spec, view.max_num_batched_tokens, view.max_num_seqs,
                         view.lengths)


def _within_engine_limits(view: SchedulerView, order: list[tuple[SeqState, int, int]],
                          n_admitted: int) -> tuple[list[tuple[SeqState, int, int]], int, bool]:
    """``order`` cut to the engine's ``max_num_batched_tokens`` (drafts included) and ``max_num_seqs``, in
    priority order (decodes first, then admitted prefill, then best-effort); returns the new order, how many
    of it are admitted work, and whether anything was cut.

    Why here and not in the engine: inside vLLM a plan beyond these limits is cut by vLLM itself (16% of
    planned tokens never ran, issue 11), and the policy would believe in prefill that did not happen. The
    simulator gives the same limits in its view and refuses plans beyond them. A view without limits
    (None) leaves the plan as it was.
    """
    cap_tokens, cap_seqs = view.max_num_batched_tokens, view.max_num_seqs
    if cap_tokens is None and cap_seqs is None:
        return order, n_admitted, False
    # The usual case, without the per-call set of running ids: every item fits the token cap (each has
    # n + k ≥ 1, so none meets ``left <= 0`` first) and even if all were new sequences they fit the room.
    if (cap_seqs is None or len(view.running) + len(order) <= cap_seqs) and (
            cap_tokens is None or sum([n + k for _, n, k in order]) <= cap_tokens):
        return order, n_admitted, False
    left = cap_tokens if cap_tokens is not None else 1 << 62
    running = {s.req.id for s in view.running}
    room = cap_seqs - len(view.running) if cap_seqs is not None else 1 << 62  # new sequences vLLM may start
    kept: list[tuple[SeqState, int, int]] = []
    kept_admitted = 0
    cut = False
    for i, (seq, n, k) in enumerate(order):
        new_seq = seq.req.id not in running
        if left <= 0 or (new_seq and room <= 0):
            cut = True
            continue
        if n + k > left:
            cut = True
            if n == 1 and k:  # a speculative decode: fewer drafts
                k = left - 1
            else:  # a prefill chunk: a shorter chunk
                n, k = left, 0
        left -= n + k
        if new_seq:
            room -= 1
        kept.append((seq, n, k))
        kept_admitted += i < n_admitted
    return kept, kept_admitted, cut


def _startable(view: SchedulerView, adm_pre: list[SeqState], be_oldest: list[SeqState]) -> set[int] | None:
    """The prefills (ids of their `SeqState`) the engine could run this iteration under its sequence limit: every
    running one, and waiting ones up to the free slots, in the order `_build_batch` fills the batch (``adm_pre`` in
    EDF order, then the best-effort prefills ``be_oldest``, oldest first). None when the limit does not bind (no
    limit, or no more waiting sequences than free slots): then every prefill could start."""
    cap = view.max_num_seqs
    if cap is None:
        return None
    room = cap - len(view.running)
    if len(view.waiting) <= room:
        return None
    running = {id(s) for s in view.running}
    out: set[int] = set()
    for s in [*adm_pre, *be_oldest]:
        if id(s) in running:
            out.add(id(s))
        elif room > 0:
            out.add(id(s))
            room -= 1
    return out


def _tpot_key(seq: SeqState) -> float:
    """The TPOT tier a sequence's current stage belongs to (rounded so float noise never splits a tier).

    The rounding is memoised per TPOT value (a handful of tiers; ~10⁵ calls a run)."""
    t = seq.req.stages[seq.stage_idx].slo.tpot_s
    key = _TPOT_KEYS.get(t)
    if key is None:
        if len(_TPOT_KEYS) > 4096:
            _TPOT_KEYS.clear()
        key = _TPOT_KEYS[t] = round(t, 6)
    return key


_TPOT_KEYS: dict[float, float] = {}


def _deadline(seq: SeqState) -> float:
    """EDF key: TTFT deadline before the first token, else the next per-token deadline (recompute)."""
    return seq.next_token_deadline_s


def _decode_deadline(seq: SeqState) -> float:
    """``seq.next_token_deadline_s`` for a decoding sequence (the same arithmetic, without the property chain)."""
    slo = seq.req.stages[seq.stage_idx].slo
    ttft_deadline = seq.stage_start_s + slo.ttft_s
    first = seq.first_token_s
    if seq.stage_out == 0 or first is None:
        return ttft_deadline
    return (ttft_deadline if ttft_deadline > first else first) + seq.stage_out * slo.tpot_s


# (arrival, id) of a sequence's request: best-effort work is served oldest first (a C-level key for long queues).
_ARRIVAL_KEY = attrgetter("req.arrival_s", "req.id")


def _age_key(seq: SeqState) -> tuple[float, int]:
    """Older requests sort first; preemption takes the newest."""
    return seq.req.arrival_s, seq.req.id


def _pop_victim(victims: list[SeqState], asking: SeqState, best_effort_ids: set[int]) -> SeqState | None:
    """The preemption victim for ``asking`` (``victims``: admitted oldest→newest, then best-effort
    oldest→newest): the newest best-effort sequence, else — only for a sequence that already holds
    KV — the newest admitted one newer than it (vLLM's rule). None when nothing may be taken."""
    for j in range(len(victims) - 1, -1, -1):
        v = victims[j]
        if v is asking:
            continue
        if v.req.id in best_effort_ids or (asking.kv_blocks > 0 and _age_key(v) > _age_key(asking)):
            return victims.pop(j)
        if v.req.id not in best_effort_ids:
            return None  # admitted victims are ordered by age: no newer one is left
    return None


# Enum members as module constants: `Admission.X` costs ~0.25 µs a lookup, and `_classify` runs every iteration.
_BEST_EFFORT, _ADMITTED, _PENDING = Admission.BEST_EFFORT, Admission.ADMITTED, Admission.PENDING


def _classify(view: SchedulerView) -> tuple[list[SeqState], list[SeqState], list[SeqState], list[SeqState],
                                             list[SeqState]]:
    """The view's sequences as (admitted decodes, admitted prefills, best-effort decodes, best-effort
    prefills, pending): running ones by what they do this iteration, waiting ones by admission."""
    adm_dec: list[SeqState] = []
    adm_pre: list[SeqState] = []
    be_dec: list[SeqState] = []
    be_pre: list[SeqState] = []
    pending: list[SeqState] = []
    best_effort, admitted_, pending_ = _BEST_EFFORT, _ADMITTED, _PENDING
    for seq in view.running:
        be = seq.admission is best_effort
        if seq.stage_out == 0 or seq.num_tokens - seq.num_computed > 1:  # seq.is_prefilling, inlined
            (be_pre if be else adm_pre).append(seq)
        else:
            (be_dec if be else adm_dec).append(seq)
    for seq in view.waiting:  # thousands when overloaded: the enum members are locals
        a = seq.admission
        if a is pending_:
            pending.append(seq)
        elif a is best_effort:
            be_pre.append(seq)
        elif a is admitted_:
            adm_pre.append(seq)
    return adm_dec, adm_pre, be_dec, be_pre, pending


@dataclass
class SLOsServeScheduler(TimedSchedule):
    """The `slos-serve` policy. Options are documented on each field; defaults follow the paper."""

    best_effort: bool = True  # False: reject what cannot be admitted instead of serving it best-effort
    replan_interval_s: float = 0.1  # re-plan at least this often while requests are pending
    max_candidates: int = 32  # pending requests the DP considers per plan (earliest deadlines)
    beam_width: int = 16  # decode-count vectors kept per DP step
    dp_max_transitions: int = 20_000  # deterministic guard; beyond it greedy EDF decides
    dp_time_limit_s: float | None = None  # optional wall-clock guard (non-deterministic)
    surplus_rule: Literal["more", "less"] = "more"  # "less" = the authors' Pareto rule
    capacity_margin: float = 0.9  # share of the modelled prefill rate admission may promise
    latency_margin: float = 0.0  # share of each batch budget kept free for prediction error (real engines)
    rate_refresh_s: float = 0.25  # how often the prefill-rate model is re-measured
    min_batch_efficiency: float = 0.8  # batches may outgrow the tightest pace until fixed cost ≤ 20% of them
    iteration_pace_factor: float = 1.5  # KV projection: decodes take ≤ this × the observed iteration time
    tier_weights: dict[str, float] | None = None  # profit per request by tier name (default 1)
    adaptive_speculation: bool = True  # with a draft model: lengths chosen per batch (False: the max, always)
    arrival_slack_quantile: float | None = 0.1  # cap batches at this quantile of recent arrivals' TTFT slack
    arrival_window: int = 64  # arrivals the slack quantile is taken over
    # Output lengths are predicted (view.lengths): KV projections and admission's KV test use this quantile
    # of each stage's remaining length given what it has produced (None: the conditional mean). The median
    # was measured best on reasoning (docs/slos-serve.md: 0.75 and the mean admit too little).
    kv_length_quantile: float | None = 0.5
    # Scale the latency model by the EWMA of observed ÷ predicted iteration time (feedback.py); a no-op
    # while the model is right within 3% (the simulator without model error).
    latency_feedback: bool = True
    name: str = "slos-serve"
    stats: SchedulerStats = field(default_factory=SchedulerStats, repr=False, compare=False)
    _seen: set[int] = field(default_factory=set, repr=False)
    _last_plan_s: float = field(default=-math.inf, repr=False)
    _rate: PrefillRateModel | None = field(default=None, repr=False)
    _rate_key: tuple = field(default=(), repr=False)
    _rate_at_s: float = field(default=-math.inf, repr=False)
    _spec: dict[float, int] = field(default_factory=dict, repr=False)
    _zero_load_ttft: dict[tuple[int, int], float] = field(default_factory=dict, repr=False)
    _kv_growth_blocks: int = field(default=0, repr=False)  # admitted requests' projected KV growth
    _iter_ewma_s: float = field(default=math.inf, repr=False)  # EWMA of the time between iterations
    _prev_now_s: float | None = field(default=None, repr=False)
    _fixed_cost_s: float | None = field(default=None, repr=False)  # latency of a one-token batch
    _fixed_cost_perf: object = field(default=None, repr=False)  # the model it was computed with
    _feedback: LatencyFeedback = field(default_factory=LatencyFeedback, repr=False)
    _arrival_slack_s: deque = field(default_factory=deque, repr=False)  # recent arrivals' TTFT slack
    _arrival_sorted: list = field(default_factory=list, repr=False)  # the same values, sorted
    _arrival_cap_cache: float | None = field(default=None, repr=False)
    _noted: set = field(default_factory=set, repr=False)  # committed new stages whose slack is recorded

    def __post_init__(self) -> None:
        if self.surplus_rule not in ("more", "less"):
            raise UserError(f"slos-serve: surplus_rule must be 'more' or 'less' (got {self.surplus_rule!r})")
        if not 0 < self.capacity_margin <= 1.5:
            raise UserError(f"slos-serve: capacity_margin must be in (0, 1.5] (got {self.capacity_margin})")
        if not 0 <= self.min_batch_efficiency < 1:
            raise UserError(f"slos-serve: min_batch_efficiency must be in [0, 1) (got {self.min_batch_efficiency})")
        if not 0 <= self.latency_margin < 1:
            raise UserError(f"slos-serve: latency_margin must be in [0, 1) (got {self.latency_margin})")
        if self.kv_length_quantile is not None and not 0 <= self.kv_length_quantile <= 1:
            raise UserError(f"slos-serve: kv_length_quantile must be in [0, 1] or None (got {self.kv_length_quantile})")

    # ------------------------------------------------------------------------------------------
    def _schedule(self, view: SchedulerView) -> BatchPlan:
        if not self.latency_feedback:
            return self._plan(view)
        fb = self._feedback
        fb.observe(view.now_s)
        factor = fb.factor
        perf = fb.scaled(view.perf)
        plan = self._plan(view if perf is view.perf else _with_perf(view, perf))
        # Remember the prediction in the unscaled model's units: the ratio is observed ÷ model.
        fb.planned(plan.predicted_latency_s / factor if plan.predicted_latency_s else None)
        if factor != 1.0:
            self.stats.count("latency_scaled_calls")  # calls planned with a scaled latency model
        return plan

    def _plan(self, view: SchedulerView) -> BatchPlan:
        now = view.now_s
        if self._prev_now_s is not None and view.running and now > self._prev_now_s:
            gap = now - self._prev_now_s
            self._iter_ewma_s = gap if math.isinf(self._iter_ewma_s) else 0.9 * self._iter_ewma_s + 0.1 * gap
        self._prev_now_s = now
        plan = BatchPlan()
        adm_dec, adm_pre, be_dec, be_pre, pending = _classify(view)
        pending = self._expire(view, pending, plan, be_pre)
        if self.arrival_slack_quantile is not None:
            self._note_committed_arrivals(view, adm_pre)
        new_arrivals = any(s.req_id not in self._seen for s in pending)
        if pending and (new_arrivals or now - self._last_plan_s >= self.replan_interval_s):
            self._seen.update(s.req_id for s in pending)
            admitted = self._admit(view, pending, adm_pre, adm_dec, be_dec, be_pre)
            for seq in pending:
                if seq.req_id in admitted:
                    plan.admission[seq.req_id] = Admission.ADMITTED
                    adm_pre.append(seq)
                    # Never pending again (later stages arrive admitted): keep the caches small.
                    self._seen.discard(seq.req_id)
                    self._zero_load_ttft.pop((seq.req_id, seq.stage_idx), None)
        self._build_batch(view, plan, adm_dec, adm_pre, be_dec, be_pre)
        return plan

    # -- decode-only windows (the simulator's speed; `SteadyDecode`, `SteadyReplay`) ----------------------
    def steady_decode(self, view: SchedulerView) -> bool:
        """Nothing waits, no drafts, every running sequence is an admitted decode within the engine's limits:
        then `_plan` gives each 1 token (no prefill demand, so no decode skips) while KV lasts, and only its
        budget, prediction and estimates change from call to call (`steady_replay` replays those)."""
        running = view.running
        if view.waiting or view.spec is not None or not running:
            return False
        n = len(running)
        if (view.max_num_seqs is not None and n > view.max_num_seqs) or (
                view.max_num_batched_tokens is not None and n > view.max_num_batched_tokens):
            return False
        best_effort = _BEST_EFFORT
        return all(s.admission is not best_effort and s.stage_out > 0 and s.first_token_s is not None
                   and s.num_tokens - s.num_computed == 1 for s in running)

    def steady_replay(self, view: SchedulerView, starts: list[float], free_blocks: list[int],
                      new_blocks: list[int], latencies: list[float]) -> tuple[int, list[float]]:
        """`SteadyReplay`: the calls of a decode-only window, with exactly the state updates and plan values of
        `_schedule` → `_plan` → `_build_batch` → `_allocate` for such a view (the same expressions, in the same
        order, so a run is bit-identical with and without the window: `tests/test_sim.py` and the identity
        fingerprints check it). Stops before the first call whose allocation would leave less than the admitted
        requests' projected KV growth free (`_allocate` would take its slow path there)."""
        running = view.running
        fb = self._feedback
        tpots: set[float] = set()
        firsts: list[tuple[float, int, float]] = []  # per sequence: (the deadline's base, tokens out, TPOT)
        for s in running:
            slo = s.req.stages[s.stage_idx].slo
            tpots.add(slo.tpot_s)
            due = s.stage_start_s + slo.ttft_s
            first = s.first_token_s
            base = due if due > first else first  # type: ignore[operator]  # steady_decode: a first token is out
            firsts.append((base, s.stage_out, slo.tpot_s))
        budgets: list[float] = []
        for j, now in enumerate(starts):
            if free_blocks[j] - new_blocks[j] < self._kv_growth_blocks:
                break
            factor = 1.0
            perf = view.perf
            if self.latency_feedback:
                fb.observe(now)
                factor = fb.factor
                perf = fb.scaled(view.perf)
            if self._prev_now_s is not None and now > self._prev_now_s:
                gap = now - self._prev_now_s
                self._iter_ewma_s = gap if math.isinf(self._iter_ewma_s) else 0.9 * self._iter_ewma_s + 0.1 * gap
            self._prev_now_s = now
            if self.arrival_slack_quantile is not None and len(self._noted) > 256:
                self._noted = set()
            budget = self._tier_budget(perf, tpots, view)
            soonest: float | None = None
            for base, out, tpot in firsts:
                due = base + (out + j) * tpot
                if due > now and (soonest is None or due < soonest):
                    soonest = due
            if soonest is not None:
                budget = min(budget, soonest - now)
            pred = latencies[j] if perf is view.perf else perf.factor * latencies[j]  # draft.latency_s()
            budgets.append(budget)
            if self.latency_feedback:
                fb.planned(pred / factor if pred else None)
                if factor != 1.0:
                    self.stats.count("latency_scaled_calls")
        return len(budgets), budgets

    def would_admit(self, view: SchedulerView, seq: SeqState) -> bool:
        """Would this replica's admission planner admit ``seq`` (a request not yet here) if it arrived now?

        The question SLOs-Serve's router asks each replica in turn (`slobench.schedulers.routers.slo_aware`):
        the same DP as a plan, over the requests this replica has committed to plus ``seq`` alone (its own
        undecided requests are left out: they are re-planned with it at its next plan). Side-effect free:
        every model, counter and cache a plan touches is restored, so asking never changes what the replica
        does, and a run with a router that asks gives the same records as one that does not ask.
        """
        fb = self._feedback
        saved = (self._rate, self._rate_key, self._rate_at_s, self._spec, self._kv_growth_blocks,
                 self._last_plan_s, self.stats, fb._cache)
        self.stats = SchedulerStats()
        try:
            if self.latency_feedback:
                perf = fb.scaled(view.perf)
                if perf is not view.perf:
                    view = _with_perf(view, perf)
            adm_dec, adm_pre, be_dec, be_pre, _ = _classify(view)
            return seq.req_id in self._admit(view, [seq], adm_pre, adm_dec, be_dec, be_pre)
        finally:
            (self._rate, self._rate_key, self._rate_at_s, self._spec, self._kv_growth_blocks,
             self._last_plan_s, self.stats, fb._cache) = saved

    # -- step 2 ---------------------------------------------------------------------------------
    def _expire(self, view: SchedulerView, pending: list[SeqState], plan: BatchPlan,
                be_pre: list[SeqState]) -> list[SeqState]:
        keep: list[SeqState] = []
        for seq in pending:
            key = (seq.req_id, seq.stage_idx)
            if key not in self._zero_load_ttft:  # first sight of this stage
                self._zero_load_ttft[key] = view.perf.prefill_latency_s(max(1, seq.pending_tokens))
                if self.arrival_slack_quantile is not None:
                    self._note_slack(seq, self._zero_load_ttft[key])
            if view.now_s + self._zero_load_ttft[key] <= seq.ttft_deadline_s:
                keep.append(seq)
                continue
            self._zero_load_ttft.pop(key, None)
            if self.best_effort:
                plan.admission[seq.req_id] = Admission.BEST_EFFORT
                be_pre.append(seq)
                self.stats.count("best_effort")
            else:
                plan.admission[seq.req_id] = Admission.REJECTED
                self.stats.count("rejected")
        return keep

    def _note_slack(self, seq: SeqState, zero_load_ttft_s: float) -> None:
        """Remember how long a new stage could wait and still make its TTFT on an idle replica."""
        slack = max(0.0, seq.stage.slo.ttft_s - zero_load_ttft_s)
        self._arrival_slack_s.append(slack)
        bisect.insort(self._arrival_sorted, slack)
        if len(self._arrival_slack_s) > self.arrival_window:
            self._arrival_sorted.remove(self._arrival_slack_s.popleft())
        self._arrival_cap_cache = None

    def _note_committed_arrivals(self, view: SchedulerView, adm_pre: list[SeqState]) -> None:
        """New stages of admitted requests (a tool call's next round) arrive committed, never pending:
        note their slack here (`_expire` notes pending stages)."""
        for seq in adm_pre:
            if seq.stage_idx == 0 or seq.stage_out or seq.stage.is_continuation:
                continue
            key = (seq.req_id, seq.stage_idx)
            if key not in self._noted:
                self._noted.add(key)
                self._note_slack(seq, view.perf.prefill_latency_s(max(1, seq.pending_tokens)))
        if len(self._noted) > 256:  # forget stages that are no longer waiting for their first token
            self._noted = {(q.req_id, q.stage_idx) for q in adm_pre}

    def _arrival_cap_s(self) -> float:
        """Longest batch that lets most arrivals still start in time: a request arriving during a
        batch waits for its end, so batches longer than the slack of short-TTFT arrivals lose them."""
        if self.arrival_slack_quantile is None or not self._arrival_slack_s:
            return math.inf
        if self._arrival_cap_cache is None:
            self._arrival_cap_cache = _linear_quantile(self._arrival_sorted, self.arrival_slack_quantile)
        return self._arrival_cap_cache

    # -- step 3 ---------------------------------------------------------------------------------

    def _refresh_models(self, view: SchedulerView, tpots: list[float], adm_dec: list[SeqState],
                        ctx_hint: dict[float, int]) -> None:
        """Re-measure speculation lengths and ρ when the tiers change or the model is stale."""
        key = tuple(tpots)
        if self._rate is not None and key == self._rate_key and view.now_s - self._rate_at_s < self.rate_refresh_s:
            return
        tier_of = {t: i for i, t in enumerate(tpots)}
        decodes = [(tier_of[_tpot_key(s)], s.num_computed) for s in adm_dec]
        spec = view.spec
        if spec is not None and spec.alpha and spec.max_draft > 0:
            lengths = (choose_spec_lengths(view.perf, tpots, decodes, spec.alpha, spec.max_draft)
                       if self.adaptive_speculation else [spec.max_draft] * len(tpots))
        else:
            lengths = [0] * len(tpots)
        self._spec = dict(zip(tpots, lengths, strict=True))
        alpha = spec.alpha if spec is not None else None
        tiers = []
        for i, t in enumerate(tpots):
            ctxs = [c for j, c in decodes if j == i]
            ctx = sum(ctxs) / len(ctxs) if ctxs else ctx_hint.get(t, 1024)
            tiers.append(make_tier(t, lengths[i], alpha, int(ctx)))
        model = PrefillRateModel(view.perf, tiers, margin=self.capacity_margin)
        q = [1 + self._spec.get(_tpot_key(s), 0) for s in adm_dec]
        model.refresh(q, [s.num_computed for s in adm_dec], max(q, default=1) - 1)
        self._rate, self._rate_key, self._rate_at_s = model, key, view.now_s
        self.stats.count("rate_model_refreshes")

    def _admit(self, view: SchedulerView, pending: list[SeqState], adm_pre: list[SeqState],
               adm_dec: list[SeqState], be_dec: list[SeqState], be_pre: list[SeqState]) -> set[int]:
        now = view.now_s
        self._last_plan_s = now
        self.stats.count("plans")
        candidates = sorted(pending, key=lambda s: (s.ttft_deadline_s, s.req_id))[: self.max_candidates]
        tpots = sorted({_tpot_key(s) for s in adm_dec + adm_pre + candidates})
        ctx_hint: dict[float, int] = {}
        for s in candidates:
            ctx_hint.setdefault(_tpot_key(s), int(s.num_tokens + _predicted_out(view, s, s.stage_idx, None) / 2))
        self._refresh_models(view, tpots, adm_dec, ctx_hint)
        assert self._rate is not None
        tier_of = {t: i for i, t in enumerate(tpots)}
        base = [0] * len(tpots)
        for s in adm_dec:
            base[tier_of[_tpot_key(s)]] += 1
        bs = view.block_size
        # Candidates may use what the admitted requests' projected KV peak leaves; best-effort
        # blocks do not count (they are preempted first).
        kv_free = view.total_kv_blocks - self._update_kv_reserve(view, adm_dec + adm_pre)
        weights = self.tier_weights or {}
        reqs = [Candidate(s.req_id, _deadline(s), s.pending_tokens, tier_of[_tpot_key(s)], 0,
                          committed=True) for s in adm_pre]
        reqs += [Candidate(s.req_id, s.ttft_deadline_s, s.pending_tokens, tier_of[_tpot_key(s)],
                           max(0, math.ceil(_rest_of_turn(s, view, self.kv_length_quantile)[0] / bs)
                               - s.kv_blocks), weights.get(s.tier, 1.0))
                 for s in candidates]
        result = plan_admission(reqs, self._rate.rate, tuple(base), now, kv_free, beam_width=self.beam_width,
                                max_transitions=self.dp_max_transitions, time_limit_s=self.dp_time_limit_s,
                                surplus_rule=self.surplus_rule)
        self.stats.count("dp_fallbacks", int(result.fallback))
        self.stats.count("admitted", len(result.admitted))
        self.stats.count("declined", len(candidates) - len(result.admitted))
        return set(result.admitted)

    def _update_kv_reserve(self, view: SchedulerView, admitted: list[SeqState]) -> int:
        """Projected KV peak of the admitted requests; remembers how far above today's use it lies."""
        rest = [_rest_of_turn(s, view, self.kv_length_quantile) for s in admitted]
        final = np.array([tokens for tokens, _ in rest], dtype=float)
        ctx = np.fromiter((s.num_tokens for s in admitted), float, len(admitted))
        # Seconds per token from now on: the SLO pace over what is left (a reasoning answer may decode
        # slower than its thinking), or the replica's observed iteration pace when that is faster —
        # decodes run every iteration unless prefill needs their slot, and projecting them at SLO pace
        # would overstate their lifetimes (and so the KV peak) several-fold.
        seconds = np.array([sec for _, sec in rest], dtype=float)
        pace = np.minimum(seconds / np.maximum(1.0, final - ctx), self.iteration_pace_factor * self._iter_ewma_s)
        peak = projected_peak_blocks(ctx, final, pace, view.block_size)
        self._kv_growth_blocks = max(0, peak - sum(s.kv_blocks for s in admitted))
        return peak

    # -- steps 4 and 5 --------------------------------------------------------------------------
    def _spec_len(self, seq: SeqState, view: SchedulerView) -> int:
        if view.spec is None:
            return 0
        s = self._spec.get(_tpot_key(seq), 0 if self.adaptive_speculation else view.spec.max_draft)
        return max(0, min(s, seq.remaining_output - 1))

    def _fastest_spec(self, view: SchedulerView, adm_dec: list[SeqState], limit_s: float) -> list[int]:
        """Draft lengths for a batch of decodes alone: one length for all, the one with the most expected
        tokens per second that still fits the budget.

        The per-tier lengths (`speculation.py`, the authors' rule) maximise the room left for prefill
        and choose no drafts when every tier keeps pace without them. With no prefill waiting that
        room is worthless, while tokens per second are not: decodes run every iteration here, and on a
        memory-bound replica drafting shortens every request's life, and so its KV footprint
        (reasoning with α = 0.7: 1.12 req/s with the per-tier rule alone, vs 1.59 for vLLM's fixed k=4).
        """
        assert view.spec is not None
        best_ks, best_rate = [0] * len(adm_dec), 0.0
        ctx = [seq.num_computed for seq in adm_dec]
        for k in range(view.spec.max_draft + 1):
            ks = [min(k, max(seq.remaining_output - 1, 0)) for seq in adm_dec]
            draft = BatchDraft(view.perf, [1 + x for x in ks], ctx, max(ks, default=0))
            t = draft.latency_s()
            if t <= 0.0 or (k and t > limit_s):
                break
            rate = sum(expected_tokens(view.spec.alpha, x) for x in ks) / t
            if rate > best_rate * (1.0 + 1e-9):
                best_ks, best_rate = ks, rate
        return best_ks

    def _tier_pace_s(self, tpot_s: float, view: SchedulerView) -> float:
        """Longest gap between verifies that keeps a tier on pace: floor(E(s))·TPOT (TPOT without drafts)."""
        if view.spec is None:
            return tpot_s
        return tokens_per_verify(view.spec.alpha, self._spec.get(round(tpot_s, 6), 0)) * tpot_s

    def _tier_budget(self, perf: object, tpots: set[float], view: SchedulerView) -> float:
        """The batch's time budget from the admitted tiers, before the decodes' own slack shortens it: up to the
        tightest pace — or longer, within every admitted decode's slack (applied by the caller), when the
        iteration's fixed cost would otherwise eat more than 1 − min_batch_efficiency of each batch (the paper's
        A100 fits: ~30 ms per batch) — and at most the recent arrivals' TTFT slack (`_arrival_cap_s`).
        ``perf``: the model this call plans with (``view.perf``, or a rescaled one)."""
        if self._fixed_cost_s is None or self._fixed_cost_perf is not perf:
            self._fixed_cost_s = BatchDraft(perf, [1], [0]).latency_s()  # type: ignore[arg-type]
            self._fixed_cost_perf = perf
        floor = self._fixed_cost_s / (1.0 - self.min_batch_efficiency)
        pace = min(tpots) if view.spec is None else min(self._tier_pace_s(t, view) for t in tpots)
        return max(min(pace, self._arrival_cap_s()), floor)

    def _build_batch(self, view: SchedulerView, plan: BatchPlan, adm_dec: list[SeqState], adm_pre: list[SeqState],
                     be_dec: list[SeqState], be_pre: list[SeqState]) -> None:
        now = view.now_s
        # One pass over the admitted decodes (~10⁷ visits per capacity search on chatbot): their tiers, their
        # next-token deadlines (`_decode_deadline`, inlined) and the soonest one still ahead (the first
        # minimum, as min() picks it), and their cached contexts for the batch draft.
        tpots: set[float] = set()
        deadlines: list[float] = []
        dec_ctx: list[int] = []
        soonest: float | None = None
        for s in adm_dec:
            dec_ctx.append(s.num_computed)
            slo = s.req.stages[s.stage_idx].slo
            tpots.add(slo.tpot_s)
            due = s.stage_start_s + slo.ttft_s
            first = s.first_token_s
            if s.stage_out != 0 and first is not None:
                due = (due if due > first else first) + s.stage_out * slo.tpot_s
            deadlines.append(due)
            if due > now and (soonest is None or due < soonest):
                soonest = due
        for s in adm_pre:
            tpots.add(s.req.stages[s.stage_idx].slo.tpot_s)
        if tpots:
            budget = self._tier_budget(view.perf, tpots, view)
        elif be_dec or be_pre:
            budget = min(s.stage.slo.tpot_s for s in be_dec + be_pre)
        else:
            return
        if soonest is not None:  # late decodes already missed: they keep pace but do not shrink the budget
            budget = min(budget, soonest - now)
        adm_pre = sorted(adm_pre, key=lambda s: (_deadline(s), s.req.id))
        if adm_pre and now < adm_pre[0].ttft_deadline_s < now + budget and adm_pre[0].stage_out == 0:
            # The most urgent prefill could finish in this batch: end the batch by its deadline so
            # its first token is on time (a shorter batch, rather than a late request).
            head = adm_pre[0]
            if view.perf.prefill_latency_s(head.pending_tokens) <= head.ttft_deadline_s - now:
                budget = head.ttft_deadline_s - now
        limit = budget * (1.0 - self.latency_margin)
        # Prefill the batch could actually run: best-effort prompts only as far as KV beyond the admitted
        # requests' projected growth holds them (decodes skipping for prefill that then finds no
        # blocks would idle the replica: reasoning at a KV-full moment scheduled nothing at all).
        be_room = max(0, view.free_kv_blocks - self._kv_growth_blocks) * view.block_size
        # Likewise only prompts the engine can start: at its sequence limit (max_num_seqs) a waiting prompt beyond
        # the free slots cannot run this iteration, so it must not make decodes skip for it (reasoning at the
        # paper's 256-sequence limit: decodes skipped for prompts that then waited, every request lived longer,
        # the slots freed later, and admitted requests missed their TTFT; docs/slos-serve.md).
        be_oldest = sorted(be_pre, key=_ARRIVAL_KEY)  # best-effort work is served oldest first
        startable = _startable(view, adm_pre, be_oldest)
        # min(be_room, Σ best-effort pending), summed only until it reaches be_room (pending ≥ 0: the same int;
        # an overloaded replica queues thousands of best-effort prompts).
        be_demand = 0
        if be_room > 0:
            for s in be_pre:
                if startable is not None and id(s) not in startable:
                    continue
                be_demand += s.num_tokens - s.num_computed
                if be_demand >= be_room:
                    be_demand = be_room
                    break
        demand = sum(s.num_tokens - s.num_computed for s in adm_pre if startable is None or id(s) in startable)
        demand += be_demand
        if view.spec is None:
            spec_ks = [0] * len(adm_dec)
        elif demand or not self.adaptive_speculation:  # per-tier lengths (most prefill room), or fixed max
            spec_ks = [self._spec_len(seq, view) for seq in adm_dec]
        else:  # a decode-only batch: the length that decodes fastest
            spec_ks = self._fastest_spec(view, adm_dec, limit)

        # Every admitted decode first. They may skip this batch (when ahead of their deadlines), but
        # only when that buys prefill that would not fit otherwise: skipping stretches requests to
        # their SLO pace, and longer lives mean more concurrent contexts (KV) for nothing when no
        # prefill is waiting.
        if view.spec is None:
            draft = BatchDraft.decodes(view.perf, dec_ctx)
        else:
            draft = BatchDraft(view.perf, [1 + k for k in spec_ks], dec_ctx, max(spec_ks, default=0))
        order: list[tuple[SeqState, int, int]] = [(seq, 1, k) for seq, k in zip(adm_dec, spec_ks, strict=True)]
        if demand and draft.max_tokens_within(limit, 0, demand) < demand:
            horizon = now + budget
            # Decodes with enough slack skip this batch and are still on time after the next one. The draft
            # is built from the kept ones at once: its sums are of integers, exact in any order.
            order = [(seq, 1, k) for seq, k, due in zip(adm_dec, spec_ks, deadlines, strict=True)
                     if not due - horizon >= seq.req.stages[seq.stage_idx].slo.tpot_s]
            draft = BatchDraft(view.perf, [1 + k for _, _, k in order], [seq.num_computed for seq, _, _ in order],
                               max((k for _, _, k in order), default=0))

        def put(seq: SeqState, n: int) -> None:
            draft.add(n, seq.num_computed)
            order.append((seq, n, 0))

        for seq in adm_pre:
            n = draft.max_tokens_within(limit, seq.num_computed, seq.pending_tokens)
            if n <= 0:
                break
            put(seq, n)
        n_admitted = len(order)
        for seq in sorted(be_dec, key=_ARRIVAL_KEY):
            if draft.latency_with_s(1, seq.num_computed) > limit:
                break
            put(seq, 1)
        for seq in be_oldest:
            n = draft.max_tokens_within(limit, seq.num_computed, seq.pending_tokens)
            if n <= 0:
                break
            put(seq, n)
        if not order:  # the budget fits nothing (e.g. one huge first chunk): make progress anyway
            first = adm_pre or sorted(be_dec + be_pre, key=lambda s: s.req.arrival_s)
            if first:
                seq = first[0]
                put(seq, max(1, draft.max_tokens_within(budget, seq.num_computed, seq.pending_tokens)))
                n_admitted = 1 if adm_pre else 0
        order, n_admitted, cut = _within_engine_limits(view, order, n_admitted)
        if cut:
            self.stats.count("engine_limit_cuts")  # plans trimmed to the engine's token budget / sequence limit
        complete = self._allocate(view, plan, order, n_admitted, be_dec + be_pre) and not cut
        plan.budget_s = budget
        if complete:
            plan.predicted_latency_s = draft.latency_s()
        else:  # something was dropped or preempted: predict the batch that will actually run
            # Priced from the batch's sums when the model can (`BatchDraft`: the same float as
            # `batch_latency_s`, without the numpy arrays a scaled model builds, ~40 µs a call).
            kept = [(s, n, k) for s, n, k in order if s.req.id in plan.num_scheduled]
            plan.predicted_latency_s = BatchDraft(
                view.perf, [n + k for _, n, k in kept], [s.num_computed for s, _, _ in kept],
                max(plan.spec_tokens.values(), default=0)).latency_s() if kept else 0.0

    def _allocate(self, view: SchedulerView, plan: BatchPlan, order: list[tuple[SeqState, int, int]],
                  n_admitted: int, best_effort: list[SeqState]) -> bool:
        """Give KV blocks in priority order (``order[:n_admitted]`` is admitted work); True if all got them.

        Best-effort work only takes blocks the admitted requests will not need as they grow
        (`_kv_growth_blocks`, from the projected peak): otherwise it would be preempted and
        recomputed again and again, burning the capacity it was meant to use up. Admitted work that
        finds no free block preempts best-effort sequences (newest first) and, as a last resort when
        the projection was wrong, the newest admitted ones (vLLM's rule), so a misjudged peak
        degrades service instead of deadlocking the replica. As in vLLM, only sequences that already
        hold KV may displace admitted ones: a preempted request waiting to recompute its context
        would otherwise take the blocks of a newer running one, which then recomputes in turn.
        """
        bs = view.block_size
        needs = [x if (x := -(-(seq.num_computed + n + k) // bs) - seq.kv_blocks) > 0 else 0 for seq, n, k in order]
        free = view.free_kv_blocks
        adm_need = sum(needs[:n_admitted])
        if adm_need <= free and sum(needs[n_admitted:]) <= free - adm_need - self._kv_growth_blocks:
            for seq, n, k in order:  # the common case: everything fits
                plan.num_scheduled[seq.req.id] = n
                if k:
                    plan.spec_tokens[seq.req.id] = k
            return True
        be_ids = {s.req.id for s in best_effort}
        victims = sorted((s for s in view.running if s.req.id not in be_ids and s.kv_blocks > 0), key=_age_key)
        victims += sorted((s for s in view.running if s.req.id in be_ids and s.kv_blocks > 0), key=_age_key)
        preempted: set[int] = set()
        taken: dict[int, int] = {}  # blocks newly given to each scheduled sequence
        for i, ((seq, n, k), need) in enumerate(zip(order, needs, strict=True)):
            rid = seq.req.id
            if rid in preempted:
                continue
            if i >= n_admitted:
                if need > free - self._kv_growth_blocks:
                    continue  # no headroom beyond the admitted requests' growth
            else:
                while need > free:
                    v = _pop_victim(victims, seq, be_ids)
                    if v is None:
                        break
                    if v.req.id not in be_ids:
                        self.stats.count("admitted_preemptions")
                    preempted.add(v.req.id)
                    free += v.kv_blocks + taken.pop(v.req.id, 0)
                    plan.num_scheduled.pop(v.req.id, None)
                    plan.spec_tokens.pop(v.req.id, None)
                if need > free:
                    self.stats.count("kv_skips")
                    continue
            free -= need
            taken[rid] = need
            plan.num_scheduled[rid] = n
            if k:
                plan.spec_tokens[rid] = k
        if preempted:
            plan.preempted = sorted(preempted)
            self.stats.count("preemptions", len(preempted))
        return False
