"""The sensitivity table and figure: capacity and ratios against SLO scale and planning-model error.

Built from a results folder's capacity rows (summary.json ``capacities``) that carry the grid values
``base_workload``, ``slo_scale`` and ``truth_bias`` (written by `slobench sensitivity`, see
`slobench.capacity.sensitivity`). The SLO-scale axis is read at the base model error and the
model-error axis at SLO scale 1, so the preset point sits on both. Ratios follow `compare`'s rule:
every policy over the first one (the baseline, e.g. vllm).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

AXIS_TITLES = {"slo_scale": "SLO scale (× every TTFT/TPOT target; < 1 tighter)",
               "truth_bias": "model error (simulated GPU slower than the planning model by this fraction)"}
AXIS_LABELS = {"slo_scale": "SLO scale", "truth_bias": "model error"}
NEEDED = {"base_workload", "slo_scale", "truth_bias", "scheduler", "capacity_rps"}
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def is_sensitivity(capacities: pd.DataFrame) -> bool:
    """True for the capacity rows of a sensitivity run (both axes' columns present)."""
    return not capacities.empty and NEEDED <= set(capacities.columns) \
        and capacities["slo_scale"].notna().any() and capacities["truth_bias"].notna().any()


def base_error(capacities: pd.DataFrame) -> float:
    """The model error the SLO axis was run at: the most common error among rows at SLO scale ≠ 1
    (0 when every row is at scale 1)."""
    off = capacities[(capacities["slo_scale"].astype(float) - 1.0).abs() > 1e-12]
    if off.empty:
        return 0.0
    return float(off["truth_bias"].astype(float).mode().iloc[0])


def _axis_rows(capacities: pd.DataFrame, axis: str) -> pd.DataFrame:
    caps = capacities.copy()
    caps["capacity_rps"] = pd.to_numeric(caps["capacity_rps"], errors="coerce")
    for col in ("slo_scale", "truth_bias"):
        caps[col] = caps[col].astype(float)
    if axis == "slo_scale":
        return caps[(caps["truth_bias"] - base_error(capacities)).abs() < 1e-12]
    return caps[(caps["slo_scale"] - 1.0).abs() < 1e-12]


def sensitivity_table(capacities: pd.DataFrame) -> pd.DataFrame:
    """Per (workload, axis, value): each policy's capacity (req/s) and every policy ÷ the first.

    A missing capacity (no capacity inside the rate range) gives NaN and no ratio.
    """
    if not is_sensitivity(capacities):
        return pd.DataFrame()
    scheds = list(dict.fromkeys(capacities["scheduler"]))
    baseline = scheds[0]
    rows: list[dict[str, Any]] = []
    for axis in ("slo_scale", "truth_bias"):
        for (wl, value), grp in _axis_rows(capacities, axis).groupby(["base_workload", axis], sort=True):
            by = dict(zip(grp["scheduler"], grp["capacity_rps"], strict=True))
            row: dict[str, Any] = {"workload": wl, "axis": AXIS_LABELS[axis], "value": float(value)}
            row |= {f"{s} (req/s)": by.get(s, math.nan) for s in scheds}
            base = by.get(baseline, math.nan)
            for s in scheds[1:]:
                mine = by.get(s, math.nan)
                ok = not (math.isnan(mine) or math.isnan(base)) and base > 0
                row[f"{s} ÷ {baseline}"] = mine / base if ok else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def sensitivity_figure(capacities: pd.DataFrame, workload: str) -> go.Figure:
    """Four panels for one workload: capacity and ratio vs SLO scale, capacity and ratio vs model error."""
    caps = capacities[capacities["base_workload"] == workload]
    scheds = list(dict.fromkeys(capacities["scheduler"]))
    baseline = scheds[0]
    fig = make_subplots(rows=2, cols=2, horizontal_spacing=0.1, vertical_spacing=0.16, subplot_titles=(
        "capacity vs SLO scale", f"ratio to {baseline} vs SLO scale",
        "capacity vs model error", f"ratio to {baseline} vs model error"))
    for r, axis in enumerate(("slo_scale", "truth_bias"), start=1):
        rows = _axis_rows(caps, axis).sort_values(axis)
        base = rows[rows["scheduler"] == baseline].set_index(axis)["capacity_rps"]
        for i, s in enumerate(scheds):
            grp = rows[rows["scheduler"] == s]
            colour = PALETTE[i % len(PALETTE)]
            fig.add_trace(go.Scatter(x=grp[axis], y=grp["capacity_rps"], mode="lines+markers", name=s,
                                     legendgroup=s, showlegend=r == 1, line={"color": colour}), row=r, col=1)
            if s != baseline:
                ratio = grp.set_index(axis)["capacity_rps"] / base.reindex(grp[axis]).to_numpy()
                fig.add_trace(go.Scatter(x=ratio.index, y=ratio.to_numpy(), mode="lines+markers", name=s,
                                         legendgroup=s, showlegend=False, line={"color": colour}), row=r, col=2)
        for c in (1, 2):
            fig.update_xaxes(title_text=AXIS_TITLES[axis] if c == 1 else AXIS_LABELS[axis], row=r, col=c)
        if axis == "slo_scale" and rows[axis].nunique() > 1:
            for c in (1, 2):
                fig.update_xaxes(type="log", tickvals=sorted(rows[axis].unique().tolist()), row=r, col=c)
    fig.add_hline(y=1.0, line={"dash": "dot", "color": "grey"}, row=1, col=2)
    fig.add_hline(y=1.0, line={"dash": "dot", "color": "grey"}, row=2, col=2)
    fig.update_yaxes(title_text="capacity (req/s)", col=1)
    fig.update_yaxes(title_text=f"÷ {baseline}", col=2)
    fig.update_layout(title=f"{workload}: sensitivity of capacity to the SLO preset and the planning model",
                      template="plotly_white", height=720)
    return fig
