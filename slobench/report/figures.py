"""Plotly figures for capacity reports, built only from tidy frames (so saved files can rebuild them).

Inputs are the frames written to a results folder:
- ``probes``: one row per (workload, scheduler, rate, seed) probe with ``attainment``, ``ci_low``,
  ``ci_high``, ``valid`` (probes.csv);
- ``capacities``: one row per (workload, scheduler) with ``capacity_rps``, ``lower_rps``,
  ``upper_rps``, ``status`` (summary.json → "capacities");
- ``stages``: request-stage records (requests.parquet), optionally with a ``scheduler`` column;
- ``iterations``: per-iteration batch composition (iterations.parquet).
Every function returns a ``go.Figure`` and never writes files (html.py does that).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from slobench.metrics.attainment import stage_metrics
from slobench.metrics.stats import wilson_interval

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def slug(text: object) -> str:
    """A file-name-safe figure key ("coding slo_scale=0.5" → "coding-slo_scale-0.5")."""
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(text))
    return "-".join(p for p in out.split("-") if p) or "x"


def _ok(x: object) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(float(x))


def attainment_vs_rate(
    probes: pd.DataFrame, capacities: pd.DataFrame | None = None, *, target: float = 0.9, title: str = ""
) -> go.Figure:
    """Attainment (pooled over seeds, Wilson CI as error bars) vs offered rate, one line per scheduler.

    Invalid probes are drawn as hollow crosses so an untrusted point is visible but not mistaken
    for a measurement; capacity is a dotted vertical marker per scheduler. Hold probes (the capacity re-run
    longer, ``span_factor`` > 1) are diamonds of their own, never pooled with the search's probes.
    """
    fig = go.Figure()
    schedulers = list(dict.fromkeys(probes["scheduler"])) if len(probes) else []
    span = probes["span_factor"] if "span_factor" in probes else pd.Series(1.0, index=probes.index)
    for i, sched in enumerate(schedulers):
        grp = probes[(probes["scheduler"] == sched) & (span == 1)]
        held = probes[(probes["scheduler"] == sched) & (span != 1)]
        if len(held):
            fig.add_trace(go.Scatter(
                x=held["rate_rps"], y=held["attainment"], mode="markers",
                name=f"{sched} (hold: {held['span_factor'].iloc[0]:g}× longer)",
                marker={"symbol": "diamond-open", "size": 10, "color": _colour(i)},
            ))
        pooled = grp.groupby("rate_rps", sort=True).agg(
            num_met=("num_met", "sum"), num_requests=("num_requests", "sum"), valid=("valid", "all"),
        ).reset_index()
        pooled["attainment"] = pooled["num_met"] / pooled["num_requests"].clip(lower=1)
        # Seeds are pooled exactly as the search pools them, so the bars match its decisions.
        ci = [wilson_interval(int(m), int(t)) for m, t in zip(pooled["num_met"], pooled["num_requests"], strict=True)]
        pooled["ci_low"] = [c[0] for c in ci]
        pooled["ci_high"] = [c[1] for c in ci]
        good = pooled[pooled["valid"]]
        bad = pooled[~pooled["valid"]]
        fig.add_trace(go.Scatter(
            x=good["rate_rps"], y=good["attainment"], mode="lines+markers", name=str(sched),
            line={"color": _colour(i)},
            error_y={"type": "data", "symmetric": False, "array": good["ci_high"] - good["attainment"],
                     "arrayminus": good["attainment"] - good["ci_low"]},
        ))
        if len(bad):
            fig.add_trace(go.Scatter(
                x=bad["rate_rps"], y=bad["attainment"], mode="markers", name=f"{sched} (invalid)",
                marker={"symbol": "x-open", "size": 10, "color": _colour(i)},
            ))
        if capacities is not None and len(capacities):
            row = capacities[capacities["scheduler"] == sched]
            if len(row) and _ok(row["capacity_rps"].iloc[0]):
                cap = float(row["capacity_rps"].iloc[0])
                fig.add_vline(x=cap, line={"color": _colour(i), "dash": "dot"},
                              annotation_text=f"{sched}: {cap:.3g} rps", annotation_position="top left")
    fig.add_hline(y=target, line={"color": "grey", "dash": "dash"}, annotation_text=f"target {target:.0%}")
    fig.update_layout(title=title or "SLO attainment vs request rate", xaxis_title="request rate (req/s)",
                      yaxis_title="SLO attainment", yaxis_range=[0, 1.05], template="plotly_white")
    return fig


def capacity_bars(capacities: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Capacity per workload, grouped by scheduler; labels give the ratio to the first scheduler."""
    fig = go.Figure()
    if not len(capacities):
        return fig.update_layout(title=title or "Capacity")
    schedulers = list(dict.fromkeys(capacities["scheduler"]))
    compared = len(schedulers) > 1  # one scheduler: no ratio to show (it would read "1.00×" everywhere)
    base = capacities[capacities["scheduler"] == schedulers[0]].set_index("workload")["capacity_rps"]
    for i, sched in enumerate(schedulers):
        grp = capacities[capacities["scheduler"] == sched]
        caps = grp["capacity_rps"].astype(float).fillna(0.0)
        lo = grp.get("lower_rps", grp["capacity_rps"]).astype(float).fillna(caps)
        hi = grp.get("upper_rps", grp["capacity_rps"]).astype(float).fillna(caps)
        labels = []
        for wl, cap in zip(grp["workload"], caps, strict=True):
            b = base.get(wl)
            ratio = compared and _ok(b) and b > 0 and cap > 0
            labels.append(f"{cap:.3g} ({cap / b:.2f}×)" if ratio else f"{cap:.3g}")
        fig.add_trace(go.Bar(
            x=grp["workload"], y=caps, name=str(sched), text=labels, textposition="outside",
            marker_color=_colour(i),
            error_y={"type": "data", "symmetric": False, "array": (hi - caps).clip(lower=0),
                     "arrayminus": (caps - lo).clip(lower=0)},
        ))
    default_title = f"Capacity (ratio vs {schedulers[0]})" if compared else f"Capacity of {schedulers[0]}"
    fig.update_layout(barmode="group", title=title or default_title,
                      xaxis_title="workload", yaxis_title="capacity (req/s)", template="plotly_white")
    return fig


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(values[np.isfinite(values)])
    return v, np.arange(1, v.size + 1) / max(v.size, 1)


