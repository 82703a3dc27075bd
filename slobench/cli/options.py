"""Typer options shared by the capacity commands (`compare`, `capacity`, `sweep`), declared once.

Each alias is an ``Annotated`` type: a command's signature names the alias and its default, e.g.
``target: TargetOpt = 0.9``, so the flag, its help and its limits are the same in every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

WorkloadOpt = Annotated[list[str], typer.Option(
    "--workload", "-w", help="Workload name or YAML path; repeat it or give a comma-separated list.")]
OneWorkloadOpt = Annotated[str, typer.Option("--workload", "-w", help="Workload name or YAML path.")]
SchedulersOpt = Annotated[str, typer.Option("--schedulers", help="Comma-separated; ratios are vs the first.")]
SchedulerOpt = Annotated[str, typer.Option("--scheduler", "-s", help="Scheduler name.")]
TargetOpt = Annotated[float, typer.Option("--target", help="Attainment target in (0, 1].", min=0.01, max=1.0)]
HardwareOpt = Annotated[str, typer.Option("--hardware", help="GPU spec name, e.g. H100-SXM.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Model spec name, e.g. Llama-3.1-8B; real engines: the local "
                                      "model folder (or hub id) to serve.")]
TpOpt = Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree (roofline model).")]
ProfileOpt = Annotated[str | None, typer.Option(
    "--profile", help="Latency profile: a shipped name, e.g. paper:opt-13b-a100-tp2, or a FILE.yaml written by "
    "`slobench calibrate` (overrides --hardware/--model/--tp).")]
ReplicasOpt = Annotated[int, typer.Option("--replicas", min=1, help="Replicas behind the router.")]
# Routing and closed-loop load (docs/routers.md); values are checked by `validate_config` (one line, exit 2).
RouterOpt = Annotated[str, typer.Option(
    "--router", help="How requests are placed on replicas: round-robin | vllm-dp | power-of-two | prefix-aware | "
    "slo-aware (docs/routers.md).")]
RouterRefreshOpt = Annotated[float, typer.Option(
    "--router-refresh-ms", help="How stale the router's view of replica loads is: refreshed every this many ms "
    "(vLLM: 100); 0 = fresh at every request.")]
ScalingOpt = Annotated[str | None, typer.Option(
    "--scaling", help="Replica counts, e.g. 1,2,4,8 (must include 1): search every scheduler's capacity at each count "
    "behind each of --routers (one replica once, without a router) and draw capacity per replica against linear "
    "scaling (docs/capacity.md).")]
RoutersOpt = Annotated[str | None, typer.Option(
    "--routers", help="With --scaling: the routers to compare, comma-separated, e.g. round-robin,slo-aware "
    "(default: the --router value).")]
MaxConcurrencyOpt = Annotated[int | None, typer.Option(
    "--max-concurrency", help="At most N requests in flight (vLLM bench's --max-concurrency): a request arriving "
    "while N are in flight is sent when one ends; latency counts from the send. Every engine.")]
SeedOpt = Annotated[list[int], typer.Option("--seed", help="Seed(s); the same for every scheduler. Repeatable.")]
WarmupOpt = Annotated[float | None, typer.Option(
    "--warmup", help="Share of each probe's duration whose arrivals run but are not counted, in [0, 0.9) "
    "(default 0.1).")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="200 requests per probe, 5% grid: a first look in seconds.")]
EngineOpt = Annotated[str, typer.Option("--engine", help="sim (default) | vllm | openai")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="--engine openai: server base URL, e.g. http://host:8000/v1.")]
EngineArgOpt = Annotated[list[str] | None, typer.Option(
    "--engine-arg", help="Real-engine option KEY=VALUE (repeatable), e.g. max_num_seqs=64; see docs/real-engines.md.")]
EngineConfigOpt = Annotated[Path | None, typer.Option("--engine-config", help="YAML file of real-engine options.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Results root; a timestamped folder is made inside.")]
RequestsOpt = Annotated[int | None, typer.Option(
    "--num-requests", min=10, help="Expected requests per probe and replica: a probe at rate r lasts "
    "num_requests·replicas/r seconds (default 1200; 200 with --quick).")]
StartOpt = Annotated[float, typer.Option("--rate-start", min=0.001, help="First rate probed (req/s).")]
RateMinOpt = Annotated[float, typer.Option("--rate-min", min=0.0001, help="Lowest rate the search may probe.")]
RateMaxOpt = Annotated[float, typer.Option("--rate-max", min=0.001, help="Highest rate the search may probe.")]
RefineOpt = Annotated[bool | None, typer.Option(
    "--refine-interval/--no-refine-interval",
    help="Extra probes (≈ +50%) tightening the capacity's interval to grid neighbours. Default: on; off with --quick.")]
ResumeOpt = Annotated[Path | None, typer.Option(
    "--resume", help="Continue an interrupted run in this results folder with its saved settings.")]
JobsOpt = Annotated[int | None, typer.Option(
    "--jobs", "-j", min=1, help="Cores to use (default: every CPU core): simulator searches run in up to this "
    "many processes, and cores no search holds run each search's likely next probes ahead; results are the same "
    "as with -j 1.")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="Run the simulator searches as Ray tasks: auto (the Ray cluster this machine is in) | "
    "ray://HOST:PORT | HOST:PORT (a head node) | local (start Ray here). -j still caps searches at once (default: "
    "the cluster's CPUs). Needs the ray extra; without it the local process pool runs them (docs/cluster.md).")]
OracleLengthsOpt = Annotated[bool, typer.Option(
    "--oracle-lengths", help="Policies know every request's true output lengths (the SLOs-Serve paper's assumption). "
    "Default: they see the max_tokens bound and an online length predictor, as a real server would.")]
GridOpt = Annotated[Path | None, typer.Option("--grid", help="Sweep YAML (workload, schedulers, rates?, grid: {...}).")]
# The simulator's ground truth (docs/simulator.md); range errors are one line from `validate_config`.
TruthBiasOpt = Annotated[float, typer.Option(
    "--truth-bias", help="Simulator: true iteration time = predicted × (1 + bias) × noise; > -1 (default 0).")]
TruthNoiseOpt = Annotated[float, typer.Option(
    "--truth-noise", help="Simulator: per-iteration latency noise, coefficient of variation of a mean-1 lognormal "
    "(default 0.05, provisional; 0 = the planning model exactly).")]
ScheduleCostOpt = Annotated[str, typer.Option(
    "--schedule-cost", help="Simulator: schedule() time charged per iteration: model (fitted per policy, "
    "deterministic) | wall (measured, not reproducible) | off.")]

# vLLM bench's flags, with vLLM's meaning (docs/metrics.md "vLLM-style numbers").
BurstinessOpt = Annotated[float | None, typer.Option(
    "--burstiness", help="vLLM bench's burstiness B: the shape of Gamma inter-arrival times (B=1 Poisson, B<1 "
    "burstier, B>1 smoother; CV = 1/√B). B is vLLM's shape, not a CV (a sweep's burstiness_cv axis is the CV). "
    "Replaces the workload's arrival process; not for trace replays.")]
GoodputOpt = Annotated[str | None, typer.Option(
    "--goodput", help="vLLM-style goodput bounds in ms, any of ttft:MS,tpot:MS,e2el:MS: a request counts when its "
    "TTFT, mean TPOT and end-to-end latency are within them. Reported as vllm_goodput_rps beside (not instead of) "
    "slobench's per-token-deadline attainment.")]
PercentileMetricsOpt = Annotated[str | None, typer.Option(
    "--percentile-metrics", help="Latency metrics to report percentiles of (ms): a subset of ttft,tpot,itl,e2el "
    "(default ttft,tpot,itl, as vLLM bench).")]
MetricPercentilesOpt = Annotated[str | None, typer.Option(
    "--metric-percentiles", help="Percentiles reported for each --percentile-metrics metric, e.g. 50,90,99 "
    "(default 99, as vLLM bench); mean, median and std are always reported.")]
MetadataOpt = Annotated[list[str] | None, typer.Option(
    "--metadata", help="KEY=VALUE saved in manifest.json and summary.json (repeatable), e.g. --metadata team=infra.")]


def measure_kwargs(*, burstiness: float | None, goodput: str | None, percentile_metrics: str | None,
                   metric_percentiles: str | None) -> dict[str, Any]:
    """The vLLM-bench flags as `RunConfig` keys (validated, one line each); only the ones given, so plans and
    manifests of commands without them stay as they were."""
    from slobench.metrics.serving import (
        burstiness_to_cv,
        parse_goodput,
        parse_metric_percentiles,
        parse_percentile_metrics,
    )

    kw: dict[str, Any] = {}
    if burstiness is not None:
        kw["burstiness_cv"] = burstiness_to_cv(burstiness)
    if goodput is not None:
        kw["goodput_ms"] = parse_goodput(goodput)
    if percentile_metrics is not None:
        kw["percentile_metrics"] = parse_percentile_metrics(percentile_metrics)
    if metric_percentiles is not None:
        kw["metric_percentiles"] = parse_metric_percentiles(metric_percentiles)
    return kw


def metadata_option(pairs: list[str] | None) -> dict[str, str]:
    """``--metadata KEY=VALUE`` pairs → a dict (one line on a bad pair)."""
    from slobench.metrics.serving import parse_metadata

    return parse_metadata(pairs)


def engine_options(pairs: list[str] | None, config: Path | None) -> dict[str, Any]:
    """``--engine-arg KEY=VALUE`` pairs and ``--engine-config FILE`` → the real engines' options (one line on
    a bad one); shared by `run`, `compare` and `capacity`."""
    from slobench.engines.options import parse_engine_args

    return parse_engine_args(pairs, config)


def ray_address_option(address: str | None) -> str | None:
    """``--ray-address`` checked before anything runs: a malformed address, or ray not installed, is one line
    (exit 2) before a results folder is made. Ray itself is imported only here and when the run connects."""
    if address is None:
        return None
    from slobench.cluster.ray_fanout import check_address, import_ray

    address = check_address(address)
    import_ray()
    return address
