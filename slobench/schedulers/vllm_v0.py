"""Baseline `vllm-v0`: the SLOs-Serve paper's vLLM baseline — prefill-first, whole prompts.

vLLM's V0 scheduler without chunked prefill (`vllm/core/scheduler.py::_schedule_default`, vLLM
≤ 0.6): whenever waiting prompts fit, the iteration is a *prefill-only* batch of whole prompts
(FCFS, up to ``max_num_batched_tokens`` tokens and ``max_num_seqs`` sequences, stopping at the first
prompt whose KV does not fit); only when no prompt can be admitted does it run a decode batch of
every running sequence. KV shortage during decode preempts the newest running sequence by
recompute; preempted sequences return to the front of the queue. No admission control.

Defaults: V0 sets ``max_num_batched_tokens = max(max_model_len, 2048)`` when chunked prefill is
off; we use 16384, the longest context a shipped workload allows (reasoning), so every prompt fits
in one batch as V0 requires. ``max_num_seqs = 256`` is V0's default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slobench.schedulers.base import Admission, BatchPlan, SchedulerView, SeqState
from slobench.schedulers.stats import SchedulerStats, TimedSchedule


@dataclass
class VLLMv0Scheduler(TimedSchedule):
    """Prefill-first whole-prompt batching with recompute preemption."""

    max_num_batched_tokens: int = 16384
    max_num_seqs: int = 256
    name: str = "vllm-v0"
    stats: SchedulerStats = field(default_factory=SchedulerStats, repr=False, compare=False)

    def steady_decode(self, view: SchedulerView) -> bool:
        """`slobench.schedulers.base.SteadyDecode`: nothing waits (no prefill batch) and every running sequence
        decodes, so the decode batch gives each 1 token while KV lasts."""
        cls = type(self)
        if cls._schedule is not VLLMv0Scheduler._schedule or cls._decode_batch is not VLLMv0Scheduler._decode_batch:
            return False
        if view.waiting:
            return False
        return all(s.num_tokens - s.num_computed == 1 and s.stage_out > 0 for s in view.running)

    def _schedule(self, view: SchedulerView) -> BatchPlan:
        return self._prefill_batch(view) or self._decode_batch(view)

    def _prefill_batch(self, view: SchedulerView) -> BatchPlan | None:
        plan = BatchPlan()
        budget = self.max_num_batched_tokens
        free = view.free_kv_blocks
        running = len(view.running)
        for seq in view.waiting:
            n = seq.pending_tokens
            if n <= 0:
                continue
            if n > budget or running >= self.max_num_seqs:
                break
            need = seq.blocks_for(n, view.block_size) - seq.kv_blocks
            if need > free:
                break  # FCFS: the head of the queue blocks the rest
            free -= need
            budget -= n
            running += 1
            plan.num_scheduled[seq.req_id] = n
            if seq.admission is Admission.PENDING:
                plan.admission[seq.req_id] = Admission.ADMITTED
        return plan if plan.num_scheduled else None

    def _decode_batch(self, view: SchedulerView) -> BatchPlan:
        plan = BatchPlan()
        free = view.free_kv_blocks
        running: list[SeqState] = list(view.running)
        preempted: list[SeqState] = []
        i = 0
        while i < len(running):
            seq = running[i]
            n = seq.pending_tokens
            need = seq.blocks_for(n, view.block_size) - seq.kv_blocks
            while need > free and running[-1] is not seq:
                victim = running.pop()
                preempted.append(victim)
                free += victim.kv_blocks
            if need > free:
                running.pop()
                preempted.append(seq)
                break
            free -= max(need, 0)
            plan.num_scheduled[seq.req_id] = n
            i += 1
        plan.preempted = [s.req_id for s in preempted]
        return plan