def latency_cdfs(stages: pd.DataFrame, *, title: str = "") -> go.Figure:
    """CDFs of TTFT and mean TPOT: divided by each stage's own SLO (top; SLOs differ per request, 1.0 = the SLO)
    and absolute in ms (bottom; what a user compares with another tool or a fixed bound such as --goodput).

    The TPOT panels show the stage's *mean* time per output token, not the TPOT check: attainment gives
    every token a deadline (``slobench.metrics.attainment``), so a stage whose first token came early
    can sit right of 1.0 and still meet every deadline, and one long stall can miss left of it.
    """
    if "ttft_s" not in stages.columns and len(stages):
        stages = stage_metrics(stages)
    fig = make_subplots(rows=2, cols=2, vertical_spacing=0.16,
                        subplot_titles=("TTFT / TTFT SLO", "mean TPOT / TPOT SLO", "TTFT (ms)", "mean TPOT (ms)"))
    group_col = "scheduler" if "scheduler" in stages.columns else None
    groups = stages.groupby(group_col, sort=False) if group_col else [("run", stages)]
    for i, (name, grp) in enumerate(groups):
        for col, (val, slo) in enumerate((("ttft_s", "ttft_slo_s"), ("tpot_s", "tpot_slo_s")), start=1):
            for row, values in ((1, grp[val] / grp[slo]), (2, grp[val] * 1e3)):
                x, y = _ecdf(values.to_numpy(dtype=float))
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=str(name), legendgroup=str(name),
                                         showlegend=col == 1 and row == 1, line={"color": _colour(i)}),
                              row=row, col=col)
    for col in (1, 2):
        fig.add_vline(x=1.0, line={"color": "grey", "dash": "dash"}, row=1, col=col)
        fig.update_xaxes(type="log", title_text="latency ÷ SLO (log)", row=1, col=col)
        fig.update_xaxes(type="log", title_text="ms (log)", row=2, col=col)
    fig.update_yaxes(title_text="share of stages", range=[0, 1.02])
    fig.update_layout(title=title or "Latency CDFs against the SLO and in ms", template="plotly_white", height=760)
    return fig


