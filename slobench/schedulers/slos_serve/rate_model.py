"""How fast can a replica prefill while it keeps its decodes on pace? ρ(decode load) in tokens/s.

The admission DP (`admission.py`) needs, for many hypothetical decode loads, the prefill token
rate left over once every decoding request gets its tokens on time. Asking the latency model
for each would be far too slow, so we linearise around the replica's current operating point,
refreshed periodically (SLOs-Serve's batch planner does the same job with its fitted
piecewise-linear T(n, s); here the latency model may be any `LatencyModel`):

* Batches last ``L`` = the tightest pace among the tiers present (a tier's pace is
  ``floor(E(s))·TPOT`` when it speculates ``s`` drafts, else its TPOT).
* ``P0(L)``: prefill tokens an empty batch of length ``L`` holds (one chunk, from the model).
* ``w_t(L)``: prefill tokens displaced by one more tier-``t`` decode (``1 + s_t`` tokens at the
  tier's typical context), by finite difference at the current decode set.
* A tier-``t`` decode needs a verify only every ``floor(E(s_t))·TPOT_t`` seconds, so it is in a
  fraction ``f_t = min(1, L / pace_t)`` of batches (the loose tier skips batches it can afford to).

    ρ(n) = max(0, P0(L) − Σ_t f_t·w_t·n_t) / L · margin

``margin`` (< 1) absorbs the linearisation and chunking error. Pure arithmetic after `refresh`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from slobench.perf.base import LatencyModel
from slobench.perf.speculative import tokens_per_verify
from slobench.schedulers.batching import BatchDraft

FD_DECODES = 8  # finite-difference step: decodes added to measure the marginal cost


@dataclass(frozen=True, slots=True)
class Tier:
    """A TPOT class: its per-token target, speculation length and typical context of a decode."""

    tpot_s: float
    spec_len: int = 0
    tokens_per_verify: int = 1  # floor(E(spec_len)); 1 without speculation
    ctx_tokens: int = 1024

    @property
    def pace_s(self) -> float:
        """Longest interval between this tier's verify steps that keeps its per-token deadlines."""
        return self.tokens_per_verify * self.tpot_s


def make_tier(tpot_s: float, spec_len: int, alpha: float | None, ctx_tokens: int) -> Tier:
    return Tier(tpot_s, spec_len if alpha else 0, tokens_per_verify(alpha, spec_len), max(1, int(ctx_tokens)))


@dataclass
class PrefillRateModel:
    """ρ(decode counts per tier) after `refresh`; see the module docstring for the model."""

    perf: LatencyModel
    tiers: list[Tier]
    margin: float = 0.9
    _p0: dict[float, float] = field(default_factory=dict)
    _w: dict[tuple[float, int], float] = field(default_factory=dict)

    def refresh(self, base_q: Sequence[int], base_ctx: Sequence[int], spec_steps: int) -> None:
        """Re-measure P0 and the marginal costs at the current decode set (q, ctx lists)."""
        self._p0.clear()
        self._w.clear()
        for L in sorted({t.pace_s for t in self.tiers}):
            empty = BatchDraft(self.perf, spec_steps=spec_steps)
            self._p0[L] = float(empty.max_tokens_within(L, 0, 1 << 20))
            base = BatchDraft(self.perf, list(base_q), list(base_ctx), spec_steps)
            p_base = base.max_tokens_within(L, 0, 1 << 20)
            for i, t in enumerate(self.tiers):
                more = BatchDraft(self.perf, list(base_q) + [1 + t.spec_len] * FD_DECODES,
                                  list(base_ctx) + [t.ctx_tokens] * FD_DECODES, max(spec_steps, t.spec_len))
                p_more = more.max_tokens_within(L, 0, 1 << 20)
                # A decode that no longer fits at all makes the marginal cost "everything left".
                w = (p_base - p_more) / FD_DECODES if p_more > 0 or p_base == 0 else (p_base + 1) / FD_DECODES
                self._w[(L, i)] = max(w, 1.0 + t.spec_len)

    def batch_s(self, counts: Sequence[int]) -> float:
        """Batch length for a decode load: the tightest pace among tiers present (any when none)."""
        paces = [t.pace_s for t, n in zip(self.tiers, counts, strict=True) if n > 0]
        return min(paces) if paces else min(t.pace_s for t in self.tiers)

    def rate(self, counts: Sequence[int]) -> tuple[float, float]:
        """(prefill tokens per second, batch length) with ``counts[t]`` decodes in tier ``t``."""
        L = self.batch_s(counts)
        p = self._p0[L]
        for i, (t, n) in enumerate(zip(self.tiers, counts, strict=True)):
            if n:
                p -= min(1.0, L / t.pace_s) * self._w[(L, i)] * n
        return (max(0.0, p) / L * self.margin, L)
