"""Capacity: the highest request rate whose SLO attainment stays at or above a target.

Model (DESIGN.md "Capacity"; SLOs-Serve evaluation): attainment is assumed non-increasing in the
offered rate. We bracket the crossing point by doubling the rate from a start (halving down when
the start already misses), then bisect the bracket until its relative width is ≤ ``rel_tol``.
All rates lie on one geometric grid anchored at the start rate, so every engine probed with the
same start and seeds sees the same rates (their curves line up point by point).
Every probe is kept, so callers can draw the attainment-vs-rate curve and not just the point.

A probe is one or more seeded runs at a rate. Each run reports how many requests met every stage's
SLO out of all arrivals; seeds are pooled (successes and trials summed) and a Wilson score interval
gives the uncertainty. A run that cannot be trusted (the generator did not offer the asked rate,
the client lagged, the tail never drained) marks the probe INVALID with the reason; an invalid
probe counts as a miss for the search (an overloaded system is what usually causes it) but its
attainment is never reported as the capacity.

Pure: no I/O; the engine is hidden behind ``probe(rate_rps, seed) -> ProbeResult``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from scipy.stats import norm

Status = Literal["ok", "below_range", "above_range", "max_probes"]


@dataclass(frozen=True)
class ProbeResult:
    """What one seeded run at one rate reports back to the search.

    ``num_met``/``num_requests`` count requests (all arrivals: best-effort, rejected and unfinished
    requests count as misses). The validity fields let the search refuse numbers it cannot trust.
    """

    num_met: int
    num_requests: int
    offered_rate_rps: float | None = None
    achieved_rate_rps: float | None = None
    client_lag_s: float | None = None
    tail_s: float | None = None  # last finish − last arrival
    unfinished: int = 0
    records: object | None = None  # the run's full records (e.g. a DataFrame), kept for reports

    @property
    def attainment(self) -> float:
        """Share of requests meeting every stage's SLO (0 when the run had no requests)."""
        return self.num_met / self.num_requests if self.num_requests else 0.0


@dataclass(frozen=True)
class ValidityLimits:
    """Thresholds beyond which a run's attainment is not reported (SLOs-Serve uses tail < 20 s)."""

    max_rate_error: float = 0.10  # |achieved − offered| / offered
    max_client_lag_s: float = 1.0
    max_tail_s: float = 20.0
    allow_unfinished: bool = False


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
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def check_validity(result: ProbeResult, limits: ValidityLimits) -> str | None:
    """Return why a run cannot be trusted, or None when it can."""
    if result.num_requests <= 0:
        return "no requests"
    off, ach = result.offered_rate_rps, result.achieved_rate_rps
    # A Poisson stream of n arrivals realises its rate only to ±1/sqrt(n); allow 4σ on top.
    rate_tol = max(limits.max_rate_error, 4 / math.sqrt(result.num_requests))
    if off and ach is not None and abs(ach - off) / off > rate_tol:
        return (f"achieved arrival rate {ach:.3g} rps differs from offered {off:.3g} rps "
                f"by > {rate_tol:.0%}")
    if result.client_lag_s is not None and result.client_lag_s > limits.max_client_lag_s:
        return f"client lagged {result.client_lag_s:.2f} s behind the schedule"
    if result.unfinished and not limits.allow_unfinished:
        return f"{result.unfinished} requests unfinished at the horizon (tail never drained)"
    if result.tail_s is not None and result.tail_s > limits.max_tail_s:
        return f"run tail {result.tail_s:.1f} s > {limits.max_tail_s:.0f} s (queue does not drain)"
    return None


@dataclass(frozen=True)
class Probe:
    """One (rate, seed) run as seen by the search; ``valid=False`` carries the reason."""

    rate_rps: float
    seed: int
    attainment: float
    ci_low: float
    ci_high: float
    num_met: int
    num_requests: int
    valid: bool
    reason: str = ""
    records: object | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RatePoint:
    """All seeds at one rate, pooled; ``passes`` is what the search decides on."""

    rate_rps: float
    attainment: float
    ci_low: float
    ci_high: float
    num_met: int
    num_requests: int
    valid: bool
    reason: str
    passes: bool


@dataclass
class CapacityResult:
    """Outcome of a capacity search.

    ``capacity_rps`` is the highest passing rate found (None when even the lowest rate missed).
    ``lower_rps``/``upper_rps`` bound it: the bracket (last pass, first fail) widened by the rates
    whose Wilson interval straddles the target (i.e. the data cannot tell them apart from it).
    """

    status: Status
    message: str
    target: float
    capacity_rps: float | None
    lower_rps: float | None
    upper_rps: float | None
    probes: list[Probe]
    points: list[RatePoint]

    def probe_rows(self) -> list[dict[str, object]]:
        """Tidy rows (one per probe) for probes.csv, without the records."""
        return [
            {
                "rate_rps": p.rate_rps, "seed": p.seed, "attainment": p.attainment,
                "ci_low": p.ci_low, "ci_high": p.ci_high, "num_met": p.num_met,
                "num_requests": p.num_requests, "valid": p.valid, "reason": p.reason,
            }
            for p in self.probes
        ]