def _serving_points(probes: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean over seeds of ``column`` per (scheduler, rate), valid probes only, rows where it was measured."""
    sel = probes[probes["valid"].astype(bool)] if "valid" in probes else probes
    sel = sel[["scheduler", "rate_rps", column]].dropna()
    return sel.groupby(["scheduler", "rate_rps"], sort=False, as_index=False)[column].mean()


def serving_vs_rate(probes: pd.DataFrame, *, title: str = "") -> go.Figure | None:
    """vLLM-style figures against the offered rate, a line per scheduler (probes.csv version 4; None before):
    latency percentiles in ms (the highest percentile chosen, per metric), both goodputs, and tokens/s."""
    from slobench.metrics.serving import is_latency_key

    if "output_tok_s" not in probes or probes["output_tok_s"].isna().all():
        return None
    latency = [c for c in probes.columns if is_latency_key(c) and c.startswith("p") and probes[c].notna().any()]
    top: dict[str, str] = {}  # metric → its highest percentile's column
    for c in latency:
        pct, metric = c[1:].split("_")[0], c.split("_")[1]
        if metric not in top or float(pct) > float(top[metric][1:].split("_")[0]):
            top[metric] = c
    fig = make_subplots(rows=1, cols=3, subplot_titles=("latency (ms)", "goodput (req/s)", "throughput (tokens/s)"))
    dashes = ("solid", "dash", "dot", "dashdot")
    scheds = list(dict.fromkeys(probes["scheduler"]))
    panels = ((1, [(c, f"{c.removesuffix('_ms')}") for c in top.values()]),
              (2, [("goodput_rps", "every token on time (slobench)"), ("vllm_goodput_rps", "within --goodput (vLLM)")]),
              (3, [("output_tok_s", "output"), ("total_tok_s", "prompt + output")]))
    for col, series in panels:
        for j, (column, label) in enumerate(series):
            if column not in probes or probes[column].isna().all():
                continue
            for i, sched in enumerate(scheds):
                pts = _serving_points(probes[probes["scheduler"] == sched], column)
                fig.add_trace(go.Scatter(x=pts["rate_rps"], y=pts[column], mode="lines+markers",
                                         name=f"{sched}: {label}", legendgroup=str(sched),
                                         line={"color": _colour(i), "dash": dashes[j % len(dashes)]}), row=1, col=col)
        fig.update_xaxes(title_text="request rate (req/s)", type="log", row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_layout(title=title or "Latency, goodput and throughput vs rate", template="plotly_white")
    return fig


def batch_timeline(iterations: pd.DataFrame, *, title: str = "", max_points: int = 5000) -> go.Figure:
    """Per-iteration prefill and decode tokens, as two lines (top), and iteration latency vs the policy's
    budget (bottom).

    In the simulator ``latency_s`` *is* the perf model's prediction; real engines may log a measured
    ``latency_s`` next to ``predicted_latency_s``, and both are drawn. Policies without a budget
    (vLLM's) leave ``budget_s`` NaN, which is said on the plot instead of drawing an empty line.
    """
    it = iterations
    if len(it) > max_points:  # keep the HTML small: even subsample, order kept
        it = it.iloc[np.linspace(0, len(it) - 1, max_points).astype(int)]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("tokens per iteration", "iteration latency vs budget"))
    if len(it):
        t = it["time_s"]
        # Each kind on its own axis from 0, not stacked: stacked areas put decode on top of prefill, so a
        # batch of 8k prefill + 64 decode tokens read as 8k decode tokens.
        for col, colour in (("prefill_tokens", _colour(0)), ("decode_tokens", _colour(2))):
            if col in it:
                fig.add_trace(go.Scatter(x=t, y=it[col], mode="lines", name=col.replace("_", " "),
                                         line={"color": colour}), row=1, col=1)
        if "latency_s" in it:
            fig.add_trace(go.Scatter(x=t, y=it["latency_s"] * 1e3, mode="lines", name="iteration latency (ms)",
                                     line={"color": _colour(1)}), row=2, col=1)
        pred = it["predicted_latency_s"].astype(float) if "predicted_latency_s" in it else None
        if pred is not None and np.isfinite(pred).any():
            fig.add_trace(go.Scatter(x=t, y=pred * 1e3, mode="lines", name="predicted latency (ms)",
                                     line={"color": _colour(4), "dash": "dot"}), row=2, col=1)
        budget = it["budget_s"].astype(float) if "budget_s" in it else None
        if budget is not None and np.isfinite(budget).any():
            fig.add_trace(go.Scatter(x=t, y=budget.where(np.isfinite(budget)) * 1e3, mode="lines",
                                     name="budget (ms)", line={"color": "grey", "dash": "dash"}), row=2, col=1)
        else:
            fig.add_annotation(text="this policy sets no per-iteration time budget", xref="x2 domain",
                               yref="y2 domain", x=0.99, y=0.95, showarrow=False, font={"color": "grey"})
    fig.update_yaxes(title_text="tokens", row=1, col=1)
    fig.update_yaxes(title_text="ms", row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    fig.update_layout(title=title or "Batch composition", template="plotly_white")
    return fig


def replica_scaling(scaling: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Capacity vs number of replicas per scheduler, with the ideal linear line from 1 replica."""
    fig = go.Figure()
    for i, (sched, grp) in enumerate(scaling.groupby("scheduler", sort=False)):
        grp = grp.sort_values("replicas")
        fig.add_trace(go.Scatter(x=grp["replicas"], y=grp["capacity_rps"], mode="lines+markers",
                                 name=str(sched), line={"color": _colour(i)}))
        one = grp[grp["replicas"] == 1]["capacity_rps"]
        if len(one) and _ok(one.iloc[0]):
            fig.add_trace(go.Scatter(x=grp["replicas"], y=grp["replicas"] * float(one.iloc[0]), mode="lines",
                                     name=f"{sched} linear", line={"color": _colour(i), "dash": "dot"}))
    ticks = sorted(scaling["replicas"].unique().tolist()) if len(scaling) else []
    fig.update_layout(title=title or "Replica scaling", xaxis_title="replicas", yaxis_title="capacity (req/s)",
                      xaxis={"tickmode": "array", "tickvals": ticks}, template="plotly_white")
    return fig


# Sweep axes a capacity row may carry (see `slobench sweep` grids and scripts/paper_experiment.yaml);
# replicas has its own figures (`replica_scaling` and `slobench.report.scaling`, with the linear-scaling line).
SWEEP_AXES = ("slo_scale", "burstiness_cv", "tp", "model", "hardware", "profile")
AXIS_TITLES = {"slo_scale": "SLO scale (× every TTFT/TPOT target; < 1 = tighter)",
               "burstiness_cv": "burstiness (CV of inter-arrival times; 1 = Poisson)"}


def capacity_vs_param(capacities: pd.DataFrame, param: str, *, title: str = "") -> go.Figure:
    """Capacity (with its interval) against one swept parameter, a line per scheduler (and base workload)."""
    fig = go.Figure()
    caps = capacities.copy()
    caps["capacity_rps"] = caps["capacity_rps"].astype(float)
    keys = ["scheduler"]
    if "base_workload" in caps and caps["base_workload"].nunique() > 1:
        keys = ["base_workload", "scheduler"]
    numeric = pd.api.types.is_numeric_dtype(caps[param])
    for i, (key, grp) in enumerate(caps.groupby(keys, sort=False)):
        grp = grp.sort_values(param) if numeric else grp
        name = " ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        cap = grp["capacity_rps"]
        lo = grp["lower_rps"].astype(float).fillna(cap) if "lower_rps" in grp else cap
        hi = grp["upper_rps"].astype(float).fillna(cap) if "upper_rps" in grp else cap
        fig.add_trace(go.Scatter(
            x=grp[param], y=cap, mode="lines+markers", name=name, line={"color": _colour(i)},
            error_y={"type": "data", "symmetric": False, "array": (hi - cap).clip(lower=0),
                     "arrayminus": (cap - lo).clip(lower=0)}))
    fig.update_layout(title=title or f"Capacity vs {param}", xaxis_title=AXIS_TITLES.get(param, param),
                      yaxis_title="capacity (req/s)", template="plotly_white")
    if param == "burstiness_cv" or (numeric and caps[param].nunique() > 1 and param == "slo_scale"):
        fig.update_xaxes(type="log", tickvals=sorted(caps[param].unique().tolist()))
    return fig


def report_figures(
    probes: pd.DataFrame,
    capacities: pd.DataFrame,
    *,
    target: float = 0.9,
    stages: pd.DataFrame | None = None,
    iterations: pd.DataFrame | None = None,
    scaling: pd.DataFrame | None = None,
) -> dict[str, go.Figure]:
    """The standard figure set of a compare/capacity run, keyed by file stem (stable, sorted order)."""
    figs: dict[str, go.Figure] = {}
    if len(capacities) and capacities["workload"].nunique() >= 1 and capacities["scheduler"].nunique() >= 1:
        figs["capacity"] = capacity_bars(capacities)
    for wl in dict.fromkeys(probes["workload"]) if len(probes) else []:
        caps = capacities[capacities["workload"] == wl] if len(capacities) else capacities
        figs[f"attainment-{slug(wl)}"] = attainment_vs_rate(
            probes[probes["workload"] == wl], caps, target=target, title=f"{wl}: SLO attainment vs rate")
        serving = serving_vs_rate(probes[probes["workload"] == wl],
                                  title=f"{wl}: latency, goodput and tokens/s vs rate")
        if serving is not None:
            figs[f"serving-{slug(wl)}"] = serving
    if stages is not None and len(stages):
        figs["latency-cdf"] = latency_cdfs(stages)
    if iterations is not None and len(iterations):
        if "scheduler" in iterations.columns:
            by = ["workload", "scheduler"] if iterations.get("workload", pd.Series()).nunique() > 1 else ["scheduler"]
            for key, grp in iterations.groupby(by, sort=False):
                name = " ".join(map(str, key)) if isinstance(key, tuple) else str(key)
                figs[f"batches-{slug(name)}"] = batch_timeline(grp, title=f"{name}: batch composition")
        else:
            figs["batches"] = batch_timeline(iterations)
    for axis in SWEEP_AXES:
        if axis in capacities.columns and capacities[axis].nunique() > 1:
            figs[f"capacity-vs-{slug(axis)}"] = capacity_vs_param(capacities, axis)
    if scaling is not None and len(scaling):
        from slobench.report.scaling import has_routers, per_replica_figures

        # Rows naming their router: capacity per replica, a line per router; older rows: capacity vs replicas.
        figs |= per_replica_figures(scaling) if has_routers(scaling) else {"replica-scaling": replica_scaling(scaling)}
    return figs


def validation_vs_rate(probes: pd.DataFrame, validation: dict, *, target: float = 0.9) -> go.Figure:
    """`slobench validate`: attainment against rate per policy, the real engine solid and the simulator dashed
    (valid probes, seeds pooled), so where the two curves part — and by how much at the target — is one look."""
    fig = go.Figure()
    span = probes["span_factor"] if "span_factor" in probes else pd.Series(1.0, index=probes.index)
    valid = probes["valid"].astype(bool) if "valid" in probes else pd.Series(True, index=probes.index)
    for i, sched in enumerate(validation.get("policies") or {}):
        for label, dash, engine in ((validation["real_label"], "solid", "real"),
                                    (validation["sim_label"], "dash", "sim")):
            grp = probes[(probes["scheduler"].astype(str) == sched) & (probes["workload"].astype(str) == label)
                         & (span == 1) & valid]
            pooled = grp.groupby("rate_rps", sort=True)[["num_met", "num_requests"]].sum().reset_index()
            att = pooled["num_met"] / pooled["num_requests"].clip(lower=1)
            fig.add_trace(go.Scatter(x=pooled["rate_rps"], y=att, mode="lines+markers", name=f"{sched} ({engine})",
                                     line={"color": _colour(i), "dash": dash}))
    fig.add_hline(y=target, line={"color": "grey", "dash": "dot"}, annotation_text=f"target {target:.0%}")
    fig.update_layout(title=f"{validation.get('workload', '')}: simulator vs real engine",
                      xaxis_title="request rate (req/s)", yaxis_title="SLO attainment", yaxis_range=[0, 1.05],
                      template="plotly_white")
    return fig
