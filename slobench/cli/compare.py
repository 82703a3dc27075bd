"""`slobench compare | capacity | sweep | report | resume`: capacity searches and the reports built on them.

Thin: options are parsed here and turned into a `slobench.capacity.plan.Plan` (the searches to run
and how, saved in manifest.json); `slobench.capacity.execute` runs it, saving every finished probe
at once (its row in probes.csv, its records in parts/), so Ctrl-C keeps what finished,
`slobench report DIR` can draw it and `slobench resume DIR` replays the plan, reusing the saved
probes instead of rerunning them, and ends with the same files an uninterrupted run writes.
What is shown comes from `slobench.cli.display`.

Exit codes: 0 done; 2 bad input (one line); 3 compare/capacity finished but at least one search
found no capacity inside the rate range or hit the probe limit (its row shows a bound; results
and report are written); 130 interrupted (finished probes kept, resume command printed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from slobench.capacity.execute import EXIT_NO_CAPACITY, execute, open_resume, start, write_plan_manifest
from slobench.capacity.plan import (
    Plan,
    SearchSpec,
    check_routers,
    load_grid,
    parse_replica_counts,
    preflight,
    run_kwargs,
    scaling_specs,
    search_settings,
    setup_text,
    sweep_specs,
    workload_arg,
    workload_labels,
)
from slobench.capacity.store import Collector
from slobench.cli import display
from slobench.cli.options import (
    BurstinessOpt,
    EngineArgOpt,
    EngineConfigOpt,
    EngineOpt,
    GoodputOpt,
    GridOpt,
    HardwareOpt,
    JobsOpt,
    MaxConcurrencyOpt,
    MetadataOpt,
    MetricPercentilesOpt,
    ModelOpt,
    OneWorkloadOpt,
    OracleLengthsOpt,
    OutOpt,
    PercentileMetricsOpt,
    ProfileOpt,
    QuickOpt,
    RateMaxOpt,
    RateMinOpt,
    RayAddressOpt,
    RefineOpt,
    ReplicasOpt,
    RequestsOpt,
    ResumeOpt,
    RouterOpt,
    RouterRefreshOpt,
    RoutersOpt,
    ScalingOpt,
    ScheduleCostOpt,
    SchedulerOpt,
    SchedulersOpt,
    SeedOpt,
    StartOpt,
    TargetOpt,
    TpOpt,
    TruthBiasOpt,
    TruthNoiseOpt,
    UrlOpt,
    WarmupOpt,
    WorkloadOpt,
    engine_options,
    measure_kwargs,
    metadata_option,
    ray_address_option,
)
from slobench.errors import UserError

ConfirmOpt = Annotated[int | None, typer.Option(
    "--confirm", help="Grid rates above the first failing one probed to confirm the crossing (default 2; 0 with "
    "--quick).")]
HoldOpt = Annotated[float | None, typer.Option(
    "--hold", help="Re-run each capacity this many times longer and step down until it holds (default 4; 0 = off, "
    "the default with --quick).")]

__all__ = ["EXIT_NO_CAPACITY", "register"]


def _parse_list(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UserError(f"expected a comma-separated list, got {value!r}")
    return items


def _run(plan: Plan, store: Collector, jobs: int | None = None, ray_address: str | None = None) -> NoReturn:
    """Execute with live progress, print the outcome, exit with its code (Ctrl-C: re-raised after the lines)."""
    try:
        prior = 8.0 if plan.search.rel_tol >= 0.05 else 14.0  # typical probes per search: --quick / full
        with display.SearchProgress(prior_probes=prior) as progress:
            outcome = execute(plan, store, progress, jobs, ray_address)
    except Exception:
        display.print_failed(store.out_dir)
        raise
    display.print_outcome(plan, outcome)
    if outcome.interrupted:
        raise KeyboardInterrupt
    raise typer.Exit(outcome.exit_code)


def _resume(results_dir: Path, *, kind: str | None = None, jobs: int | None = None,
            ray_address: str | None = None) -> NoReturn:
    plan, store = open_resume(results_dir, kind=kind)
    display.print_resuming(plan.kind, results_dir, len(store.previous))
    _run(plan, store, jobs, ray_address)


def _refuse_with_resume(ctx: typer.Context, resume: Path | None, kind: str, jobs: int | None = None,
                        ray_address: str | None = None) -> None:
    """``--resume`` replays the saved settings; other flags on the same line would be silently ignored."""
    if resume is None:
        return
    # Typer vendors click, so compare the source by name rather than against click's enum.
    given = [p.opts[0] for p in ctx.command.params if p.name not in ("resume", "jobs", "ray_address")
             and p.name is not None and getattr(ctx.get_parameter_source(p.name), "name", "") == "COMMANDLINE"]
    if given:
        raise UserError(f"--resume continues the saved run with its saved settings; drop {', '.join(given)} "
                        "(or start a new run without --resume)")
    _resume(resume, kind=kind, jobs=jobs, ray_address=ray_address)


def _given(ctx: typer.Context, name: str) -> bool:
    """True when the option called ``name`` was typed on the command line (not its default)."""
    return getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"


def scaling_options(ctx: typer.Context, scaling: str | None, routers: str | None,
                    router: str) -> tuple[list[int], list[str]] | None:
    """``--scaling`` and ``--routers`` checked together: (replica counts, routers), or None without ``--scaling``.

    A scaling run chooses the replica counts and routers itself, so ``--replicas`` beside it, or ``--router``
    beside ``--routers``, would be silently ignored: refused in one line instead. Without ``--routers`` the one
    router is ``--router``'s value."""
    if scaling is None:
        if routers is not None:
            raise UserError("--routers: only with --scaling (a single search takes one router: --router NAME)")
        return None
    counts = parse_replica_counts(scaling)
    if _given(ctx, "replicas"):
        raise UserError("--scaling: searches its own replica counts; drop --replicas")
    if routers is None:
        return counts, check_routers([router], flag="--router")
    if _given(ctx, "router"):
        raise UserError("--scaling: give the routers once, with --routers; drop --router")
    return counts, check_routers(routers.split(","))


