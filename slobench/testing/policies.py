"""Test policies: small, importable ``package.module:Class`` policies for the simulator and for vLLM's
engine-core process (which imports them by name, so they cannot live in a test module).

``slobench run --scheduler slobench.testing.policies:Fcfs --scheduler-options '{"token_budget": 64}'``
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slobench.schedulers.base import Admission, BatchPlan, SchedulerView
from slobench.schedulers.stats import SchedulerStats, TimedSchedule


@dataclass
class Fcfs(TimedSchedule):
    """The simplest complete policy: running sequences first, then waiting ones in queue order, each
    given all its pending tokens (prompts chunked at the budget) while ``token_budget`` tokens and
    ``max_seqs`` sequences last and their KV fits; admits everything, never preempts.

    Its options are deliberately not vLLM's names, so a test can tell its own options (given once in
    the run's `PolicySpec`) from what an engine offers."""

    token_budget: int = 2048  # tokens per iteration
    max_seqs: int = 256  # sequences per iteration
    name: str = "fcfs-test"
    stats: SchedulerStats = field(default_factory=SchedulerStats, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.token_budget < 1 or self.max_seqs < 1:
            raise ValueError(f"token_budget and max_seqs must be ≥ 1 (got {self.token_budget}, {self.max_seqs})")

    def _schedule(self, view: SchedulerView) -> BatchPlan:
        plan = BatchPlan()
        budget, free = self.token_budget, view.free_kv_blocks
        for queue, waiting in ((view.running, False), (view.waiting, True)):
            for seq in queue:
                if budget <= 0 or len(plan.num_scheduled) >= self.max_seqs:
                    break
                n = min(seq.pending_tokens, budget)
                if n <= 0:
                    continue
                need = max(seq.blocks_for(n, view.block_size) - seq.kv_blocks, 0)
                if need > free:
                    if waiting:
                        break  # FCFS: the head of the queue blocks the rest
                    continue
                free -= need
                budget -= n
                plan.num_scheduled[seq.req_id] = n
        self.stats.count("scheduled_tokens", plan.total_tokens)
        return plan


class RejectEvenPolicy:
    """Test double for the adapter: vLLM's default policy, except that requests with an even
    (adapter-assigned, arrival-ordered) id are rejected and odd ones are served as best-effort
    (``parity=1``: the other way round). Load it in vLLM with
    ``--scheduler slobench.testing.policies:RejectEvenPolicy [--scheduler-options '{"parity": 1}']``."""

    name = "reject-even"

    def __init__(self, parity: int = 0) -> None:
        from slobench.schedulers.registry import make_scheduler

        if parity not in (0, 1):
            raise ValueError(f"parity must be 0 or 1 (got {parity})")
        self.parity = parity
        self.inner = make_scheduler("vllm")

    def schedule(self, view: SchedulerView) -> BatchPlan:
        plan = self.inner.schedule(view)
        for s in view.waiting:
            if s.admission is not Admission.PENDING:
                continue
            if s.req_id % 2 == self.parity:
                plan.admission[s.req_id] = Admission.REJECTED
                plan.num_scheduled.pop(s.req_id, None)
            elif s.req_id in plan.num_scheduled:
                plan.admission[s.req_id] = Admission.BEST_EFFORT
        return plan
