"""Capacity: the highest request rate whose SLO attainment stays at or above a target.

Definition (docs/capacity.md; DESIGN.md "Capacity"; SLOs-Serve's evaluation): capacity is the
largest rate on a geometric grid ``start·2^(k/m)`` (``2^(1/m) ≤ 1 + rel_tol``) that the search
finds with pooled joint attainment ≥ ``target`` and a valid run. We bracket the crossing by
doubling from the start (halving down when the start already misses), then bisect on the grid
until the passing and failing rates are adjacent grid points. A fixed grid makes every engine
probed with the same start and seeds see the same rates (their curves line up point by point) and
makes the answer monotone in the target for *any* deterministic probe (see `capacity_search`).

A probe is one seeded run at a rate; a rate's point pools every seed (successes and trials summed)
and a Wilson score interval gives its uncertainty. The capacity's interval ``[lower, upper]`` comes
from those per-rate intervals: the highest probed rate that passes *confidently* (interval entirely
≥ target) and the lowest that fails confidently (interval entirely < target, or invalid).
A run that cannot be trusted (the generator did not offer the asked rate, the client lagged or read
tokens in bursts, the tail never drained) marks its probe INVALID with the reason; an invalid rate counts as a miss for
the search (overload is what usually causes it) and its attainment is never reported as capacity.
Every probe is kept, so callers can draw the attainment-vs-rate curve and not just the point.

Pure: no I/O; the engine is hidden behind ``probe(rate_rps, seed) -> ProbeResult``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from slobench.metrics.stats import wilson_interval

Status = Literal["ok", "below_range", "above_range", "max_probes"]


# The steady-state evidence a probe carries besides its counts (None: not measured, e.g. an older row).
EVIDENCE_FIELDS = ("num_arrivals", "warmup_s", "backlog_growth", "backlog_arrivals", "backlog_mean", "drain_ratio",
                   "offered_tok_s", "ceiling_tok_s", "kv_full_share", "stopped_early", "burst_share")


@dataclass(frozen=True)
class ProbeResult:
    """What one seeded run at one rate reports back to the search.

    ``num_met``/``num_requests`` count the requests of the measured window (arriving after the warm-up;
    rejected and unfinished requests count as misses; a best-effort request counts when it met every SLO,
    judged on its timing like any other, see docs/metrics.md); ``num_arrivals`` counts every request
    of the run. The validity fields let the search refuse numbers it cannot trust
    (`slobench.capacity.validity`).
    """

    num_met: int
    num_requests: int
    offered_rate_rps: float | None = None
    achieved_rate_rps: float | None = None
    client_lag_s: float | None = None
    tail_s: float | None = None  # last token − last SLO deadline of any stage (evidence only, not a check)
    unfinished: int = 0
    records: object | None = None  # the run's full records (e.g. a DataFrame), kept for reports
    num_arrivals: int | None = None  # every request of the run, warm-up included
    warmup_s: float | None = None  # arrivals before this were run but not counted
    backlog_growth: float | None = None  # growth of the in-system count over the measured window (requests)
    backlog_arrivals: int | None = None  # arrivals inside the measured window
    backlog_mean: float | None = None  # time-average in-system count over the window
    drain_ratio: float | None = None  # last measured request's lateness ÷ its e2e SLO
    offered_tok_s: float | None = None  # offered prefill + decode tokens per second
    ceiling_tok_s: float | None = None  # modelled compute ceiling of the replicas for that token mix
    kv_full_share: float | None = None  # share of the measured window with a replica's KV cache ≥ 95% full
    stopped_early: str | None = None  # a real-engine probe stopped as a certain FAIL: why (`metrics.early_fail`)
    burst_share: float | None = None  # real engines: share of measured tokens whose timestamps came in bursts
    # The run's vLLM-style figures (slobench.metrics.serving): tokens/s, both goodputs, latency keys in ms.
    # Reported only (probes.csv, report); the search never decides on them.
    serving: dict[str, float | None] = field(default_factory=dict)

    @property
    def attainment(self) -> float:
        """Share of requests meeting every stage's SLO (0 when the run had no requests)."""
        return self.num_met / self.num_requests if self.num_requests else 0.0

    def evidence(self) -> dict[str, object]:
        """The steady-state evidence fields by name (copied into a `Probe` and its probes.csv row)."""
        return {f: getattr(self, f) for f in EVIDENCE_FIELDS}


