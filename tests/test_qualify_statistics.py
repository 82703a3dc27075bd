"""Sample-size bounds of a qualification point: MLPerf early stopping and the attainment interval."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binom

from slobench.qualify.statistics import (
    attainment_bound,
    attainment_half_width,
    attainment_point_bound,
    max_overlatency_allowed,
    min_requests_for_attainment,
    min_requests_for_overlatency,
    min_requests_for_percentile,
    percentile_point_bound,
)


def test_zero_overlatency_minimum_is_the_closed_form() -> None:
    """No over-bound request: pⁿ ≤ 1 − c, i.e. n = ⌈ln(1 − c) / ln p⌉ (44 for P90, 459 for P99 at 99%)."""
    assert min_requests_for_percentile(0.9) == 44 == math.ceil(math.log(0.01) / math.log(0.9))
    assert min_requests_for_percentile(0.99) == 459 == math.ceil(math.log(0.01) / math.log(0.99))
    assert 0.9**44 <= 0.01 < 0.9**43


def test_loadgen_singlestream_minimum_matches_its_published_figure() -> None:
    """LoadGen's SingleStream summary prints "Processed at least 64 queries" for P90 at 99% (t = 1); the
    same rule at P99 needs 662."""
    assert min_requests_for_overlatency(1, 0.9) == 64
    assert min_requests_for_overlatency(1, 0.99) == 662


@pytest.mark.parametrize("n, discarded", [(2048, 172), (2116, 178), (2145, 181), (7469, 685)])
def test_allowed_overlatency_matches_loadgen_logs(n: int, discarded: int) -> None:
    """Published MLPerf summaries: "Processed at least 64 queries (n). Would discard k highest latency queries"
    with k = t − 1, t the most over-latency queries n allows at P90, 99%."""
    assert max_overlatency_allowed(n, 0.9) == discarded + 1


def test_allowed_overlatency_is_the_exact_binomial_edge() -> None:
    for n in (44, 100, 812, 5000):
        t = max_overlatency_allowed(n, 0.9)
        assert binom.cdf(t, n, 0.1) <= 0.01 < binom.cdf(t + 1, n, 0.1)


def test_too_few_requests_allow_no_overlatency() -> None:
    assert max_overlatency_allowed(43, 0.9) == -1
    assert max_overlatency_allowed(44, 0.9) == 0
    assert max_overlatency_allowed(0, 0.9) == -1


def test_bounds_are_monotone() -> None:
    ns = [max_overlatency_allowed(n, 0.9) for n in range(40, 400)]
    assert ns == sorted(ns)
    assert [min_requests_for_overlatency(t, 0.9) for t in range(6)] == sorted(
        {min_requests_for_overlatency(t, 0.9) for t in range(6)})
    assert min_requests_for_percentile(0.9, 0.95) < min_requests_for_percentile(0.9, 0.99)
    assert min_requests_for_percentile(0.9) < min_requests_for_percentile(0.95) < min_requests_for_percentile(0.99)
    margins = [0.2, 0.1, 0.05, 0.02, 0.01]
    need = [min_requests_for_attainment(0.9, m) for m in margins]
    assert need == sorted(need) and len(set(need)) == len(need)
    assert min_requests_for_attainment(0.9, 0.02, 0.95) < min_requests_for_attainment(0.9, 0.02, 0.99)


def test_attainment_minimum_is_the_first_n_within_the_margin() -> None:
    n = min_requests_for_attainment(0.9, 0.02)
    assert n == 868
    assert attainment_half_width(0.9, n) <= 0.02 < attainment_half_width(0.9, n - 1)
    # Close to the normal approximation z²·p(1−p)/m² = 864 (Wilson is a little wider at this n).
    assert abs(n - 1.959964**2 * 0.09 / 0.02**2) < 10


def test_attainment_bound_is_the_searchs_wilson_interval() -> None:
    from slobench.metrics.stats import wilson_interval

    assert attainment_bound(90, 100) == wilson_interval(90, 100, 0.95)
    assert attainment_bound(0, 0) == (0.0, 1.0)
    lo, hi = attainment_bound(100, 100)
    assert hi == 1.0 and lo < 1.0


@pytest.mark.parametrize("call", [
    lambda: min_requests_for_percentile(1.0), lambda: min_requests_for_percentile(0.9, 1.0),
    lambda: min_requests_for_attainment(0.9, 0.0), lambda: min_requests_for_attainment(0.0, 0.1),
    lambda: min_requests_for_overlatency(-1, 0.9), lambda: attainment_bound(5, 3),
    lambda: percentile_point_bound(10, 11, 0.9),
])
def test_out_of_domain_arguments_raise(call) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        call()


def test_point_bounds_say_what_was_needed_and_met() -> None:
    b = percentile_point_bound(812, 3, 0.99)
    assert b.enough and b.required_n == 459 and b.allowed_over == max_overlatency_allowed(812, 0.99)
    assert b.line().startswith("n=812 ≥ 459 needed for P99 at 99%")
    assert b.demonstrated is (3 <= b.allowed_over)
    short = percentile_point_bound(30, 0, 0.9)
    assert not short.enough and not short.demonstrated and "n=30 < 44" in short.line()
    a = attainment_point_bound(850, 900, 0.9, 0.02)
    assert a.enough and a.required_n == 868 and a.demonstrated  # 94.4%, lower end above 90%
    assert "attainment 90% ±2% at 95%" in a.line()
    assert not attainment_point_bound(800, 900, 0.9, 0.02).demonstrated
