"""GPU energy: trapezoidal integration, the sampler with fake queries and clocks, and each reason code."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from slobench.qualify.power import (
    ENERGY_NOT_AVAILABLE,
    NO_OUTPUT_TOKENS,
    POWER_SAMPLE_GAP,
    TOO_FEW_POWER_SAMPLES,
    PowerSampler,
    PowerUnavailable,
    energy_joules,
    energy_result,
    parse_power_draw,
)


def _counting_query(watts: list[float], after: int) -> tuple[Callable[[], list[float]], threading.Event]:
    """A query returning ``watts`` that sets the event once it has answered ``after`` times."""
    enough = threading.Event()
    calls = [0]

    def query() -> list[float]:
        calls[0] += 1
        if calls[0] >= after:
            enough.set()
        return watts

    return query, enough


def test_energy_joules_of_constant_and_ramp_power() -> None:
    times = [i * 0.5 for i in range(21)]  # 0 … 10 s
    assert energy_joules(times, [300.0] * 21) == pytest.approx(3000.0)
    assert energy_joules([0.0, 2.0], [0.0, 100.0]) == pytest.approx(100.0)  # a ramp: the trapezoid is exact
    assert energy_joules([1.0], [300.0]) == 0.0
    with pytest.raises(ValueError):
        energy_joules([0.0, 1.0], [1.0])


def test_constant_power_gives_watts_times_seconds_per_token() -> None:
    samples = [(10.0 + i * 0.1, 500.0) for i in range(11)]  # 1 s at 500 W
    result = energy_result(samples, output_tokens=100)
    assert result.valid and result.reason is None
    assert result.joules == pytest.approx(500.0) and result.seconds == pytest.approx(1.0)
    assert result.per_output_token_j == pytest.approx(5.0) and result.samples == 11


def test_a_gap_is_power_sample_gap() -> None:
    samples = [(i * 0.1, 400.0) for i in range(10)] + [(3.0, 400.0)]
    result = energy_result(samples, output_tokens=100)
    assert not result.valid and result.reason == POWER_SAMPLE_GAP
    assert result.per_output_token_j is None and "2.10 s without a power sample" in result.detail
    assert result.joules == pytest.approx(1200.0)  # still reported, for diagnosis


def test_too_few_samples_and_no_tokens() -> None:
    few = energy_result([(0.0, 1.0), (0.1, 1.0)], output_tokens=10)
    assert few.reason == TOO_FEW_POWER_SAMPLES and "2 power samples" in few.detail
    none = energy_result([(i * 0.1, 1.0) for i in range(20)], output_tokens=0)
    assert none.reason == NO_OUTPUT_TOKENS and not none.valid


def test_no_samples_and_an_unavailable_reason_are_energy_not_available() -> None:
    assert energy_result([], 100).reason == ENERGY_NOT_AVAILABLE
    result = energy_result([], 100, unavailable_reason="nvidia-smi not found")
    assert (result.reason, result.detail, result.valid) == (ENERGY_NOT_AVAILABLE, "nvidia-smi not found", False)
    assert result.to_dict()["reason"] == ENERGY_NOT_AVAILABLE


def test_the_sampler_sums_gpus_and_integrates_constant_power() -> None:
    query, enough = _counting_query([200.0, 100.0], after=12)
    with PowerSampler(interval_s=0.002, query=query) as sampler:
        assert enough.wait(5.0)
    samples = sampler.samples
    assert len(samples) >= 13 and {w for _, w in samples} == {300.0}  # 12 in the loop, one at stop
    assert [t for t, _ in samples] == sorted(t for t, _ in samples)
    result = sampler.result(output_tokens=30)
    assert result.valid
    assert result.joules == pytest.approx(300.0 * (samples[-1][0] - samples[0][0]))
    assert result.per_output_token_j == pytest.approx(result.joules / 30)


def test_a_sampler_without_a_gpu_records_why_and_never_raises() -> None:
    def no_gpu() -> list[float]:
        raise PowerUnavailable("nvidia-smi not found")

    with PowerSampler(interval_s=0.001, query=no_gpu) as sampler:
        pass
    assert sampler.samples == [] and sampler.unavailable_reason == "nvidia-smi not found"
    result = sampler.result(output_tokens=100)
    assert result.reason == ENERGY_NOT_AVAILABLE and result.detail == "nvidia-smi not found"


def test_the_default_query_without_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with PowerSampler() as sampler:
        pass
    assert sampler.result(100).reason == ENERGY_NOT_AVAILABLE
    assert sampler.unavailable_reason == "nvidia-smi not found"


def test_a_stalled_query_shows_up_as_a_gap() -> None:
    """A fake clock: 0.1 s per reading, and one reading that takes 3 s (a hung nvidia-smi)."""
    query, enough = _counting_query([250.0], after=15)
    now = [0.0]
    calls = [0]

    def clock() -> float:
        calls[0] += 1
        now[0] += 3.0 if calls[0] == 10 else 0.05  # two clock reads per sample
        return now[0]

    with PowerSampler(interval_s=0.001, query=query, clock=clock) as sampler:
        assert enough.wait(5.0)
    result = sampler.result(output_tokens=100)
    assert result.reason == POWER_SAMPLE_GAP and not result.valid


def test_a_later_failure_is_counted_not_raised() -> None:
    calls = [0]
    enough = threading.Event()

    def flaky() -> list[float]:
        calls[0] += 1
        if calls[0] >= 6:
            enough.set()
        if calls[0] == 3:
            raise RuntimeError("nvidia-smi timed out")
        return [100.0]

    with PowerSampler(interval_s=0.001, query=flaky) as sampler:
        assert enough.wait(5.0)
    assert sampler.unavailable_reason is None and sampler.failed_queries == 1
    assert sampler.last_error == "nvidia-smi timed out" and len(sampler.samples) >= 5


def test_parse_power_draw() -> None:
    assert parse_power_draw("351.20\n 98.5\n") == [351.2, 98.5]
    with pytest.raises(PowerUnavailable, match=r"no power reading for GPU 1 \('\[N/A\]'\)"):
        parse_power_draw("351.20\n[N/A]\n")
    with pytest.raises(PowerUnavailable, match="listed no GPU"):
        parse_power_draw("\n")
