"""One statistics type for every policy and the vLLM adapter: schedule() call times plus counters.

The SLOs-Serve paper's summaries claim < 10 ms per scheduling decision; we measure ours on every
call (wall clock, `time.perf_counter`) and report percentiles in the run summary. Timing is
recorded, never acted on, so it does not make a simulation non-deterministic. A simulated run is
finite and keeps every call time (``window=None``); a long-lived vLLM server keeps a bounded window
of the most recent ones (``window=N``), so its memory stays bounded while the counters stay exact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from slobench.schedulers.base import BatchPlan, SchedulerView


@dataclass
class SchedulerStats:
    """Per-policy counters; the run puts ``as_dict()`` into summary.json as ``scheduler_stats``.

    ``as_dict()`` keys: ``calls`` (iterations the policy planned, exact: one schedule() call each, or
    covered by a steady-decode decision), each counter by name (``steady_iterations``: the iterations
    covered that way, simulator only), and ``overhead_ms`` = {p50, p99, max, mean} of the measured
    decision times kept (schedule() calls and steady-decode decisions; all of them, or the last
    ``window``), absent before the first call.
    """

    window: int | None = None  # keep only this many recent call times (None: all)
    calls: int = 0
    call_s: list[float] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def record_call(self, seconds: float) -> None:
        """One schedule() call took ``seconds`` of wall time."""
        self.calls += 1
        self.call_s.append(seconds)
        if self.window is not None and len(self.call_s) > 2 * self.window:
            del self.call_s[: -self.window]  # amortised O(1): trims once per `window` calls

    def record_steady(self, n: int, seconds: float) -> None:
        """One steady-decode decision (`slobench.schedulers.base.SteadyDecode`) that took ``seconds`` and
        covered ``n`` iterations the simulator ran without a schedule() call.

        ``calls`` counts the ``n`` iterations as planned (so it stays one per iteration, as without the
        shortcut), ``steady_iterations`` says how many were planned this way, and the decision's own
        measured time is one sample of ``overhead_ms`` — no time is invented for calls that never ran.
        """
        if n <= 0:
            return
        self.calls += n
        self.count("steady_iterations", n)
        self.call_s.append(seconds)
        if self.window is not None and len(self.call_s) > 2 * self.window:
            del self.call_s[: -self.window]

    def merge(self, other: SchedulerStats) -> None:
        """Fold another replica's stats into this one (replicas run the same policy)."""
        self.calls += other.calls
        self.call_s.extend(other.call_s)
        for k, v in other.counters.items():
            self.count(k, v)

    def recent_s(self) -> list[float]:
        """The call times the percentiles are taken over."""
        return self.call_s if self.window is None else self.call_s[-self.window:]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"calls": self.calls, **self.counters}
        recent = self.recent_s()
        if recent:
            ms = np.asarray(recent) * 1e3
            out["overhead_ms"] = {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
                                  "max": float(ms.max()), "mean": float(ms.mean())}
        return out


class TimedSchedule:
    """Mixin for policies: ``schedule()`` runs ``_schedule()`` and records its wall time in ``stats``."""

    stats: SchedulerStats

    def _schedule(self, view: SchedulerView) -> BatchPlan:
        raise NotImplementedError

    def schedule(self, view: SchedulerView) -> BatchPlan:
        t_start = time.perf_counter()
        plan = self._schedule(view)
        self.stats.record_call(time.perf_counter() - t_start)
        return plan

    def note_steady_calls(self, n: int, seconds: float) -> None:
        """`slobench.schedulers.base.SteadyDecode`: ``n`` iterations the engine ran on this policy's word."""
        self.stats.record_steady(n, seconds)
