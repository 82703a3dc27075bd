"""Batch-building arithmetic shared by the time-budgeted policies (sarathi, slos-serve).

A policy with a time budget asks one question again and again: "how many more tokens of this
sequence fit into the batch before its predicted latency exceeds the budget?". `BatchDraft`
answers by exponential + binary search on the latency model, which only has to be monotone in
the added tokens (every `LatencyModel` is). It keeps the batch's sums (Σq, Σctx, Σq·ctx, Σq², n)
so a model with ``latency_from_stats`` (the roofline and piecewise models) answers each probe in
O(1) however large the batch; any other `LatencyModel` is asked with the full lists. A model that also
offers ``tokens_within_from_stats`` (the roofline: a closed-form root of its latency) gives the search a
starting point; the answer is still decided by the exact latency (stepping from there to the largest n
that fits), so it is the binary search's answer, bit for bit, in ~3 probes instead of ~25.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import mul

from slobench.perf.base import LatencyModel


class BatchDraft:
    """A batch under construction: ``q[i]`` tokens processed for sequence i on top of ``ctx[i]`` cached."""

    __slots__ = ("perf", "q", "ctx", "spec_steps", "_sums", "_fast", "_hint")

    def __init__(self, perf: LatencyModel, q: Sequence[int] = (), ctx: Sequence[int] = (), spec_steps: int = 0) -> None:
        self.perf = perf
        self.q = list(map(int, q))
        self.ctx = list(map(int, ctx))
        self.spec_steps = int(spec_steps)
        if len(self.q) != len(self.ctx):
            raise ValueError(f"q and ctx differ in length ({len(self.q)} vs {len(self.ctx)})")
        # Integer sums (exact in any order), converted once: the same floats as summing pairwise.
        qc = sum(map(mul, self.q, self.ctx))
        self._sums = [float(sum(self.q)), float(sum(self.ctx)), float(qc), float(sum(map(mul, self.q, self.q)))]
        self._fast = getattr(perf, "latency_from_stats", None)
        self._hint = getattr(perf, "tokens_within_from_stats", None) if self._fast is not None else None

    @classmethod
    def decodes(cls, perf: LatencyModel, ctx: list[int]) -> BatchDraft:
        """``BatchDraft(perf, [1] * len(ctx), ctx)``: one token for each sequence (plain decodes), built without
        the general constructor's conversions and products (ints, so Σq·ctx = Σctx and Σq² = n exactly: the
        same floats). Takes ``ctx`` (ints) as its own list."""
        self = cls.__new__(cls)
        self.perf = perf
        n = len(ctx)
        self.q = [1] * n
        self.ctx = ctx
        self.spec_steps = 0
        s_c = float(sum(ctx))
        self._sums = [float(n), s_c, s_c, float(n)]
        self._fast = getattr(perf, "latency_from_stats", None)
        self._hint = getattr(perf, "tokens_within_from_stats", None) if self._fast is not None else None
        return self

    def add(self, tokens: int, ctx_tokens: int) -> None:
        self.q.append(int(tokens))
        self.ctx.append(int(ctx_tokens))
        s = self._sums
        s[0] += tokens
        s[1] += ctx_tokens
        s[2] += tokens * ctx_tokens
        s[3] += tokens * tokens

    @property
    def total_tokens(self) -> int:
        return int(self._sums[0])

    def latency_s(self) -> float:
        """Predicted latency of the batch as drafted (0 when empty)."""
        if not self.q:
            return 0.0
        if self._fast is not None:
            s = self._sums
            return self._fast(s[0], s[1], s[2], s[3], len(self.q), self.spec_steps)
        return self.perf.batch_latency_s(self.q, self.ctx, self.spec_steps)

    def latency_with_s(self, tokens: int, ctx_tokens: int) -> float:
        """Predicted latency if ``tokens`` more tokens of a sequence at ``ctx_tokens`` were added."""
        if self._fast is not None:
            s = self._sums
            return self._fast(s[0] + tokens, s[1] + ctx_tokens, s[2] + tokens * ctx_tokens, s[3] + tokens * tokens,
                              len(self.q) + 1, self.spec_steps)
        self.q.append(tokens)
        self.ctx.append(ctx_tokens)
        try:
            return self.perf.batch_latency_s(self.q, self.ctx, self.spec_steps)
        finally:
            self.q.pop()
            self.ctx.pop()

    def max_tokens_within(self, budget_s: float, ctx_tokens: int, cap: int) -> int:
        """Largest n ≤ ``cap`` such that adding n tokens at ``ctx_tokens`` keeps latency ≤ ``budget_s``."""
        if cap <= 0 or self.latency_with_s(1, ctx_tokens) > budget_s:
            return 0
        if self.latency_with_s(cap, ctx_tokens) <= budget_s:
            return cap
        hint = self._hint
        if hint is not None and cap > 2:
            n = self._from_hint(hint, budget_s, ctx_tokens, cap)
            if n:
                return n
        lo, hi = 1, 2  # invariant: lo fits; find hi that does not, by doubling, then bisect
        while hi < cap and self.latency_with_s(hi, ctx_tokens) <= budget_s:
            lo, hi = hi, hi * 2
        hi = min(hi, cap)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.latency_with_s(mid, ctx_tokens) <= budget_s:
                lo = mid
            else:
                hi = mid
        return lo

    def _from_hint(self, hint, budget_s: float, ctx_tokens: int, cap: int, max_steps: int = 8) -> int:  # noqa: ANN001
        """`max_tokens_within`'s answer found by stepping from the model's estimate, when 1 fits and ``cap``
        does not (checked by the caller); 0 if the estimate is more than ``max_steps`` off (then the caller
        bisects). The latency is monotone in n (every operation in it is, rounding included), so the n
        that fits with n + 1 not fitting is the unique answer, the same one the bisection finds."""
        s = self._sums
        g = hint(budget_s, s[0], s[1], s[2], s[3], len(self.q), self.spec_steps, ctx_tokens)
        n = 1 if not g >= 1.0 else cap - 1 if g >= cap - 1 else int(g)  # NaN → 1
        fits = self.latency_with_s
        if fits(n, ctx_tokens) <= budget_s:
            for _ in range(max_steps):
                if n + 1 >= cap or fits(n + 1, ctx_tokens) > budget_s:
                    return n
                n += 1
            return 0
        for _ in range(max_steps):
            n -= 1
            if n <= 1 or fits(n, ctx_tokens) <= budget_s:
                return max(n, 1)
        return 0