@dataclass(frozen=True)
class ValidityLimits:
    """Thresholds beyond which a run's attainment is not reported (docs/capacity.md "Validity")."""

    max_rate_error: float = 0.10  # |achieved − offered| / offered
    max_client_lag_s: float = 1.0
    allow_unfinished: bool = False
    max_backlog_share: float = 0.10  # in-system growth over the window ÷ the window's arrivals (measured: docs)
    backlog_sigmas: float = 4.0  # … and above this many √(mean in-system count)
    max_drain_ratio: float = 3.0  # last measured request's lateness in units of its own e2e SLO
    check_ceiling: bool = True  # offered tokens/s above the modelled compute ceiling
    max_kv_full_share: float = 0.01  # of the measured window with the KV cache ≥ 95% full (measured: docs)
    # Real engines: share of measured tokens read in bursts (`validity.burst_share`). Measured and reported on every
    # real probe, but gating is opt-in (e.g. `BURST_SHARE_LIMIT`): on this project's 2-core CPU machine healthy
    # real vLLM probes read 25–93% of their tokens in bursts (docs/capacity.md "Token bursts"), so a default gate
    # would refuse every CPU probe; None: not judged.
    max_burst_share: float | None = None


def check_validity(result: ProbeResult, limits: ValidityLimits) -> str | None:
    """Return why a run cannot be trusted, or None when it can."""
    from slobench.capacity.validity import check_backlog, check_bursts, check_ceiling, check_drain, check_kv_full

    if result.stopped_early:  # first: its other evidence describes a run cut short on purpose
        return result.stopped_early
    if result.num_requests <= 0:
        return "no requests"
    off, ach = result.offered_rate_rps, result.achieved_rate_rps
    # A Poisson stream of n arrivals realises its rate only to ±1/sqrt(n); allow 4σ on top.
    n_all = result.num_arrivals or result.num_requests
    rate_tol = max(limits.max_rate_error, 4 / math.sqrt(n_all))
    if off and ach is not None and abs(ach - off) / off > rate_tol:
        return (f"achieved arrival rate {ach:.3g} rps differs from offered {off:.3g} rps "
                f"by > {rate_tol:.0%}")
    if result.client_lag_s is not None and result.client_lag_s > limits.max_client_lag_s:
        return f"client lagged {result.client_lag_s:.2f} s behind the schedule"
    if limits.max_burst_share is not None and (
            why := check_bursts(result.burst_share, max_share=limits.max_burst_share)):
        return why
    if result.unfinished and not limits.allow_unfinished:
        return f"{result.unfinished} requests unfinished at the horizon (tail never drained)"
    if limits.check_ceiling and (why := check_ceiling(result.offered_tok_s, result.ceiling_tok_s)):
        return why
    if why := check_kv_full(result.kv_full_share, max_share=limits.max_kv_full_share):
        return why
    if why := check_backlog(result.backlog_growth, result.backlog_arrivals, result.backlog_mean,
                            max_share=limits.max_backlog_share, sigmas=limits.backlog_sigmas):
        return why
    return check_drain(result.drain_ratio, max_ratio=limits.max_drain_ratio)


