"""`slobench run` (one workload × one scheduler) and `slobench bench sim` (simulator speed)."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from slobench.cli import app
from slobench.cli.options import (
    BurstinessOpt,
    GoodputOpt,
    MaxConcurrencyOpt,
    MetadataOpt,
    MetricPercentilesOpt,
    OracleLengthsOpt,
    PercentileMetricsOpt,
    RouterOpt,
    RouterRefreshOpt,
    ScheduleCostOpt,
    TruthBiasOpt,
    TruthNoiseOpt,
    engine_options,
    measure_kwargs,
    metadata_option,
)
from slobench.cluster.run import RunConfig, run_once, validate_config
from slobench.errors import UserError
from slobench.report.summary import RunSummary

console = Console()
bench_app = typer.Typer(help="Benchmarks of slobench itself (simulator speed, scheduler overhead).\n\n"
                        "Example: slobench bench sim --workload chatbot -n 2000", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _fmt_ms(v: float | None) -> str:
    return "–" if v is None or v != v else f"{v * 1e3:.1f}"


def _fmt_num(v: float | None, spec: str) -> str:
    return "–" if v is None or v != v else format(v, spec)


def summary_table(summary: RunSummary, title: str) -> Table:
    """The run summary as a rich table: counts, attainment (overall/stage/tier), latency percentiles."""
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("requests sent / finished", f"{summary.num_requests} / {summary.num_finished}")
    t.add_row("SLO attainment (joint, all arrivals)", f"{summary.attainment:.1%}")
    t.add_row("  TTFT-only / TPOT-only", f"{summary.attainment_ttft:.1%} / {summary.attainment_tpot:.1%}")
    t.add_row("  best-effort counted as miss", f"{summary.attainment_admitted_only:.1%}")
    for name, st in summary.per_stage.items():
        t.add_row(f"  stage '{name}'", f"{st.attainment:.1%} of {st.num}")
    for name, tier in summary.per_tier.items():
        t.add_row(f"  tier '{name}'", f"{tier.attainment:.1%} of {tier.num}")
    t.add_row("goodput, slobench (req/s meeting every per-token deadline)", f"{summary.goodput_rps:.2f}")
    if summary.goodput_bounds_ms:
        bounds = ", ".join(f"{k} ≤ {v:g} ms" for k, v in summary.goodput_bounds_ms.items())
        t.add_row(f"goodput, vLLM-style (req/s with {bounds})", _fmt_num(summary.vllm_goodput_rps, ".2f"))
    if summary.output_tok_s is not None:
        t.add_row("output / total tokens per s", f"{_fmt_num(summary.output_tok_s, '.0f')} / "
                  f"{_fmt_num(summary.total_tok_s, '.0f')}")
    if summary.latency_ms:  # version 4: vLLM bench's figures, as chosen by --percentile-metrics/--metric-percentiles
        for metric in summary.percentile_metrics:
            keys = [k for k in summary.latency_ms if k.endswith(f"_{metric}_ms") and not k.startswith("std_")]
            names = "/".join(k.removesuffix(f"_{metric}_ms") for k in keys)
            values = " / ".join(_fmt_num(summary.latency_ms[k], ".1f") for k in keys)
            t.add_row(f"{metric.upper()} ms {names}", values)
    else:  # a summary written before version 4
        for p, label in ((summary.ttft_s, "TTFT ms"), (summary.tpot_s, "TPOT ms"), (summary.itl_s, "ITL ms")):
            t.add_row(f"{label} p50/p90/p99", f"{_fmt_ms(p.p50)} / {_fmt_ms(p.p90)} / {_fmt_ms(p.p99)}")
    for key, value in summary.metadata.items():
        t.add_row(f"metadata {key}", value)
    if summary.admission_counts:
        t.add_row("admission", ", ".join(f"{k}={v}" for k, v in summary.admission_counts.items()))
    routing = (summary.client or {}).get("routing")
    if routing:
        t.add_row(f"calls per replica ({routing['router']})", " / ".join(map(str, routing["calls_per_replica"])))
        for lost in routing["replicas_lost"]:
            t.add_row(f"[red]replica {lost['replica']} lost at {lost['at_s']:.1f} s[/red]", lost["error"][:160])
    ov = (summary.scheduler_stats or {}).get("overhead_ms")
    if ov:
        p50, p99 = ov.get("p50", float("nan")), ov.get("p99", float("nan"))
        t.add_row("schedule() overhead ms p50/p99", f"{p50:.3f} / {p99:.3f}")
    return t


def _with_ray_address(options: dict[str, Any], address: str | None, engine: str) -> dict[str, Any]:
    """``--ray-address`` of `run` is the real replicas' placement: the engine option ``ray_address``."""
    if address is None:
        return options
    if engine != "vllm":
        raise UserError(f"--ray-address {address}: `run` uses Ray only to start --engine vllm replicas; drop it "
                        f"for --engine {engine}")
    from slobench.engines.ray_session import check_address

    return options | {"ray_address": check_address(address)}


