"""Capacity search against synthetic engines with known attainment curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slobench.capacity.search import (
    ProbeResult,
    ValidityLimits,
    capacity_search,
    check_validity,
)
from slobench.metrics.stats import wilson_interval

N = 2000


def step_engine(knee: float = 7.3):
    """Attainment 1 up to the knee, then falling linearly (exact counts, no noise)."""

    def probe(rate: float, seed: int) -> ProbeResult:
        att = 1.0 if rate <= knee else max(0.0, 1.0 - (rate - knee) / knee)
        return ProbeResult(round(att * N), N, offered_rate_rps=rate, achieved_rate_rps=rate, tail_s=1.0)

    return probe


def smooth_engine(scale: float = 10.0):
    """Smoothly decreasing curve: attainment(r) = exp(−(r/scale)²)."""

    def probe(rate: float, seed: int) -> ProbeResult:
        return ProbeResult(round(np.exp(-((rate / scale) ** 2)) * N), N)

    return probe


def test_step_found_within_tolerance() -> None:
    res = capacity_search(step_engine(7.3), target=0.9, rel_tol=0.02)
    assert res.status == "ok", res.message
    true_cap = 7.3 * 1.1  # where the linear drop crosses 0.9
    assert res.capacity_rps <= true_cap
    assert (true_cap - res.capacity_rps) / true_cap <= 0.02 + 1e-9
    assert res.upper_rps > true_cap
    assert res.lower_rps <= res.capacity_rps <= res.upper_rps
    assert all(p.valid for p in res.probes)


def test_halving_down_when_start_misses() -> None:
    res = capacity_search(step_engine(0.5), target=0.9, rate_start=8.0)
    assert res.status == "ok"
    assert res.capacity_rps == pytest.approx(0.55, rel=0.03)


@pytest.mark.parametrize("engine", [step_engine(7.3), smooth_engine(10.0)])
def test_monotone_in_target(engine) -> None:
    caps = [capacity_search(engine, target=t).capacity_rps for t in (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)]
    assert all(a >= b for a, b in zip(caps, caps[1:], strict=False)), caps


def test_below_range_message() -> None:
    res = capacity_search(lambda r, s: ProbeResult(0, 100), target=0.9, rate_lo=0.1)
    assert res.status == "below_range"
    assert res.capacity_rps is None
    assert "lowest rate" in res.message and "0.1" in res.message


def test_above_range_message() -> None:
    res = capacity_search(lambda r, s: ProbeResult(100, 100), target=0.9, rate_hi=64)
    assert res.status == "above_range"
    assert res.capacity_rps == pytest.approx(64, rel=1e-3)
    assert "highest rate" in res.message


def test_invalid_probe_never_reported_as_capacity() -> None:
    # Beyond 5 rps the backlog keeps growing, even though attainment is (wrongly) perfect.
    def probe(rate: float, seed: int) -> ProbeResult:
        return ProbeResult(100, 100, backlog_growth=60.0 if rate > 5 else 1.0, backlog_arrivals=100, backlog_mean=20)

    res = capacity_search(probe, target=0.9)
    assert res.status == "ok"
    assert res.capacity_rps <= 5
    bad = [p for p in res.probes if not p.valid]
    assert bad and all("backlog grew" in p.reason for p in bad)


def test_validity_checks() -> None:
    lim = ValidityLimits()
    assert check_validity(ProbeResult(1000, 1000, offered_rate_rps=10, achieved_rate_rps=10.5), lim) is None
    assert "achieved" in check_validity(ProbeResult(1000, 1000, offered_rate_rps=10, achieved_rate_rps=7), lim)
    assert "lagged" in check_validity(ProbeResult(1, 1, client_lag_s=3.0), lim)
    assert "unfinished" in check_validity(ProbeResult(1, 2, unfinished=1), lim)
    assert check_validity(ProbeResult(0, 0), lim) == "no requests"


def test_seeds_pooled_and_shared() -> None:
    seen: list[tuple[float, int]] = []

    def probe(rate: float, seed: int) -> ProbeResult:
        seen.append((rate, seed))
        return step_engine(3.0)(rate, seed)

    res = capacity_search(probe, seeds=(0, 1, 2))
    rates = sorted({r for r, _ in seen})
    assert all({s for r2, s in seen if r2 == r} == {0, 1, 2} for r in rates)
    assert len(res.points) == len(rates)
    assert res.points[0].num_requests == 3 * N


def test_wilson_interval_sanity() -> None:
    lo, hi = wilson_interval(90, 100)
    assert lo < 0.9 < hi
    assert lo == pytest.approx(0.8256, abs=1e-3) and hi == pytest.approx(0.9448, abs=1e-3)
    lo, hi = wilson_interval(100, 100)
    assert hi == 1.0 and 0.95 < lo < 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo_small, hi_small = wilson_interval(9, 10)
    assert hi_small - lo_small > hi - lo  # fewer requests, wider interval


def test_tabled_normal_quantiles_are_scipys_floats() -> None:
    """`TWO_SIDED_Z` spares every CLI start scipy's import; its values must be ndtri's, bit for bit (a capacity's
    interval is decided on them), and other confidences still ask scipy."""
    from scipy.special import ndtri

    from slobench.metrics.stats import TWO_SIDED_Z, two_sided_z

    for confidence, z in TWO_SIDED_Z.items():
        assert z == float(ndtri(0.5 + confidence / 2))
    assert two_sided_z(0.9) == float(ndtri(0.95))


def test_max_probes_stops() -> None:
    res = capacity_search(step_engine(7.3), max_probes=3)
    assert res.status == "max_probes"
    assert len(res.points) == 3


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        capacity_search(step_engine(), target=1.5)
    with pytest.raises(ValueError):
        capacity_search(step_engine(), rate_lo=5, rate_hi=1)


def noisy_engine(seed: int, n: int = 300):
    """A deterministic but non-monotone curve: a falling trend plus per-rate noise (binomial draws)."""
    knee = float(np.random.default_rng(seed).uniform(1, 30))

    def probe(rate: float, s: int) -> ProbeResult:
        rng = np.random.default_rng([seed, s, int(round(rate * 1e6))])
        p = float(np.clip(1.0 - max(0.0, rate - knee) / knee + rng.normal(0, 0.05), 0, 1))
        return ProbeResult(int(rng.binomial(n, p)), n)

    return probe


def test_monotone_in_target_for_any_deterministic_probe() -> None:
    """The grid + bracketing argument of `capacity_search`'s docstring, checked on 150 noisy curves."""
    targets = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)
    for seed in range(150):
        engine = noisy_engine(seed)
        caps = [capacity_search(engine, target=t, seeds=(0, 1), max_probes=1000).capacity_rps for t in targets]
        caps = [-1.0 if c is None else c for c in caps]
        assert all(a >= b for a, b in zip(caps, caps[1:], strict=False)), (seed, caps)