def compare_cmd(
    ctx: typer.Context,
    workload: WorkloadOpt = ["coding"],  # noqa: B006 - typer needs a literal default
    schedulers: SchedulersOpt = "vllm,slos-serve",
    target: TargetOpt = 0.9,
    hardware: HardwareOpt = "H100-SXM",
    model: ModelOpt = "Llama-3.1-8B",
    tp: TpOpt = 1,
    profile: ProfileOpt = None,
    replicas: ReplicasOpt = 1,
    router: RouterOpt = "round-robin",
    router_refresh_ms: RouterRefreshOpt = 100.0,
    scaling: ScalingOpt = None,
    routers: RoutersOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    seed: SeedOpt = [0],  # noqa: B006
    quick: QuickOpt = False,
    engine: EngineOpt = "sim",
    out: OutOpt = Path("results"),
    num_requests: RequestsOpt = None,
    rate_start: StartOpt = 1.0,
    rate_min: RateMinOpt = 0.05,
    rate_max: RateMaxOpt = 1024.0,
    refine_interval: RefineOpt = None,
    resume: ResumeOpt = None,
    jobs: JobsOpt = None,
    ray_address: RayAddressOpt = None,
    url: UrlOpt = None,
    engine_arg: EngineArgOpt = None,
    engine_config: EngineConfigOpt = None,
    oracle_lengths: OracleLengthsOpt = False,
    truth_bias: TruthBiasOpt = 0.0,
    truth_noise: TruthNoiseOpt = 0.05,
    schedule_cost: ScheduleCostOpt = "model",
    warmup: WarmupOpt = None,
    confirm: ConfirmOpt = None,
    hold: HoldOpt = None,
    burstiness: BurstinessOpt = None,
    goodput: GoodputOpt = None,
    percentile_metrics: PercentileMetricsOpt = None,
    metric_percentiles: MetricPercentilesOpt = None,
    metadata: MetadataOpt = None,
) -> None:
    """Capacity of each scheduler on each workload, side by side, with a report.

    Example: slobench compare --workload coding --workload chatbot --quick
    Replica scaling: slobench compare --workload coding --scaling 1,2,4,8 --routers round-robin,slo-aware
    """
    ray_address = ray_address_option(ray_address)
    _refuse_with_resume(ctx, resume, "compare", jobs, ray_address)
    scaled = scaling_options(ctx, scaling, routers, router)
    workloads = [w for item in workload for w in _parse_list(item)]
    scheds = _parse_list(schedulers)
    kw = run_kwargs(hardware=hardware, model=model, tp=tp, profile=profile, replicas=replicas, engine=engine,
                    num_requests=num_requests, quick=quick, url=url,
                    engine_options=engine_options(engine_arg, engine_config), warmup=warmup,
                    oracle_lengths=oracle_lengths, truth={"truth_bias": truth_bias, "truth_noise_cv": truth_noise,
                                                          "schedule_cost": schedule_cost},
                    routing={"router": router, "router_refresh_ms": router_refresh_ms,
                             "max_concurrency": max_concurrency})
    kw |= measure_kwargs(burstiness=burstiness, goodput=goodput, percentile_metrics=percentile_metrics,
                         metric_percentiles=metric_percentiles)
    meta = metadata_option(metadata)
    labels = dict(zip(workloads, workload_labels(workloads), strict=True))
    specs = [SearchSpec(labels[wl], s, kw | {"workload": workload_arg(wl)}) for wl in workloads for s in scheds]
    settings = search_settings(target, seed, quick, rate_start, rate_min, rate_max, refine_interval, confirm, hold)
    title = f"slobench compare: {', '.join(labels.values())} ({setup_text(kw)})"
    name = "compare-" + "-".join(Path(w).stem for w in workloads)
    config = {"workloads": workloads, "schedulers": scheds, "target": target, "seeds": seed, "quick": quick} | kw
    if scaled is not None:  # every scheduler × replica count × router instead of one search per scheduler
        counts, names = scaled
        specs = scaling_specs({labels[wl]: workload_arg(wl) for wl in workloads}, scheds, counts, names, kw)
        title += f"; replicas {','.join(map(str, counts))} × routers {', '.join(names)}"
        name += "-scaling"
        config |= {"scaling": counts, "routers": names}
    preflight(specs, settings)
    plan = Plan("compare", title, specs, settings, scaling=scaled is not None)
    _run(plan, start(plan, out, name, config, meta), jobs, ray_address)


