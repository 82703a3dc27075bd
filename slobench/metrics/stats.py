"""Interval statistics shared by the capacity search and the reports (below both, so arrows point down)."""

from __future__ import annotations

import math

# Two-sided normal quantiles of the confidences slobench uses, as the floats scipy's ``ndtri(0.5 + c/2)`` gives
# (`tests/test_capacity.py` checks them bit for bit): importing scipy.special costs ~0.1 s of every CLI start, before
# any search can begin. Other confidences ask ndtri itself (scipy.special, not scipy.stats: the same ndtri that
# norm.ppf calls, without scipy.stats' ~1 s import).
TWO_SIDED_Z = {0.95: 1.959963984540054, 0.99: 2.5758293035489004}


def two_sided_z(confidence: float) -> float:
    """The normal quantile z with P(|Z| ≤ z) = ``confidence``."""
    z = TWO_SIDED_Z.get(confidence)
    if z is None:
        from scipy.special import ndtri

        z = float(ndtri(0.5 + confidence / 2))
    return z


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    With p̂ = k/n and z the two-sided normal quantile,
    ``centre = (p̂ + z²/2n) / (1 + z²/n)`` and
    ``half = z·sqrt(p̂(1−p̂)/n + z²/4n²) / (1 + z²/n)``.
    Chosen over the normal (Wald) interval because attainment sits near 1 where Wald collapses
    to zero width; Wilson stays inside [0, 1] and is honest for small n.
    """
    if trials <= 0:
        return 0.0, 1.0
    z = two_sided_z(confidence)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
