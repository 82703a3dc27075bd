"""SLO-adaptive speculative decoding: how many draft tokens each TPOT tier should verify.

SLOs-Serve (§3.2; the authors' `SDBatchPlanner::plan`) picks speculation lengths per SLO tier so
that every tier keeps its per-token pace while the batch leaves the most room for prefill:
enumerate a *bottleneck* tier b and its length s_b; that fixes the verify interval
``U = floor(E(s_b))·TPOT_b``; every other tier k takes the smallest s_k with
``floor(E(s_k))·TPOT_k ≥ U`` (tighter tiers speculate longer); the batch of length U then holds
``P(U)`` prefill tokens next to the decodes; choose the combination with the most prefill
tokens per second, P(U)/U. s = 0 everywhere (no speculation) is always a candidate, so when
drafting does not pay (compute-bound, low α) the policy turns it off.

The policy uses these lengths when prefill is waiting; a decode-only batch takes the single length
with the most expected tokens per second instead (`policy.SLOsServeScheduler._fastest_spec`), since
there the prefill room this rule maximises is worth nothing.

E(s) = (1 − α^(s+1))/(1 − α) counts the bonus token (see `slobench.perf.speculative`); we use its
floor, as the authors do, so a tier is paced by tokens it gets in (almost) every verify.
"""

from __future__ import annotations

from collections.abc import Sequence

from slobench.perf.base import LatencyModel
from slobench.perf.speculative import tokens_per_verify
from slobench.schedulers.batching import BatchDraft


def choose_spec_lengths(perf: LatencyModel, tier_tpots: Sequence[float], decodes: Sequence[tuple[int, int]],
                        alpha: float, max_draft: int) -> list[int]:
    """Draft length per tier (same order as ``tier_tpots``).

    ``decodes``: (tier index, context tokens) of every decode the replica runs now.
    """
    n = len(tier_tpots)
    if n == 0 or max_draft <= 0:
        return [0] * n
    per_verify = [tokens_per_verify(alpha, s) for s in range(max_draft + 1)]
    present = sorted({t for t, _ in decodes})
    best: tuple[float, list[int]] = (-1.0, [0] * n)
    for b in present or range(n):
        for s_b in range(max_draft + 1):
            unit = per_verify[s_b] * tier_tpots[b]
            lengths = [0] * n
            ok = True
            for k in range(n):
                s_k = next((s for s in range(max_draft + 1) if per_verify[s] * tier_tpots[k] >= unit - 1e-12), None)
                if s_k is None:
                    ok = False
                    break
                lengths[k] = s_k
            if not ok:
                continue
            draft = BatchDraft(perf, [1 + lengths[t] for t, _ in decodes], [c for _, c in decodes],
                               max((lengths[t] for t, _ in decodes), default=0))
            per_s = draft.max_tokens_within(unit, 0, 1 << 20) / unit
            if per_s > best[0] + 1e-9:
                best = (per_s, lengths)
    return best[1]