def capacity_cmd(
    ctx: typer.Context,
    workload: OneWorkloadOpt = "coding",
    scheduler: SchedulerOpt = "slos-serve",
    target: TargetOpt = 0.9,
    hardware: HardwareOpt = "H100-SXM",
    model: ModelOpt = "Llama-3.1-8B",
    tp: TpOpt = 1,
    profile: ProfileOpt = None,
    replicas: ReplicasOpt = 1,
    router: RouterOpt = "round-robin",
    router_refresh_ms: RouterRefreshOpt = 100.0,
    max_concurrency: MaxConcurrencyOpt = None,
    seed: SeedOpt = [0],  # noqa: B006
    quick: QuickOpt = False,
    engine: EngineOpt = "sim",
    out: OutOpt = Path("results"),
    num_requests: RequestsOpt = None,
    rate_start: StartOpt = 1.0,
    rate_min: RateMinOpt = 0.05,
    rate_max: RateMaxOpt = 1024.0,
    refine_interval: RefineOpt = None,
    resume: ResumeOpt = None,
    jobs: JobsOpt = None,
    ray_address: RayAddressOpt = None,
    url: UrlOpt = None,
    engine_arg: EngineArgOpt = None,
    engine_config: EngineConfigOpt = None,
    oracle_lengths: OracleLengthsOpt = False,
    truth_bias: TruthBiasOpt = 0.0,
    truth_noise: TruthNoiseOpt = 0.05,
    schedule_cost: ScheduleCostOpt = "model",
    warmup: WarmupOpt = None,
    confirm: ConfirmOpt = None,
    hold: HoldOpt = None,
    burstiness: BurstinessOpt = None,
    goodput: GoodputOpt = None,
    percentile_metrics: PercentileMetricsOpt = None,
    metric_percentiles: MetricPercentilesOpt = None,
    metadata: MetadataOpt = None,
) -> None:
    """Capacity of one scheduler on one workload.

    Example: slobench capacity --workload coding --scheduler slos-serve
    """
    ray_address = ray_address_option(ray_address)
    _refuse_with_resume(ctx, resume, "capacity", jobs, ray_address)
    kw = run_kwargs(hardware=hardware, model=model, tp=tp, profile=profile, replicas=replicas, engine=engine,
                    num_requests=num_requests, quick=quick, url=url,
                    engine_options=engine_options(engine_arg, engine_config), warmup=warmup,
                    oracle_lengths=oracle_lengths, truth={"truth_bias": truth_bias, "truth_noise_cv": truth_noise,
                                                          "schedule_cost": schedule_cost},
                    routing={"router": router, "router_refresh_ms": router_refresh_ms,
                             "max_concurrency": max_concurrency})
    kw |= measure_kwargs(burstiness=burstiness, goodput=goodput, percentile_metrics=percentile_metrics,
                         metric_percentiles=metric_percentiles)
    meta = metadata_option(metadata)
    [label] = workload_labels([workload])
    specs = [SearchSpec(label, scheduler, kw | {"workload": workload_arg(workload)})]
    settings = search_settings(target, seed, quick, rate_start, rate_min, rate_max, refine_interval, confirm, hold)
    preflight(specs, settings)
    plan = Plan("capacity", f"slobench capacity: {label} × {scheduler} ({setup_text(kw)})", specs, settings)
    config = {"workload": workload, "scheduler": scheduler, "target": target, "seeds": seed, "quick": quick} | kw
    _run(plan, start(plan, out, f"capacity-{Path(workload).stem}-{scheduler}", config, meta), jobs, ray_address)