@dataclass(frozen=True)
class Probe:
    """One (rate, seed) run as seen by the search; ``valid=False`` carries the reason.

    The validity evidence is copied from the `ProbeResult` so a saved probe row can be turned back
    into the same `ProbeResult` (that is how an interrupted search resumes without rerunning it).
    """

    rate_rps: float
    seed: int
    attainment: float
    ci_low: float
    ci_high: float
    num_met: int
    num_requests: int
    valid: bool
    reason: str = ""
    offered_rate_rps: float | None = None
    achieved_rate_rps: float | None = None
    client_lag_s: float | None = None
    tail_s: float | None = None
    unfinished: int = 0
    records: object | None = field(default=None, repr=False, compare=False)
    evidence: dict[str, object] = field(default_factory=dict)  # EVIDENCE_FIELDS of the ProbeResult
    span_factor: float = 1.0  # measured span ÷ a search probe's: > 1 for a hold check (`capacity_search`)

    def row(self) -> dict[str, object]:
        """The probe as one tidy row (probes.csv), without the records."""
        return {
            "rate_rps": self.rate_rps, "seed": self.seed, "attainment": self.attainment,
            "ci_low": self.ci_low, "ci_high": self.ci_high, "num_met": self.num_met,
            "num_requests": self.num_requests, "valid": self.valid, "reason": self.reason,
            "offered_rate_rps": self.offered_rate_rps, "achieved_rate_rps": self.achieved_rate_rps,
            "client_lag_s": self.client_lag_s, "tail_s": self.tail_s, "unfinished": self.unfinished,
        } | {f: self.evidence.get(f) for f in EVIDENCE_FIELDS} | {"span_factor": self.span_factor} | {
            k: v for k, v in self.evidence.items() if k not in EVIDENCE_FIELDS}  # the serving figures


def make_probe(rate_rps: float, seed: int, result: ProbeResult, limits: ValidityLimits,
               confidence: float = 0.95, span_factor: float = 1.0) -> Probe:
    """Judge one run: Wilson interval on its own counts plus the validity checks."""
    reason = check_validity(result, limits)
    lo, hi = wilson_interval(result.num_met, result.num_requests, confidence)
    return Probe(rate_rps, seed, result.attainment, lo, hi, result.num_met, result.num_requests,
                 reason is None, reason or "", result.offered_rate_rps, result.achieved_rate_rps,
                 result.client_lag_s, result.tail_s, result.unfinished, result.records,
                 result.evidence() | result.serving, span_factor)


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

    def confident_pass(self, target: float) -> bool:
        """Valid and the whole interval is at or above the target."""
        return self.valid and self.ci_low >= target

    def confident_fail(self, target: float) -> bool:
        """Invalid (overloaded) or the whole interval is below the target."""
        return not self.valid or self.ci_high < target


