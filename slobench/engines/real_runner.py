"""`run_once` for real engines: workload → (launched vLLM | any OpenAI endpoint) → records + summary.

The same workload generation, metrics and summary keys as the simulator path, so reports and
capacity searches do not care which engine produced a run. Differences, all additive: the
summary carries the load generator's own numbers (``client_lag_s``, ``achieved_rate_rps``, which
capacity searches use to mark probes INVALID), the server's start-up time and log, and — with a
slobench policy inside vLLM — the adapter's statistics from its events file.

Errors are one-line `EngineError`s naming the failing thing and where the records so far are.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slobench.engines.errors import EngineError
from slobench.engines.options import EngineOptions, validate_engine_options
from slobench.errors import UserError
from slobench.metrics.attainment import summarize
from slobench.metrics.records import StageRecord, records_frame

if TYPE_CHECKING:
    from slobench.cluster.run import RunConfig, RunResult
    from slobench.engines.openai.protocol import Endpoint

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


@dataclass
class Target:
    """A ready endpoint plus what the runner may ask of the engine behind it."""

    endpoint: Endpoint
    vocab_size: int | None
    health_check: Callable[[], None] | None = None
    events_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _vocab_size(model_dir: str) -> int | None:
    try:
        cfg = json.loads((Path(model_dir).expanduser() / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    cfg = {**cfg, **cfg.get("text_config", {})} if isinstance(cfg.get("text_config"), dict) else cfg
    v = cfg.get("vocab_size")
    return int(v) if isinstance(v, int) and v > 8 else None


def _api_key(opts: EngineOptions) -> str | None:
    """The key from the environment variable *named* by the options (the key itself is never stored)."""
    name = opts.api_key_env or DEFAULT_API_KEY_ENV
    key = os.environ.get(name)
    if opts.api_key_env and not key:
        raise UserError(f"--engine-arg api_key_env={name}: environment variable {name} is not set; "
                        f"export {name}=<your key>")
    return key or None


def _server_spec(cfg: RunConfig, opts: EngineOptions):  # noqa: ANN202 - ServerSpec
    from slobench.engines.vllm.launcher import ServerSpec

    # The stock vLLM scheduler *is* the baseline: "vllm" runs vLLM untouched; any other policy
    # (slos-serve, sarathi, …) runs inside vLLM through the adapter class.
    policy = None if cfg.scheduler.strip().lower() == "vllm" else cfg.scheduler
    return ServerSpec(model=cfg.model, policy=policy, tp=cfg.tp, options=opts.server_fields(),
                      hardware=cfg.hardware, perf_model=cfg.model, profile=cfg.profile)


def _vllm_target(cfg: RunConfig, opts: EngineOptions, run_dir: Path | None) -> Target:
    from slobench.engines.openai.protocol import Endpoint
    from slobench.engines.vllm.pool import get_pool
    from slobench.engines.vllm.support import require_vllm

    info = require_vllm() if opts.python is None else None
    spec = _server_spec(cfg, opts)
    pool = get_pool()
    srv = pool.acquire(spec, cpu_build=info is not None and info.build == "cpu",
                       startup_timeout_s=opts.startup_timeout_s, log_dir=run_dir)
    ep = Endpoint(base_url=srv.base_url, model=opts.served_model or srv.served_model, api=opts.api,
                  token_prompts=opts.token_prompts, extensions=opts.extensions, timeout_s=opts.request_timeout_s)
    return Target(
        endpoint=ep, vocab_size=opts.vocab_size or _vocab_size(cfg.model), health_check=srv.check_alive,
        events_path=srv.events_path if spec.policy is not None else None,
        info={"server_url": srv.base_url, "server_pid": srv.proc.pid, "server_log": str(srv.log_path),
              "server_startup_s": srv.startup_s, "vllm": info.version if info else None,
              "vllm_build": info.build if info else None, "scheduler_impl": spec.policy or "vllm (stock)"},
    )


def normalize_url(url: str) -> str:
    """``http://host:8000`` or ``…/v1`` → the API base ending in ``/v1``."""
    u = url.strip().rstrip("/")
    if not u.startswith(("http://", "https://")):
        raise UserError(f"--url {url!r}: must start with http:// or https://")
    return u if u.endswith("/v1") else u + "/v1"


