"""`slobench workloads list|show`: see what a workload spec will throw at the server before running it."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from slobench.errors import UserError
from slobench.workloads import generate, list_specs, load_spec
from slobench.workloads.arrivals import iat_cv
from slobench.workloads.spec import SPEC_DIR, WorkloadSpec

console = Console()

workloads_app = typer.Typer(
    help="List and inspect workload specs.\n\nExample: slobench workloads show coding --rate 4",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _slo_text(spec: WorkloadSpec) -> str:
    return "; ".join(f"{a.tier}/{k}: {s.describe()}" for a in spec.apps for k, s in a.slo.items())


@workloads_app.command("list")
def list_cmd() -> None:
    """List the shipped workload specs.

    Example: slobench workloads list
    """
    # The folder, not just "workloads/": in a wheel install the specs are a packaged copy, and this
    # is where a user finds one to copy and edit (then pass the copy's path as --workload).
    table = Table(title=f"Shipped workloads ({SPEC_DIR})")
    for col in ("name", "apps (tier, weight)", "arrivals", "lengths", "rate / size", "SLOs"):
        table.add_column(col, overflow="fold")
    for name in list_specs():
        spec = load_spec(name)
        apps = ", ".join(f"{a.name} ({a.tier}, {a.weight:g})" for a in spec.apps)
        size = f"{spec.num_requests} req" if spec.num_requests else f"{spec.duration_s:g} s"
        table.add_row(name, apps, spec.arrival.describe(), ", ".join(a.lengths.describe() for a in spec.apps),
                      f"{spec.rate_rps:g} req/s, {size}", _slo_text(spec))
    console.print(table)


def _q(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.0f} / {np.percentile(a, 50):.0f} / {np.percentile(a, 90):.0f} / {np.percentile(a, 99):.0f}"


@workloads_app.command("show")
def show_cmd(
    name_or_path: Annotated[str, typer.Argument(help="Shipped workload name or a YAML path.")],
    rate: Annotated[float | None, typer.Option("--rate", help="Request rate (req/s); default: the spec's.")] = None,
    num_requests: Annotated[int | None, typer.Option("--num-requests", "-n", help="Requests to sample.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    hardware: Annotated[str, typer.Option("--hardware", help="GPU for slowdown TTFTs.")] = "H100-SXM",
    model: Annotated[str, typer.Option("--model", help="Model for slowdown TTFTs.")] = "Llama-3.1-8B",
) -> None:
    """Generate a sample of a workload and print its statistics (lengths, arrivals, SLOs).

    Example: slobench workloads show mixed --rate 6 -n 2000 --seed 1
    """
    spec = load_spec(name_or_path)
    if rate is not None and rate <= 0:
        raise UserError(f"--rate must be > 0 (got {rate})")
    if num_requests is not None and num_requests <= 0:
        raise UserError(f"--num-requests must be > 0 (got {num_requests})")
    perf = None
    if any(s.ttft_slowdown is not None for a in spec.apps for s in a.slo.values()):
        from slobench.perf import get_latency_model  # only when a slowdown SLO needs prefill times

        perf = get_latency_model(hardware=hardware, model=model)
    wl = generate(spec, perf=perf, seed=seed, rate_rps=rate, num_requests=num_requests)
    times = np.array([r.arrival_s for r in wl.requests])
    span = float(times[-1] - times[0]) if times.size > 1 else 0.0
    achieved = (times.size - 1) / span if span > 0 else float("nan")

    head = Table(title=f"{spec.name}: {spec.description[:100]}", show_header=False)
    head.add_row("requests", str(len(wl.requests)))
    head.add_row("rate achieved", f"{achieved:.3g} req/s (target {wl.spec['rate_rps']:g})")
    head.add_row("arrivals", f"{spec.arrival.describe()}, IAT CV {iat_cv(times):.2f}, span {span:.0f} s")
    head.add_row("seed", str(seed))
    console.print(head)

    table = Table(title="Per app — mean / p50 / p90 / p99")
    for col in ("app", "tier", "count", "prompt tokens", "output tokens", "stages"):
        table.add_column(col)
    for app in spec.apps:
        reqs = [r for r in wl.requests if r.app == app.name and r.tier == app.tier]
        if not reqs:
            continue
        table.add_row(app.name, app.tier, str(len(reqs)), _q([r.total_prompt_tokens for r in reqs]),
                      _q([r.total_output_tokens for r in reqs]), _q([len(r.stages) for r in reqs]))
    console.print(table)

    slos = Table(title="SLOs per tier (spec → generated TTFT mean / p50 / p90 / p99 ms)")
    for col in ("tier", "stage", "spec", "TTFT ms", "TPOT ms"):
        slos.add_column(col)
    for app in spec.apps:
        for kind, s in app.slo.items():
            stages = [st for r in wl.requests if r.tier == app.tier for st in r.stages if st.name == kind]
            ttft = _q([st.slo.ttft_s * 1000 for st in stages]) if stages else "-"
            slos.add_row(app.tier, kind, s.describe(), ttft, f"{s.tpot_ms:g}")
    console.print(slos)
