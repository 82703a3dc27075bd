"""`slobench bench schedulers`: capacity of every policy per workload, ratios, and scheduling overhead."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slobench.cli import display
from slobench.cli.options import OracleLengthsOpt, RayAddressOpt, ray_address_option
from slobench.errors import UserError

console = display.wide_console

ALL_WORKLOADS = "chatbot,coding,reasoning,toolcalling,summarization,mixed"


def bench_schedulers(
    workloads: Annotated[str, typer.Option("--workloads", help="Comma-separated workload names.")] = ALL_WORKLOADS,
    schedulers: Annotated[str, typer.Option("--schedulers", help="Policies; slos-serve is compared to the rest.")]
    = "vllm,vllm-v0,sarathi,slos-serve",
    profile: Annotated[str | None, typer.Option(
        "--profile", help="Latency profile: paper:opt-13b-h100 or a calibrated FILE.yaml.")]
    = None,
    hardware: Annotated[str, typer.Option("--hardware")] = "H100-SXM",
    model: Annotated[str, typer.Option("--model")] = "Llama-3.1-8B",
    num_requests: Annotated[int | None, typer.Option(
        "--num-requests", "-n", min=50, help="Expected requests per probe (its duration = this ÷ rate); default "
        "1200, 200 with --quick.")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="A first look: 200 requests per probe, no 120 s floor, 5% grid, no confirmation.")] = False,
    warmup: Annotated[float, typer.Option(
        "--warmup", help="Share of each probe's duration not counted, in [0, 0.9).")] = 0.1,
    confirm: Annotated[int | None, typer.Option(
        "--confirm", help="Grid rates above the first failing one probed to confirm the crossing (0..10); "
        "default 2, 0 with --quick.")] = None,
    hold: Annotated[float | None, typer.Option(
        "--hold", help="Re-run each capacity this many times longer and step down until it holds; default 4, "
        "0 (off) with --quick.")] = None,
    target: Annotated[float, typer.Option("--target", min=0.01, max=1.0)] = 0.9,
    slos_opt: Annotated[list[str] | None, typer.Option(
        "--slos-serve-opt", help="KEY=VALUE option for slos-serve, e.g. surplus_rule=less; repeatable.")] = None,
    spec_alpha: Annotated[float | None, typer.Option(
        "--spec-alpha", min=0.01, max=0.99, help="Give the engine a draft model with this acceptance rate "
        "(every policy that speculates uses it; sarathi does not).")] = None,
    spec_max_draft: Annotated[int, typer.Option("--spec-max-draft", min=1, max=10,
                                                help="Most draft tokens per step.")] = 4,
    seed: Annotated[list[int] | None, typer.Option(
        "--seed", help="Workload seed; repeat to pool seeds in every probe (default 0).")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, help="Capacity searches run in parallel (default 1; with --ray-address the "
        "cluster's CPUs); the table is the same as with -j 1.")] = None,
    ray_address: RayAddressOpt = None,
    overhead_only: Annotated[bool, typer.Option("--overhead-only", help="Skip capacities.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the table as CSV here.")] = None,
    oracle_lengths: OracleLengthsOpt = False,
) -> None:
    """Capacity per workload for each policy, ratios (with geometric means), and schedule() overhead.

    Example: slobench bench schedulers --workloads coding,chatbot -n 1200
    """
    from slobench.capacity.bench import BenchRow, capacity_table, overhead
    from slobench.capacity.plan import check_hold, check_warmup
    from slobench.schedulers.registry import scheduler_names

    ray_address = ray_address_option(ray_address)
    check_warmup(warmup)
    hold = check_hold(hold, quick)
    confirm = (0 if quick else 2) if confirm is None else confirm
    num_requests = num_requests or (200 if quick else 1200)
    if not 0 <= confirm <= 10:
        raise UserError(f"--confirm: must be a number of grid rates in 0..10, got {confirm}")
    wls = [w.strip() for w in workloads.split(",") if w.strip()]
    scheds = [s.strip() for s in schedulers.split(",") if s.strip()]
    bad = [s for s in scheds if s not in scheduler_names()]
    if bad:
        raise UserError(f"--schedulers: unknown {bad[0]!r}; known: {', '.join(scheduler_names())}")
    if not overhead_only:
        from slobench.workloads import load_spec

        for w in wls:
            load_spec(w)  # fail fast, one line, on a bad name
        kwargs: dict = {"profile": profile} if profile else {"hardware": hardware, "model": model}
        if quick:
            kwargs["min_duration_s"] = 0.0
        setup = profile or f"{model} on {hardware}"
        if spec_alpha is not None:
            kwargs |= {"spec_alpha": spec_alpha, "spec_max_draft": spec_max_draft}
            setup += f", speculation α={spec_alpha} k≤{spec_max_draft}"
        if oracle_lengths:
            kwargs["oracle_lengths"] = True
            setup += ", oracle output lengths (the paper's assumption)"
        else:
            setup += ", output lengths predicted online (no oracle)"
        setup += ", simulated GPU = planning model × lognormal noise CV 0.05, schedule() cost charged"
        opts = _parse_opts(slos_opt or [])
        if opts:
            kwargs["scheduler_options_for"] = {"slos-serve": opts}
            setup += ", slos-serve " + ", ".join(f"{k}={v}" for k, v in opts.items())
        seeds = tuple(dict.fromkeys(seed or [0]))
        progress, task = display.bench_progress(len(wls) * len(scheds))
        with progress:
            def on_row(r: BenchRow) -> None:
                progress.console.print(display.bench_row_line(r))
                progress.advance(task)

            rows = capacity_table(wls, scheds, num_requests=num_requests, target=target, run_kwargs=kwargs,
                                  seeds=seeds, jobs=jobs if jobs or ray_address else 1, on_row=on_row,
                                  warmup=warmup, confirm=confirm, hold=hold, rel_tol=0.05 if quick else 0.02,
                                  ray_address=ray_address)
        console.print(display.bench_table(rows, wls, scheds, target=target, setup=setup, num_requests=num_requests,
                                          seeds=seeds, warmup=warmup))
        display.print_search_notes((r.workload, r.scheduler, r.notes) for r in rows)
        if out is not None:
            import pandas as pd

            from slobench.report.results import atomic_target

            with atomic_target(out) as tmp:
                pd.DataFrame([r.as_row() for r in rows]).to_csv(tmp, index=False)
            console.print(f"written: {out}")
    o = overhead()
    console.print(f"slos-serve schedule() with 256 running + 256 waiting in 3 tiers: re-planning call "
                  f"p50 {o['replan_p50_ms']:.2f} ms, p99 {o['replan_p99_ms']:.2f} ms; steady call "
                  f"p50 {o['steady_p50_ms']:.2f} ms, p99 {o['steady_p99_ms']:.2f} ms")


def _parse_opts(items: list[str]) -> dict[str, object]:
    """``["surplus_rule=less", "capacity_margin=0.8"]`` → typed dict (numbers and booleans parsed)."""
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--slos-serve-opt: expected KEY=VALUE, got {item!r} (e.g. surplus_rule=less)")
        out[key.strip()] = yaml.safe_load(value)
    return out


def register(bench_app: typer.Typer) -> None:
    bench_app.command("schedulers")(bench_schedulers)
