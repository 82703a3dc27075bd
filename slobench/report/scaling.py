"""Capacity per replica against the replica count: do replicas behind a router add capacity linearly?

Input: summary.json's ``scaling`` rows as a frame (`slobench.report.probes.ScalingRow`: ``workload``,
``scheduler``, ``router``, ``replicas``, ``capacity_rps``), written by `slobench compare --scaling`, a sweep
over ``replicas`` (and ``router``) and the paper script's replica section.

Capacity *per replica* is drawn rather than capacity because ideal (linear) scaling is then a flat line at the
one-replica capacity, and what a router loses shows as the drop below it, whatever the replica count. One
replica needs no router, so a run searches it once per scheduler (``router`` None); that row starts every
router's line and sets the ideal. Where a router has its own one-replica row (a sweep with a ``router`` axis),
its line starts there. Rows without any router (files written before the field) draw the older
capacity-vs-replicas figure instead (`slobench.report.figures.replica_scaling`).

The share of linear scaling is capacity(R) / (R · capacity(1)).
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from slobench.report.figures import _colour, slug

TABLE_COLUMNS = ["workload", "scheduler", "router", "replicas", "capacity_rps", "per_replica_rps", "linear_share"]
NO_ROUTER = "–"  # the router cell of rows that did not vary the router (old files)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(float(v)) else None


def _text(v: Any) -> str | None:
    """A router / workload cell as text; None for missing (None or NaN from a frame)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def has_routers(scaling: pd.DataFrame) -> bool:
    """True when the rows name their router (the per-replica figure); False for files written before it."""
    return "router" in scaling and scaling["router"].map(_text).notna().any()