def test_interval_brackets_capacity_with_confident_probes() -> None:
    # A shallow curve with few requests per probe: many rates are statistically ambiguous.
    def probe(rate: float, seed: int) -> ProbeResult:
        return ProbeResult(round((1.0 - 0.02 * rate) * 200), 200)

    res = capacity_search(probe, target=0.9, rel_tol=0.02)
    assert res.status == "ok"
    pts = {p.rate_rps: p for p in res.points}
    assert res.lower_rps < res.capacity_rps < res.upper_rps
    assert pts[res.lower_rps].ci_low >= 0.9 and pts[res.upper_rps].ci_high < 0.9
    # Nothing probed between lower and capacity is a confident pass; nothing between capacity and upper a
    # confident fail (that is what "highest"/"lowest" mean).
    assert not any(p.ci_low >= 0.9 for r, p in pts.items() if res.lower_rps < r <= res.capacity_rps)
    assert not any(p.ci_high < 0.9 for r, p in pts.items() if res.capacity_rps < r < res.upper_rps)


def test_refine_interval_tightens_without_moving_capacity() -> None:
    def probe(rate: float, seed: int) -> ProbeResult:
        return ProbeResult(round((1.0 - 0.02 * rate) * 200), 200)

    plain = capacity_search(probe, target=0.9)
    fine = capacity_search(probe, target=0.9, refine_interval=True)
    assert fine.capacity_rps == plain.capacity_rps and fine.status == "ok"
    assert plain.lower_rps <= fine.lower_rps and fine.upper_rps <= plain.upper_rps
    assert (fine.lower_rps, fine.upper_rps) != (plain.lower_rps, plain.upper_rps)
    # Refined bounds are grid neighbours of probes that are *not* confident: nothing left to tighten.
    rates = sorted(p.rate_rps for p in fine.points)
    above_lower = rates[rates.index(fine.lower_rps) + 1]
    assert next(p for p in fine.points if p.rate_rps == above_lower).ci_low < 0.9
    m = np.ceil(np.log(2) / np.log1p(0.02))
    assert above_lower == pytest.approx(fine.lower_rps * 2 ** (1 / m), rel=1e-4)


def test_probe_row_round_trips_to_the_same_probe() -> None:
    """A saved row must rebuild the exact ProbeResult (that is how `slobench resume` skips probes)."""
    from slobench.capacity.search import make_probe

    res = ProbeResult(180, 200, offered_rate_rps=4.0, achieved_rate_rps=2.5, client_lag_s=0.2, tail_s=3.0,
                      unfinished=0)
    p = make_probe(4.0, 7, res, ValidityLimits())
    row = p.row()
    again = make_probe(row["rate_rps"], row["seed"], ProbeResult(
        row["num_met"], row["num_requests"], row["offered_rate_rps"], row["achieved_rate_rps"],
        row["client_lag_s"], row["tail_s"], row["unfinished"]), ValidityLimits())
    assert again == p and not p.valid and "achieved" in p.reason


def test_below_range_names_the_invalid_reason() -> None:
    res = capacity_search(lambda r, s: ProbeResult(100, 100, drain_ratio=9.0), target=0.9, rate_lo=0.1)
    assert res.status == "below_range" and "does not drain" in res.message
    assert res.upper_rps == pytest.approx(0.1, rel=0.03)


