"""How many requests a measurement point needs before its statistic means anything (pure).

A qualification point is judged on one of two statistics, and each sets its own minimum sample:

- **A latency percentile** ("P90 TTFT ≤ 2 s", or slobench's own gate read as a percentile: attainment ≥ 0.9
  means the 90th percentile of every request's lateness is on time). We follow MLPerf Inference's *early
  stopping* rule (mlcommons/inference, ``loadgen/early_stopping.cc`` ``MinPassingQueriesFinder`` and
  ``loadgen/results.cc`` ``PerformanceSummary::EarlyStopping``; the Server scenario's check): with ``n``
  requests of which ``t`` exceeded the bound, the run demonstrates that the true ``p``-percentile meets the
  bound at confidence ``c`` when a system whose true share of over-bound requests were ``1 − p`` would show
  ``t`` or fewer of them in ``n`` with probability ≤ ``1 − c``:
  ``P[Binomial(n, 1 − p) ≤ t] ≤ 1 − c`` (LoadGen writes it as ``BetaRegularized(p, h, 1 + t)`` with
  ``h = n − t``; tolerance ``d = 0``, confidence 0.99, as LoadGen hard-codes). It is the one-sided exact
  (Clopper-Pearson) upper bound of the over-bound share staying below ``1 − p``. The smallest useful run has
  no over-bound request at all: ``pⁿ ≤ 1 − c``, which gives 44 requests for P90 and 459 for P99 at 99%.
  LoadGen's SingleStream summary prints the ``t = 1`` figure ("Processed at least 64 queries" for P90;
  662 for P99), `min_requests_for_overlatency` computes both.
- **Attainment** (the share of requests meeting every SLO, the number the capacity search decides on). Its
  estimate is useful when its confidence interval is narrow: `min_requests_for_attainment` is the smallest
  ``n`` for which a run observing exactly the target share has a two-sided **Wilson** interval of half-width
  ≤ ``margin``. Wilson, not Clopper-Pearson, because it is the interval the capacity search and every report
  already print (`slobench.metrics.stats.wilson_interval`, 95% by default), so "resolved to ±2 points" here
  means the same ±2 points there; Clopper-Pearson's guaranteed coverage would ask ~10% more requests for
  an interval nobody shows. Half the interval's width (not its lower end) because the point is to *estimate*
  the attainment curve near the target, on both sides of it.

`PointBound` records, per point, which bound was required and whether it was met, so the report can print
"n=812 ≥ 459 needed for P99 at 99%".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy.stats import binom, norm

from slobench.metrics.stats import wilson_interval

PERCENTILE_CONFIDENCE = 0.99  # MLPerf LoadGen's early-stopping confidence
ATTAINMENT_CONFIDENCE = 0.95  # the capacity search's interval (`capacity_search(confidence=0.95)`)


def _check(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")


def _demonstrated(n: int, over: int, p: float, confidence: float) -> bool:
    """MLPerf's test: ``P[Binomial(n, 1 − p) ≤ over] ≤ 1 − confidence``."""
    return n > over >= 0 and float(binom.cdf(over, n, 1.0 - p)) <= 1.0 - confidence


def min_requests_for_overlatency(over: int, p: float, confidence: float = PERCENTILE_CONFIDENCE) -> int:
    """Smallest ``n`` with which ``over`` requests above the latency bound still demonstrate the
    ``p``-percentile at ``confidence`` (LoadGen's ``h + t``: ``h`` passing queries plus ``t`` over-latency ones).

    ``over = 0`` is `min_requests_for_percentile`; ``over = 1`` is the figure LoadGen's SingleStream summary
    prints ("Processed at least 64 queries" for P90 at 99%).
    """
    _check("percentile p", p)
    _check("confidence", confidence)
    if over < 0:
        raise ValueError(f"over must be ≥ 0, got {over}")
    lo = over + 1
    hi = max(lo, math.ceil(math.log(1.0 - confidence) / math.log(p)) + over + 1)
    while not _demonstrated(hi, over, p, confidence):  # the binomial tail needs more than the t = 0 figure
        lo, hi = hi, 2 * hi
    while lo < hi:  # the tail P[X ≤ over] falls as n grows: bisect for the first n that passes
        mid = (lo + hi) // 2
        if _demonstrated(mid, over, p, confidence):
            hi = mid
        else:
            lo = mid + 1
    return lo


def min_requests_for_percentile(p: float, confidence: float = PERCENTILE_CONFIDENCE) -> int:
    """Smallest ``n`` that can demonstrate the ``p``-percentile at all: every request within the bound,
    ``pⁿ ≤ 1 − confidence`` (MLPerf early stopping with no over-latency query). P90 → 44, P99 → 459 at 99%."""
    return min_requests_for_overlatency(0, p, confidence)


def max_overlatency_allowed(n: int, p: float, confidence: float = PERCENTILE_CONFIDENCE) -> int:
    """The most requests above the latency bound that ``n`` requests may hold and still demonstrate the
    ``p``-percentile at ``confidence`` (MLPerf early stopping); −1 when ``n`` is too few even with none."""
    _check("percentile p", p)
    _check("confidence", confidence)
    if n < 1 or not _demonstrated(n, 0, p, confidence):
        return -1
    # binom.ppf gives the smallest t with P[X ≤ t] ≥ 1 − c; the answer is next to it. Step to the exact edge.
    t = max(0, min(n - 1, int(binom.ppf(1.0 - confidence, n, 1.0 - p))))
    while t > 0 and not _demonstrated(n, t, p, confidence):
        t -= 1
    while t + 1 < n and _demonstrated(n, t + 1, p, confidence):
        t += 1
    return t


