"""One run: workload spec × policy × engine → records + summary (+ results folder). THE run seam.

The CLI, capacity searches and sweeps all call `run_once`, so every caller measures the same way
and every engine is measured the same way: `run_once` builds the latency model, the workload and
the record sink once, picks the engine (`ENGINES`), hands it an `EngineJob`, and builds the
`RunSummary` once from what the engine returns. Engines never write the results folder.

The simulator path imports no torch/vllm/ray; the real engines are imported when picked.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slobench.engines.base import ClosedLoopLoad, Engine, EngineJob, OpenLoopLoad, ReplicaSet
from slobench.engines.errors import EngineError
from slobench.errors import InputWarning, UserError
from slobench.metrics.attainment import measured_flags, summarize
from slobench.metrics.records import StageRecord, records_frame
from slobench.report.summary import RunSummary
from slobench.schedulers.lengths import information
from slobench.schedulers.spec import PolicySpec

if TYPE_CHECKING:
    from slobench.engines.vllm.pool import EnginePool

EngineName = Literal["sim", "vllm", "openai"]

# RunConfig's keys before the policy became one `PolicySpec`: results folders written then store them in
# manifest.json (config, plans), and callers still pass them; `RunConfig` folds them into ``policy``.
LEGACY_POLICY_KEYS = ("scheduler", "scheduler_options", "spec_alpha", "spec_max_draft")
_UNSET = object()  # a flat key not given


class RunConfig(BaseModel):
    """Everything that defines one run; validated once, written to manifest.json."""

    model_config = ConfigDict(extra="forbid")

    workload: str = Field(description="shipped workload name or YAML path")
    policy: PolicySpec = Field(default_factory=PolicySpec, description="the scheduling policy, for every engine")
    engine: EngineName = "sim"
    rate_rps: float | None = Field(default=None, description="mean arrival rate; None = the spec's")
    num_requests: int | None = None
    duration_s: float | None = None
    warmup_s: float = Field(default=0.0, ge=0, description="arrivals before this are run but not counted")
    seed: int = 0
    hardware: str = "H100-SXM"
    model: str = "Llama-3.1-8B"
    tp: int = 1
    profile: str | None = Field(default=None, description="named latency profile, e.g. paper:opt-13b-h100")
    replicas: int = 1
    router: str = Field(default="round-robin", description="how requests are placed on replicas")
    router_refresh_ms: float = Field(
        default=100.0, description="how often the router's view of replica loads is refreshed (0: every request)")
    max_concurrency: int | None = Field(
        default=None, description="at most this many requests in flight (vLLM bench's --max-concurrency); None: "
        "open loop")
    drain_timeout_s: float = 600.0
    url: str | None = Field(default=None, description="--engine openai: the server's base URL")
    engine_options: dict[str, Any] = Field(
        default_factory=dict, description="real engines: vLLM server + client options (slobench.engines.options)")
    # Simulator ground truth (docs/simulator.md): iteration time = predicted × (1 + truth_bias) × lognormal noise
    # (mean 1, CV truth_noise_cv), plus the policy's schedule() cost ("model": fitted per policy; "wall":
    # measured, not reproducible; "off").
    truth_bias: float = Field(default=0.0, description="simulator: ground truth's relative bias vs the planning model")
    truth_noise_cv: float = Field(default=0.05, description="simulator: per-iteration latency noise (CV)")
    schedule_cost: Literal["model", "wall", "off"] = Field(
        default="model", description="simulator: how schedule() time is charged to simulated time")
    early_fail_target: float | None = Field(
        default=None, gt=0, le=1, description="real engines: stop once the measured attainment is certainly below "
        "this (a capacity probe that has failed; `slobench.metrics.early_fail`); the simulator ignores it")
    # vLLM-bench-compatible knobs (docs/metrics.md): Gamma arrivals of this CV instead of the spec's process
    # (``--burstiness B`` is vLLM's gamma shape, stored as CV = 1/√B); the bounds of vLLM-style goodput (ms);
    # which latency metrics and percentiles the summary reports (None: vLLM's defaults).
    burstiness_cv: float | None = Field(default=None, description="Gamma inter-arrival CV (--burstiness B: 1/√B)")
    goodput_ms: dict[str, float] = Field(default_factory=dict, description="--goodput bounds, ms: ttft/tpot/e2el")
    percentile_metrics: list[str] | None = Field(default=None, description="--percentile-metrics")
    metric_percentiles: list[float] | None = Field(default=None, description="--metric-percentiles")

    @model_validator(mode="before")
    @classmethod
    def _fold_policy(cls, data: Any) -> Any:
        """Flat keys (scheduler, scheduler_options, spec_alpha, spec_max_draft) and the policy's engine
        options (scheduler_options, spec_alpha) → ``policy``; the same thing given twice, differently, is
        one UserError line."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        oracle = data.pop("oracle_lengths", _UNSET)  # flat key of the commands (--oracle-lengths)
        flat = {k: data.pop(k) for k in LEGACY_POLICY_KEYS if k in data}
        from_engine = _pop_policy_engine_options(data)
        if not flat and not from_engine:
            return _fold_oracle(data, oracle)
        if "policy" in data:
            if flat:
                raise UserError(f"give the policy once: as policy or as {', '.join(sorted(flat))}, not both")
            given = data["policy"]
            policy = dict(given.model_dump() if isinstance(given, PolicySpec) else
                          {"name": given} if isinstance(given, str) else given or {})
        else:
            policy = {"name": flat.get("scheduler", "vllm")}
            if flat.get("scheduler_options"):
                policy["options"] = flat["scheduler_options"]
            if flat.get("spec_alpha") is not None:
                policy["draft"] = {"alpha": flat["spec_alpha"]} | (
                    {"max_draft": flat["spec_max_draft"]} if flat.get("spec_max_draft") is not None else {})
        opts = from_engine.get("scheduler_options")
        if opts:
            if policy.get("options") and policy["options"] != opts:
                raise UserError(f"--engine-arg scheduler_options: the policy's options are given twice, differently "
                                f"({json.dumps(opts, default=str)} here, {json.dumps(policy['options'], default=str)} "
                                "as the run's policy options); give them once")
            policy["options"] = opts
        alpha = from_engine.get("spec_alpha")
        if alpha is not None:
            draft = policy.get("draft")
            have = getattr(draft, "alpha", None) if not isinstance(draft, dict) else draft.get("alpha")
            if have is not None and have != alpha:
                raise UserError(f"--engine-arg spec_alpha={alpha}: the draft acceptance rate is given twice, "
                                f"differently (--spec-alpha {have}); give it once")
            if have is None:
                policy["draft"] = {"alpha": alpha}
        data["policy"] = policy
        return _fold_oracle(data, oracle)

    @property
    def scheduler(self) -> str:
        """The policy's name (``--scheduler``)."""
        return self.policy.name

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

    @field_validator("truth_bias")
    @classmethod
    def _bias(cls, v: float) -> float:
        if not (v > -1 and math.isfinite(v)):
            raise ValueError("must be a finite number > -1 (the truth is predicted × (1 + bias))")
        return v

    @field_validator("truth_noise_cv")
    @classmethod
    def _noise(cls, v: float) -> float:
        if not (0 <= v <= 2 and math.isfinite(v)):
            raise ValueError("must be a coefficient of variation in [0, 2] (0.05 = 5% per-iteration noise)")
        return v

    @field_validator("burstiness_cv")
    @classmethod
    def _cv(cls, v: float | None) -> float | None:
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError("must be a positive coefficient of variation (--burstiness B gives 1/√B)")
        return v

    @field_validator("goodput_ms", mode="before")
    @classmethod
    def _goodput(cls, v: Any) -> Any:
        from slobench.metrics.serving import check_goodput

        return check_goodput(v) if isinstance(v, dict) else v

    @field_validator("percentile_metrics", mode="before")
    @classmethod
    def _pmetrics(cls, v: Any) -> Any:
        from slobench.metrics.serving import parse_percentile_metrics

        return None if v is None else parse_percentile_metrics(v)

    @field_validator("metric_percentiles", mode="before")
    @classmethod
    def _mpercentiles(cls, v: Any) -> Any:
        from slobench.metrics.serving import parse_metric_percentiles

        return None if v is None else parse_metric_percentiles(v)

    @field_validator("profile")
    @classmethod
    def _profile_path(cls, v: str | None) -> str | None:
        """A profile file is kept as an absolute path: probes, resumed runs and vLLM's engine core (another
        working directory) must all read the same file."""
        from slobench.perf.profile_file import is_profile_path

        if v and is_profile_path(v):
            return str(Path(v).expanduser().resolve())
        return v

    @field_validator("router")
    @classmethod
    def _router(cls, v: str) -> str:
        from slobench.schedulers.routers import canonical_router, router_names

        if canonical_router(v) not in router_names():
            raise ValueError(f"unknown router; choose one of: {', '.join(router_names())}")
        return canonical_router(v)

    @field_validator("router_refresh_ms")
    @classmethod
    def _refresh(cls, v: float) -> float:
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError("must be a number of milliseconds ≥ 0 (0: the router sees fresh loads at every request)")
        return v

    @field_validator("max_concurrency")
    @classmethod
    def _concurrency(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be ≥ 1 (requests in flight at once); leave it out for an open-loop load")
        return v


def _fold_oracle(data: dict[str, Any], oracle: Any) -> dict[str, Any]:
    """``oracle_lengths`` given flat (``--oracle-lengths``) → ``policy.oracle_lengths``; given twice,
    differently, is one UserError line. A non-bool is left for PolicySpec's validation (one line too)."""
    if oracle is _UNSET:
        return data
    given = data.get("policy", {})
    if isinstance(given, PolicySpec):
        have = given.oracle_lengths if "oracle_lengths" in given.model_fields_set else None
        policy = given.model_dump()
    else:
        policy = dict({"name": given} if isinstance(given, str) else given or {})
        have = policy.get("oracle_lengths")
    if have is not None and isinstance(oracle, bool) and have != oracle:
        raise UserError(f"--oracle-lengths: given twice, differently ({oracle} here, {have} in the policy); "
                        "give it once")
    policy["oracle_lengths"] = oracle
    return data | {"policy": policy}


def _pop_policy_engine_options(data: dict[str, Any]) -> dict[str, Any]:
    """Take the policy's keys out of ``data['engine_options']`` (validated: JSON parsed, range checked)."""
    from slobench.engines.options import POLICY_KEYS, validate_engine_options

    raw = data.get("engine_options")
    if not isinstance(raw, dict) or not any(k in raw for k in POLICY_KEYS):
        return {}
    data["engine_options"] = {k: v for k, v in raw.items() if k not in POLICY_KEYS}
    opts = validate_engine_options({k: raw[k] for k in POLICY_KEYS if k in raw})
    return {"scheduler_options": opts.scheduler_options, "spec_alpha": opts.spec_alpha}


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
_FLAGS = {
    "rate_rps": "--rate", "duration_s": "--duration", "warmup_s": "--warmup", "policy.name": "--scheduler",
    "policy.options": "--scheduler-options", "policy.draft.alpha": "--spec-alpha",
    "policy.draft.max_draft": "--spec-max-draft", "engine_options": "--engine-arg",
    "truth_noise_cv": "--truth-noise", "burstiness_cv": "--burstiness", "goodput_ms": "--goodput",
    "policy.oracle_lengths": "--oracle-lengths",
    "router_refresh_ms": "--router-refresh-ms", "max_concurrency": "--max-concurrency",
}


@dataclass
class RunResult:
    config: RunConfig
    records: pd.DataFrame
    summary: RunSummary
    iterations: pd.DataFrame = field(default_factory=pd.DataFrame)
    run_dir: Path | None = None
    wall_s: float = 0.0


def build_latency_model(cfg: RunConfig):  # noqa: ANN201 - LatencyModel protocol
    from slobench.perf import get_latency_model

    return get_latency_model(hardware=cfg.hardware, model=cfg.model, tp=cfg.tp, profile=cfg.profile)


def hardware_label(cfg: RunConfig, perf: Any) -> str:
    """What the run ran on, for summaries and report titles: a calibrated profile's measured hardware (a CPU
    run must not be titled "H100-SXM"), a shipped profile's GPU, else ``--hardware``."""
    label = getattr(perf, "hardware_label", None)
    gpu = getattr(perf, "gpu", None)
    return label or (gpu.name if cfg.profile and gpu is not None else cfg.hardware)


def workload_spec(cfg: RunConfig):  # noqa: ANN201 - WorkloadSpec
    """The run's workload spec: the named/YAML spec, with Gamma arrivals of ``burstiness_cv`` when given.

    A trace replay keeps its recorded timing: ``--burstiness`` on it would silently throw the trace's arrivals
    away, so it is one line instead."""
    from slobench.workloads import apply_overrides, load_spec

    spec = load_spec(cfg.workload)
    if cfg.burstiness_cv is None:
        return spec
    if spec.arrival.process == "trace":
        raise UserError(f"--burstiness: workload {spec.name!r} replays its trace's timestamps (arrival.process: "
                        "trace); burstiness shapes generated arrivals only. Drop the flag, or set arrival.process: "
                        "gamma in a copy of the spec")
    return apply_overrides(spec, burstiness_cv=cfg.burstiness_cv)  # named e.g. chatbot-cv0.707


def build_workload(cfg: RunConfig, perf: Any):  # noqa: ANN201
    from slobench.workloads import generate

    spec = workload_spec(cfg)
    return generate(
        spec, perf=perf, seed=cfg.seed, rate_rps=cfg.rate_rps, num_requests=cfg.num_requests,
        duration_s=cfg.duration_s,
    )


# --- engines: --engine NAME → a factory that configures the engine from the run's settings --------------
def _sim_engine(cfg: RunConfig) -> Engine:
    from slobench.engines.sim import SimConfig, SimEngine

    return SimEngine(SimConfig(truth_bias=cfg.truth_bias, truth_noise_cv=cfg.truth_noise_cv,
                               schedule_cost=cfg.schedule_cost))


def _vllm_engine(cfg: RunConfig) -> Engine:
    from slobench.engines.openai.routing import check_real_router
    from slobench.engines.options import validate_engine_options
    from slobench.engines.vllm.engine import VLLMEngine

    check_real_router(cfg.router, cfg.replicas)  # before the model and the workload are built

    return VLLMEngine(model=cfg.model, options=validate_engine_options(cfg.engine_options), hardware=cfg.hardware,
                      tp=cfg.tp, profile=cfg.profile)


def _openai_engine(cfg: RunConfig) -> Engine:
    from slobench.engines.openai.engine import OpenAIEngine
    from slobench.engines.options import validate_engine_options

    return OpenAIEngine(cfg.url, validate_engine_options(cfg.engine_options))


ENGINES: dict[str, Callable[[RunConfig], Engine]] = {
    "sim": _sim_engine,
    "vllm": _vllm_engine,
    "openai": _openai_engine,
}


@contextlib.contextmanager
def engine_session(log_dir: Path | None = None) -> Iterator[EnginePool]:
    """Scope for one command: real-engine servers started inside log to ``log_dir`` and stop on exit,
    however it exits (`slobench.engines.vllm.pool.engine_session`; imported only when entered)."""
    from slobench.engines.vllm.pool import engine_session as pool_session

    with pool_session(log_dir) as pool:
        yield pool


def _records_path(cfg: RunConfig, run_dir: Path | None) -> Path | None:
    """Where this run's records stream: its results folder; a real engine without one: the engine
    session's folder (so a capacity probe's records survive a crash); else nowhere."""
    if run_dir is not None:
        return run_dir
    if cfg.engine == "sim":
        return None
    from slobench.engines.vllm.pool import get_pool

    pool = get_pool()
    root = pool.default_log_dir() if cfg.engine == "vllm" else pool.log_dir  # vLLM: where its server logs go
    if root is None:
        return None
    rate = f"{cfg.rate_rps:g}" if cfg.rate_rps else "spec"
    path = root / "engine-records" / f"{cfg.scheduler}-r{rate}-s{cfg.seed}-{time.strftime('%H%M%S')}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_once(
    cfg: RunConfig,
    *,
    run_dir: Path | None = None,
    on_record: Callable[[StageRecord], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    metadata: dict[str, str] | None = None,
) -> RunResult:
    """Run ``cfg`` once. With ``run_dir``, records stream to ``run_dir/requests.jsonl`` as they finish,
    and ``requests.parquet``, ``iterations.parquet`` (simulator) and ``summary.json`` are written at the end.
    ``metadata`` (``--metadata KEY=VALUE``) is copied into the summary as given."""
    from slobench.report.results import RecordSink

    t_start = time.perf_counter()
    engine = ENGINES[cfg.engine](cfg)  # real engines check their options and model before anything is built
    perf = build_latency_model(cfg)  # real engines too: it turns slowdown TTFT targets into seconds
    workload = build_workload(cfg, perf)
    out_dir = _records_path(cfg, run_dir)
    # Real engines flush every record: a killed server or Ctrl-C keeps each finished request.
    sink = RecordSink(out_dir, flush_every=1 if cfg.engine != "sim" else 256) if out_dir is not None else None

    early = None
    if cfg.early_fail_target is not None and cfg.engine != "sim":
        from slobench.metrics.early_fail import EarlyFail

        early = EarlyFail(cfg.early_fail_target, cfg.warmup_s)

    def record(rec: StageRecord) -> None:
        if sink is not None:
            sink(rec)
        if on_record is not None:
            on_record(rec)
        if early is not None:
            early.add(rec)

    load = (OpenLoopLoad(workload) if cfg.max_concurrency is None
            else ClosedLoopLoad(workload, concurrency=cfg.max_concurrency))
    job = EngineJob(
        load=load, policy=cfg.policy, perf=perf,
        replicas=ReplicaSet(count=cfg.replicas, router=cfg.router, refresh_s=cfg.router_refresh_ms / 1000.0),
        on_record=record, on_progress=on_progress,
        seed=cfg.seed, drain_timeout_s=cfg.drain_timeout_s, log_dir=run_dir,
        stop=None if early is None else (lambda: early.reason is not None),
    )
    try:
        result = engine.run(job)
    except EngineError as exc:
        saved = f"; records so far: {sink.path}" if sink is not None else ""
        raise EngineError(f"{exc}{saved}") from None
    finally:
        if sink is not None:
            sink.close()
    df = records_frame(result.records)
    if cfg.warmup_s > 0:  # every request ran; the flag says which ones the summary counts
        df["measured"] = measured_flags(df["arrival_s"], cfg.warmup_s) if len(df) else pd.Series(dtype=bool)
    span = workload.duration_s if workload.duration_s > 0 else None
    evidence: dict[str, Any] = {}
    if result.client is not None:
        evidence = {"achieved_rate_rps": result.client.achieved_rate_rps,
                    "client_lag_s": result.client.client_lag_s, "client": result.client.counters}
    summary = RunSummary.build(
        summarize(df, duration_s=span, warmup_s=cfg.warmup_s, goodput_ms=cfg.goodput_ms,
                  percentile_metrics=cfg.percentile_metrics, metric_percentiles=cfg.metric_percentiles),
        workload=workload.name, metadata=dict(metadata or {}), scheduler=cfg.scheduler, engine=cfg.engine,
        seed=cfg.seed,
        offered_rate_rps=(len(workload.requests) - 1) / span if span else math.nan,
        wall_s=time.perf_counter() - t_start, hardware=hardware_label(cfg, perf), model=cfg.model,
        replicas=cfg.replicas,
        engine_info=result.info, scheduler_stats=result.scheduler_stats, **evidence,
        stopped_early=None if early is None else early.reason,
        # what the policy knew (schedulers.lengths); an external server's own policy: not ours to say
        information=information(cfg.policy.oracle_lengths) if cfg.engine != "openai" else None,
    )
    iters = result.iterations
    if run_dir is not None:
        df.to_parquet(run_dir / "requests.parquet", index=False)  # the in-memory records: exact floats (the
        # jsonl, re-read, rounds in the last digit); requests.jsonl stays as the crash-safe stream
        summary.write(run_dir / "summary.json")
        if not iters.empty:
            iters.to_parquet(run_dir / "iterations.parquet", index=False)
    return RunResult(config=cfg, records=df, summary=summary, iterations=iters, run_dir=run_dir,
                     wall_s=time.perf_counter() - t_start)


# --- a `slobench run` folder read back ------------------------------------------------------------------


def is_run_dir(path: Path) -> bool:
    """Was ``path`` written by `slobench run` (a manifest without a capacity plan, and stage records)?"""
    path = Path(path)
    manifest = path / "manifest.json"
    if not manifest.is_file() or (path / "probes.csv").exists():
        return False
    if not ((path / "requests.jsonl").exists() or (path / "requests.parquet").exists()):
        return False
    try:
        data = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True  # records but an unreadable manifest: `summarize_run_dir` says what is wrong
    return isinstance(data, dict) and "plan" not in data


@dataclass
class RunDirSummary:
    summary: RunSummary
    notes: list[str]  # what the summary could not know, one line each
    written: Path | None  # summary.json when it was (re)written from the records; None when it was read


def summarize_run_dir(run_dir: Path) -> RunDirSummary:
    """The summary of a `slobench run` folder: its summary.json when the run finished, else one built from
    the records it kept (an interrupted run leaves manifest.json + requests.jsonl) and written as summary.json.

    The run's workload is generated again from the manifest (same spec, seed and size give the same
    arrivals) to know how many requests were sent and over how many seconds; when that fails (the spec
    file moved), goodput divides by the span of the recorded arrivals, and a note says so.
    """
    from slobench.report.results import load_records

    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        return RunDirSummary(RunSummary.read(summary_path), [], None)
    manifest_path = run_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{manifest_path}: unreadable ({exc}); the run's settings are lost") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
        raise UserError(f"{manifest_path}: no run settings (`config`); not a `slobench run` folder")
    try:
        cfg = validate_config(**manifest["config"])
    except UserError as exc:
        raise UserError(f"{manifest_path}: config not understood ({exc})") from None
    df = load_records(run_dir)
    if df.empty:
        raise UserError(f"{run_dir}: the run kept no finished records (requests.jsonl is empty); nothing to "
                        "summarise")
    notes: list[str] = []
    span: float | None = None
    sent: int | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputWarning)  # the run showed them; this only counts its requests
            workload = build_workload(cfg, build_latency_model(cfg))
        span = workload.duration_s if workload.duration_s > 0 else None
        sent = len(workload.requests)
    except (UserError, OSError) as exc:
        notes.append(f"the run's workload could not be generated again ({exc}), so its duration is unknown: "
                     "goodput divides by the span of the recorded arrivals")
    recorded = int(df["request_id"].nunique())
    if sent is not None and recorded < sent:
        notes.append(f"interrupted: {recorded} of {sent} requests have records; attainment and latencies are over "
                     f"those {recorded} (the rest had not finished when the run stopped)")
    elif sent is None:
        notes.append(f"records of {recorded} requests; if the run was interrupted, requests that had not finished "
                     "are not counted")
    summary = RunSummary.build(
        summarize(df, duration_s=span, goodput_ms=cfg.goodput_ms, percentile_metrics=cfg.percentile_metrics,
                  metric_percentiles=cfg.metric_percentiles),
        metadata=manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {},
        workload=Path(cfg.workload).stem if cfg.workload.endswith((".yaml", ".yml")) else cfg.workload,
        scheduler=cfg.scheduler, engine=cfg.engine, seed=cfg.seed, hardware=cfg.hardware, model=cfg.model,
        replicas=cfg.replicas, offered_rate_rps=(sent - 1) / span if span and sent else math.nan,
        rebuilt_from_records=True, notes=notes,
    )
    summary.write(summary_path)
    return RunDirSummary(summary, notes, summary_path)