@app.command("run")
def run_cmd(
    workload: Annotated[str, typer.Option("--workload", "-w", help="Shipped workload name or YAML path.")] = "chatbot",
    scheduler: Annotated[str, typer.Option("--scheduler", "-s", help="vllm | vllm-v0 | sarathi | slos-serve, or "
                                           "package.module:Class of your own policy")] = "vllm",
    rate: Annotated[float | None, typer.Option("--rate", help="Mean arrival rate, req/s (default: spec's).")] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Seconds of arrivals to generate.")] = None,
    num_requests: Annotated[int | None, typer.Option("--num-requests", "-n", help="Number of requests.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for workload and engine randomness.")] = 0,
    hardware: Annotated[str, typer.Option(help="GPU of the simulated replica.")] = "H100-SXM",
    model: Annotated[str, typer.Option(help="Model name, or a path to a HF config.json; real engines: the "
                                       "local model folder (or hub id) to serve.")] = "Llama-3.1-8B",
    tp: Annotated[int, typer.Option(help="Tensor-parallel degree.")] = 1,
    profile: Annotated[str | None, typer.Option(
        help="Latency profile: a shipped name (paper:opt-13b-h100) or a calibrated FILE.yaml.")] = None,
    replicas: Annotated[int, typer.Option(help="Number of replicas.")] = 1,
    router: RouterOpt = "round-robin",
    router_refresh_ms: RouterRefreshOpt = 100.0,
    max_concurrency: MaxConcurrencyOpt = None,
    spec_alpha: Annotated[float | None, typer.Option(help="Speculative decoding acceptance rate.")] = None,
    scheduler_options: Annotated[str | None, typer.Option(
        "--scheduler-options", help='The policy\'s options as JSON, e.g. \'{"capacity_margin": 0.8}\' (every '
        "engine: the simulator and the policy inside vLLM alike).")] = None,
    engine: Annotated[str, typer.Option(help="sim (default) | vllm | openai")] = "sim",
    out: Annotated[Path, typer.Option(help="Results root folder.")] = Path("results"),
    url: Annotated[str | None, typer.Option(help="--engine openai: server base URL, e.g. http://host:8000/v1.")]
    = None,
    engine_arg: Annotated[list[str] | None, typer.Option(
        "--engine-arg", help="Real-engine option KEY=VALUE (repeatable), e.g. max_num_seqs=64; "
        "see docs/real-engines.md.")] = None,
    engine_config: Annotated[Path | None, typer.Option(help="YAML file of real-engine options.")] = None,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="--engine vllm --replicas N: where the N servers start, as Ray actors: local (this "
        "machine, the default) | auto | ray://HOST:PORT | HOST:PORT.")] = None,
    truth_bias: TruthBiasOpt = 0.0,
    truth_noise: TruthNoiseOpt = 0.05,
    schedule_cost: ScheduleCostOpt = "model",
    oracle_lengths: OracleLengthsOpt = False,
    burstiness: BurstinessOpt = None,
    goodput: GoodputOpt = None,
    percentile_metrics: PercentileMetricsOpt = None,
    metric_percentiles: MetricPercentilesOpt = None,
    metadata: MetadataOpt = None,
) -> None:
    """Run one workload through one scheduler and report SLO attainment.

    Example: slobench run --workload chatbot --scheduler vllm --rate 4 --duration 300
    """
    cfg = validate_config(
        workload=workload, scheduler=scheduler, rate_rps=rate, duration_s=duration, num_requests=num_requests,
        seed=seed, hardware=hardware, model=model, tp=tp, profile=profile, replicas=replicas, router=router,
        router_refresh_ms=router_refresh_ms, max_concurrency=max_concurrency,
        spec_alpha=spec_alpha, scheduler_options=_json_options(scheduler_options), engine=engine, url=url,
        engine_options=_with_ray_address(engine_options(engine_arg, engine_config), ray_address, engine),
        truth_bias=truth_bias, truth_noise_cv=truth_noise,
        schedule_cost=schedule_cost, oracle_lengths=oracle_lengths,
        **measure_kwargs(burstiness=burstiness, goodput=goodput, percentile_metrics=percentile_metrics,
                         metric_percentiles=metric_percentiles),
    )
    meta = metadata_option(metadata)
    _check_inputs(cfg)
    result = run_with_progress(cfg, out, name=f"run-{Path(workload).stem}-{scheduler}", metadata=meta)
    console.print(summary_table(result.summary, f"{result.summary.workload} × {cfg.scheduler} ({cfg.engine})"))
    verb = "simulated" if cfg.engine == "sim" else f"sent to {cfg.engine}"
    console.print(f"results: [bold]{result.run_dir}[/]  ({verb} {result.summary.num_requests} requests "
                  f"in {result.wall_s:.1f} s wall)")