def test_confirm_probes_above_the_crossing_and_says_what_it_found() -> None:
    """A dip at the crossing: grid point k = 10 fails but 12 passes again; bisection (1 → 2 req/s, 36 points per
    doubling) visits 18, 9, 13, 11, 10 and never 12, so only the confirmation sees it, and says so."""
    m = math.ceil(math.log(2) / math.log1p(0.02))
    assert m == 36

    def noisy(rate: float, seed: int) -> ProbeResult:
        k = round(m * math.log2(rate))
        return ProbeResult(95 if k < 10 or k == 12 else 80, 100)

    plain = capacity_search(noisy, target=0.9, rate_start=1.0)
    assert plain.notes == [] and plain.capacity_rps == pytest.approx(2 ** (9 / m), rel=1e-5)
    res = capacity_search(noisy, target=0.9, rate_start=1.0, confirm=2)
    assert res.capacity_rps == plain.capacity_rps  # the lower crossing is kept
    assert len(res.probes) == len(plain.probes) + 1  # k = 11 was known already, k = 12 is new
    assert len(res.notes) == 1 and "not monotone" in res.notes[0] and res.notes[0] in res.message

    def monotone(rate: float, seed: int) -> ProbeResult:
        return ProbeResult(95 if rate < 6.0 else 80, 100)

    ok = capacity_search(monotone, target=0.9, confirm=2)
    assert ok.notes and "crossing confirmed: the next 2 grid rates" in ok.notes[0]
    with pytest.raises(ValueError, match="confirm"):
        capacity_search(monotone, confirm=-1)


def test_stretched_probe_keeps_its_warmup_and_lengthens_the_measured_span() -> None:
    from slobench.capacity.plan import SearchSpec, run_kwargs, stretched
    from slobench.errors import UserError

    kw = run_kwargs(hardware="H100-SXM", model="Llama-3.1-8B", tp=1, profile=None, replicas=1, engine="sim",
                    num_requests=None, quick=False)
    probe = SearchSpec("coding", "vllm", kw | {"workload": "coding"}).config(4.0, 0)
    long = stretched(probe, 10)
    assert long.warmup_s == probe.warmup_s > 0
    assert long.duration_s - long.warmup_s == pytest.approx(10 * (probe.duration_s - probe.warmup_s))
    with pytest.raises(UserError, match="duration-sized probe"):
        stretched(probe.model_copy(update={"duration_s": None, "num_requests": 100}), 10)


def test_hold_check_steps_down_to_the_highest_rate_that_holds() -> None:
    """A metastable engine: short probes pass (≥ 90%) up to 8.0 req/s, a 4× longer run only up to 5.5. The hold
    check must land on the highest grid rate ≤ 5.5 (not merely some lower rate), mark its probes with the span
    factor, and say in the notes what it did."""
    short = step_engine(7.3)
    long = step_engine(5.0)
    plain = capacity_search(short, target=0.9, rate_start=1.0)
    res = capacity_search(short, target=0.9, rate_start=1.0, hold=long, hold_factor=4.0)
    assert plain.capacity_rps is not None and plain.capacity_rps > 7.0
    assert res.status == "ok" and res.capacity_rps is not None and res.capacity_rps <= 5.5  # 90% of the long run
    held = [p for p in res.probes if p.span_factor == 4.0]
    assert held and all(p.rate_rps <= plain.capacity_rps for p in held)
    # the rate one grid step above the answer was hold-probed and failed: the answer is the highest that holds
    above = min(p.rate_rps for p in held if p.rate_rps > res.capacity_rps)
    assert above > 5.5 and above / res.capacity_rps < 1.021
    assert [p.rate_rps for p in res.probes if p.span_factor == 1.0] == [p.rate_rps for p in plain.probes]
    assert len(res.notes) == 1 and "did not hold in a 4× longer probe" in res.notes[0]
    assert "stepped down" in res.notes[0] and "budget ran out" not in res.notes[0]
    assert res.upper_rps is not None and res.upper_rps > res.capacity_rps


def test_hold_check_that_holds_only_notes_it() -> None:
    res = capacity_search(step_engine(7.3), target=0.9, hold=step_engine(7.3), hold_factor=4.0)
    plain = capacity_search(step_engine(7.3), target=0.9)
    assert res.capacity_rps == plain.capacity_rps
    assert res.notes == ["held in a 4× longer probe (90.4%)"]
    assert [p.span_factor for p in res.probes].count(4.0) == 1


def test_hold_check_gives_up_within_its_budget() -> None:
    res = capacity_search(step_engine(7.3), target=0.9, hold=lambda r, s: ProbeResult(0, 100), hold_factor=4.0,
                          max_hold_probes=3)
    assert res.status == "max_probes" and res.capacity_rps is None
    assert "no rate held in a 4× longer probe" in res.message
    assert [p.span_factor for p in res.probes].count(4.0) == 3
    with pytest.raises(ValueError, match="hold_factor"):
        capacity_search(step_engine(7.3), hold=step_engine(7.3), hold_factor=1.0)
