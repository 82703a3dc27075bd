"""What a plan's numbers rest on, in words: information, simulator ground truth, SLOs, workload, probe size.

A capacity is only meaningful with its conditions: whether the policies knew output lengths (the
oracle) or predicted them, how the simulated GPU differs from the model the policies plan with, which
SLOs every request had, and how long each probe ran. `describe_setup` turns every distinct run setting
of a plan into one such record; the store writes them into summary.json (``setup``), the report shows
them above the capacity table and the CLI prints them under it, so no number leaves without them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slobench.capacity.plan import SearchSettings, SearchSpec


def _information(cfg: Any) -> str:
    if cfg.engine == "openai":
        return "not known to slobench (the server's own scheduler)"
    if cfg.policy.oracle_lengths:
        return "oracle: policies know every request's true output lengths (the SLOs-Serve paper's assumption)"
    return "realistic: policies see the max_tokens bound and predict lengths online from finished requests"


def _ground_truth(cfg: Any) -> str:
    if cfg.engine != "sim":
        return f"real engine ({cfg.engine}): measured"
    cost = {"model": "charged from the fitted per-policy cost model", "wall": "charged as measured wall time "
            "(not reproducible)", "off": "not charged"}[cfg.schedule_cost]
    return (f"simulated iteration = planning model × {1 + cfg.truth_bias:g} × lognormal noise (CV "
            f"{cfg.truth_noise_cv:g}); schedule() time {cost}")


def _slos(workload: str) -> str:
    from slobench.workloads import load_spec

    spec = load_spec(workload)
    return "; ".join(f"{a.name}/{a.tier} {k}: {s.describe()}" for a in spec.apps for k, s in a.slo.items())


def _slo_model(cfg: Any) -> str:
    """Which latency model turned the workload's slowdown TTFT targets into seconds (issue 11 item 2): a target
    is only as meaningful as the zero-load latency it multiplies, so the report names it."""
    from slobench.cluster import run as cluster_run
    from slobench.perf.base import describe_zero_load

    spec = cluster_run.workload_spec(cfg)
    if not any(s.ttft_slowdown is not None for a in spec.apps for s in a.slo.values()):
        return "none: every target is absolute"
    return describe_zero_load(cluster_run.build_latency_model(cfg))


def _probes(kw: dict[str, Any]) -> str:
    n = kw.get("probe_requests")
    if n is None:
        return f"{kw.get('num_requests', '?')} requests per probe (fixed count)"
    floor = float(kw.get("min_duration_s", 0.0) or 0.0)
    warm = float(kw.get("warmup", 0.0) or 0.0)
    return (f"≈{n} requests per replica per probe (duration = that ÷ rate{f', ≥ {floor:g} s' if floor else ''}); "
            f"first {warm:.0%} of each probe is warm-up, not counted")


def _workload(cfg: Any) -> str:
    """The workload's arrival process and length statistics, from a sample the probes would send (seed 0, 1000
    requests at the spec's rate): what a reader needs to tell this workload from another of the same name."""
    import numpy as np

    from slobench.cluster import run as cluster_run

    probe = cfg.model_copy(update={"num_requests": 1000, "duration_s": None, "rate_rps": None, "seed": 0})
    spec = cluster_run.workload_spec(probe)
    wl = cluster_run.build_workload(probe, cluster_run.build_latency_model(probe))
    prompt = np.array([sum(s.prompt_tokens for s in r.stages) for r in wl.requests], dtype=float)
    output = np.array([sum(s.output_tokens for s in r.stages) for r in wl.requests], dtype=float)
    stages = np.array([len(r.stages) for r in wl.requests], dtype=float)
    arrival = spec.arrival.process + (f" (CV {spec.arrival.cv:.3g})" if spec.arrival.cv else "")
    if cfg.burstiness_cv is not None:
        arrival += f", from --burstiness {1 / cfg.burstiness_cv ** 2:.3g}"
    multi = f", {stages.mean():.2f} stages per request" if stages.max() > 1 else ""
    return (f"{arrival} arrivals; prompt tokens mean {prompt.mean():.0f} (p50 {np.median(prompt):.0f}, "
            f"p99 {np.percentile(prompt, 99):.0f}), output tokens mean {output.mean():.0f} (p50 "
            f"{np.median(output):.0f}, p99 {np.percentile(output, 99):.0f}){multi}")