def sweep_cmd(
    ctx: typer.Context,
    grid: GridOpt = None,
    out: OutOpt = Path("results"),
    quick: QuickOpt = False,
    resume: ResumeOpt = None,
    jobs: JobsOpt = None,
    ray_address: RayAddressOpt = None,
    burstiness: BurstinessOpt = None,
    goodput: GoodputOpt = None,
    percentile_metrics: PercentileMetricsOpt = None,
    metric_percentiles: MetricPercentilesOpt = None,
    metadata: MetadataOpt = None,
) -> None:
    """Probe a rate grid, or search capacity, over a parameter grid; tidy probes.csv + report.

    Example: slobench sweep --grid sweep.yaml   (sweep.yaml: workload: coding, grid: {slo_scale: [0.5, 1, 2]})
    """
    ray_address = ray_address_option(ray_address)
    _refuse_with_resume(ctx, resume, "sweep", jobs, ray_address)
    if grid is None:
        raise UserError("--grid: missing; give a sweep YAML file (or --resume RESULTS_DIR)")
    g = load_grid(grid)
    measure = measure_kwargs(burstiness=burstiness, goodput=goodput, percentile_metrics=percentile_metrics,
                             metric_percentiles=metric_percentiles)
    meta = metadata_option(metadata)
    if "burstiness_cv" in measure and "burstiness_cv" in g.grid:
        raise UserError(f"--burstiness: {grid} already sweeps burstiness_cv; drop one of them")
    from slobench.report.results import new_run_dir

    out_dir = new_run_dir(f"sweep-{grid.stem}", root=out)
    specs = sweep_specs(g, out_dir, quick=quick)  # workload variants are written into the results folder
    for spec in specs:
        spec.run_kwargs = spec.run_kwargs | measure
    preflight(specs, g.settings(quick=quick))
    plan = Plan("sweep", f"slobench sweep: {grid.name}", specs, g.settings(quick=quick), scaling="replicas" in g.grid,
                strict=False)
    write_plan_manifest(out_dir, plan, g.model_dump() | {"grid_file": str(grid), "quick": quick}, meta)
    _run(plan, Collector(out_dir, g.target, plan.title, metadata=meta), jobs, ray_address)


def resume_cmd(
    results_dir: Annotated[Path, typer.Argument(help="The results folder of an interrupted compare/capacity/sweep.")],
    jobs: JobsOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Continue an interrupted compare, capacity or sweep: saved probes are reused, the rest run.

    Example: slobench resume results/20260101-120000-compare-coding
    """
    _resume(results_dir, jobs=jobs, ray_address=ray_address_option(ray_address))


def report_cmd(
    results_dir: Annotated[Path, typer.Argument(help="A results folder written by compare/capacity/sweep, or by "
                                                "run (its summary table, also when the run was interrupted).")],
    png: Annotated[bool, typer.Option("--png/--no-png", help="Also write figures/*.png (needs kaleido + Chromium).")]
    = True,
) -> None:
    """Redraw figures and report.html from a results folder, without rerunning; a `run` folder: its summary.

    Example: slobench report results/20260101-120000-compare-coding
    """
    from slobench.cluster.run import is_run_dir
    from slobench.report.rebuild import rebuild_report

    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: not a folder")
    if is_run_dir(results_dir):
        _report_run(results_dir)
        return
    try:
        report, notices = rebuild_report(results_dir, png=png)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    display.print_notices(notices)
    display.console.print(f"report: {report}", highlight=False, soft_wrap=True)


def _report_run(run_dir: Path) -> None:
    """A `slobench run` folder, finished or interrupted: its summary table (built from the kept records
    and written as summary.json when the run did not finish)."""
    from slobench.cli.run import summary_table
    from slobench.cluster.run import summarize_run_dir

    got = summarize_run_dir(run_dir)
    s = got.summary
    display.console.print(summary_table(s, f"{s.workload} × {s.scheduler} ({s.engine})"))
    for note in got.notes:
        display.console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if got.written is not None:
        display.console.print(f"summary: {got.written}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Attach `compare`, `capacity`, `sweep`, `report` and `resume` to the root app."""
    app.command("compare")(compare_cmd)
    app.command("capacity")(capacity_cmd)
    app.command("sweep")(sweep_cmd)
    app.command("report")(report_cmd)
    app.command("resume")(resume_cmd)
