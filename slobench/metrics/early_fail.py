"""Stop a real-engine probe early once it has certainly failed (issue 11: real capacity searches in minutes).

A real probe runs in wall-clock time: 1,200 requests at a rate that has already failed can cost minutes
that decide nothing. `EarlyFail` watches the stage records as the engine emits them and says stop once
the requests decided so far, inside the measured window (arriving after the warm-up), have a Wilson
upper bound below the target. Only a FAIL stops early: a PASS needs the whole steady-state probe,
since stopping on success would bring back the transient bias the warm-up removes.

Why the decided requests are a conservative sample: requests are decided when their last stage ends, so
the first ones decided are those that went fast; a slow (late, missed) request is decided later. The
attainment of the early sample therefore leans high, and a bound below the target on it is a bound on
the probe. The confidence (99% by default, above the search's 95%) pays for looking after every record
(repeated testing), and at least ``min_decided`` measured requests must be decided first.

Pure: no I/O and no engine imports; `slobench.cluster.run.run_once` feeds it and real engines poll it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slobench.metrics.attainment import stage_met
from slobench.metrics.records import StageRecord
from slobench.metrics.stats import wilson_interval


@dataclass
class EarlyFail:
    """Feed it every final stage record (`add`); `reason` is set (and stays) once the probe has failed."""

    target: float
    warmup_s: float = 0.0
    confidence: float = 0.99
    min_decided: int = 50
    met: int = 0
    decided: int = 0
    reason: str | None = None
    _open: dict[int, list[bool]] = field(default_factory=dict)  # request id → its stages' met so far

    def add(self, rec: StageRecord) -> bool:
        """Count one final stage record; True when the probe should stop now (the first time and after)."""
        if self.reason is not None:
            return True
        if rec.arrival_s < self.warmup_s:
            return False
        stages = self._open.setdefault(rec.request_id, [])
        stages.append(stage_met(rec.status, rec.stage_start_s, rec.ttft_slo_s, rec.tpot_slo_s, rec.output_tokens,
                                rec.token_times_s))
        if len(stages) < rec.num_stages:
            return False
        del self._open[rec.request_id]
        self.decided += 1
        self.met += all(stages)
        if self.decided < self.min_decided:
            return False
        _, hi = wilson_interval(self.met, self.decided, self.confidence)
        if hi < self.target:
            self.reason = (f"stopped early as a FAIL: {self.met} of the first {self.decided} measured requests met "
                           f"their SLOs, {self.confidence:.0%} upper bound {hi:.1%} < target {self.target:.0%}")
            return True
        return False