def _serving(cfg: Any) -> str:
    """The vLLM-style figures asked for (--goodput, --percentile-metrics, --metric-percentiles)."""
    from slobench.metrics.serving import parse_metric_percentiles, parse_percentile_metrics, percentile_word

    metrics = parse_percentile_metrics(cfg.percentile_metrics)
    pcts = parse_metric_percentiles(cfg.metric_percentiles)
    text = (f"latency mean/median/std and p{', p'.join(percentile_word(p) for p in pcts)} of "
            f"{', '.join(metrics)} (ms)")
    if cfg.goodput_ms:
        bounds = ", ".join(f"{k} ≤ {v:g} ms" for k, v in cfg.goodput_ms.items())
        text += f"; vLLM-style goodput: requests with {bounds}"
    return text


def _safe(describe: Any, cfg: Any) -> str:
    """A description that cannot generate (e.g. a trace file moved since) says so instead of dropping the setup:
    it only describes, so no failure of it may stop the searches it describes."""
    try:
        return describe(cfg)
    except Exception as exc:  # noqa: BLE001 - descriptive only; the probes report real problems themselves
        return f"statistics unavailable ({type(exc).__name__}: {exc})"


def _search(settings: SearchSettings | None) -> str | None:
    """How the capacity was decided: target, grid, confirmation, hold check (None for a fixed rate grid)."""
    if settings is None or settings.rates is not None:
        return None
    parts = [f"{settings.target:.0%} of requests meet every SLO", f"{settings.rel_tol:.0%} rate grid"]
    if settings.confirm:
        parts.append(f"crossing confirmed by the next {settings.confirm} grid rates")
    if settings.hold_factor > 1:
        parts.append(f"capacity re-run {settings.hold_factor:g}× longer and stepped down until it holds")
    return "; ".join(parts) + ("; INVALID probes (rate not offered, queue growing or not draining, load above the "
                               "compute ceiling, KV cache near full) count as misses")


def describe_setup(specs: Sequence[SearchSpec], settings: SearchSettings | None = None) -> list[dict[str, str]]:
    """One record per distinct run setting of ``specs`` (searches sharing it listed together); with the plan's
    ``settings``, a line on how the capacity was decided."""
    groups: dict[str, list[SearchSpec]] = {}
    for s in specs:
        groups.setdefault(json.dumps(s.run_kwargs, sort_keys=True, default=str), []).append(s)
    out: list[dict[str, str]] = []
    for members in groups.values():
        first = members[0]
        cfg = first.config(1.0, 0)
        where = cfg.profile and f"profile {cfg.profile}" or f"{cfg.hardware}, {cfg.model}" + \
            (f" TP{cfg.tp}" if cfg.tp > 1 else "")
        out.append({
            "searches": ", ".join(dict.fromkeys(f"{m.label} × {m.scheduler}" for m in members)),
            "engine": f"{cfg.engine} ({where}{f', {cfg.replicas} replicas' if cfg.replicas > 1 else ''})",
            "output lengths": _information(cfg),
            "ground truth": _ground_truth(cfg),
            "SLOs": _slos(cfg.workload),
            "SLOs derived from": _safe(_slo_model, cfg),
            "workload": _safe(_workload, cfg),
            "probes": _probes(first.run_kwargs),
            "vLLM-style figures": _serving(cfg),
        } | ({"capacity": how} if (how := _search(settings)) else {}))
    return out
