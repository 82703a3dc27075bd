"""The qualification report: ``report.html`` (verdicts, both curves, the environment, each point's bound) from
``qualification.json`` alone, so a reader who received the folder can redraw it (`render_report`)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from slobench.report.html import write_report


def _fmt(v: Any, spec: str = ".4g") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def _reasons(rs: list[dict[str, str]]) -> str:
    return "; ".join(f"<b>{html.escape(r['code'])}</b>: {html.escape(r['detail'])}" for r in rs) or "–"


def pareto_figure(q: dict[str, Any]) -> go.Figure:
    """Tokens/s/GPU against tokens/s/user per scenario (MLPerf Endpoints' curve); INVALID points hollow."""
    fig = go.Figure()
    for sc in q["scenarios"]:
        pts = [p for p in sc["curve"] if p.get("tokens_per_s_gpu") is not None and p.get("tokens_per_s_user")]
        if not pts:
            continue
        fig.add_trace(go.Scatter(
            x=[p["tokens_per_s_user"] for p in pts], y=[p["tokens_per_s_gpu"] for p in pts], mode="lines+markers+text",
            name=sc["name"], text=[str(p["concurrency"]) for p in pts], textposition="top center",
            marker={"symbol": ["circle" if p["status"] == "VALID" else "circle-open" for p in pts], "size": 10},
            customdata=[[p["p90_ttft_ms"], p["status"]] for p in pts],
            hovertemplate="concurrency %{text}<br>%{x:.1f} tok/s/user<br>%{y:.1f} tok/s/GPU<br>"
                          "P90 TTFT %{customdata[0]:.0f} ms<br>%{customdata[1]}<extra></extra>"))
    fig.update_layout(title="Throughput per GPU vs interactivity (closed loop; labels: concurrency; hollow: INVALID)",
                      xaxis_title="tokens/s per user (1000 / P90 TPOT ms)", yaxis_title="output tokens/s per GPU")
    return fig


def capacity_figure(out_dir: Path, q: dict[str, Any]) -> go.Figure:
    """Attainment against offered rate from each scenario's capacity search (probes.csv), target dashed."""
    import pandas as pd

    fig = go.Figure()
    for sc in q["scenarios"]:
        probes = out_dir / "scenarios" / sc["name"] / "capacity" / "search" / "probes.csv"
        if not probes.exists():
            continue
        df = pd.read_csv(probes)
        if "span_factor" in df:
            df = df[df["span_factor"].fillna(1.0) == 1.0]
        df = df.sort_values("rate_rps")
        valid = df["valid"] if "valid" in df else [True] * len(df)
        fig.add_trace(go.Scatter(x=df["rate_rps"], y=df["attainment"], mode="lines+markers", name=sc["name"],
                                 marker={"symbol": ["circle" if v else "x" for v in valid]}))
        cap = sc.get("capacity_point") or {}
        if cap.get("rate_rps"):
            fig.add_trace(go.Scatter(x=[cap["rate_rps"]], y=[cap.get("attainment")], mode="markers",
                                     marker={"symbol": "star", "size": 14}, name=f"{sc['name']}: official run"))
    fig.add_hline(y=q.get("target", 0.9), line_dash="dash")
    fig.update_layout(title="SLO attainment vs offered rate (capacity search; x: INVALID probe; star: official run)",
                      xaxis_title="offered rate (req/s)", yaxis_title="share of requests meeting every SLO",
                      yaxis_range=[0, 1.02])
    return fig


def _scenario_table(q: dict[str, Any]) -> str:
    rows = []
    for sc in q["scenarios"]:
        cap = sc.get("capacity_point") or {}
        energy = cap.get("energy") or {}
        e = (f"{energy['per_output_token_j']:.3g} J/token" if energy.get("valid")
             else f"n/a ({html.escape(str(energy.get('reason', '–')))})")
        rows.append(
            f"<tr><td style='text-align:left'>{html.escape(sc['name'])}</td><td>{html.escape(sc['workload'])}</td>"
            f"<td>{html.escape(sc['slo_preset'])} (×{sc['slo_scale']:g})</td><td>{sc['target']:.0%}</td>"
            f"<td>{_fmt(sc['capacity_rps'])}</td><td>[{_fmt(sc['lower_rps'])}, {_fmt(sc['upper_rps'])}]</td>"
            f"<td>{len([p for p in sc['curve'] if p['status'] == 'VALID'])}/{len(sc['curve'])}</td><td>{e}</td>"
            f"<td><b>{sc['status']}</b></td><td style='text-align:left'>{_reasons(sc['reasons'])}</td></tr>")
    return ("<table><tr><th>scenario</th><th>workload</th><th>SLO preset</th><th>target</th><th>capacity (req/s)"
            "</th><th>interval</th><th>VALID points</th><th>energy</th><th>result</th><th>reasons</th></tr>"
            + "".join(rows) + "</table>")


def _points_table(q: dict[str, Any]) -> str:
    rows = []
    for sc in q["scenarios"]:
        pts = ([sc["capacity_point"]] if sc.get("capacity_point") else []) + sc["curve"]
        for p in pts:
            what = (f"rate {_fmt(p.get('rate_rps'))} req/s" if p["kind"] == "capacity"
                    else f"concurrency {p['concurrency']}")
            req = p.get("required") or {}
            rows.append(
                f"<tr><td style='text-align:left'>{html.escape(sc['name'])}</td><td>{what}</td>"
                f"<td>{p['num_requests']}</td><td>{_fmt(p.get('duration_s'), '.1f')}</td>"
                f"<td style='text-align:left'>{html.escape(str(req.get('line', '–')))}</td>"
                f"<td>{_fmt(p.get('attainment'), '.1%') if p.get('attainment') is not None else '–'}</td>"
                f"<td>{_fmt(p.get('p90_ttft_ms'), '.0f')}</td><td>{_fmt(p.get('tokens_per_s_user'), '.1f')}</td>"
                f"<td>{_fmt(p.get('tokens_per_s_gpu'), '.1f')}</td><td><b>{p['status']}</b></td>"
                f"<td style='text-align:left'>{_reasons(p['reasons'])}</td></tr>")
    return ("<table><tr><th>scenario</th><th>point</th><th>requests</th><th>measured s</th><th>statistic bound</th>"
            "<th>attainment</th><th>P90 TTFT ms</th><th>tok/s/user</th><th>tok/s/GPU</th><th>status</th>"
            "<th>reasons</th></tr>" + "".join(rows) + "</table>")


def _environment_table(env: dict[str, Any]) -> str:
    flat: list[tuple[str, str]] = []
    for k, v in env.items():
        if isinstance(v, dict | list):
            v = json.dumps(v, default=str)
            v = v if len(v) < 400 else v[:400] + "…"
        flat.append((k, str(v)))
    return "<table>" + "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                               f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in flat) + "</table>"


def render_report(out_dir: Path) -> tuple[Path, list[str]]:
    """Draw ``out_dir/report.html`` from ``out_dir/qualification.json`` (and the capacity searches' probes)."""
    q = json.loads((out_dir / "qualification.json").read_text())
    verdict = q["verdict"]
    intro = (
        f"<p><b>Suite</b> {html.escape(q['suite']['name'])} v{q['suite']['version']} "
        f"(sha256 {html.escape(q['suite']['sha256'][:16])}…), engine <b>{html.escape(q['engine'])}</b>. "
        f"<b>Verdict: {html.escape(verdict)}</b> — {html.escape(q['verdict_detail'])}</p>"
        f"<h2>Scenarios</h2>{_scenario_table(q)}"
        f"<h2>Points</h2><p class='caption'>Every run the verdict rests on, with the statistic's minimum request "
        f"count and the count measured.</p>{_points_table(q)}"
        f"<h2>Environment</h2>{_environment_table(q.get('environment', {}))}"
        f"<p class='caption'>The folder's sha256 manifest (MANIFEST.sha256) is written after this page; "
        f"check it with <code>slobench qualify --check DIR --expect ROOT_DIGEST</code>.</p>")
    figures = {"pareto": pareto_figure(q), "capacity": capacity_figure(out_dir, q)}
    return write_report(out_dir, figures, title=f"slobench qualification: {q['suite']['name']}", intro_html=intro,
                        png=False)
