"""Typed, versioned rows of a capacity results folder: ``probes.csv`` and ``summary.json``.

`slobench.capacity.store` writes these files and `slobench.report.rebuild` reads them, both through
the models here, so a writer and its readers cannot drift apart. The models sit in `report` (below
`capacity`) because the report layer reads them and must not import `capacity`.

Versions (``schema_version``): 1 = the files written before these models (no ``schema_version``
column or key; they read as version 1, and optional columns missing from them take their defaults);
2 = these models; 3 = steady-state probes (probes.csv: the warm-up and the evidence of the backlog, drain
and compute-ceiling checks; summary.json's capacity rows: ``notes``, ``probe_requests``, ``warmup``); 4 = the
vLLM-style figures per probe (probes.csv: ``goodput_rps``, ``vllm_goodput_rps``, ``output_tok_s``, ``total_tok_s``
and the latency columns in ms named as vLLM names them, e.g. ``p99_ttft_ms``; summary.json: ``metadata`` and each
capacity row's ``at_capacity``, those figures at the capacity; later ``burst_share``, real engines' tokens read in
bursts, an optional column that rows written before it lack and read as empty). A
file of a newer version than this slobench knows is refused in one line; older files read, the new
columns empty.

- `ProbeRow`: one probe (one seeded run at one rate) as one row of probes.csv. Its columns are the
  probe's identity, its counts and Wilson interval, its validity and the evidence the validity was
  judged on (so a resumed search can replay it without rerunning); a sweep adds its grid values.
- `CapacityRow`: one capacity search's outcome, one row of summary.json's ``capacities``.
- `ScalingRow`: one (scheduler, router, replica count) capacity, summary.json's ``scaling`` (``router`` and
  ``workload`` are optional fields, None in files written before them).
- `ExperimentSummary`: the whole summary.json of a compare / capacity / sweep / paper section.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slobench.errors import UserError
from slobench.report.results import atomic_target, check_version, first_error, read_json_model, write_json

PROBES_VERSION = 4
SUMMARY_VERSION = 4

# Columns every probes.csv has had; the evidence columns (offered_rate_rps …) came later and default.
# The vLLM-style columns every version-4 row has (the latency columns follow the command's choices).
SERVING_COLUMNS = ("goodput_rps", "vllm_goodput_rps", "output_tok_s", "total_tok_s")
REQUIRED_PROBE_COLUMNS = ("workload", "scheduler", "rate_rps", "seed", "attainment", "ci_low", "ci_high",
                          "num_met", "num_requests", "valid")


def _none_if_nan(v: Any) -> Any:
    """CSV and JSON hold "no value" as an empty cell / null / NaN; the models hold None."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


