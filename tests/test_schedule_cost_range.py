"""The fitted schedule() cost is not extrapolated beyond the queue lengths it was fitted on."""

from __future__ import annotations

import pytest

from slobench.perf.schedule_cost import ScheduleCost, schedule_cost_for


def test_queue_lengths_beyond_the_fit_are_priced_as_the_largest_fitted() -> None:
    cost = ScheduleCost(a=1e-4, b=2e-5, c=1e-6, max_waiting=100, max_running=200)
    assert cost.seconds(50, 100) == pytest.approx(1e-4 + 50 * 2e-5 + 100 * 1e-6)
    assert cost.seconds(5000, 100) == cost.seconds(100, 100)  # a burst cannot make planning run away
    assert cost.seconds(10, 10_000) == cost.seconds(10, 200)
    assert ScheduleCost(a=1e-4, b=2e-5).seconds(5000, 0) == pytest.approx(1e-4 + 0.1)  # no range: linear


@pytest.mark.parametrize("policy", ["slos-serve", "vllm", "mypkg.mod:Custom"])
def test_shipped_fits_carry_their_range(policy: str) -> None:
    cost = schedule_cost_for(policy)
    assert cost.max_waiting is not None and cost.max_waiting > 0 and cost.max_running is not None
    assert cost.as_dict()["max_waiting"] == cost.max_waiting
