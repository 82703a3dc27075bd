"""`RunSummary`: the typed, versioned summary of one run (``summary.json`` of `slobench run`).

One model writes and reads the file, so every reader (the CLI table, capacity searches, reports)
sees the same fields with the same types, and a later version can add fields without breaking the
files written before it. Attainment and latency figures come from `slobench.metrics.attainment`
(defined once for every engine); the run's settings and the engine's own evidence (client lag,
achieved rate, scheduler statistics) are added by `slobench.cluster.run`, which builds the summary
once for every engine.

Versions: 1 = the untyped dict written before this model (no ``schema_version`` key; it reads as
version 1 and validates, since its keys are this model's field names); 2 = this model; 3 = the warm-up
fields (``warmup_s``, ``num_arrivals``, ``num_warmup``: counts and attainment are over the measured window);
4 = the vLLM-bench-style figures (`slobench.metrics.serving`: ``latency_ms``, ``e2el_s``, ``output_tok_s``,
``total_tok_s``, ``vllm_goodput_rps`` under ``goodput_bounds_ms``) and the user's ``metadata``. Older files read,
the new fields empty.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from slobench.report.results import read_json_model, write_json

SUMMARY_VERSION = 4


def _nan_if_none(v: Any) -> Any:
    """JSON has no NaN: `write` stores it as null, reading turns null back into NaN."""
    return math.nan if v is None else v


class Percentiles(BaseModel):
    """Latency percentiles in seconds (NaN where the run had no such sample)."""

    model_config = ConfigDict(extra="forbid")

    p50: float = math.nan
    p90: float = math.nan
    p99: float = math.nan
    mean: float = math.nan

    _nan = field_validator("p50", "p90", "p99", "mean", mode="before")(lambda cls, v: _nan_if_none(v))


class GroupAttainment(BaseModel):
    """Attainment of one group of requests (a tier or an app): joint, over all its arrivals."""

    model_config = ConfigDict(extra="forbid")

    num: int
    attainment: float

    _nan = field_validator("attainment", mode="before")(lambda cls, v: _nan_if_none(v))


class StageAttainment(GroupAttainment):
    """Attainment and latency of one stage name (e.g. reasoning's "think" and "answer")."""

    attainment_ttft: float = math.nan
    attainment_tpot: float = math.nan
    ttft_s: Percentiles = Field(default_factory=Percentiles)
    tpot_s: Percentiles = Field(default_factory=Percentiles)

    _nan2 = field_validator("attainment_ttft", "attainment_tpot", mode="before")(lambda cls, v: _nan_if_none(v))


class RunSummary(BaseModel):
    """One run's summary. Counts are requests (a request meets when every stage meets), except
    ``status_counts``, which counts stages. Rates in req/s, times in seconds on the run's clock."""

    # Fields a later version adds are kept when an older slobench reads the file, not refused.
    model_config = ConfigDict(extra="allow")

    schema_version: int = 1  # files without the key are version 1; `build` writes SUMMARY_VERSION

    # --- attainment and latency (slobench.metrics.attainment.summarize) ---
    num_requests: int
    num_finished: int
    num_met: int
    attainment: float
    attainment_ttft: float
    attainment_tpot: float
    attainment_admitted_only: float  # best-effort requests counted as misses (the SLOs-Serve paper's rule)
    goodput_rps: float  # requests meeting every SLO per second of arrivals
    admission_counts: dict[str, int] = Field(default_factory=dict)  # per request
    status_counts: dict[str, int] = Field(default_factory=dict)  # per stage
    ttft_s: Percentiles = Field(default_factory=Percentiles)
    tpot_s: Percentiles = Field(default_factory=Percentiles)
    itl_s: Percentiles = Field(default_factory=Percentiles)
    per_stage: dict[str, StageAttainment] = Field(default_factory=dict)
    per_tier: dict[str, GroupAttainment] = Field(default_factory=dict)
    per_app: dict[str, GroupAttainment] = Field(default_factory=dict)
    # Warm-up (version 3): requests arriving before ``warmup_s`` ran but are not counted in any figure above;
    # ``num_arrivals`` = every request of the run, ``num_warmup`` = those left out (0 / None: no warm-up).
    warmup_s: float = 0.0
    num_arrivals: int | None = None
    num_warmup: int = 0
    last_arrival_s: float | None = None  # None when the run had no requests
    tail_s: float | None = None  # last token − last arrival
    # vLLM-bench-style figures (version 4; slobench.metrics.serving). Not attainment: ``vllm_goodput_rps``
    # counts requests within fixed TTFT / mean-TPOT / E2EL bounds, ``goodput_rps`` above those meeting every
    # per-token deadline.
    e2el_s: Percentiles = Field(default_factory=Percentiles)  # per request: arrival → last token
    latency_ms: dict[str, float] = Field(default_factory=dict)  # vLLM's keys, e.g. p99_ttft_ms, median_itl_ms
    percentile_metrics: list[str] = Field(default_factory=list)  # --percentile-metrics (empty: before v4)
    metric_percentiles: list[float] = Field(default_factory=list)  # --metric-percentiles
    bench_duration_s: float | None = None  # measured window's start → last token of a measured request
    output_tok_s: float | None = None  # output tokens of completed stages / bench_duration_s
    total_tok_s: float | None = None  # (prompt + output) tokens of completed stages / bench_duration_s
    goodput_bounds_ms: dict[str, float] = Field(default_factory=dict)  # --goodput (empty: not asked for)
    num_good: int | None = None  # completed requests within every --goodput bound
    vllm_goodput_rps: float | None = None  # num_good / bench_duration_s (None without --goodput)
    metadata: dict[str, str] = Field(default_factory=dict)  # --metadata KEY=VALUE

    # --- the run's settings (slobench.cluster.run) ---
    workload: str = ""
    scheduler: str = ""
    engine: str = "sim"
    seed: int = 0
    hardware: str = ""
    model: str = ""
    replicas: int = 1
    offered_rate_rps: float = math.nan  # (arrivals − 1) / arrival span, as generated
    wall_s: float = 0.0

    # --- the engine's own evidence ---
    # Real engines' load generator: the rate it achieved and how far it lagged its schedule (None on
    # the simulator, which offers exactly the generated arrivals); capacity searches judge validity on them.
    achieved_rate_rps: float | None = None
    client_lag_s: float | None = None
    client: dict[str, Any] = Field(default_factory=dict)  # the rest of the load generator's counters
    stopped_early: str | None = None  # why a real-engine probe stopped before its end (`metrics.early_fail`)
    engine_info: dict[str, Any] = Field(default_factory=dict)  # server URL, pid, start-up time, versions
    scheduler_stats: dict[str, Any] | None = None  # the policy's counters (SchedulerStats.as_dict())

    _nan_ms = field_validator("latency_ms", mode="before")(
        lambda cls, v: {k: _nan_if_none(x) for k, x in v.items()} if isinstance(v, dict) else v)
    _nan = field_validator(
        "attainment", "attainment_ttft", "attainment_tpot", "attainment_admitted_only", "goodput_rps",
        "offered_rate_rps", mode="before")(lambda cls, v: _nan_if_none(v))

    @classmethod
    def build(cls, metrics: dict[str, Any], **run: Any) -> RunSummary:
        """The summary of a run: `summarize()`'s metrics plus the run's settings and evidence."""
        return cls.model_validate({**metrics, **run, "schema_version": SUMMARY_VERSION})

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN kept; `write` turns it into null)."""
        return self.model_dump(mode="python")

    def write(self, path: Path) -> None:
        """Write ``summary.json`` atomically (a temp file in the same folder, then a rename)."""
        write_json(path, self.as_dict())

    @classmethod
    def read(cls, path: Path) -> RunSummary:
        """Read a run's ``summary.json``; a missing, torn, foreign or newer file is one UserError line."""
        return read_json_model(path, cls, what="run summary", version=SUMMARY_VERSION)
