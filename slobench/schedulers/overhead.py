"""Scheduling-overhead bookkeeping: how long each `schedule()` call took, plus policy counters.

The SLOs-Serve paper's summaries claim < 10 ms per scheduling decision; we measure ours on every
call (wall clock, `time.perf_counter`) and report p50/p99 in the run summary. Timing is recorded,
never acted on, so it does not make a simulation non-deterministic.
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
    """Per-policy counters; the runner puts ``as_dict()`` into summary.json as ``scheduler_stats``."""

    call_s: list[float] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def merge(self, other: SchedulerStats) -> None:
        """Fold another replica's stats into this one (replicas run the same policy)."""
        self.call_s.extend(other.call_s)
        for k, v in other.counters.items():
            self.count(k, v)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"calls": len(self.call_s), **self.counters}
        if self.call_s:
            ms = np.asarray(self.call_s) * 1e3
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
        self.stats.call_s.append(time.perf_counter() - t_start)
        return plan