def attainment_half_width(target: float, n: int, confidence: float = ATTAINMENT_CONFIDENCE) -> float:
    """Half the width of the Wilson interval of a run of ``n`` requests observing exactly ``target`` (the
    share itself, not rounded to a count, so the answer is smooth in ``n``)."""
    z = float(norm.ppf(0.5 + confidence / 2))
    return z * math.sqrt(target * (1 - target) / n + z * z / (4 * n * n)) / (1 + z * z / n)


def min_requests_for_attainment(target: float, margin: float, confidence: float = ATTAINMENT_CONFIDENCE) -> int:
    """Smallest ``n`` whose Wilson interval around an observed attainment equal to ``target`` has half-width
    ≤ ``margin`` (see the module docstring for why Wilson and why the half-width). 0.9 ± 0.02 at 95% → 868."""
    _check("target", target)
    _check("confidence", confidence)
    if not 0.0 < margin < 0.5:
        raise ValueError(f"margin must be in (0, 0.5), got {margin}")
    z = float(norm.ppf(0.5 + confidence / 2))
    hi = max(2, math.ceil(z * z * max(target * (1 - target), 0.25 * margin) / (margin * margin)) * 2)
    while attainment_half_width(target, hi, confidence) > margin:
        hi *= 2
    lo = 1
    while lo < hi:  # the half-width falls monotonically with n
        mid = (lo + hi) // 2
        if attainment_half_width(target, mid, confidence) <= margin:
            hi = mid
        else:
            lo = mid + 1
    return lo


def attainment_bound(met: int, n: int, confidence: float = ATTAINMENT_CONFIDENCE) -> tuple[float, float]:
    """Two-sided Wilson interval of ``met`` of ``n`` (the capacity search's interval; (0, 1) without requests)."""
    if met < 0 or met > max(n, 0):
        raise ValueError(f"need 0 ≤ met ≤ n, got met={met}, n={n}")
    return wilson_interval(met, n, confidence)


Statistic = Literal["percentile", "attainment"]


@dataclass(frozen=True)
class PointBound:
    """The sample-size bound one point was held to, and what it showed (one line of the report each).

    ``required_n`` is the floor for the statistic itself (percentile: no over-bound request allowed;
    attainment: the interval narrow enough); ``enough`` says whether the point reached it (else the point is
    INVALID: too few requests). ``demonstrated`` is the statistic's own verdict at that confidence, reported
    beside validity: the percentile bound holds (over ≤ allowed), or the attainment's lower end ≥ the level.
    """

    statistic: Statistic
    level: float  # percentile p, or attainment target
    confidence: float
    n: int  # requests of the measured window
    required_n: int
    over: int | None = None  # percentile: requests above the latency bound
    allowed_over: int | None = None  # percentile: most over-bound requests n allows (−1: n too few)
    met: int | None = None  # attainment: requests meeting every SLO
    margin: float | None = None  # attainment: interval half-width asked for
    lo: float | None = None  # attainment: Wilson interval at ``confidence``
    hi: float | None = None

    @property
    def enough(self) -> bool:
        return self.n >= self.required_n

    @property
    def demonstrated(self) -> bool:
        if self.statistic == "percentile":
            return self.over is not None and self.allowed_over is not None and 0 <= self.over <= self.allowed_over
        return self.lo is not None and self.lo >= self.level

    def what(self) -> str:
        """The statistic in words: "P90 at 99%" or "attainment 90% ±2% at 95%"."""
        if self.statistic == "percentile":
            return f"P{self.level * 100:g} at {self.confidence:.0%}"
        return f"attainment {self.level:.0%} ±{(self.margin or 0):.0%} at {self.confidence:.0%}"

    def line(self) -> str:
        """One report line: "n=812 ≥ 459 needed for P99 at 99% (3 over the bound, ≤ 4 allowed)"."""
        head = f"n={self.n} {'≥' if self.enough else '<'} {self.required_n} needed for {self.what()}"
        if self.statistic == "percentile" and self.over is not None:
            allowed = "none allowed" if (self.allowed_over or 0) < 0 else f"≤ {self.allowed_over} allowed"
            return f"{head} ({self.over} over the bound, {allowed})"
        if self.lo is not None and self.hi is not None:
            return f"{head} (interval {self.lo:.1%}–{self.hi:.1%})"
        return head


def percentile_point_bound(n: int, over: int, p: float, confidence: float = PERCENTILE_CONFIDENCE) -> PointBound:
    """MLPerf early stopping for one point: ``n`` requests, ``over`` of them above the latency bound."""
    if not 0 <= over <= max(n, 0):
        raise ValueError(f"need 0 ≤ over ≤ n, got over={over}, n={n}")
    return PointBound("percentile", p, confidence, n, min_requests_for_percentile(p, confidence), over=over,
                      allowed_over=max_overlatency_allowed(n, p, confidence))


def attainment_point_bound(met: int, n: int, target: float, margin: float,
                           confidence: float = ATTAINMENT_CONFIDENCE) -> PointBound:
    """The attainment of one point (``met`` of ``n``) against the sample it needs for ``±margin``."""
    lo, hi = attainment_bound(met, n, confidence)
    return PointBound("attainment", target, confidence, n, min_requests_for_attainment(target, margin, confidence),
                      met=met, margin=margin, lo=lo, hi=hi)
