"""One run: workload spec × scheduler × engine → records + summary (+ results folder).

This is the seam the CLI, capacity search and sweeps all use, so every caller measures the same
way. The simulator path imports no torch/vllm/ray; `engine="vllm"`/`"openai"` import their
modules lazily.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slobench.errors import UserError
from slobench.metrics.attainment import summarize
from slobench.metrics.records import StageRecord, records_frame
from slobench.schedulers.base import SpecConfig

Engine = Literal["sim", "vllm", "openai"]


class RunConfig(BaseModel):
    """Everything that defines one run; validated once, written to manifest.json."""

    model_config = ConfigDict(extra="forbid")

    workload: str = Field(description="shipped workload name or YAML path")
    scheduler: str = "vllm"
    engine: Engine = "sim"
    rate_rps: float | None = Field(default=None, description="mean arrival rate; None = the spec's")
    num_requests: int | None = None
    duration_s: float | None = None
    seed: int = 0
    hardware: str = "H100-SXM"
    model: str = "Llama-3.1-8B"
    tp: int = 1
    profile: str | None = Field(default=None, description="named latency profile, e.g. paper:opt-13b-h100")
    replicas: int = 1
    spec_alpha: float | None = Field(default=None, description="speculative acceptance rate; None = off")
    spec_max_draft: int = 4
    scheduler_options: dict[str, Any] = Field(default_factory=dict)
    drain_timeout_s: float = 600.0
    url: str | None = Field(default=None, description="--engine openai: the server's base URL")
    engine_options: dict[str, Any] = Field(
        default_factory=dict, description="real engines: vLLM server + client options (slobench.engines.options)")

    @field_validator("rate_rps", "duration_s")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError("must be a positive number")
        return v

    @field_validator("num_requests", "tp", "replicas")
    @classmethod
    def _positive_int(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be ≥ 1")
        return v

    @field_validator("spec_alpha")
    @classmethod
    def _alpha(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v < 1:
            raise ValueError("must be in (0, 1)")
        return v


def validate_config(**kwargs: Any) -> RunConfig:
    """Build a RunConfig; a bad field becomes one UserError line naming it."""
    try:
        return RunConfig(**kwargs)
    except ValidationError as exc:
        err = exc.errors()[0]
        field_name = ".".join(str(p) for p in err["loc"]) or "config"
        flag = _FLAGS.get(field_name, "--" + field_name.replace("_", "-"))
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"{flag}: {msg} (got {err.get('input')!r})") from None


# RunConfig fields whose CLI flag is not the field name with dashes.
_FLAGS = {"rate_rps": "--rate", "duration_s": "--duration"}


@dataclass
class RunResult:
    config: RunConfig
    records: pd.DataFrame
    summary: dict[str, Any]
    iterations: pd.DataFrame = field(default_factory=pd.DataFrame)
    run_dir: Path | None = None
    wall_s: float = 0.0


def build_latency_model(cfg: RunConfig):  # noqa: ANN201 - LatencyModel protocol
    from slobench.perf import get_latency_model

    return get_latency_model(hardware=cfg.hardware, model=cfg.model, tp=cfg.tp, profile=cfg.profile)


def build_workload(cfg: RunConfig, perf: Any):  # noqa: ANN201
    from slobench.workloads import generate, load_spec

    spec = load_spec(cfg.workload)
    return generate(
        spec, perf=perf, seed=cfg.seed, rate_rps=cfg.rate_rps, num_requests=cfg.num_requests,
        duration_s=cfg.duration_s,
    )


def run_once(
    cfg: RunConfig,
    *,
    run_dir: Path | None = None,
    on_record: Callable[[StageRecord], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Run ``cfg`` once. With ``run_dir``, records stream to ``run_dir/requests.jsonl`` as they finish."""
    if cfg.engine != "sim":
        from slobench.engines.real_runner import run_real  # lazy: imports the real-engine client

        return run_real(cfg, run_dir=run_dir, on_record=on_record, on_progress=on_progress)
    from slobench.engines.sim import SimConfig, simulate
    from slobench.report.results import RecordSink, write_json
    from slobench.schedulers.registry import make_scheduler

    t_start = time.perf_counter()
    perf = build_latency_model(cfg)
    workload = build_workload(cfg, perf)
    gpu = getattr(perf, "gpu", None)
    gpu_mem = getattr(gpu, "memory_bytes", None)
    gpu_name = getattr(gpu, "name", "")
    sink = RecordSink(run_dir) if run_dir is not None else None
    records: list[StageRecord] = []
    total = len(workload.requests)

    def record(rec: StageRecord) -> None:
        if sink is not None:
            sink(rec)
        if on_record is not None:
            on_record(rec)

    spec = SpecConfig(max_draft=cfg.spec_max_draft, alpha=cfg.spec_alpha) if cfg.spec_alpha else None
    iterations: list[pd.DataFrame] = []
    stats = None
    try:
        from slobench.schedulers.routers.round_robin import split_round_robin

        parts = split_round_robin(workload, cfg.replicas)
        done = 0
        for replica, part in enumerate(parts):
            scheduler = make_scheduler(
                cfg.scheduler, gpu_memory_bytes=gpu_mem, gpu_name=gpu_name, **cfg.scheduler_options
            )

            def progress(n: int, base: int = done) -> None:
                if on_progress is not None:
                    on_progress(base + n, total)

            sim = simulate(
                part, scheduler, perf,
                SimConfig(spec=spec, seed=cfg.seed + replica, replica=replica, drain_timeout_s=cfg.drain_timeout_s),
                on_record=record, on_progress=progress,
            )
            records.extend(sim.records)
            done += len(part.requests)
            it = pd.DataFrame(sim.iterations.as_dict())
            it["replica"] = replica
            iterations.append(it)
            replica_stats = getattr(scheduler, "stats", None)
            if stats is None:
                stats = replica_stats
            elif replica_stats is not None:
                stats.merge(replica_stats)  # one summary for all replicas of the policy
    finally:
        if sink is not None:
            sink.close()
    df = records_frame(records)
    span = workload.duration_s if workload.duration_s > 0 else None
    summary = summarize(df, duration_s=span)
    summary.update(
        workload=workload.name, scheduler=cfg.scheduler, engine=cfg.engine, seed=cfg.seed,
        offered_rate_rps=(len(workload.requests) - 1) / span if span else math.nan,
        wall_s=time.perf_counter() - t_start, hardware=cfg.hardware, model=cfg.model, replicas=cfg.replicas,
    )
    if stats is not None and hasattr(stats, "as_dict"):
        summary["scheduler_stats"] = stats.as_dict()
    iters = pd.concat(iterations, ignore_index=True) if iterations else pd.DataFrame()
    if run_dir is not None:
        assert sink is not None
        sink.finalize()
        write_json(run_dir / "summary.json", summary)
        if not iters.empty:
            iters.to_parquet(run_dir / "iterations.parquet", index=False)
    return RunResult(config=cfg, records=df, summary=summary, iterations=iters, run_dir=run_dir,
                     wall_s=time.perf_counter() - t_start)
