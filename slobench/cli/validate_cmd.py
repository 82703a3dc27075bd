"""`slobench validate`: the same capacity search on the real engine and in the simulator; how far apart they are.

Thin: options → one `run_kwargs` dict shared by both engines → `slobench.capacity.validate_run.validate_specs`
→ a `Plan` of kind ``validate`` that `slobench.capacity.execute.execute` runs, saves and resumes like a compare
(probes.csv holds both engines' probes under the labels ``<workload>/sim`` and ``<workload>/real``), ending with
summary.json's ``validation`` (`slobench.capacity.validate`), printed as a table under the capacities.

Exit codes as `slobench compare` (0, 2 bad input in one line, 3 a search without a capacity in range, 130).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from slobench.capacity.plan import (
    Plan,
    preflight,
    run_kwargs,
    search_settings,
    setup_text,
    workload_arg,
    workload_labels,
    workload_variant,
)
from slobench.capacity.store import Collector
from slobench.capacity.validate_run import VALIDATE_PERCENTILES, validate_specs
from slobench.cli.compare import _parse_list, _run
from slobench.cli.options import (
    EngineArgOpt,
    EngineConfigOpt,
    JobsOpt,
    MetadataOpt,
    OneWorkloadOpt,
    OutOpt,
    QuickOpt,
    RateMaxOpt,
    RateMinOpt,
    RequestsOpt,
    SeedOpt,
    StartOpt,
    TargetOpt,
    WarmupOpt,
    engine_options,
    measure_kwargs,
    metadata_option,
)
from slobench.errors import UserError

VALIDATED_ENGINES = ("vllm",)  # the policy runs inside the engine; an OpenAI server runs its own scheduler

SloFromProfileOpt = Annotated[bool, typer.Option(
    "--slo-from-profile", help="Scale the workload's absolute targets (TPOT, absolute TTFT, the TTFT floor) by the "
    "profile's decode step ÷ the SLOs-Serve paper's (docs/calibration.md \"SLOs on any engine\"); slowdown TTFTs "
    "already follow the profile.")]


def check_inputs(engine: str, model: str | None, profile: str | None) -> None:
    """One line for what validate cannot run with: the simulator against itself, no model, no calibrated file."""
    from slobench.perf.profile_file import is_profile_path, load_profile_file

    if engine not in VALIDATED_ENGINES:
        what = "the simulator is what validate checks, not a real engine" if engine == "sim" else \
            f"{engine!r} is not an engine validate can run policies inside"
        raise UserError(f"--engine {engine}: {what}; use --engine vllm")
    if not model:
        raise UserError("--model: missing; give the local model folder the real engine serves")
    if not profile:
        raise UserError("--profile: missing; give the FILE.yaml written by `slobench calibrate --engine vllm --model "
                        f"{model} --out FILE.yaml`")
    if not is_profile_path(profile):
        raise UserError(f"--profile {profile}: validate needs a calibrated profile FILE.yaml of this engine (a shipped "
                        "paper: profile describes other hardware)")
    prof = load_profile_file(profile)  # missing or malformed: its own one line
    if prof.client_visible:
        from slobench.perf.profile_file import to_model

        to_model(prof, profile)  # a client-visible profile cannot drive the simulator: its one line


def slo_time_scale_of(profile: str) -> float:
    """`slobench.perf.profiles.slo_time_scale` of a profile file (a client-visible one's decode step is its ITL at
    concurrency 1, `slobench.perf.profile_file.slo_decode_step_s`)."""
    from slobench.perf.profile_file import load_profile_file, slo_decode_step_s
    from slobench.perf.profiles import SLO_REFERENCE_PROFILE, decode_step_s, get_profile

    return slo_decode_step_s(load_profile_file(profile)) / decode_step_s(get_profile(SLO_REFERENCE_PROFILE))


def validate_cmd(
    workload: OneWorkloadOpt = "chatbot",
    schedulers: Annotated[str, typer.Option("--schedulers", help="Comma-separated policies; gains are vs the "
                                            "first.")] = "vllm,slos-serve",
    engine: Annotated[str, typer.Option("--engine", help="The real engine: vllm.")] = "vllm",
    model: Annotated[str | None, typer.Option("--model", help="Local model folder the real engine serves.")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Profile FILE.yaml written by `slobench "
                                                "calibrate` for this engine and model.")] = None,
    slo_from_profile: SloFromProfileOpt = False,
    target: TargetOpt = 0.9,
    seed: SeedOpt = [0],  # noqa: B006 - typer needs a literal default
    quick: QuickOpt = False,
    out: OutOpt = Path("results"),
    num_requests: RequestsOpt = None,
    rate_start: StartOpt = 1.0,
    rate_min: RateMinOpt = 0.05,
    rate_max: RateMaxOpt = 1024.0,
    warmup: WarmupOpt = None,
    engine_arg: EngineArgOpt = None,
    engine_config: EngineConfigOpt = None,
    jobs: JobsOpt = None,
    metadata: MetadataOpt = None,
) -> NoReturn:
    """Simulated vs real capacity of each policy on one workload, with the capacity error and why.

    Example: slobench validate --engine vllm --model PATH --profile tiny-cpu.yaml --workload chatbot --quick
    """
    check_inputs(engine, model, profile)
    assert model is not None and profile is not None
    scheds = _parse_list(schedulers)
    kw = run_kwargs(hardware="cpu", model=model, tp=1, profile=str(Path(profile).expanduser().resolve()),
                    replicas=1, engine=engine, num_requests=num_requests, quick=quick,
                    engine_options=engine_options(engine_arg, engine_config), warmup=warmup)
    kw |= measure_kwargs(burstiness=None, goodput=None, percentile_metrics="ttft,tpot,itl,e2el",
                         metric_percentiles=",".join(f"{p:g}" for p in VALIDATE_PERCENTILES))
    meta = metadata_option(metadata)
    settings = search_settings(target, seed, quick, rate_start, rate_min, rate_max, None)
    [label] = workload_labels([workload])
    from slobench.report.results import new_run_dir

    preflight(validate_specs(label, kw | {"workload": workload_arg(workload)}, scheds), settings)  # before a folder
    out_dir = new_run_dir(f"validate-{Path(workload).stem}", root=out)
    wl = workload_arg(workload)
    scale = None
    if slo_from_profile:  # a copy of the spec with scaled targets, kept in the results folder (resume reads it)
        scale = slo_time_scale_of(profile)
        wl = workload_variant(workload, {"time_scale": scale}, out_dir)
    specs = validate_specs(label, kw | {"workload": wl}, scheds)
    title = f"slobench validate: {label}, sim vs {engine} ({setup_text(kw)})"
    plan = Plan("validate", title, specs, settings)
    from slobench.capacity.execute import write_plan_manifest

    config = {"workload": workload, "schedulers": scheds, "target": target, "seeds": seed, "quick": quick,
              "slo_time_scale": scale} | kw
    write_plan_manifest(out_dir, plan, config, meta)
    _run(plan, Collector(out_dir, target, title, metadata=meta), jobs)


def register(app: typer.Typer) -> None:
    """Attach `validate` to the root app."""
    app.command("validate")(validate_cmd)
