"""The scheduler boundary: what a policy sees (`SchedulerView`) and what it returns (`BatchPlan`).

One interface for every executor: the discrete-event simulator builds a `SchedulerView` from its
own state each iteration, and the vLLM adapter builds one from vLLM's request objects. Policies are
pure Python, deterministic, do no I/O and import no engine. As in vLLM V1, sequences follow
vLLM's token accounting: ``num_tokens`` = prompt tokens available + output tokens sampled so far;
``num_computed`` = tokens whose KV is in the cache. A sequence can process up to
``num_tokens - num_computed`` tokens this iteration; when it catches up, the engine samples the
next output token (or ``1 + accepted drafts`` with speculation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from slobench.metrics.records import Admission
from slobench.perf.base import LatencyModel
from slobench.workloads.model import Request, Stage

if TYPE_CHECKING:
    from slobench.schedulers.lengths import LengthInfo


@dataclass(slots=True)
class SeqState:
    """Engine-owned, scheduler-readable state of one in-flight request (its current stage)."""

    req: Request
    stage_idx: int = 0
    stage_start_s: float = 0.0
    num_tokens: int = 0
    num_computed: int = 0
    stage_out: int = 0
    first_token_s: float | None = None
    admission: Admission = Admission.PENDING
    kv_blocks: int = 0
    num_preemptions: int = 0

    @property
    def req_id(self) -> int:
        return self.req.id

    @property
    def stage(self) -> Stage:
        return self.req.stages[self.stage_idx]

    @property
    def tier(self) -> str:
        return self.req.tier

    @property
    def pending_tokens(self) -> int:
        """Tokens this sequence could process now (prefill remainder, or 1 when decoding)."""
        return self.num_tokens - self.num_computed

    @property
    def is_prefilling(self) -> bool:
        """Still before the stage's first output token (includes recompute after preemption)."""
        return self.stage_out == 0 or self.pending_tokens > 1

    @property
    def remaining_output(self) -> int:
        """Output tokens left in this stage by ``req``'s stage length: without the oracle, ``req`` is the
        public request and this is what the ``max_tokens`` bound leaves (see `schedulers.lengths`)."""
        return self.stage.output_tokens - self.stage_out

    @property
    def ttft_deadline_s(self) -> float:
        return self.stage_start_s + self.stage.slo.ttft_s

    @property
    def next_token_deadline_s(self) -> float:
        """Deadline of the next output token of this stage under SLOs-Serve's per-token rule."""
        if self.stage_out == 0 or self.first_token_s is None:
            return self.ttft_deadline_s
        t0 = max(self.ttft_deadline_s, self.first_token_s)
        return t0 + self.stage_out * self.stage.slo.tpot_s

    def blocks_for(self, extra_tokens: int, block_size: int) -> int:
        """KV blocks this sequence must hold after computing ``extra_tokens`` more tokens."""
        return math.ceil((self.num_computed + extra_tokens) / block_size)


@dataclass(slots=True)
class SpecConfig:
    """Speculative decoding available to the engine: up to ``max_draft`` drafts, acceptance ``alpha``."""

    max_draft: int = 4
    alpha: float = 0.7


@dataclass(slots=True)
class SchedulerView:
    """What a policy may look at when planning one iteration."""

    now_s: float
    waiting: list[SeqState]
    running: list[SeqState]
    block_size: int
    total_kv_blocks: int
    free_kv_blocks: int
    perf: LatencyModel
    spec: SpecConfig | None = None
    # The engine's batch limits (vLLM's ``max_num_batched_tokens`` / ``max_num_seqs``): a plan must keep its
    # tokens (drafts included) and its running sequences within them. None: the engine did not say (a policy
    # then uses its own settings).
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    # Output-length information (`slobench.schedulers.lengths`): an online predictor, or the oracle under
    # ``PolicySpec.oracle_lengths``. None only for views built by hand (tests): policies then use the bound.
    lengths: LengthInfo | None = None


@dataclass(slots=True)
class BatchPlan:
    """One iteration's decision. The engine applies it; it never second-guesses it.

    num_scheduled: request id -> tokens processed this iteration (prefill chunk, or 1 for decode).
    spec_tokens: request id -> draft tokens verified on top of the 1 decode token.
    preempted: request ids whose KV is freed (recompute preemption); they return to waiting.
    admission: request id -> new admission decision (admitted, best-effort, rejected).
    budget_s / predicted_latency_s: the iteration time the policy aimed for and what its perf
    model predicts (kept for batch-composition timelines; None when the policy has no budget).
    """

    num_scheduled: dict[int, int] = field(default_factory=dict)
    spec_tokens: dict[int, int] = field(default_factory=dict)
    preempted: list[int] = field(default_factory=list)
    admission: dict[int, Admission] = field(default_factory=dict)
    budget_s: float | None = None
    predicted_latency_s: float | None = None

    @property
    def total_tokens(self) -> int:
        return sum(self.num_scheduled.values()) + sum(self.spec_tokens.values())


class Scheduler(Protocol):
    """A batching policy: called once per engine iteration."""

    name: str

    def schedule(self, view: SchedulerView) -> BatchPlan:
        ...


class SteadyDecode(Protocol):
    """Optional, for the simulator's speed: a policy that can say its plan repeats while only decodes happen.

    ``steady_decode(view)`` is True only if `schedule` would return, for ``view`` and for every view that
    follows from it by decode-only iterations (each running sequence one more token; no arrivals, admissions,
    preemptions or stage ends; enough free KV for the new tokens), the same kind of plan: every running
    sequence, in queue order, 1 token; no drafts, preemptions, admissions; ``budget_s`` None. The simulator
    then runs those iterations without calling `schedule` and reports them with ``note_steady_calls(n,
    seconds)`` (n calls, ``seconds`` in all), so call counts stay exact. Engines that never ask (the vLLM
    adapter) see no difference; a policy without the method is always asked with `schedule`.
    """

    def steady_decode(self, view: SchedulerView) -> bool:
        ...

    def note_steady_calls(self, n: int, seconds: float) -> None:
        ...


class SteadyReplay(Protocol):
    """Optional, with `SteadyDecode`, for a policy whose calls update state even when the plan repeats.

    slos-serve plans a decode-only iteration as `SteadyDecode` describes, except that ``budget_s`` is set and
    every call feeds its latency feedback and iteration-pace estimates. The simulator then computes the window's
    iterations first and calls ``steady_replay(view, starts, free_blocks, new_blocks, latencies)`` with, per
    iteration j, the time of its call, the free KV blocks before it, the blocks it takes and the planning model's
    latency of its batch. The policy updates its state exactly as the calls would have, stops at the first
    iteration it would have planned differently, and returns ``(k, budget_s)``: the iterations it
    accepts (the window ends there) and the ``budget_s`` its plans would have carried.
    """

    def steady_replay(self, view: SchedulerView, starts: list[float], free_blocks: list[int], new_blocks: list[int],
                      latencies: list[float]) -> tuple[int, list[float]]:
        ...

