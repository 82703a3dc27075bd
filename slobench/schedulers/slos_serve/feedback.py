"""Feedback from observed iteration times into slos-serve's planning model.

The policy plans with a latency model (`SchedulerView.perf`) that is not the engine's ground truth: a real
GPU, or a simulator configured with a bias and noise against the planning model, runs iterations longer or
shorter than predicted. The policy sees time pass between its ``schedule()`` calls: after a plan that
scheduled work, the next call comes when that iteration ended, so ``now − previous now`` is the iteration's
observed time (plus the engine's own overhead between iterations, which a real server pays too) and
``plan.predicted_latency_s`` is what the policy expected. `LatencyFeedback` keeps an EWMA of their ratio and
`scaled` returns the latency model with every prediction multiplied by it, so budgets, chunk sizes, the
prefill-rate model and zero-load TTFTs follow what the replica really does.

A dead band keeps runs whose model is exact bit-identical: the ratio is applied only once it is outside
``[1 − dead_band, 1 + dead_band]`` (the simulator without model error gives ratios of 1 up to rounding),
and the ratio is clamped to ``[min_ratio, max_ratio]`` so one stall (a long idle gap that is not an
iteration) cannot wreck the model; gaps after plans that scheduled nothing are not samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class ScaledLatency:
    """A latency model whose predictions are ``factor`` × the wrapped model's (everything else passes through)."""

    __slots__ = ("base", "factor", "name", "latency_from_stats", "tokens_within_from_stats")

    def __init__(self, base: Any, factor: float) -> None:
        self.base = base
        self.factor = factor
        self.name = f"{getattr(base, 'name', 'perf')}×{factor:.3f}"
        fast = getattr(base, "latency_from_stats", None)
        self.latency_from_stats = self.tokens_within_from_stats = None
        if fast is not None:
            # Named arguments, not *args: batch builders call this ~10⁶ times per capacity search.
            def scaled(s_q: float, s_c: float, s_qc: float, s_qq: float, n: int, spec_steps: int = 0) -> float:
                return factor * fast(s_q, s_c, s_qc, s_qq, n, spec_steps)

            self.latency_from_stats = scaled
            hint = getattr(base, "tokens_within_from_stats", None)
            if hint is not None:  # an estimate only (BatchDraft checks it with the exact scaled latency)
                self.tokens_within_from_stats = lambda budget_s, *a: hint(budget_s / factor, *a)

    def batch_latency_s(self, q_lens: Any, ctx_lens: Any, spec_steps: int = 0) -> float:
        return self.factor * self.base.batch_latency_s(np.asarray(q_lens), np.asarray(ctx_lens), spec_steps)

    def prefill_latency_s(self, prompt_tokens: int) -> float:
        return self.factor * self.base.prefill_latency_s(prompt_tokens)

    def kv_capacity_tokens(self) -> int:
        return self.base.kv_capacity_tokens()

    def __getattr__(self, item: str) -> Any:
        return getattr(self.base, item)


@dataclass
class LatencyFeedback:
    """EWMA of observed ÷ predicted iteration time (see the module docstring)."""

    weight: float = 0.05  # EWMA weight of one iteration (≈ the last 20 iterations)
    dead_band: float = 0.03
    min_ratio: float = 0.5
    max_ratio: float = 3.0
    ratio: float = 1.0
    samples: int = 0
    _prev_now_s: float | None = field(default=None, repr=False)
    _prev_pred_s: float = field(default=0.0, repr=False)
    _cache: tuple[Any, float, Any] | None = field(default=None, repr=False)

    def observe(self, now_s: float) -> None:
        """A new ``schedule()`` call at ``now_s``: the previous plan's iteration (if any) has ended."""
        if self._prev_now_s is not None and self._prev_pred_s > 0.0:
            gap = now_s - self._prev_now_s
            if gap > 0.0 and math.isfinite(gap):
                r = min(self.max_ratio, max(self.min_ratio, gap / self._prev_pred_s))
                self.ratio += self.weight * (r - self.ratio)
                self.samples += 1
        self._prev_now_s = now_s
        self._prev_pred_s = 0.0

    def planned(self, predicted_latency_s: float | None) -> None:
        """The plan just returned predicts this iteration time (None or 0: nothing scheduled)."""
        self._prev_pred_s = predicted_latency_s or 0.0

    @property
    def factor(self) -> float:
        """The scale applied to predictions: 1 inside the dead band."""
        return self.ratio if abs(self.ratio - 1.0) > self.dead_band else 1.0

    def scaled(self, perf: Any) -> Any:
        """``perf`` as the policy should plan with it now (the same object while the factor is 1)."""
        f = self.factor
        if f == 1.0:
            return perf
        if self._cache is not None and self._cache[0] is perf and abs(self._cache[1] - f) <= 0.005:
            return self._cache[2]  # re-wrap only when the factor moved (keeps per-call work small)
        wrapped = ScaledLatency(perf, f)
        self._cache = (perf, f, wrapped)
        return wrapped
