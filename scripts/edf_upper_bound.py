"""An optimistic bound on any policy's capacity: prefill-only, preemptive EDF with a perfect admission test.

Why: a capacity gap between two policies says nothing about how much is left to gain. This model
gives every request its zero-load prefill time as work (from the same latency model the simulator
uses), runs one preemptive earliest-deadline-first server with no batch granularity and free decodes,
and admits an arrival only if every admitted request still meets its TTFT (so the admitted set is
always feasible: EDF is optimal for that on one server). Attainment = admitted / all. Every real
policy pays for decodes, batch fixed costs and chunking on top, so its capacity sits below the rate
where this bound crosses the target. Single-stage workloads only (a tool call's later rounds and a
reasoning answer depend on decode timing, which this model leaves out).

Usage: python scripts/edf_upper_bound.py summarization --rates 6,8,10,12 [--seeds 0,1,2] [-n 2000]
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer

from slobench.perf import get_latency_model
from slobench.workloads import generate, load_spec

TOLERANCE = 1.05  # the metric's 5% TTFT tolerance (docs/metrics.md)


def attainment(workload: str, rate: float, num_requests: int, seed: int, hardware: str, model: str) -> float:
    """Share of arrivals an admission-controlled preemptive EDF server prefills by their TTFT deadline."""
    perf = get_latency_model(hardware=hardware, model=model)
    wl = generate(load_spec(workload), perf=perf, seed=seed, rate_rps=rate, num_requests=num_requests)
    if any(len(r.stages) > 1 for r in wl.requests):
        raise typer.BadParameter(f"{workload!r} has multi-stage requests; this bound covers single-stage "
                                 "workloads (chatbot, coding, summarization, mixed)")
    jobs = sorted((r.arrival_s, perf.prefill_latency_s(r.stages[0].prompt_tokens),
                   r.arrival_s + r.stages[0].slo.ttft_s * TOLERANCE) for r in wl.requests)
    admitted: list[list[float]] = []  # [deadline, remaining work], kept in deadline order
    now, met = 0.0, 0
    for arrival, work, deadline in jobs:
        budget = arrival - now
        while budget > 0 and admitted:  # serve the earliest deadline until the next arrival
            step = min(budget, admitted[0][1])
            admitted[0][1] -= step
            budget -= step
            if admitted[0][1] <= 1e-12:
                admitted.pop(0)
                met += 1
        now = arrival
        trial = sorted(admitted + [[deadline, work]])
        finish = now
        for due, rest in trial:
            finish += rest
            if finish > due:
                break
        else:
            admitted = trial
    return (met + len(admitted)) / len(jobs)


def main(
    workload: Annotated[str, typer.Argument(help="Single-stage workload: chatbot, coding, summarization, mixed.")],
    rates: Annotated[str, typer.Option(help="Comma-separated request rates (req/s).")],
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds; attainment is pooled over them.")] = "0,1,2",
    num_requests: Annotated[int, typer.Option("--num-requests", "-n", min=50)] = 2000,
    target: Annotated[float, typer.Option(min=0.01, max=1.0)] = 0.9,
    hardware: Annotated[str, typer.Option()] = "H100-SXM",
    model: Annotated[str, typer.Option()] = "Llama-3.1-8B",
) -> None:
    """Print the bound's attainment per rate and the highest listed rate that meets the target."""
    try:
        rate_list = [float(x) for x in rates.split(",") if x.strip()]
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError as err:
        raise typer.BadParameter(f"--rates/--seeds: {err}; use e.g. --rates 6,8,10 --seeds 0,1,2") from None
    best = None
    for rate in rate_list:
        att = float(np.mean([attainment(workload, rate, num_requests, s, hardware, model) for s in seed_list]))
        typer.echo(f"{workload} {rate:g} req/s: {att:.1%}")
        if att >= target:
            best = rate if best is None else max(best, rate)
    typer.echo(f"highest listed rate with ≥ {target:.0%}: {best if best is not None else 'none'}")


if __name__ == "__main__":
    typer.run(main)