def capacity_search(
    probe: Callable[[float, int], ProbeResult],
    *,
    target: float = 0.90,
    rate_start: float = 1.0,
    rate_lo: float = 0.05,
    rate_hi: float = 1024.0,
    rel_tol: float = 0.02,
    seeds: Sequence[int] = (0,),
    max_probes: int = 40,
    confidence: float = 0.95,
    limits: ValidityLimits | None = None,
    progress: Callable[[Probe], None] | None = None,
) -> CapacityResult:
    """Find the highest rate in [rate_lo, rate_hi] with pooled attainment ≥ ``target``.

    ``max_probes`` counts rates (each rate runs every seed). Rates already probed are cached, so a
    search is monotone in ``target`` for a deterministic probe: a looser target passes every rate
    a tighter one passes.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target must be in (0, 1], got {target}")
    if not 0 < rate_lo < rate_hi:
        raise ValueError(f"need 0 < rate_lo < rate_hi, got {rate_lo}, {rate_hi}")
    if rel_tol <= 0:
        raise ValueError(f"rel_tol must be > 0, got {rel_tol}")
    if not seeds:
        raise ValueError("need at least one seed")
    limits = limits or ValidityLimits()
    probes: list[Probe] = []
    cache: dict[float, RatePoint] = {}

    def at(rate: float) -> RatePoint:
        rate = float(rate)
        if rate in cache:
            return cache[rate]
        met = total = 0
        reasons: list[str] = []
        for seed in seeds:
            res = probe(rate, seed)
            reason = check_validity(res, limits)
            lo, hi = wilson_interval(res.num_met, res.num_requests, confidence)
            p = Probe(rate, seed, res.attainment, lo, hi, res.num_met, res.num_requests,
                      reason is None, reason or "", res.records)
            probes.append(p)
            if progress is not None:
                progress(p)
            met += res.num_met
            total += res.num_requests
            if reason:
                reasons.append(f"seed {seed}: {reason}")
        lo, hi = wilson_interval(met, total, confidence)
        att = met / total if total else 0.0
        valid = not reasons
        point = RatePoint(rate, att, lo, hi, met, total, valid, "; ".join(reasons), valid and att >= target)
        cache[rate] = point
        return point

    def done(status: Status, message: str, best: float | None, fail: float | None) -> CapacityResult:
        points = sorted(cache.values(), key=lambda p: p.rate_rps)
        lower, upper = best, fail
        if best is not None:
            # Rates whose interval contains the target are statistically indistinguishable from it.
            ambiguous = [p.rate_rps for p in points if p.valid and p.ci_low < target <= p.ci_high]
            if ambiguous:
                lower = min([best, *ambiguous])
                upper = max([fail or best, *ambiguous])
        return CapacityResult(status, message, target, best, lower, upper, probes, points)

    # Rates live on a geometric grid start·g^k with g = 2^(1/m) ≤ 1 + rel_tol, so doubling is
    # exactly k += m and bisection ends when adjacent grid points bracket the crossing. A fixed grid
    # makes the answer monotone in the target for a monotone curve (the largest passing grid point).
    m = max(1, math.ceil(math.log(2) / math.log1p(rel_tol)))
    g = 2 ** (1 / m)
    start = min(max(rate_start, rate_lo), rate_hi)
    k_min = math.ceil(math.log(rate_lo / start) / math.log(g) - 1e-9)
    k_max = math.floor(math.log(rate_hi / start) / math.log(g) + 1e-9)

    def rate_of(k: int) -> float:
        return float(f"{start * g**k:.6g}")

    n = 1
    point = at(rate_of(0))
    best_k: int | None
    fail_k: int | None
    if point.passes:
        best_k, fail_k = 0, None
        while fail_k is None:
            if best_k >= k_max:
                return done("above_range", f"attainment ≥ {target:.0%} even at the highest rate "
                            f"{rate_of(best_k):g} rps; raise the upper rate", rate_of(best_k), None)
            if n >= max_probes:
                return done("max_probes", f"stopped after {n} rates while still doubling",
                            rate_of(best_k), None)
            nxt = min(best_k + m, k_max)
            n += 1
            if at(rate_of(nxt)).passes:
                best_k = nxt
            else:
                fail_k = nxt
    else:
        best_k, fail_k = None, 0
        while best_k is None:
            if fail_k <= k_min:
                why = f" ({point.reason})" if not point.valid else ""
                return done("below_range", f"attainment < {target:.0%} even at the lowest rate "
                            f"{rate_of(fail_k):g} rps{why}; lower the rate or loosen the SLOs",
                            None, rate_of(fail_k))
            if n >= max_probes:
                return done("max_probes", f"stopped after {n} rates while still halving", None,
                            rate_of(fail_k))
            nxt = max(fail_k - m, k_min)
            n += 1
            point = at(rate_of(nxt))
            if point.passes:
                best_k = nxt
            else:
                fail_k = nxt
    while fail_k - best_k > 1:
        if n >= max_probes:
            return done("max_probes", f"stopped after {n} rates; capacity in "
                        f"[{rate_of(best_k):g}, {rate_of(fail_k):g}] rps", rate_of(best_k), rate_of(fail_k))
        mid = (best_k + fail_k) // 2
        n += 1
        if at(rate_of(mid)).passes:
            best_k = mid
        else:
            fail_k = mid
    best, fail = rate_of(best_k), rate_of(fail_k)
    return done("ok", f"capacity {best:.3g} rps at {target:.0%} attainment (next miss at {fail:.3g} rps)",
                best, fail)
