"""`slobench bench schedulers`: capacity of every policy per workload, ratios, and scheduling overhead."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from slobench.errors import UserError

# The capacity table is wide (a column per policy and per ratio): when the output is not a terminal
# (a log file, CI), rich would assume 80 columns and truncate the headers.
console = Console() if sys.stdout.isatty() else Console(width=160)

ALL_WORKLOADS = "chatbot,coding,reasoning,toolcalling,summarization,mixed"
BASELINES = ("vllm", "vllm-v0", "sarathi")


def _fmt(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.3g}"


def bench_schedulers(
    workloads: Annotated[str, typer.Option("--workloads", help="Comma-separated workload names.")] = ALL_WORKLOADS,
    schedulers: Annotated[str, typer.Option("--schedulers", help="Policies; slos-serve is compared to the rest.")]
    = "vllm,vllm-v0,sarathi,slos-serve",
    profile: Annotated[str | None, typer.Option("--profile", help="Latency profile, e.g. paper:opt-13b-h100.")]
    = None,
    hardware: Annotated[str, typer.Option("--hardware")] = "H100-SXM",
    model: Annotated[str, typer.Option("--model")] = "Llama-3.1-8B",
    num_requests: Annotated[int, typer.Option("--num-requests", "-n", min=50, help="Requests per probe.")] = 600,
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
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Capacity searches run in parallel.")] = 1,
    overhead_only: Annotated[bool, typer.Option("--overhead-only", help="Skip capacities.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the table as CSV here.")] = None,
) -> None:
    """Capacity per workload for each policy, ratios (with geometric means), and schedule() overhead.

    Example: slobench bench schedulers --workloads coding,chatbot -n 600
    """
    from slobench.capacity.bench import CapacityRow, capacity_table, overhead, ratios
    from slobench.schedulers.registry import scheduler_names

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
        setup = profile or f"{model} on {hardware}"
        if spec_alpha is not None:
            kwargs |= {"spec_alpha": spec_alpha, "spec_max_draft": spec_max_draft}
            setup += f", speculation α={spec_alpha} k≤{spec_max_draft}"
        opts = _parse_opts(slos_opt or [])
        if opts:
            kwargs["scheduler_options_for"] = {"slos-serve": opts}
            setup += ", slos-serve " + ", ".join(f"{k}={v}" for k, v in opts.items())
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            task = progress.add_task("capacity searches", total=len(wls) * len(scheds))

            def on_row(r: CapacityRow) -> None:
                progress.console.print(f"{r.workload} × {r.scheduler}: {_fmt(r.capacity_rps)} req/s "
                                       f"({r.status}, {r.probes} probes, {r.wall_s:.0f} s)")
                progress.advance(task)

            rows = capacity_table(wls, scheds, num_requests=num_requests, target=target, run_kwargs=kwargs,
                                  seeds=tuple(dict.fromkeys(seed or [0])), jobs=jobs, on_row=on_row)
        seeds_txt = ", ".join(str(x) for x in dict.fromkeys(seed or [0]))
        t = Table(title=f"Capacity (req/s) at {target:.0%} attainment — {setup}, {num_requests} requests/probe, "
                        f"seed {seeds_txt}",
                  caption=f"÷ X: capacity of {'slos-serve' if 'slos-serve' in scheds else scheds[-1]} divided by X's",
                  header_style="bold")
        t.add_column("workload")
        for s in scheds:
            t.add_column(s, justify="right")
        base = [b for b in BASELINES if b in scheds]
        subject = "slos-serve" if "slos-serve" in scheds else scheds[-1]
        per = {b: ratios(rows, subject, b) for b in base if b != subject}
        for b in per:
            t.add_column(f"÷ {b}", justify="right")
        cap = {(r.workload, r.scheduler): r for r in rows}
        for w in wls:
            cells = []
            for s in scheds:
                r = cap[(w, s)]
                cells.append(_fmt(r.capacity_rps) + ("" if r.status == "ok" else f" ({r.status})"))
            t.add_row(w, *cells, *[f"{per[b][0][w]:.2f}×" for b in per])
        t.add_row("[bold]geomean[/]", *[""] * len(scheds), *[f"[bold]{per[b][1]:.2f}×[/]" for b in per])
        console.print(t)
        if out is not None:
            import pandas as pd

            pd.DataFrame([r.__dict__ for r in rows]).to_csv(out, index=False)
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