def _openai_target(cfg: RunConfig, opts: EngineOptions) -> Target:
    import httpx

    from slobench.engines.openai.protocol import Endpoint

    if not cfg.url:
        raise UserError("--url is required with --engine openai (e.g. --url http://127.0.0.1:8000/v1)")
    base = normalize_url(cfg.url)
    key = _api_key(opts)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    model = opts.served_model
    try:
        resp = httpx.get(base + "/models", headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        raise EngineError(f"--url {cfg.url}: cannot reach the server ({type(exc).__name__}: {exc}); "
                          "is it running, and is the address right?") from None
    if resp.status_code in (401, 403):
        name = opts.api_key_env or DEFAULT_API_KEY_ENV
        raise EngineError(f"--url {cfg.url}: HTTP {resp.status_code} (not authorised); put the API key in "
                          f"${name} or name its variable with --engine-arg api_key_env=NAME")
    if model is None:
        try:
            model = resp.json()["data"][0]["id"] if resp.status_code == 200 else None
        except (ValueError, KeyError, IndexError, TypeError):
            model = None
        if model is None:
            raise EngineError(f"--url {cfg.url}: cannot list the served models (HTTP {resp.status_code} from "
                              f"{base}/models); give the name with --engine-arg served_model=NAME")

    def health() -> None:
        try:
            httpx.get(base + "/models", headers=headers, timeout=5.0)
        except httpx.HTTPError as exc:
            raise EngineError(f"--url {cfg.url}: the server stopped answering mid-run "
                              f"({type(exc).__name__}: {exc})") from None

    ep = Endpoint(base_url=base, model=model, api=opts.api, token_prompts=opts.token_prompts,
                  extensions=opts.extensions, api_key=key, timeout_s=opts.request_timeout_s)
    return Target(endpoint=ep, vocab_size=opts.vocab_size, health_check=health,
                  info={"server_url": base, "served_model": model, "scheduler_impl": "the server's own"})


def _records_path(cfg: RunConfig, run_dir: Path | None) -> Path | None:
    """Where this run's records stream: its results folder, else the engine session's folder."""
    if run_dir is not None:
        return run_dir
    from slobench.engines.vllm.pool import get_pool

    root = get_pool().log_dir
    if root is None:
        return None
    rate = f"{cfg.rate_rps:g}" if cfg.rate_rps else "spec"
    path = root / "engine-records" / f"{cfg.scheduler}-r{rate}-s{cfg.seed}-{time.strftime('%H%M%S')}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _scheduler_stats(events_path: Path | None) -> dict[str, Any] | None:
    """The adapter's last statistics (schedule() calls, overhead, plan deviations)."""
    if events_path is None:
        return None
    from slobench.engines.vllm.events import EventReader

    reader = EventReader(events_path)
    stats = reader.last("stats")
    loaded = reader.last("loaded")
    if stats is None and loaded is None:
        return None
    out: dict[str, Any] = {"loaded": loaded, **(stats or {})}
    if stats:
        out["overhead_ms"] = {"p50": stats.get("overhead_ms_p50"), "p99": stats.get("overhead_ms_p99")}
    return out


def run_real(
    cfg: RunConfig,
    *,
    run_dir: Path | None = None,
    on_record: Callable[[StageRecord], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """One run on a real engine; records stream to ``run_dir/requests.jsonl`` as stages finish."""
    from slobench.cluster.run import RunResult, build_latency_model, build_workload
    from slobench.engines.openai.client import run_load
    from slobench.engines.vllm.events import EventReader
    from slobench.report.results import RecordSink, write_json

    t_start = time.perf_counter()
    opts = validate_engine_options(cfg.engine_options)
    if cfg.replicas != 1:
        raise UserError(f"--replicas {cfg.replicas}: real engines run one replica; use --replicas 1 "
                        "(multi-replica runs are simulator-only for now)")
    if cfg.engine == "vllm":
        from slobench.engines.vllm.launcher import check_model_arg

        check_model_arg(cfg.model)  # before the latency model reads the folder's config.json
    perf = build_latency_model(cfg)  # turns slowdown TTFT targets into seconds, as in the simulator
    workload = build_workload(cfg, perf)
    target = _vllm_target(cfg, opts, run_dir) if cfg.engine == "vllm" else _openai_target(cfg, opts)
    out_dir = _records_path(cfg, run_dir)
    sink = RecordSink(out_dir, flush_every=1) if out_dir is not None else None
    events = EventReader(target.events_path) if target.events_path else None

    def record(rec: StageRecord) -> None:
        if sink is not None:
            sink(rec)
        if on_record is not None:
            on_record(rec)

    saved = f"; records so far: {sink.path}" if sink is not None else ""
    try:
        result = run_load(
            workload, target.endpoint, seed=cfg.seed, vocab_size=target.vocab_size, on_record=record,
            on_progress=on_progress, admission_lookup=events.admission if events else None,
            health_check=target.health_check, drain_timeout_s=cfg.drain_timeout_s,
            max_connections=opts.max_connections,
        )
    except EngineError as exc:
        raise EngineError(f"{exc}{saved}") from None
    finally:
        if sink is not None:
            sink.close()
    df = records_frame(result.records)
    span = workload.duration_s if workload.duration_s > 0 else None
    summary = summarize(df, duration_s=span)
    summary.update(
        workload=workload.name, scheduler=cfg.scheduler, engine=cfg.engine, seed=cfg.seed,
        offered_rate_rps=(len(workload.requests) - 1) / span if span else math.nan,
        wall_s=time.perf_counter() - t_start, hardware=cfg.hardware, model=cfg.model, replicas=1,
    )
    summary.update(result.stats.summary())
    summary["engine_info"] = target.info | {"run_id": result.run_id}
    stats = _scheduler_stats(target.events_path)
    if stats is not None:
        summary["scheduler_stats"] = stats
    if run_dir is not None:
        assert sink is not None
        df.to_parquet(run_dir / "requests.parquet", index=False)
        write_json(run_dir / "summary.json", summary)
    return RunResult(config=cfg, records=df, summary=summary, run_dir=run_dir, wall_s=time.perf_counter() - t_start)
