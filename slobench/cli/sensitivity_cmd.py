"""`slobench sensitivity`: capacity and the ratio against SLO scale and planning-model error.

Opt-in, so the default `compare` stays fast: one capacity search per (workload, policy, point) on two
axes through the preset point (`slobench.capacity.sensitivity`). The plan is saved like any compare's,
so Ctrl-C keeps finished probes and `slobench resume DIR` continues it; the report draws one
four-panel figure per workload and ``sensitivity.csv`` holds the table printed at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slobench.capacity.execute import start
from slobench.capacity.plan import Plan, preflight, run_kwargs, search_settings, setup_text, workload_arg
from slobench.capacity.sensitivity import check_axis, points, sensitivity_specs
from slobench.cli.compare import _parse_list, _refuse_with_resume, _run
from slobench.cli.options import (
    HardwareOpt,
    JobsOpt,
    ModelOpt,
    OracleLengthsOpt,
    OutOpt,
    ProfileOpt,
    QuickOpt,
    RateMaxOpt,
    RateMinOpt,
    RayAddressOpt,
    ReplicasOpt,
    RequestsOpt,
    ResumeOpt,
    SchedulersOpt,
    SeedOpt,
    StartOpt,
    TargetOpt,
    TpOpt,
    WorkloadOpt,
    ray_address_option,
)
from slobench.errors import UserError


def _floats(flag: str, value: str) -> list[float]:
    out: list[float] = []
    for item in _parse_list(value):
        try:
            out.append(float(item))
        except ValueError:
            raise UserError(f"{flag}: {item!r} is not a number (give a comma-separated list, e.g. 0.5,1,2)") \
                from None
    return out


def sensitivity_cmd(
    ctx: typer.Context,
    workload: WorkloadOpt = ["coding", "chatbot"],  # noqa: B006 - typer needs a literal default
    schedulers: SchedulersOpt = "vllm,slos-serve",
    slo_scale: Annotated[str, typer.Option(
        "--slo-scale", help="SLO scales (× every TTFT/TPOT target; < 1 tighter), comma-separated.")] = "0.5,1,2,4",
    model_error: Annotated[str, typer.Option(
        "--model-error", help="Planning-model errors: the simulated GPU is this fraction slower than the model the "
        "policies plan with (negative: faster), comma-separated.")] = "0,0.1,0.2",
    base_error: Annotated[float, typer.Option(
        "--base-error", help="Model error the SLO-scale axis runs at.")] = 0.0,
    target: TargetOpt = 0.9,
    hardware: HardwareOpt = "H100-SXM",
    model: ModelOpt = "Llama-3.1-8B",
    tp: TpOpt = 1,
    profile: ProfileOpt = None,
    replicas: ReplicasOpt = 1,
    seed: SeedOpt = [0],  # noqa: B006
    quick: QuickOpt = False,
    out: OutOpt = Path("results"),
    num_requests: RequestsOpt = None,
    rate_start: StartOpt = 1.0,
    rate_min: RateMinOpt = 0.05,
    rate_max: RateMaxOpt = 1024.0,
    oracle_lengths: OracleLengthsOpt = False,
    resume: ResumeOpt = None,
    jobs: JobsOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Capacity and each policy's ratio to the first, against SLO scale and planning-model error (simulator).

    Example: slobench sensitivity --workload coding --slo-scale 0.5,1,2,4 --model-error 0,0.1,0.2 --quick
    """
    ray_address = ray_address_option(ray_address)
    _refuse_with_resume(ctx, resume, "sensitivity", jobs, ray_address)
    workloads = [w for item in workload for w in _parse_list(item)]
    scheds = _parse_list(schedulers)
    if len(scheds) < 2:
        raise UserError("--schedulers: give at least two policies (ratios are each policy ÷ the first)")
    scales = check_axis("slo_scale", _floats("--slo-scale", slo_scale))
    errors = check_axis("truth_bias", _floats("--model-error", model_error))
    check_axis("truth_bias", [base_error])
    kw = run_kwargs(hardware=hardware, model=model, tp=tp, profile=profile, replicas=replicas, engine="sim",
                    num_requests=num_requests, quick=quick, oracle_lengths=oracle_lengths)
    settings = search_settings(target, seed, quick, rate_start, rate_min, rate_max, refine_interval=False)

    name = "sensitivity-" + "-".join(Path(w).stem for w in workloads)
    pts = points(scales, errors, base_error)
    title = f"slobench sensitivity: {', '.join(Path(w).stem for w in workloads)} ({setup_text(kw)})"
    plan = Plan("sensitivity", title, [], settings, strict=False)
    config = {"workloads": workloads, "schedulers": scheds, "slo_scales": scales, "model_errors": errors,
              "base_error": base_error, "oracle_lengths": oracle_lengths, "target": target, "seeds": seed,
              "quick": quick} | kw
    preflight(sensitivity_specs([workload_arg(w) for w in workloads], scheds,
                                [{"slo_scale": 1.0, "truth_bias": base_error}], kw, Path(out)), settings)
    # The SLO-scaled workload variants live in the results folder, so the folder exists first.
    store = start(plan, out, name, config)
    plan.specs = sensitivity_specs([workload_arg(w) for w in workloads], scheds, pts, kw, store.out_dir)
    preflight(plan.specs)
    from slobench.capacity.execute import write_plan_manifest

    write_plan_manifest(store.out_dir, plan, {"name": name} | config)  # now with the searches
    _run(plan, store, jobs, ray_address)


def register(app: typer.Typer) -> None:
    app.command("sensitivity")(sensitivity_cmd)
