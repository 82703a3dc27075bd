"""Baseline `sarathi`: stall-free chunked prefill with the token budget tuned to the tightest TPOT.

Sarathi-Serve (Agrawal et al., OSDI'24) batches every running decode with prefill chunks under a
fixed token budget chosen so that an iteration stays within the decode latency target. The
SLOs-Serve paper's `sarathi` baseline sets that budget to "the largest batch whose predicted time
is ≤ the tightest TPOT" (DESIGN.md, Facts: Evaluation). Under the paper's profiles batch time
depends on the token count alone, so that is a number of tokens; under our roofline model it also
depends on the decodes' contexts, so we re-derive the budget every iteration: the tokens that fit,
in vLLM's own scheduling order (running first, then waiting FCFS), before the predicted latency
reaches the tightest TPOT among the requests present. That is the strongest honest version of the
baseline: it never under-fills a batch the model says would still meet TPOT.

Everything else is vLLM V1's loop (`vllm_v1.VLLMScheduler`): FCFS, recompute preemption, no
admission control, speculation only when ``num_spec_tokens`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from slobench.schedulers.base import SchedulerView, SeqState
from slobench.schedulers.batching import BatchDraft
from slobench.schedulers.vllm_v1 import VLLMScheduler


@dataclass
class SarathiScheduler(VLLMScheduler):
    """Chunked prefill under a per-iteration token budget derived from the tightest TPOT."""

    max_num_batched_tokens: int = 16384  # hard cap on top of the time-derived budget
    num_spec_tokens: int | None = 0  # Sarathi-Serve does not speculate
    tpot_budget_fraction: float = 1.0  # budget = fraction × tightest TPOT (1.0 = the paper's rule)
    name: str = "sarathi"

    def time_budget_s(self, view: SchedulerView) -> float | None:
        """Tightest TPOT among the requests present (their current stage); None when idle."""
        tpots = [s.stage.slo.tpot_s for s in view.running] + [s.stage.slo.tpot_s for s in view.waiting]
        return min(tpots) * self.tpot_budget_fraction if tpots else None

    def steady_decode(self, view: SchedulerView) -> bool:
        """`slobench.schedulers.base.SteadyDecode`: with only decodes present, `token_budget` is their count
        (decodes always run), so `_schedule` gives each running sequence 1 token while KV lasts."""
        cls = type(self)
        if (cls._schedule is not VLLMScheduler._schedule or cls.token_budget is not SarathiScheduler.token_budget
                or cls.time_budget_s is not SarathiScheduler.time_budget_s):
            return False
        return bool(view.running) and self._decodes_only(view)

    def token_budget(self, view: SchedulerView) -> int:
        budget_s = self.time_budget_s(view)
        if budget_s is None:
            return self.max_num_batched_tokens
        decode_ctx: list[int] = []
        prefilling: list[SeqState] = []
        for seq in view.running:  # seq.is_prefilling, inlined (every sequence, every iteration)
            if seq.stage_out == 0 or seq.num_tokens - seq.num_computed > 1:
                prefilling.append(seq)
            else:
                decode_ctx.append(seq.num_computed)
        tokens = len(decode_ctx)
        draft = BatchDraft(view.perf, [1] * tokens, decode_ctx)  # decodes always run (stall-free), budget or not
        for seq in prefilling + list(view.waiting):
            n = draft.max_tokens_within(budget_s, seq.num_computed, min(seq.pending_tokens,
                                                                         self.max_num_batched_tokens - tokens))
            if n <= 0:
                break
            draft.add(n, seq.num_computed)
            tokens += n
        return max(tokens, 1)