@dataclass
class CapacityResult:
    """Outcome of a capacity search.

    ``capacity_rps`` is the highest passing grid rate found (None when even the lowest rate missed;
    with status "above_range" it is the highest rate allowed, a lower bound). ``lower_rps`` is the
    highest probed rate ≤ capacity that passes confidently (Wilson lower bound ≥ target) and
    ``upper_rps`` the lowest probed rate > capacity that fails confidently (upper bound < target,
    or invalid); None when no probe is that clear. For a monotone attainment curve the crossing
    lies in ``[lower_rps, upper_rps)`` with the confidence of the two intervals.
    """

    status: Status
    message: str
    target: float
    capacity_rps: float | None
    lower_rps: float | None
    upper_rps: float | None
    probes: list[Probe]
    points: list[RatePoint]
    notes: list[str] = field(default_factory=list)  # what the search did beyond bracketing and bisection

    def probe_rows(self) -> list[dict[str, object]]:
        """Tidy rows (one per probe, in probing order) for probes.csv, without the records."""
        return [p.row() for p in self.probes]


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
    refine_interval: bool = False,
    confirm: int = 0,
    hold: Callable[[float, int], ProbeResult] | None = None,
    hold_factor: float = 1.0,
    max_hold_probes: int = 12,
    progress: Callable[[Probe], None] | None = None,
    speculate: Callable[[list[tuple[float, int, float]], list[tuple[float, int, float]]], None] | None = None,
) -> CapacityResult:
    """Find the highest grid rate in [rate_lo, rate_hi] with pooled attainment ≥ ``target``.

    ``max_probes`` counts rates (each rate runs every seed). ``refine_interval`` spends extra
    probes (about 2·log2(m) rates, m = grid points per doubling) after the search to move
    ``lower_rps``/``upper_rps`` to adjacent grid points; it never changes ``capacity_rps``.

    ``confirm`` > 0 checks the crossing after the bisection: the ``confirm`` grid rates above the first
    failing one are probed too. When one of them passes, the measured curve is not monotone there; the
    capacity stays the lower crossing (every rate probed between it and the failing rate agrees) and
    ``notes`` (also appended to the message) says which rates passed above it. A passing rate above a
    failing one is usually noise of a short probe; docs/capacity.md "Monotonicity" has the measurements.

    ``hold`` (a probe whose measured span is ``hold_factor`` × a search probe's) checks that the capacity
    found holds in a longer run: near saturation some engines are metastable (a burst of KV preemptions
    snowballs after minutes, not seconds), so a short probe can pass at a rate no long run sustains. When the
    hold probe fails, the search steps down the grid (1, 2, 4 … points) to a rate that holds, then bisects
    between it and the highest one that does not; the capacity is the highest rate that held, and ``notes``
    says so. At most ``max_hold_probes`` rates are hold-probed (each costs ``hold_factor`` probes); when none
    holds within them, the status is "max_probes" with the lowest rate tried as the bound.

    Monotone in ``target`` for any deterministic ``probe``, even a non-monotone curve: passing a
    tighter target implies passing a looser one at the same rate, so the looser search doubles at
    least as far, and in bisection it moves up at every midpoint where the tighter one does; from
    the first midpoint where they differ the looser answer is ≥ that midpoint > the tighter answer.

    ``speculate(likely, now)`` (optional) is told, before each probe, which probes will likely be asked for
    next, most likely first, and which one is asked for now, each as ``(rate, seed, span)`` with span 1 for a
    search probe and ``hold_factor`` for a hold probe: the next doubling or midpoint as the attainments so far
    predict it, the hold probe at the crossing and the confirmation rates once the bisection ends, and nothing
    once the search is done.
    It may compute them ahead (`slobench.capacity.speculate`); the search asks ``probe`` and ``hold`` for
    every result as without it, so the answer and the probes are the same.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target must be in (0, 1], got {target}")
    if not 0 < rate_lo < rate_hi:
        raise ValueError(f"need 0 < rate_lo < rate_hi, got {rate_lo}, {rate_hi}")
    if rel_tol <= 0:
        raise ValueError(f"rel_tol must be > 0, got {rel_tol}")
    if not seeds:
        raise ValueError("need at least one seed")
    if confirm < 0:
        raise ValueError(f"confirm must be ≥ 0, got {confirm}")
    if hold is not None and (hold_factor <= 1 or max_hold_probes < 1):
        raise ValueError(f"a hold check needs hold_factor > 1 and max_hold_probes ≥ 1, got {hold_factor}, "
                         f"{max_hold_probes}")
    limits = limits or ValidityLimits()
    probes: list[Probe] = []
    cache: dict[int, RatePoint] = {}

    # Rates live on a geometric grid start·g^k with g = 2^(1/m) ≤ 1 + rel_tol, so doubling is
    # exactly k += m and bisection ends when adjacent grid points bracket the crossing.
    m = max(1, math.ceil(math.log(2) / math.log1p(rel_tol)))
    g = 2 ** (1 / m)
    start = min(max(rate_start, rate_lo), rate_hi)
    k_min = math.ceil(math.log(rate_lo / start) / math.log(g) - 1e-9)
    k_max = math.floor(math.log(rate_hi / start) / math.log(g) + 1e-9)

    def rate_of(k: int) -> float:
        return float(f"{start * g**k:.6g}")

    def at(k: int) -> RatePoint:
        return pooled(k, cache, probe, 1.0)

    def pooled(k: int, cache: dict[int, RatePoint], probe: Callable[[float, int], ProbeResult],
               span: float) -> RatePoint:
        """Every seed's probe at grid point ``k``, pooled (cached in ``cache``)."""
        if k in cache:
            return cache[k]
        rate = rate_of(k)
        met = total = 0
        reasons: list[str] = []
        for seed in seeds:
            p = make_probe(rate, seed, probe(rate, seed), limits, confidence, span)
            probes.append(p)
            if progress is not None:
                progress(p)
            met += p.num_met
            total += p.num_requests
            if not p.valid:
                reasons.append(f"seed {seed}: {p.reason}" if len(seeds) > 1 else p.reason)
        lo, hi = wilson_interval(met, total, confidence)
        att = met / total if total else 0.0
        valid = not reasons
        point = RatePoint(rate, att, lo, hi, met, total, valid, "; ".join(reasons), valid and att >= target)
        cache[k] = point
        return point

    n = 0

    def probe_k(k: int) -> RatePoint:
        nonlocal n
        if k not in cache:
            n += 1
        return at(k)

    hold_cache: dict[int, RatePoint] = {}  # grid point → its pooled hold probes (longer runs)
    sticky_holds: list[int] = []  # hold probes hinted with every hint until asked for (the confirmations run meanwhile)

    def hint(ks: Sequence[int] = (), holds: Sequence[int] = (), now: int | None = None,
             now_hold: int | None = None) -> None:
        """Tell ``speculate`` the probes likely next: hold probes at ``holds`` first (the longest), then search
        probes at ``ks``, skipping what is known or off the grid; ``now`` (``now_hold``): the search (hold)
        probe about to be asked for, which may already be under way."""
        if speculate is None:
            return
        holds = [*holds, *sticky_holds]

        def keys(points: Iterable[int], known: dict[int, RatePoint], span: float) -> list[tuple[float, int, float]]:
            return [(rate_of(k), s, span) for k in points if k not in known and k_min <= k <= k_max for s in seeds]

        speculate(keys(holds, hold_cache, hold_factor) + keys(ks, cache, 1.0),
                  keys([] if now is None else [now], cache, 1.0)
                  + keys([] if now_hold is None else [now_hold], hold_cache, hold_factor))

    def bisection_guess(lo: int, hi: int) -> float:
        """The grid point where the miss share (1 − attainment) reaches 1 − target, interpolating its logarithm
        between ``lo`` (passing) and ``hi`` (failing): which half the next midpoint falls in, as far as two
        points tell. Misses grow about geometrically towards the cliff (coding, slos-serve: 1.2% at 8 req/s,
        5.4% at 11.3, 8.5% at 13.5, 24% at 16), where a straight line in attainment guesses low."""
        a, b = 1.0 - cache[lo].attainment, 1.0 - cache[hi].attainment
        if not 0 < a < b:
            return (lo + hi) / 2
        return lo + (math.log(1.0 - target) - math.log(a)) / (math.log(b) - math.log(a)) * (hi - lo)

    def interval(best: int | None, fail: int | None) -> tuple[float | None, float | None]:
        both = list(cache.items()) + list(hold_cache.items())
        lows = [k for k, p in both if p.confident_pass(target) and (best is None or k <= best)]
        highs = [k for k, p in both if p.confident_fail(target) and (fail is None or k >= fail)
                 and (best is None or k > best)]
        return (rate_of(max(lows)) if lows and best is not None else None,
                rate_of(min(highs)) if highs else None)

    def nearest(anchor: int, sign: int, confident: Callable[[RatePoint], bool]) -> None:
        """Probe until the grid point nearest ``anchor`` on one side (sign −1: at or below it, +1: at
        or above it) where ``confident`` holds is known: step away by doublings, then bisect.

        Works in mirrored coordinates x = sign·k, where both sides become "the smallest x ≥ anchor
        with the property", so the lower and upper bounds share this one loop.
        """
        edge = sign * (k_min if sign < 0 else k_max)
        xs = {sign * k: p for k, p in cache.items() if sign * k >= sign * anchor}
        found = min((x for x, p in xs.items() if confident(p)), default=None)
        near = max((x for x, p in xs.items() if found is None or x < found and not confident(p)), default=None)
        while found is None and near is not None and n < max_probes:  # nothing confident yet: step on
            x = min(near + m, edge)
            hint([sign * min(x + m, edge), sign * ((near + x) // 2)], now=sign * x)
            if confident(probe_k(sign * x)):
                found = x
            elif x == edge:
                break
            else:
                near = x
        while found is not None and near is not None and found - near > 1 and n < max_probes:
            mid = (near + found) // 2
            hint([sign * ((near + mid) // 2), sign * ((mid + found) // 2)], now=sign * mid)  # both possible next
            if confident(probe_k(sign * mid)):
                found = mid
            else:
                near = mid

    def refine(best: int, fail: int) -> None:
        """Bisect (on the grid) for the highest confident pass ≤ best and lowest confident fail ≥ fail."""
        nearest(best, -1, lambda p: p.confident_pass(target))
        nearest(fail, +1, lambda p: p.confident_fail(target))

    notes: list[str] = []

    def done(status: Status, message: str, best: int | None, fail: int | None) -> CapacityResult:
        if speculate is not None:
            speculate([], [])
        points = [cache[k] for k in sorted(cache)]
        lower, upper = interval(best, fail)
        if notes:
            message = f"{message}; {'; '.join(notes)}"
        return CapacityResult(status, message, target, None if best is None else rate_of(best), lower, upper,
                              probes, points, list(notes))

    def confirm_crossing(best: int, fail: int) -> None:
        """Probe the ``confirm`` grid rates above the first failing one; note what they say."""
        above = [k for k in range(fail + 1, min(fail + confirm, k_max) + 1)]
        seen = []
        for k in above:
            if n >= max_probes:
                break
            seen.append(k)
            probe_k(k)
        passing = [k for k in seen if cache[k].passes]
        if passing:
            rates = ", ".join(f"{rate_of(k):.3g}" for k in passing)
            notes.append(f"curve not monotone: {rates} req/s pass{'es' if len(passing) == 1 else ''} above the "
                         f"failing {rate_of(fail):.3g} req/s; capacity kept at the lower crossing "
                         f"{rate_of(best):.3g} req/s")
        elif seen:
            notes.append(f"crossing confirmed: the next {len(seen)} grid rate{'s' if len(seen) > 1 else ''} above "
                         f"{rate_of(fail):.3g} req/s fail too")

    def hold_down(best: int) -> int | None:
        """The highest grid point ≤ ``best`` whose hold probe passes: step down 1, 2, 4 … points, then bisect
        between the highest that held and the lowest that did not; None when none held within the budget."""
        assert hold is not None

        def holds(k: int) -> bool:
            return pooled(k, hold_cache, hold, hold_factor).passes

        sticky_holds.clear()
        hint(now_hold=best)
        held = holds(best)
        hint()  # the step-down below is rare and short of evidence to guess from
        if held:
            notes.append(f"held in a {hold_factor:g}× longer probe ({hold_cache[best].attainment:.1%})")
            return best
        bad, good, step = best, None, 1
        while good is None and len(hold_cache) < max_hold_probes:
            k = max(best - step, k_min)
            if holds(k):
                good = k
            elif k == k_min:
                break
            else:
                bad, step = k, step * 2
        if good is None:
            return None
        while bad - good > 1 and len(hold_cache) < max_hold_probes:
            mid = (good + bad) // 2
            if holds(mid):
                good = mid
            else:
                bad = mid
        p = hold_cache[best]
        why = p.reason if not p.valid else f"{p.attainment:.1%}"
        short = f" (the hold budget ran out: {rate_of(bad):.3g} req/s is the lowest known not to hold)" \
            if bad - good > 1 else ""
        notes.append(f"{rate_of(best):.3g} req/s did not hold in a {hold_factor:g}× longer probe ({why}); "
                     f"capacity stepped down to {rate_of(good):.3g} req/s, which held "
                     f"({hold_cache[good].attainment:.1%}){short}")
        return good

    hint([m], now=0)  # no evidence yet: most searches start below capacity and double
    point = probe_k(0)
    best_k: int | None
    fail_k: int | None
    if point.passes:
        best_k, fail_k = 0, None
        while fail_k is None:
            if best_k >= k_max:
                return done("above_range", f"attainment ≥ {target:.0%} even at the highest rate "
                            f"{rate_of(best_k):g} req/s: capacity is at least that; raise the upper rate",
                            best_k, None)
            if n >= max_probes:
                return done("max_probes", f"stopped after {n} rates while still doubling: capacity "
                            f"≥ {rate_of(best_k):g} req/s", best_k, None)
            nxt = min(best_k + m, k_max)
            # A wide margin at the last passing rate suggests the next doubling passes too.
            hint([nxt + m] if cache[best_k].attainment >= target + 0.03 else [(best_k + nxt) // 2], now=nxt)
            if probe_k(nxt).passes:
                best_k = nxt
            else:
                fail_k = nxt
    else:
        best_k, fail_k = None, 0
        while best_k is None:
            if fail_k <= k_min:
                why = f" ({point.reason})" if not point.valid else ""
                return done("below_range", f"attainment < {target:.0%} even at the lowest rate "
                            f"{rate_of(fail_k):g} req/s{why}: lower the rate or loosen the SLOs",
                            None, fail_k)
            if n >= max_probes:
                return done("max_probes", f"stopped after {n} rates while still halving: capacity "
                            f"< {rate_of(fail_k):g} req/s", None, fail_k)
            nxt = max(fail_k - m, k_min)
            hint([(nxt + fail_k) // 2] if cache[fail_k].attainment >= target - 0.05 else [nxt - m], now=nxt)
            point = probe_k(nxt)
            if point.passes:
                best_k = nxt
            else:
                fail_k = nxt
    while fail_k - best_k > 1:
        if n >= max_probes:
            return done("max_probes", f"stopped after {n} rates: capacity in "
                        f"[{rate_of(best_k):g}, {rate_of(fail_k):g}) req/s", best_k, fail_k)
        mid = (best_k + fail_k) // 2
        lo, hi = (mid, fail_k) if mid <= bisection_guess(best_k, fail_k) else (best_k, mid)  # the likely next bracket
        if hi - lo > 1:
            hint([(lo + hi) // 2], now=mid)
        else:  # the last midpoint: then the hold probe at the crossing and the confirmations above it
            hint([hi + 1 + j for j in range(confirm)], holds=[lo] if hold is not None else [], now=mid)
        if probe_k(mid).passes:
            best_k = mid
        else:
            fail_k = mid
    # The bisection is over: the hold probe at the crossing (the longest) and the confirmation rates above it are
    # certain to be asked for; the worker runs the first confirmation itself.
    if hold is not None:
        sticky_holds.append(best_k)
    hint(list(range(fail_k + 2, fail_k + confirm + 1)) if confirm else [], now=fail_k + 1 if confirm else None)
    if confirm:
        confirm_crossing(best_k, fail_k)
    if refine_interval:
        refine(best_k, fail_k)
    if hold is not None:
        held = hold_down(best_k)
        if held is None:
            lowest = min(hold_cache)
            return done("max_probes", f"no rate held in a {hold_factor:g}× longer probe down to "
                        f"{rate_of(lowest):g} req/s (the search's capacity was {rate_of(best_k):g} req/s): "
                        "capacity is below that", None, lowest)
        if held != best_k:
            best_k, fail_k = held, min(k for k, p in hold_cache.items() if k > held and not p.passes)
    best, fail = rate_of(best_k), rate_of(fail_k)
    return done("ok", f"capacity {best:.3g} req/s at {target:.0%} attainment (next grid rate {fail:.3g} "
                "req/s misses)", best_k, fail_k)