def _check_inputs(cfg: RunConfig) -> None:
    """Fail on a bad workload, scheduler or GPU/model name *before* a results folder and a progress
    bar exist, so a typo gives one error line and leaves no empty run folder behind."""
    from slobench.cluster.run import workload_spec
    from slobench.workloads.generate import check_sources

    check_sources(workload_spec(cfg))  # trace files too: their errors and warnings come before the bar
    if cfg.engine == "sim":
        from slobench.cluster.run import build_latency_model
        from slobench.schedulers.registry import make_policy

        build_latency_model(cfg)
        make_policy(cfg.policy)
    elif cfg.engine == "openai" and cfg.url:
        from slobench.engines.openai.engine import normalize_url

        normalize_url(cfg.url)  # a malformed URL: one line before a results folder exists
    elif cfg.engine == "vllm" and cfg.policy.is_import_path:
        from slobench.schedulers.registry import import_policy_class

        import_policy_class(cfg.policy.name)  # vLLM imports it in its own process: fail here, in one line


def _json_options(text: str | None) -> dict[str, Any]:
    """``--scheduler-options`` JSON → a dict; anything else is one error line."""
    import json

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--scheduler-options: not valid JSON ({exc.msg}); e.g. '{{\"capacity_margin\": 0.8}}'") \
            from None
    if not isinstance(value, dict):
        raise UserError(f"--scheduler-options: expected a JSON object of option: value (got {text!r})")
    return value


def run_with_progress(cfg: RunConfig, out: Path, *, name: str, metadata: dict[str, str] | None = None):  # noqa: ANN201
    from slobench.report.results import new_run_dir, write_manifest

    run_dir = new_run_dir(name, out)
    write_manifest(run_dir, command=sys.argv, config=cfg.model_dump(), seed=cfg.seed,
                   extra={"metadata": metadata} if metadata else None)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,  # piped: no bar, no stray blank line
    ) as progress:
        task = progress.add_task(f"{cfg.scheduler} on {cfg.workload}", total=None)

        def update(done: int, total: int) -> None:
            if done % 50 == 0 or done == total:
                progress.update(task, completed=done, total=total)

        try:
            from slobench.cluster.run import engine_session  # real engines: servers stop when the run ends

            with engine_session(run_dir):
                extra = {"metadata": metadata} if metadata else {}  # test doubles of run_once take no metadata
                return run_once(cfg, run_dir=run_dir, on_progress=update, **extra)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/]: finished records kept in {run_dir}/requests.jsonl")
            raise
        except UserError:
            _remove_if_empty(run_dir)  # e.g. a bad column in the user's length file: nothing was run
            raise


def _remove_if_empty(run_dir: Path) -> None:
    """Delete a run folder that holds nothing but its manifest (the run failed before any request)."""
    records = run_dir / "requests.jsonl"
    if records.exists() and records.stat().st_size > 0:
        return
    if any(p.name not in ("manifest.json", "requests.jsonl") for p in run_dir.iterdir()):
        return  # e.g. a real engine's server log, which the error message points the user to
    shutil.rmtree(run_dir, ignore_errors=True)


@bench_app.command("sim")
def bench_sim(
    workload: Annotated[str, typer.Option("--workload", "-w", help="Shipped workload name or YAML path.")] = "chatbot",
    scheduler: Annotated[str, typer.Option("--scheduler", "-s", help="Scheduler to simulate.")] = "vllm",
    num_requests: Annotated[int, typer.Option("--num-requests", "-n", help="Requests per run.")] = 2000,
    rate: Annotated[float | None, typer.Option("--rate", help="Arrival rate, req/s (default: the spec's).")] = None,
    repeat: Annotated[int, typer.Option(help="Runs to time (seeds 0..repeat-1); the median is reported.")] = 3,
) -> None:
    """Simulator speed: simulated requests per wall-second, metrics included.

    Each run is what one capacity-search probe does (generate the workload, simulate it, compute the
    summary), without writing files. The last line estimates a 10-probe capacity search from the median.

    Example: slobench bench sim --workload chatbot -n 2000 --rate 12
    """
    if repeat < 1:
        raise UserError(f"--repeat must be ≥ 1 (got {repeat})")
    t = Table(title="simulator speed", header_style="bold")
    for col in ("seed", "requests", "iterations", "attainment", "wall s", "requests / wall-s"):
        t.add_column(col, justify="right")
    walls: list[float] = []
    n_req = 0
    for seed in range(repeat):
        cfg = validate_config(
            workload=workload, scheduler=scheduler, num_requests=num_requests, rate_rps=rate, seed=seed
        )
        if seed == 0:
            _check_inputs(cfg)
        t0 = time.perf_counter()
        res = run_once(cfg)
        wall = time.perf_counter() - t0
        walls.append(wall)
        n_req, n_it = res.summary.num_requests, len(res.iterations)
        t.add_row(str(seed), str(n_req), str(n_it), f"{res.summary.attainment:.1%}", f"{wall:.2f}",
                  f"{n_req / wall:.0f}")
    console.print(t)
    median = statistics.median(walls)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"median: {n_req / median:.0f} simulated requests per wall-second ({workload}, {scheduler}, "
                  f"{n_req} requests, rate {rate if rate is not None else 'spec default'}); "
                  f"a 10-probe capacity search ≈ {10 * median:.0f} s; load average {load:.1f} on "
                  f"{os.cpu_count()} CPUs", highlight=False)