def _records(scaling: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as plain dicts with ``workload`` and ``router`` present (None where missing)."""
    out = []
    for rec in scaling.to_dict("records"):
        out.append({"workload": _text(rec.get("workload")) or "", "scheduler": str(rec["scheduler"]),
                    "router": _text(rec.get("router")), "replicas": int(rec["replicas"]),
                    "capacity_rps": _num(rec.get("capacity_rps"))})
    return out


def per_replica_table(scaling: pd.DataFrame) -> pd.DataFrame:
    """One row per (workload, scheduler, router, replicas): capacity, capacity per replica and the share of linear
    scaling. The shared one-replica row is repeated under every router, so each router's row set is complete."""
    recs = _records(scaling)
    rows: list[dict[str, Any]] = []
    for wl, sched in dict.fromkeys((r["workload"], r["scheduler"]) for r in recs):
        mine = [r for r in recs if r["workload"] == wl and r["scheduler"] == sched]
        shared = next((r for r in mine if r["replicas"] == 1 and r["router"] is None), None)
        routers = list(dict.fromkeys(r["router"] for r in mine if r["router"] is not None)) or [None]
        for router in routers:
            own = [r for r in mine if r["router"] == router]
            one = next((r for r in own if r["replicas"] == 1), shared)
            line = sorted(([one] if one is not None and one not in own else []) + own, key=lambda r: r["replicas"])
            base = one["capacity_rps"] if one is not None else None
            for r in line:
                cap = r["capacity_rps"]
                per = cap / r["replicas"] if cap is not None else None
                share = per / base if per is not None and base else None
                rows.append({"workload": wl, "scheduler": sched, "router": router or NO_ROUTER,
                             "replicas": r["replicas"], "capacity_rps": cap, "per_replica_rps": per,
                             "linear_share": share})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def ideal_per_replica(table: pd.DataFrame, scheduler: str) -> float | None:
    """The flat ideal of ``scheduler`` (one workload's table): its one-replica capacity."""
    one = table[(table["scheduler"] == scheduler) & (table["replicas"] == 1)]["capacity_rps"].dropna()
    return float(one.iloc[0]) if len(one) else None


def per_replica_figure(table: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Capacity per replica against replicas: a panel per scheduler, a line per router (same colour in every
    panel) and the scheduler's ideal linear scaling as a flat grey dotted line at its one-replica capacity."""
    scheds = list(dict.fromkeys(table["scheduler"]))
    routers = list(dict.fromkeys(table["router"]))
    fig = make_subplots(rows=1, cols=max(len(scheds), 1), shared_yaxes=True, subplot_titles=scheds or None)
    ticks = sorted(table["replicas"].unique().tolist()) if len(table) else []
    shown: set[str] = set()
    for col, sched in enumerate(scheds, start=1):
        for router in routers:
            pts = table[(table["scheduler"] == sched) & (table["router"] == router)].sort_values("replicas")
            if not len(pts):
                continue
            share = [f"{s:.0%} of linear" if _num(s) is not None else "" for s in pts["linear_share"]]
            fig.add_trace(go.Scatter(x=pts["replicas"], y=pts["per_replica_rps"], mode="lines+markers", name=router,
                                     legendgroup=router, showlegend=router not in shown, text=share,
                                     hovertemplate="%{x} replicas: %{y:.3g} req/s per replica %{text}",
                                     line={"color": _colour(routers.index(router))}), row=1, col=col)
            shown.add(router)
        ideal = ideal_per_replica(table, sched)
        if ideal is not None and ticks:
            fig.add_trace(go.Scatter(x=[ticks[0], ticks[-1]], y=[ideal, ideal], mode="lines", name="linear scaling",
                                     legendgroup="linear", showlegend="linear" not in shown,
                                     line={"color": "grey", "dash": "dot"}), row=1, col=col)
            shown.add("linear")
        fig.update_xaxes(title_text="replicas", type="log", tickvals=ticks, row=1, col=col)
    fig.update_yaxes(title_text="capacity per replica (req/s)", rangemode="tozero", row=1, col=1)
    fig.update_layout(title=title or "Capacity per replica by router (dotted: linear scaling)",
                      template="plotly_white")
    return fig


def per_replica_figures(scaling: pd.DataFrame) -> dict[str, go.Figure]:
    """The per-replica figure of each workload: ``scaling-per-replica`` (one workload) or
    ``scaling-per-replica-<workload>`` (several)."""
    table = per_replica_table(scaling)
    workloads = list(dict.fromkeys(table["workload"]))
    if len(workloads) <= 1:
        return {"scaling-per-replica": per_replica_figure(table)}
    return {f"scaling-per-replica-{slug(wl)}": per_replica_figure(
        table[table["workload"] == wl], title=f"{wl}: capacity per replica by router (dotted: linear scaling)")
        for wl in workloads}


def pivot_rows(table: pd.DataFrame) -> tuple[list[int], list[tuple[str, str, str, list[str]]]]:
    """The table as (replica counts, rows of workload, scheduler, router and one cell per count): capacity per
    replica, with the share of linear scaling in brackets above one replica; "–" where nothing was found."""
    counts = sorted(int(r) for r in table["replicas"].unique())
    rows = []
    for (wl, sched, router), grp in table.groupby(["workload", "scheduler", "router"], sort=False):
        by_r = {int(r.replicas): r for r in grp.itertuples()}
        cells = []
        for n in counts:
            r = by_r.get(n)
            per = _num(r.per_replica_rps) if r is not None else None
            share = _num(r.linear_share) if r is not None else None
            cell = "–" if per is None else f"{per:.3g}"
            cells.append(cell + (f" ({share:.0%})" if share is not None and n > 1 else ""))
        rows.append((str(wl), str(sched), str(router), cells))
    return counts, rows


def per_replica_html(scaling: pd.DataFrame) -> str:
    """The report's table of capacity per replica (share of linear scaling), from summary.json's scaling rows."""
    if scaling.empty:
        return ""
    counts, rows = pivot_rows(per_replica_table(scaling))
    heads = ["workload", "scheduler", "router", *(f"{n} replica{'s' if n > 1 else ''}" for n in counts)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in (wl, sched, router, *cells)) + "</tr>"
                   for wl, sched, router, cells in rows)
    return (f"<h3>Capacity per replica (req/s; share of linear scaling)</h3><table><tr>{head}</tr>{body}</table>"
            "<p>Share of linear scaling = capacity(R) / (R · capacity(1)); one replica has no router.</p>")
