"""What a policy's ``schedule()`` call costs in simulated time, and the simulator's ground-truth latency.

vLLM's default engine loop runs the scheduler synchronously before every forward step, so a policy's
planning time delays every token of the iteration. The simulator charges it (``--schedule-cost``):

* ``model`` (default, deterministic): ``cost_s = a + b·len(waiting) + c·len(running)`` for a call with work
  waiting, and ``a_idle + c_idle·len(running)`` for one with nothing waiting (when the policy's entry has an
  ``idle`` fit; otherwise the one formula serves both), coefficients fitted per policy by
  ``scripts/fit_schedule_cost.py`` to measured ``schedule()`` times and stored in
  ``perf/data/schedule_cost.json`` with R² and, per policy, the machine, date and timer (thread CPU time since
  2026-12-02; the entries kept from the first fit say wall time). Two regimes because one line cannot
  price both: slos-serve's calls with nothing waiting only continue its decodes (49 µs of CPU on chatbot at 17.6
  req/s), while a call with requests waiting runs its admission DP (352 µs); the single fit (R² 0.05, wall time on
  a busy machine) charged every decode-only call there ~0.8 ms, 17× its cost (docs/simulator.md "schedule() time is
  charged"). A policy the file does not know
  (a user's ``package.module:Class``) gets the file's ``default`` entry — the element-wise maximum of the
  fitted policies' coefficients in each regime, i.e. "at least as slow as the slowest shipped policy" — and the run
  records that it did.
* ``wall``: the measured ``perf_counter`` time of each call (honest on this machine, not reproducible:
  the run records ``deterministic: false``).
* ``off``: zero, the simulator of earlier versions.

The ground truth (`truth_factors`) is the planning model's prediction times ``(1 + bias)`` times a
lognormal noise of mean 1 and coefficient of variation ``cv``, drawn per iteration from its own seeded
generator in chunks (one numpy call per 4096 iterations, so the draw costs the loop nothing measurable).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

SCHEDULE_COST_FILE = Path(__file__).resolve().parent / "data" / "schedule_cost.json"
SCHEDULE_COST_MODES = ("model", "wall", "off")
NOISE_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class ScheduleCost:
    """``seconds(w, r) = a + b·w + c·r`` for ``w`` > 0 waiting and ``r`` running sequences, and ``a_idle +
    c_idle·r`` when nothing waits (``a_idle`` None: the first formula with w = 0); ``source`` says which entry of
    the coefficients file it came from (recorded in the run's summary)."""

    a: float = 0.0
    b: float = 0.0
    c: float = 0.0
    source: str = "off"
    # The queue lengths the fit saw: the model is not extrapolated beyond them (a count above is priced as the
    # largest fitted one). Measured why: slos-serve's fit (R² 0.05, ≤ ~100 waiting) priced 1,000 waiting
    # requests at 28 ms a call, so a burst slowed every iteration, the queue grew and the run collapsed
    # (mixed at 16.6 req/s: 44% attainment over 10× the probe; 93% with the cost off) — an artefact of the
    # linear fit, not a measured cost.
    max_waiting: int | None = None
    max_running: int | None = None
    # A call with nothing waiting (only running sequences to continue): its own fit, when the file has one.
    a_idle: float | None = None
    c_idle: float = 0.0

    def seconds(self, n_waiting: int, n_running: int) -> float:
        if self.max_waiting is not None and n_waiting > self.max_waiting:
            n_waiting = self.max_waiting
        if self.max_running is not None and n_running > self.max_running:
            n_running = self.max_running
        if n_waiting == 0:
            a, c = self.idle
            return a + c * n_running
        return self.a + self.b * n_waiting + self.c * n_running

    @property
    def idle(self) -> tuple[float, float]:
        """(a, c) of a call with nothing waiting: the idle fit, else the busy formula's at w = 0."""
        return (self.a, self.c) if self.a_idle is None else (self.a_idle, self.c_idle)

    def as_dict(self) -> dict[str, Any]:
        a_idle, c_idle = self.idle
        return {"a_s": self.a, "b_s_per_waiting": self.b, "c_s_per_running": self.c, "source": self.source,
                "max_waiting": self.max_waiting, "max_running": self.max_running,
                "idle_a_s": a_idle, "idle_c_s_per_running": c_idle}


@lru_cache(maxsize=1)
def _load(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def schedule_cost_table(path: Path | None = None) -> dict[str, Any]:
    """The fitted coefficients file (policies, default, machine, date, R²)."""
    return _load(str(path or SCHEDULE_COST_FILE))


def schedule_cost_for(policy_name: str, path: Path | None = None) -> ScheduleCost:
    """The fitted cost model of a registry policy; anything else gets the file's documented ``default``."""
    table = schedule_cost_table(path)
    key = policy_name.strip().lower().replace("_", "-")
    entry = table["policies"].get(key)
    source = f"fitted:{key}"
    if entry is None:
        entry, source = table["default"], "default (max of fitted policies; policy not in the file)"
    mw, mr = entry.get("max_waiting"), entry.get("max_running")
    idle = entry.get("idle")
    return ScheduleCost(a=float(entry["a"]), b=float(entry["b"]), c=float(entry["c"]), source=source,
                        max_waiting=None if mw is None else int(mw), max_running=None if mr is None else int(mr),
                        a_idle=None if idle is None else float(idle["a"]),
                        c_idle=0.0 if idle is None else float(idle["c"]))


def lognormal_params(cv: float) -> tuple[float, float]:
    """(μ, σ) of the lognormal with mean 1 and coefficient of variation ``cv``: σ² = ln(1 + cv²), μ = −σ²/2."""
    s2 = math.log1p(cv * cv)
    return -0.5 * s2, math.sqrt(s2)


class TruthFactors:
    """Per-iteration factors ``(1 + bias) × noise``: truth = predicted × next factor.

    One generator of its own (seeded from the run's seed, separate from speculative acceptance), drawn in
    chunks of `NOISE_CHUNK`; with ``cv == 0`` no generator is made and every factor is exactly ``1 + bias``.
    """

    __slots__ = ("buf", "arr", "i", "_rng", "_mu", "_sigma", "_scale")

    def __init__(self, seed: int, bias: float, cv: float) -> None:
        self._scale = 1.0 + bias
        self._mu, self._sigma = lognormal_params(cv)
        self._rng = np.random.default_rng([seed, 0x7472757468]) if cv > 0 else None  # "truth"
        self.buf: list[float] = []
        self.i = 0
        self.refill()

    def refill(self) -> list[float]:
        """A fresh chunk (the loop indexes ``buf`` itself and calls this when it runs out)."""
        if self._rng is None:
            self.arr = np.full(NOISE_CHUNK, self._scale)
        else:
            self.arr = self._scale * self._rng.lognormal(self._mu, self._sigma, NOISE_CHUNK)
        self.buf = self.arr.tolist()  # the scalar loop indexes a list (faster than numpy scalars)
        self.i = 0
        return self.buf
