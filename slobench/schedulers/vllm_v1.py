"""Baseline: vLLM V1's default scheduling policy, re-expressed on `SchedulerView`.

Follows `vllm/v1/core/sched/scheduler.py` (`Scheduler.schedule`, vLLM 0.10–0.11):
1. Running requests first, in order: each gets ``min(pending tokens, remaining token budget)``
   (chunked prefill is always on in V1); speculative drafts, when configured, are added with a
   fixed length for every decode. If KV blocks run out, the *last* running request (lowest FCFS
   priority) is preempted by recompute and pushed to the front of the waiting queue; if that is the
   request being scheduled, it is skipped.
2. Only when nothing was preempted this step: waiting requests in FCFS order while the token budget
   lasts and fewer than ``max_num_seqs`` run; a prompt longer than the remaining budget is chunked;
   the head of the queue blocks the rest when its KV does not fit (no skipping ahead).
There is no admission control: every request is admitted.

Defaults are vLLM's own for the OpenAI-compatible server (`EngineArgs.get_batch_defaults`, vLLM
0.10 and later): on GPUs with ≥ 70 GiB whose name does not contain "a100" (H100, H200, MI300X)
``max_num_batched_tokens = 8192`` and ``max_num_seqs = 1024``; on every other GPU (A100 included,
see vLLM PR #17885) 2048 and 256. `vllm_defaults()` picks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slobench.schedulers.base import Admission, BatchPlan, SchedulerView, SeqState
from slobench.schedulers.stats import SchedulerStats, TimedSchedule

_LARGE_GPU_BYTES = 70 * 2**30


def vllm_defaults(gpu_memory_bytes: float | None, gpu_name: str = "") -> dict[str, int]:
    """vLLM's OpenAI-server defaults for this GPU (see module docstring); unknown GPU → H100 tier."""
    if gpu_memory_bytes is None or (gpu_memory_bytes >= _LARGE_GPU_BYTES and "a100" not in gpu_name.lower()):
        return {"max_num_batched_tokens": 8192, "max_num_seqs": 1024}
    return {"max_num_batched_tokens": 2048, "max_num_seqs": 256}


@dataclass
class VLLMScheduler(TimedSchedule):
    """vLLM V1 default policy: running first, FCFS, chunked prefill, recompute preemption."""

    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 1024
    num_spec_tokens: int | None = None  # None: use view.spec.max_draft when speculation is on
    name: str = "vllm"
    stats: SchedulerStats = field(default_factory=SchedulerStats, repr=False, compare=False)

    def token_budget(self, view: SchedulerView) -> int:
        """Tokens this iteration may process; vLLM's is the fixed ``max_num_batched_tokens`` (the engine's, from
        the view, when it gives one)."""
        cap = view.max_num_batched_tokens
        return self.max_num_batched_tokens if cap is None else cap

    def _max_seqs(self, view: SchedulerView) -> int:
        """The engine's ``max_num_seqs`` from the view when it gives one, else this policy's."""
        cap = view.max_num_seqs
        return self.max_num_seqs if cap is None else cap

    def steady_decode(self, view: SchedulerView) -> bool:
        """`slobench.schedulers.base.SteadyDecode`: nothing waits, no drafts, every running sequence decodes
        and all of them fit the token budget, so `_schedule` gives each 1 token while KV lasts."""
        cls = type(self)
        if cls._schedule is not VLLMScheduler._schedule or cls.token_budget is not VLLMScheduler.token_budget:
            return False  # a subclass plans differently
        return len(view.running) <= self.token_budget(view) and self._decodes_only(view)

    def _decodes_only(self, view: SchedulerView) -> bool:
        """Nothing waits, this policy adds no drafts, and every running sequence is decoding."""
        if view.waiting:
            return False
        if view.spec is not None and (view.spec.max_draft if self.num_spec_tokens is None else self.num_spec_tokens):
            return False
        return all(s.num_tokens - s.num_computed == 1 and s.stage_out > 0 for s in view.running)

    def _schedule(self, view: SchedulerView) -> BatchPlan:
        plan = BatchPlan()
        budget = self.token_budget(view)
        free = view.free_kv_blocks
        bs = view.block_size
        spec_k = 0
        if view.spec is not None:
            spec_k = view.spec.max_draft if self.num_spec_tokens is None else self.num_spec_tokens
        running = list(view.running)
        preempted: list[SeqState] = []
        scheduled_ids: set[int] = set()
        num_scheduled = plan.num_scheduled
        i = 0
        # Properties (pending_tokens, is_prefilling, blocks_for) inlined: this loop runs for every sequence of
        # every iteration, and the simulator's speed is mostly this loop's.
        while i < len(running) and budget > 0:
            seq = running[i]
            computed = seq.num_computed
            pending = seq.num_tokens - computed
            n = pending if pending < budget else budget
            if n <= 0:
                i += 1
                continue
            k = 0
            if spec_k and n == 1 and seq.stage_out != 0 and pending <= 1:  # a decode: drafts on top
                # Drafts never pass the stage's output length as the policy knows it: the public request's
                # max_tokens bound, as in vLLM (the true length only under PolicySpec.oracle_lengths).
                left = seq.req.stages[seq.stage_idx].output_tokens - seq.stage_out - 1
                k = min(spec_k, budget - n, left if left > 0 else 0)
                if k < 0:
                    k = 0
            need = -(-(computed + n + k) // bs) - seq.kv_blocks  # = seq.blocks_for(n + k, bs) - held
            rid = seq.req.id
            while need > free:
                victim = running.pop()  # lowest priority: the last one in the running queue
                if victim is seq:
                    break
                preempted.append(victim)
                if victim.req_id in scheduled_ids:  # cannot happen in FCFS order, kept as a guard
                    scheduled_ids.discard(victim.req_id)
                    budget += plan.num_scheduled.pop(victim.req_id) + plan.spec_tokens.pop(victim.req_id, 0)
                free += victim.kv_blocks
            if need > free:
                preempted.append(seq)
                free += seq.kv_blocks
                break
            if need > 0:
                free -= need
            num_scheduled[rid] = n
            if k:
                plan.spec_tokens[rid] = k
            scheduled_ids.add(rid)
            budget -= n + k
            i += 1
        plan.preempted = [s.req_id for s in preempted]

        if not preempted:
            num_running = len(running)
            max_num_seqs = self._max_seqs(view)
            for seq in view.waiting:
                if budget <= 0 or num_running >= max_num_seqs:
                    break
                computed = seq.num_computed
                pending = seq.num_tokens - computed
                n = pending if pending < budget else budget
                if n <= 0:
                    continue
                need = -(-(computed + n) // bs) - seq.kv_blocks
                if need > free:
                    break  # FCFS: the head of the queue blocks the rest
                free -= need
                rid = seq.req.id
                num_scheduled[rid] = n
                if seq.admission is Admission.PENDING:
                    plan.admission[rid] = Admission.ADMITTED
                budget -= n
                num_running += 1
        return plan
