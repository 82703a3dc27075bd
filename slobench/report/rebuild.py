"""Re-create figures and report.html from a results folder's saved files, without rerunning.

`compare`/`capacity` write their data first and then call `rebuild_report` too, so a report made
right after a run and one rebuilt later (or after Ctrl-C) come from the same files and code.

Files read (all optional except probes.csv):
- ``probes.csv``: workload, scheduler, rate_rps, seed, attainment, ci_low, ci_high, num_met,
  num_requests, valid, reason;
- ``summary.json``: ``target``, ``capacities`` (list of rows), optional ``scaling`` rows, ``title``;
- ``requests.parquet`` (or ``requests.jsonl``): stage records with workload/scheduler/rate_rps columns;
- ``iterations.parquet``: batch composition with workload/scheduler columns.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from slobench.report.figures import report_figures, slug
from slobench.report.html import write_report

PROBE_COLUMNS = ["workload", "scheduler", "rate_rps", "seed", "attainment", "ci_low", "ci_high",
                 "num_met", "num_requests", "valid", "reason"]
CAPACITY_COLUMNS = ["workload", "scheduler", "capacity_rps", "lower_rps", "upper_rps", "status", "message"]


def load_results(results_dir: Path) -> dict[str, object]:
    """Read what a report needs; missing optional files become empty frames."""
    results_dir = Path(results_dir)
    probes_path = results_dir / "probes.csv"
    if not probes_path.exists():
        raise FileNotFoundError(f"{probes_path} not found: is {results_dir} a slobench results folder?")
    probes = pd.read_csv(probes_path, keep_default_na=False, na_values=[""])
    if "reason" in probes:
        probes["reason"] = probes["reason"].astype(object).where(probes["reason"].notna(), "").astype(str)
    if "valid" in probes:
        probes["valid"] = probes["valid"].astype(str).str.lower().isin(["true", "1"])
    summary: dict = {}
    if (results_dir / "summary.json").exists():
        summary = json.loads((results_dir / "summary.json").read_text())
    capacities = pd.DataFrame(summary.get("capacities") or [], columns=None)
    if capacities.empty:
        capacities = pd.DataFrame(columns=CAPACITY_COLUMNS)
    stages = pd.DataFrame()
    if (results_dir / "requests.parquet").exists():
        stages = pd.read_parquet(results_dir / "requests.parquet")
    iterations = pd.DataFrame()
    if (results_dir / "iterations.parquet").exists():
        iterations = pd.read_parquet(results_dir / "iterations.parquet")
    scaling = pd.DataFrame(summary.get("scaling") or [])
    return {"probes": probes, "capacities": capacities, "stages": stages, "iterations": iterations,
            "scaling": scaling, "summary": summary}


def _at_capacity(frame: pd.DataFrame, capacities: pd.DataFrame) -> pd.DataFrame:
    """Rows of the probe nearest below each scheduler's capacity: the load the CDFs describe."""
    if frame.empty or "rate_rps" not in frame or capacities.empty:
        return frame
    keep = []
    for _, cap in capacities.iterrows():
        sel = (frame["workload"] == cap["workload"]) & (frame["scheduler"] == cap["scheduler"])
        rates = frame.loc[sel, "rate_rps"].unique()
        if not len(rates):
            continue
        c = cap.get("capacity_rps")
        below = [r for r in rates if c is not None and pd.notna(c) and r <= float(c) + 1e-9]
        rate = max(below) if below else min(rates)
        keep.append(frame[sel & (frame["rate_rps"] == rate)])
    return pd.concat(keep, ignore_index=True) if keep else frame.iloc[0:0]


def capacity_table_html(capacities: pd.DataFrame) -> str:
    """Small HTML table: workload, scheduler, capacity [lower, upper], ratio vs first scheduler, status."""
    if capacities.empty:
        return ""
    first = capacities["scheduler"].iloc[0]
    base = capacities[capacities["scheduler"] == first].set_index("workload")["capacity_rps"]
    rows = []
    for _, r in capacities.iterrows():
        cap = r.get("capacity_rps")
        b = base.get(r["workload"])
        has = cap is not None and pd.notna(cap)
        ratio = f"{cap / b:.2f}×" if has and b is not None and pd.notna(b) and b > 0 else "–"
        lo, hi = r.get("lower_rps"), r.get("upper_rps")
        interval = f"[{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None and pd.notna(lo) and pd.notna(hi) \
            else ""
        cells = [r["workload"], r["scheduler"], f"{cap:.3g}" if has else "–", interval, ratio,
                 r.get("status", ""), r.get("message", "")]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("workload", "scheduler", "capacity (req/s)", "interval",
                                              f"vs {first}", "status", "note"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def build_figures(data: dict[str, object]) -> dict[str, go.Figure]:
    """The figure set for loaded results (see `load_results`)."""
    summary = data["summary"]
    capacities = data["capacities"]
    target = float(summary.get("target", 0.9)) if isinstance(summary, dict) else 0.9
    stages = _at_capacity(data["stages"], capacities)
    iterations = _at_capacity(data["iterations"], capacities)
    figs = report_figures(data["probes"], capacities, target=target, stages=None, iterations=iterations,
                          scaling=data["scaling"])
    if not stages.empty and "workload" in stages:
        from slobench.report.figures import latency_cdfs

        for wl, grp in stages.groupby("workload", sort=False):
            figs[f"latency-cdf-{slug(wl)}"] = latency_cdfs(grp, title=f"{wl}: latency CDFs at capacity")
    elif not stages.empty:
        from slobench.report.figures import latency_cdfs

        figs["latency-cdf"] = latency_cdfs(stages)
    return figs


def rebuild_report(results_dir: Path, *, png: bool = True) -> tuple[Path, list[str]]:
    """Rebuild ``figures/`` and ``report.html`` in ``results_dir``; return (report path, notices)."""
    results_dir = Path(results_dir)
    data = load_results(results_dir)
    figs = build_figures(data)
    summary = data["summary"]
    title = summary.get("title") if isinstance(summary, dict) else None
    return write_report(results_dir, figs, title=title or f"slobench: {results_dir.name}",
                        intro_html=capacity_table_html(data["capacities"]), png=png)