class ProbeRow(BaseModel):
    """One probe: one seeded run at one rate, as the search judged it. One row of probes.csv.

    Extra columns (a sweep's grid values, ``base_workload``) are kept as they are.
    """

    model_config = ConfigDict(extra="allow")

    workload: str  # the search's label (a sweep puts its grid values in it); with scheduler, the search's id
    scheduler: str
    rate_rps: float  # the rate asked for (a point of the search's geometric grid), req/s
    seed: int  # workload seed
    attainment: float  # num_met / num_requests
    ci_low: float  # Wilson interval of attainment (95%)
    ci_high: float
    num_met: int  # requests meeting every stage's SLO
    num_requests: int  # measured arrivals (rejected, unfinished: misses; best-effort: met only if on time)
    valid: bool  # False: the run cannot be trusted (reason says why); counts as a miss
    reason: str = ""  # why INVALID; empty when valid
    # Validity evidence (None: the engine does not measure it, e.g. client lag on the simulator).
    offered_rate_rps: float | None = None  # the rate asked for
    achieved_rate_rps: float | None = None  # the arrival rate realised (generated on sim, sent on real engines)
    client_lag_s: float | None = None  # how far the load generator fell behind its schedule
    tail_s: float | None = None  # last token − last SLO deadline of any stage
    unfinished: int = 0  # requests not finished at the horizon
    # Steady state (version 3; None in older rows). num_met/num_requests count the measured window only.
    num_arrivals: int | None = None  # every request of the run, warm-up included
    warmup_s: float | None = None  # arrivals before this ran but were not counted
    backlog_growth: float | None = None  # in-system count's growth over the measured window (requests)
    backlog_arrivals: int | None = None  # arrivals inside the measured window
    backlog_mean: float | None = None  # time-average in-system count over the window
    drain_ratio: float | None = None  # last measured request's lateness ÷ its own e2e SLO
    offered_tok_s: float | None = None  # offered prefill + decode tokens per second
    ceiling_tok_s: float | None = None  # the replicas' modelled compute ceiling for that mix
    # Steady-state evidence added in version 4 (None in older rows and where not measured).
    kv_full_share: float | None = None  # share of the measured window with a KV cache ≥ 95% full (simulator)
    stopped_early: str | None = None  # a real-engine probe stopped as a certain FAIL: why
    # Real engines: share of the measured tokens whose client timestamps came in bursts (None on the simulator
    # and in rows written before the column existed; `slobench.capacity.validity.burst_share`).
    burst_share: float | None = None
    # A hold probe (the capacity re-run longer, docs/capacity.md "Hold check") has its span factor here; 1 for
    # a search probe and in rows written before the column existed.
    span_factor: float = 1.0
    # vLLM-style figures (version 4; slobench.metrics.serving). The latency columns (``mean_ttft_ms``,
    # ``p99_itl_ms`` …: the --percentile-metrics × --metric-percentiles chosen) ride as extra columns.
    goodput_rps: float | None = None  # requests meeting every per-token deadline per second (slobench's goodput)
    vllm_goodput_rps: float | None = None  # requests within the --goodput bounds per second (None: not asked)
    output_tok_s: float | None = None  # output tokens of completed stages per second
    total_tok_s: float | None = None  # prompt + output tokens of completed stages per second
    schema_version: int = 1  # rows without the column are version 1; the store writes PROBES_VERSION

    _nan = field_validator("offered_rate_rps", "achieved_rate_rps", "client_lag_s", "tail_s", "num_arrivals",
                           "warmup_s", "backlog_growth", "backlog_arrivals", "backlog_mean", "drain_ratio",
                           "offered_tok_s", "ceiling_tok_s", "kv_full_share", "stopped_early", "burst_share",
                           "goodput_rps", "vllm_goodput_rps", "output_tok_s", "total_tok_s",
                           mode="before")(lambda cls, v: _none_if_nan(v))

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, v: Any) -> str:
        v = _none_if_nan(v)
        return "" if v is None else str(v)

    @field_validator("workload", "scheduler", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v

    @field_validator("span_factor", mode="before")
    @classmethod
    def _span(cls, v: Any) -> Any:
        v = _none_if_nan(v)
        return 1.0 if v is None or v == "" else v

    @field_validator("unfinished", mode="before")
    @classmethod
    def _count(cls, v: Any) -> Any:
        v = _none_if_nan(v)
        return 0 if v is None or v == "" else v

    @property
    def key(self) -> tuple[str, str, float, int] | tuple[str, str, float, int, float]:
        """The probe's identity inside a results folder (see `slobench.report.results.probe_key`)."""
        from slobench.report.results import probe_key

        return probe_key(self.workload, self.scheduler, self.rate_rps, self.seed, self.span_factor)

    def serving(self) -> dict[str, float | None]:
        """The probe's vLLM-style figures (tokens/s, both goodputs, latency columns in ms) as the search's
        `ProbeResult` carries them, so a resumed probe writes the same row again."""
        from slobench.metrics.serving import is_latency_key

        figures = {"goodput_rps": self.goodput_rps, "vllm_goodput_rps": self.vllm_goodput_rps,
                   "output_tok_s": self.output_tok_s, "total_tok_s": self.total_tok_s}
        figures |= {k: _none_if_nan(v) for k, v in (self.model_extra or {}).items() if is_latency_key(k)}
        return {k: v for k, v in figures.items() if v is not None}  # empty cells: not measured

    def to_row(self) -> dict[str, Any]:
        """The CSV row: today's columns in their order, then extra (grid) columns, then schema_version."""
        row = self.model_dump(exclude={"schema_version"})
        return row | {"schema_version": self.schema_version}


class CapacityRow(BaseModel):
    """One capacity search's outcome (one row of summary.json's ``capacities``); grid values ride along."""

    model_config = ConfigDict(extra="allow")

    workload: str
    scheduler: str
    capacity_rps: float | None = None  # highest passing grid rate; None when even the lowest rate missed
    lower_rps: float | None = None  # highest confidently passing rate ≤ capacity (None: none that clear)
    upper_rps: float | None = None  # lowest confidently failing rate > capacity
    status: str = "ok"  # ok | below_range | above_range | max_probes
    message: str = ""
    min_rate_rps: float | None = None  # lowest rate probed (the bound shown for below_range)
    num_rates: int | None = None
    num_probes: int | None = None
    notes: str = ""  # what the search did beyond bisection (the crossing's confirmation; version 3)
    probe_requests: int | None = None  # expected requests per probe and replica (version 3)
    warmup: float | None = None  # share of each probe's duration not counted (version 3)
    # vLLM-style figures of the probes at the capacity, mean over seeds (version 4): goodput_rps,
    # vllm_goodput_rps, output_tok_s, total_tok_s and the latency keys in ms (e.g. p99_ttft_ms)
    at_capacity: dict[str, float] = Field(default_factory=dict)

    _nan = field_validator("capacity_rps", "lower_rps", "upper_rps", "min_rate_rps",
                           mode="before")(lambda cls, v: _none_if_nan(v))

    @property
    def grid(self) -> dict[str, Any]:
        """The extra (grid) values of a sweep's search, e.g. ``{"replicas": 2}``."""
        return dict(self.model_extra or {})


class ScalingRow(BaseModel):
    """Capacity of one scheduler with ``replicas`` replicas behind ``router`` (the replica-scaling figures).

    ``router`` and ``workload`` came later (`slobench compare --scaling`): rows written before them, and rows of
    one replica (no routing happens), have None, so old summary.json files load unchanged and draw the old
    capacity-vs-replicas figure.
    """

    model_config = ConfigDict(extra="allow")

    scheduler: str
    replicas: int
    capacity_rps: float | None = None
    router: str | None = None  # None: one replica, or a run that did not vary the router
    workload: str | None = None  # the base workload (several workloads: one figure each)

    _nan = field_validator("capacity_rps", "router", "workload", mode="before")(lambda cls, v: _none_if_nan(v))


class ExperimentSummary(BaseModel):
    """summary.json of a compare / capacity / sweep: the searches' capacities and the run's state."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = 1  # files without the key are version 1; the store writes SUMMARY_VERSION
    title: str = ""
    target: float = 0.9  # attainment target of every search
    complete: bool = True  # False: interrupted (partial results; `slobench resume` continues)
    capacities: list[CapacityRow] = Field(default_factory=list)
    scaling: list[ScalingRow] = Field(default_factory=list)
    wall_s: float = 0.0
    # What the numbers rest on, per distinct run setting (`slobench.capacity.setup.describe_setup`):
    # searches, engine, output-length information, simulator ground truth, SLOs, probe size.
    setup: list[dict[str, str]] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)  # --metadata KEY=VALUE (version 4)

    def write(self, path: Path) -> None:
        """Write summary.json atomically (temp file in the same folder, then a rename)."""
        write_json(path, self.model_dump(mode="python"))

    @classmethod
    def read(cls, path: Path) -> ExperimentSummary:
        """Read summary.json; a missing file is an empty summary, a broken or foreign one is one UserError line."""
        if not Path(path).exists():
            return cls()
        return read_json_model(path, cls, what="capacity summary", version=SUMMARY_VERSION)


def read_probe_rows(path: Path) -> list[ProbeRow]:
    """Every row of a probes.csv (any version); missing file or empty table → []; a bad row → one UserError line."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return []
    # probes.csv is written whole and atomically, so a last line without its newline means the file was cut
    # short afterwards (a copy or a full disk); say so instead of naming the field the cut happened to hit.
    torn = not path.read_bytes().endswith(b"\n")
    if torn and len(df) == 0:
        raise UserError(f"{path}: cut short inside its header line; the file is truncated, rerun the command that "
                        "wrote it")
    missing = [c for c in REQUIRED_PROBE_COLUMNS if c not in df]
    if missing:
        raise UserError(f"{path}: columns {', '.join(missing)} missing; not a probes table of slobench")
    if "schema_version" in df and len(df):
        check_version(path, pd.to_numeric(df["schema_version"], errors="coerce").fillna(1).max(), PROBES_VERSION)
    if "valid" in df:  # read_csv types a True/False column as bool, but a file of one kind may come back as text
        df["valid"] = df["valid"].astype(str).str.lower().isin(["true", "1"])
    rows = []
    for i, rec in enumerate(df.to_dict("records"), start=2):
        if rec.get("schema_version") is None or (isinstance(rec.get("schema_version"), float)
                                                 and math.isnan(rec["schema_version"])):
            rec.pop("schema_version", None)
        try:
            rows.append(ProbeRow.model_validate(rec))
        except ValidationError as exc:
            if torn and i == len(df) + 1:
                raise UserError(f"{path}: line {i} is cut short (the file is truncated: {first_error(exc)}); "
                                "delete that line to keep the probes before it") from None
            raise UserError(f"{path}: line {i}: {first_error(exc)}") from None
    return rows


def probes_frame(rows: Sequence[ProbeRow]) -> pd.DataFrame:
    """The rows as the tidy table figures and pandas users read (probes.csv's columns)."""
    if not rows:
        return pd.DataFrame(columns=[*REQUIRED_PROBE_COLUMNS, "reason"])
    return pd.DataFrame([r.to_row() for r in rows])


def write_probe_rows(path: Path, rows: Sequence[ProbeRow]) -> None:
    """Write probes.csv atomically (`atomic_target`: a kill never tears it)."""
    with atomic_target(path) as tmp:
        pd.DataFrame([r.to_row() for r in rows]).to_csv(tmp, index=False)
