"""How far the simulator is from the real engine: the numbers `slobench validate` reports (pure functions).

A simulator is trusted as far as it predicts the real engine where it matters (DESIGN.md "Fidelity"): at the
knee, where capacity is decided and where simulators fail worst. So the headline is the **capacity error**
``sim / real − 1`` per policy, with the real capacity's interval beside it (a 5% error means nothing inside a
±20% interval); the rest says *why* it is off:

- **per-probe latency error**: at every (rate, seed) probed on both engines, each latency percentile the probe
  reports (median, p90, p99 of TTFT and of TPOT, probes.csv's ``*_ttft_ms`` / ``*_tpot_ms`` columns) gives one
  relative error ``sim / real − 1``; reported as the signed mean (bias) and the mean, p90 and p99 of its size.
  TTFT errors explode near saturation (queues), so they are shown by metric, not averaged with TPOT;
- **attainment-curve difference**: mean |attainment_sim − attainment_real| over the rates probed by both
  (seeds averaged first), the distance between the two curves the capacities are read from;
- **gain agreement**: the simulated gain of a policy over the baseline (capacity ratio) against the real one;
  their ratio ("ratio of ratios") is 1 when the simulator ranks and spaces the policies as the engine does.
  Issue 11's goal: within 15%.

Inputs are probes.csv rows (`slobench.report.probes.probes_frame`) and capacity rows as dicts; nothing here
runs an engine or reads a file, so every number can be checked on crafted inputs (tests/test_validate.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SIM_SUFFIX = "/sim"
REAL_SUFFIX = "/real"
GAIN_TOLERANCE = 0.15  # issue 11: the real gain of slos-serve over vllm within 15% of the simulated gain
LATENCY_STATS = ("median", "p90", "p99")  # the per-probe percentiles compared (validate asks probes for them)


@dataclass(frozen=True)
class ErrorStats:
    """Relative errors ``sim / real − 1`` summarised (fractions, not %); None fields: no pair to compare."""

    n: int
    mean: float | None = None  # signed: > 0 the simulator predicts slower / higher than the engine measured
    mean_abs: float | None = None
    p90_abs: float | None = None
    p99_abs: float | None = None


def relative_errors(sim: Sequence[float] | np.ndarray, real: Sequence[float] | np.ndarray) -> np.ndarray:
    """``sim / real − 1`` element-wise, keeping only pairs where both are finite and ``real`` > 0 (a probe that
    measured no TPOT, e.g. one-token outputs, has nothing to compare)."""
    s = np.asarray(sim, dtype=float)
    r = np.asarray(real, dtype=float)
    ok = np.isfinite(s) & np.isfinite(r) & (r > 0)
    return s[ok] / r[ok] - 1.0


def error_stats(errors: Sequence[float] | np.ndarray) -> ErrorStats:
    """Signed mean and mean / p90 / p99 of |error| (linear-interpolated percentiles, numpy's default)."""
    e = np.asarray(errors, dtype=float)
    e = e[np.isfinite(e)]
    if not e.size:
        return ErrorStats(n=0)
    a = np.abs(e)
    return ErrorStats(n=int(e.size), mean=float(e.mean()), mean_abs=float(a.mean()),
                      p90_abs=float(np.percentile(a, 90)), p99_abs=float(np.percentile(a, 99)))


def capacity_error(sim_rps: float | None, real_rps: float | None) -> float | None:
    """``sim / real − 1``; None when either capacity is missing (below the rate range) or the real one is 0."""
    if sim_rps is None or real_rps is None or not (math.isfinite(sim_rps) and math.isfinite(real_rps)):
        return None
    return sim_rps / real_rps - 1.0 if real_rps > 0 else None


def paired_probes(probes: pd.DataFrame, sim_label: str, real_label: str, scheduler: str) -> pd.DataFrame:
    """The (rate, seed) probes of ``scheduler`` run on both engines, one row each, columns suffixed ``_sim`` /
    ``_real``. Hold probes (``span_factor`` ≠ 1) and INVALID probes are left out: an invalid probe's latencies
    describe a load that was not offered."""
    if probes.empty:
        return pd.DataFrame()
    keep = probes["scheduler"].astype(str) == scheduler
    if "span_factor" in probes:
        keep &= probes["span_factor"].fillna(1.0).astype(float) == 1.0
    if "valid" in probes:
        keep &= probes["valid"].astype(bool)
    p = probes[keep]
    sim = p[p["workload"].astype(str) == sim_label]
    real = p[p["workload"].astype(str) == real_label]
    return sim.merge(real, on=["rate_rps", "seed"], suffixes=("_sim", "_real"))


def latency_errors(pairs: pd.DataFrame, metric: str) -> ErrorStats:
    """`error_stats` of every per-probe percentile of ``metric`` (ttft, tpot) present on both sides."""
    errs: list[np.ndarray] = []
    for stat in LATENCY_STATS:
        col = f"{stat}_{metric}_ms"
        if f"{col}_sim" in pairs and f"{col}_real" in pairs:
            errs.append(relative_errors(pairs[f"{col}_sim"], pairs[f"{col}_real"]))
    return error_stats(np.concatenate(errs) if errs else np.array([]))


def attainment_gap(pairs: pd.DataFrame) -> tuple[float | None, int]:
    """(mean |attainment_sim − attainment_real| over the common rates, seeds averaged first; number of rates)."""
    if pairs.empty:
        return None, 0
    by_rate = pairs.groupby("rate_rps")[["attainment_sim", "attainment_real"]].mean()
    gap = (by_rate["attainment_sim"] - by_rate["attainment_real"]).abs()
    return float(gap.mean()), int(len(gap))


@dataclass
class PolicyValidation:
    """One policy's simulated vs real figures (summary.json ``validation.policies[scheduler]``)."""

    scheduler: str
    sim_capacity_rps: float | None
    real_capacity_rps: float | None
    capacity_error: float | None  # sim / real − 1
    real_lower_rps: float | None = None  # the real capacity's interval [highest confident pass,
    real_upper_rps: float | None = None  # lowest confident fail)
    common_rates: int = 0  # rates probed on both engines (the latency and curve figures rest on these)
    common_probes: int = 0
    ttft_error: ErrorStats = field(default_factory=lambda: ErrorStats(n=0))
    tpot_error: ErrorStats = field(default_factory=lambda: ErrorStats(n=0))
    attainment_gap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GainAgreement:
    """Does the simulator predict a policy's gain over the baseline as the engine shows it?"""

    baseline: str
    policy: str
    sim_gain: float | None  # sim capacity(policy) / sim capacity(baseline)
    real_gain: float | None
    ratio_of_ratios: float | None  # sim_gain / real_gain; 1 = the same gain
    matches: bool | None  # |ratio_of_ratios − 1| ≤ tolerance; None when a capacity is missing
    tolerance: float = GAIN_TOLERANCE


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b > 0 else a / b


def gain_agreement(sim_caps: Mapping[str, float | None], real_caps: Mapping[str, float | None], baseline: str,
                   policy: str, tolerance: float = GAIN_TOLERANCE) -> GainAgreement:
    """`GainAgreement` of ``policy`` over ``baseline`` from the two engines' capacities (req/s by scheduler)."""
    sim_gain = _ratio(sim_caps.get(policy), sim_caps.get(baseline))
    real_gain = _ratio(real_caps.get(policy), real_caps.get(baseline))
    ror = _ratio(sim_gain, real_gain)
    return GainAgreement(baseline, policy, sim_gain, real_gain, ror,
                         None if ror is None else abs(ror - 1.0) <= tolerance, tolerance)


def _capacity(capacities: Sequence[Mapping[str, Any]], label: str, scheduler: str) -> Mapping[str, Any]:
    for c in capacities:
        if str(c.get("workload")) == label and str(c.get("scheduler")) == scheduler:
            return c
    return {}


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def validate_policy(probes: pd.DataFrame, capacities: Sequence[Mapping[str, Any]], label: str,
                    scheduler: str) -> PolicyValidation:
    """Every figure of one policy on workload ``label`` (its searches are ``label/sim`` and ``label/real``)."""
    sim_label, real_label = label + SIM_SUFFIX, label + REAL_SUFFIX
    sim, real = _capacity(capacities, sim_label, scheduler), _capacity(capacities, real_label, scheduler)
    sim_cap, real_cap = _num(sim.get("capacity_rps")), _num(real.get("capacity_rps"))
    pairs = paired_probes(probes, sim_label, real_label, scheduler)
    gap, rates = attainment_gap(pairs)
    return PolicyValidation(
        scheduler=scheduler, sim_capacity_rps=sim_cap, real_capacity_rps=real_cap,
        capacity_error=capacity_error(sim_cap, real_cap), real_lower_rps=_num(real.get("lower_rps")),
        real_upper_rps=_num(real.get("upper_rps")), common_rates=rates, common_probes=int(len(pairs)),
        ttft_error=latency_errors(pairs, "ttft"), tpot_error=latency_errors(pairs, "tpot"), attainment_gap=gap)


def validation_summary(probes: pd.DataFrame, capacities: Sequence[Mapping[str, Any]], label: str,
                       schedulers: Sequence[str]) -> dict[str, Any]:
    """summary.json's ``validation``: per policy `PolicyValidation`, and the gain of every other policy over the
    first (the baseline) on both engines."""
    pols = {s: validate_policy(probes, capacities, label, s) for s in schedulers}
    sim_caps = {s: v.sim_capacity_rps for s, v in pols.items()}
    real_caps = {s: v.real_capacity_rps for s, v in pols.items()}
    gains = [asdict(gain_agreement(sim_caps, real_caps, schedulers[0], s)) for s in schedulers[1:]]
    return {"workload": label, "sim_label": label + SIM_SUFFIX, "real_label": label + REAL_SUFFIX,
            "policies": {s: v.to_dict() for s, v in pols.items()}, "gains": gains}
