"""Re-create figures and report.html from a results folder's saved files, without rerunning.

`compare`/`capacity` write their data first and then call `rebuild_report` too, so a report made
right after a run and one rebuilt later (or after Ctrl-C) come from the same files and code.

Files read (all optional except probes.csv), through the typed models of `slobench.report.probes`
(files written before those models, without ``schema_version``, read as version 1):
- ``probes.csv``: `ProbeRow` per line (workload, scheduler, rate_rps, seed, attainment, ci_low,
  ci_high, num_met, num_requests, valid, reason, the validity evidence, grid values);
- ``summary.json``: `ExperimentSummary` (``target``, ``capacities`` rows, ``scaling`` rows, ``title``);
  scaling rows naming their router also give ``scaling.csv`` (capacity per replica, share of linear scaling);
- ``requests.parquet``: stage records with workload/scheduler/rate_rps/seed columns;
- ``iterations.parquet``: batch composition with the same columns;
  (both also from ``parts/*.parquet``: per-probe files a killed run left before consolidation).
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from slobench.report.figures import report_figures, slug
from slobench.report.html import write_report
from slobench.report.probes import ExperimentSummary, probes_frame, read_probe_rows
from slobench.report.results import PROBE_KEY, atomic_target, probe_key, read_probe_frames
from slobench.report.scaling import has_routers, per_replica_html, per_replica_table
from slobench.report.sensitivity import is_sensitivity, sensitivity_figure, sensitivity_table

PROBE_COLUMNS = ["workload", "scheduler", "rate_rps", "seed", "attainment", "ci_low", "ci_high",
                 "num_met", "num_requests", "valid", "reason"]
CAPACITY_COLUMNS = ["workload", "scheduler", "capacity_rps", "lower_rps", "upper_rps", "status", "message"]


def load_results(results_dir: Path, *, all_records: bool = False) -> dict[str, object]:
    """Read what a report needs; missing optional files become empty frames.

    The figures use the records of each search's capacity probe only, so by default only those rows
    are read (all seeds of that rate): a sweep's requests.parquet can hold millions of token
    timestamps. ``all_records=True`` reads every probe's records.
    """
    results_dir = Path(results_dir)
    probes_path = results_dir / "probes.csv"
    if not probes_path.exists():
        raise FileNotFoundError(f"{probes_path} not found: is {results_dir} a slobench results folder?")
    probes = probes_frame(read_probe_rows(probes_path))  # any version; typed by `ProbeRow`
    summary = ExperimentSummary.read(results_dir / "summary.json")  # missing → empty
    capacities = pd.DataFrame([c.model_dump() for c in summary.capacities])
    if capacities.empty:
        capacities = pd.DataFrame(columns=CAPACITY_COLUMNS)
    keys = None
    if not all_records and not capacities.empty and not probes.empty:
        at_cap = _at_capacity(probes[probes["span_factor"] == 1], capacities)  # hold probes keep no records
        keys = {probe_key(*k) for k in at_cap[list(PROBE_KEY)].itertuples(index=False, name=None)}
    # Consolidated files plus per-probe parts a killed run may have left (see report.results).
    stages = read_probe_frames(results_dir, "requests", keys=keys)
    iterations = read_probe_frames(results_dir, "iterations", keys=keys)
    scaling = pd.DataFrame([r.model_dump() for r in summary.scaling])
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


def _num(v: object) -> float | None:
    return float(v) if v is not None and pd.notna(v) else None


def capacity_table_html(capacities: pd.DataFrame) -> str:
    """HTML table: workload, scheduler, capacity, interval [lower, upper), ratio vs first scheduler (when there are
    several), status, note.

    Same conventions as the CLI table: ``< x`` when even the lowest rate missed, ``≥ x`` when the
    highest rate still passed, ``–`` for a bound no probe established.
    """
    if capacities.empty:
        return ""
    first = capacities["scheduler"].iloc[0]
    compared = capacities["scheduler"].nunique() > 1  # one scheduler: no ratio column
    base = {}
    for _, r in capacities.iterrows():
        base.setdefault(r["workload"], r)
    rows = []
    for _, r in capacities.iterrows():
        cap, status = _num(r.get("capacity_rps")), r.get("status", "")
        b = base[r["workload"]]
        b_cap = _num(b.get("capacity_rps"))
        ratio = f"{cap / b_cap:.2f}×" if status == "ok" and b.get("status") == "ok" and cap and b_cap else "–"
        lo, hi = _num(r.get("lower_rps")), _num(r.get("upper_rps"))
        interval = f"[{'–' if lo is None else f'{lo:.3g}'}, {'–' if hi is None else f'{hi:.3g}'})"
        if status == "below_range":
            low = _num(r.get("min_rate_rps"))
            shown = f"< {low:.3g}" if low is not None else "–"
        elif cap is None:
            shown = "–"
        elif status in ("above_range", "max_probes") and hi is None:
            shown = f"≥ {cap:.3g}"
        else:
            shown = f"{cap:.3g}"
        cells = [r["workload"], r["scheduler"], shown, interval, *([ratio] if compared else []), status,
                 r.get("message", "")]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    heads = ("workload", "scheduler", "capacity (req/s)", "interval", *([f"vs {first}"] if compared else []),
             "status", "note")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def build_figures(data: dict[str, object]) -> dict[str, go.Figure]:
    """The figure set for loaded results (see `load_results`)."""
    summary = data["summary"]
    capacities = data["capacities"]
    target = summary.target if isinstance(summary, ExperimentSummary) else 0.9
    stages = _at_capacity(data["stages"], capacities)
    iterations = _at_capacity(data["iterations"], capacities)
    figs = report_figures(data["probes"], capacities, target=target, stages=None, iterations=iterations,
                          scaling=data["scaling"])
    if is_sensitivity(capacities):  # two axes through one point: its own four-panel figure per workload
        figs = {k: v for k, v in figs.items() if not k.startswith("capacity-vs-")}
        for wl in dict.fromkeys(capacities["base_workload"]):
            figs[f"sensitivity-{slug(wl)}"] = sensitivity_figure(capacities, wl)
    validation = (summary.model_extra or {}).get("validation") if isinstance(summary, ExperimentSummary) else None
    if validation:
        from slobench.report.figures import validation_vs_rate

        figs["validation"] = validation_vs_rate(data["probes"], validation, target=target)
    if not stages.empty and "workload" in stages:
        from slobench.report.figures import latency_cdfs

        for wl, grp in stages.groupby("workload", sort=False):
            figs[f"latency-cdf-{slug(wl)}"] = latency_cdfs(grp, title=f"{wl}: latency CDFs at capacity")
    elif not stages.empty:
        from slobench.report.figures import latency_cdfs

        figs["latency-cdf"] = latency_cdfs(stages)
    return figs


CAPTIONS = {  # first matching prefix wins, so the more specific names come first
    "sensitivity": "Capacity of each policy (left) and its ratio to the first policy (right) as every TTFT/TPOT "
                   "target is scaled (top; < 1 tighter, at the base model error) and as the simulated GPU runs "
                   "slower than the policies' planning model (bottom; at the preset SLOs). A headline ratio "
                   "holds only as far as these curves stay flat. See `slobench sensitivity --help`.",
    "capacity-vs": "Capacity against the swept parameter, one line per scheduler; error bars span the capacity's "
                   "interval [highest confident pass, lowest confident fail).",
    "capacity": "Capacity = the highest probed rate whose joint SLO attainment (every stage's TTFT and TPOT met) "
                "reaches the target. Error bars span [highest confident pass, lowest confident fail); labels give "
                "the ratio to the first scheduler. See docs/capacity.md.",
    "attainment": "Pooled attainment at each probed rate with its 95% Wilson interval; dashed line = target, dotted "
                  "lines = each scheduler's capacity; crosses = INVALID probes (rate not offered, client lag or a "
                  "tail that never drained), never reported as capacity.",
    "serving": "vLLM bench's figures against the offered rate (mean over seeds of the valid probes): left, the "
               "highest percentile chosen (--metric-percentiles) of each latency metric in ms; middle, slobench's "
               "goodput (requests meeting every per-token deadline, per second) beside vLLM-style goodput (requests "
               "within the --goodput bounds on TTFT, mean TPOT and end-to-end latency, when given); right, output "
               "and total tokens per second. See docs/metrics.md.",
    "latency-cdf": "At each scheduler's capacity probe: top, every stage's TTFT and mean TPOT divided by its own SLO "
                   "(SLOs differ per request); bottom, the same in ms. TTFT left of the dashed 1.0 line = TTFT met "
                   "(5% tolerance). Mean TPOT "
                   "is not what the TPOT SLO checks: each token has a deadline (token i due at max(start + TTFT "
                   "SLO, first token) + i × TPOT SLO), so a stage whose first token came early can lie right of 1.0 "
                   "and meet every deadline, and one with a long stall can lie left of 1.0 and miss. See "
                   "docs/metrics.md.",
    "batches": "Every iteration of the capacity probe: prefill and decode tokens (two lines, not stacked), and the "
               "iteration latency "
               "against the time budget the policy planned for (when it sets one).",
    "validation": "`slobench validate`: attainment against rate of each policy on the real engine (solid) and in the "
                  "simulator on the calibrated profile (dashed), valid probes, seeds pooled. The table above gives "
                  "the capacity error (sim / real − 1) and the per-probe latency errors. See docs/calibration.md.",
    "replica-scaling": "Capacity with N replicas behind the router; dotted = linear scaling from one replica.",
    "scaling-per-replica": "Capacity per replica (capacity ÷ replicas) against the replica count, a panel per "
                           "scheduler and a line per router; one replica needs no router, so every router's line "
                           "starts at the same point. Dotted = linear scaling (flat at the one-replica capacity); "
                           "the drop below it is what routing loses. The table above gives the share of linear "
                           "scaling, capacity(R) / (R · capacity(1)). See docs/capacity.md.",
}


def caption_for(name: str) -> str:
    """The caption of a figure file stem (``attainment-coding`` → the attainment caption)."""
    return next((text for prefix, text in CAPTIONS.items() if name == prefix or name.startswith(prefix + "-")), "")


def validation_html(validation: dict | None) -> str:
    """summary.json's ``validation`` (`slobench validate`) as a table: simulated vs real capacity per policy, the
    capacity error, the latency errors and the gain agreement."""
    if not validation:
        return ""

    def pct(x: object) -> str:
        return "–" if not isinstance(x, int | float) else f"{x:+.1%}"

    def lat(e: dict) -> str:
        return "–" if not e or not e.get("n") else f"{pct(e['mean'])} (|·| p90 {abs(e['p90_abs']):.1%})"

    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_fmt(p.get('sim_capacity_rps'))}</td>"
        f"<td>{_fmt(p.get('real_capacity_rps'))}</td><td>[{_fmt(p.get('real_lower_rps'))}, "
        f"{_fmt(p.get('real_upper_rps'))})</td><td>{pct(p.get('capacity_error'))}</td>"
        f"<td>{lat(p.get('ttft_error') or {})}</td><td>{lat(p.get('tpot_error') or {})}</td>"
        f"<td>{_fmt(p.get('attainment_gap'))}</td></tr>"
        for name, p in (validation.get("policies") or {}).items())
    gains = "".join(
        f"<li>{html.escape(g['policy'])} over {html.escape(g['baseline'])}: simulated {_fmt(g.get('sim_gain'))}×, "
        f"real {_fmt(g.get('real_gain'))}×, ratio of ratios {_fmt(g.get('ratio_of_ratios'))}"
        f"{'' if g.get('matches') is None else ' (matches)' if g['matches'] else ' (does not match)'}</li>"
        for g in validation.get("gains") or [])
    head = "".join(f"<th>{h}</th>" for h in ("policy", "sim req/s", "real req/s", "real interval",
                                              "capacity error", "TTFT error", "TPOT error", "mean |Δattainment|"))
    return (f"<h3>Simulator vs real engine (validation)</h3><table><tr>{head}</tr>{rows}</table>"
            f"{f'<ul>{gains}</ul>' if gains else ''}")


def _fmt(x: object) -> str:
    return "–" if not isinstance(x, int | float) else f"{x:.3g}"


def setup_html(setup: list[dict[str, str]]) -> str:
    """What the capacities rest on (summary.json ``setup``): a small table per distinct run setting."""
    if not setup:
        return ""
    parts = ["<h3>What these numbers rest on</h3>"]
    for rec in setup:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in rec.items())
        parts.append(f"<table>{rows}</table>")
    return "".join(parts)


def run_settings_html(results_dir: Path, summary: object) -> str:
    """The run's settings from manifest.json and summary.json, beside the per-setting table: the command,
    slobench's version and commit, when, the seeds and target, the user's --metadata."""
    import json

    try:
        manifest = json.loads((Path(results_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    if not isinstance(manifest, dict):
        manifest = {}
    plan = manifest.get("plan") if isinstance(manifest.get("plan"), dict) else {}
    search = plan.get("search") if isinstance(plan.get("search"), dict) else {}
    versions = manifest.get("versions") if isinstance(manifest.get("versions"), dict) else {}
    sha = str(manifest.get("git_sha") or "")[:10]
    rows = {
        "command": f"slobench {manifest['command']}" if manifest.get("command") else "",
        "slobench": " ".join(x for x in (str(versions.get("slobench", "")), f"(commit {sha})" if sha else "") if x),
        "created": str(manifest.get("created", "")),
        "seeds": ", ".join(str(s) for s in search.get("seeds", [])),
        "target attainment": f"{search['target']:.0%}" if isinstance(search.get("target"), int | float) else "",
        "rate grid": (f"relative tolerance {search['rel_tol']:.0%}" if isinstance(search.get("rel_tol"), float)
                      else ""),
    }
    meta = getattr(summary, "metadata", None) or manifest.get("metadata") or {}
    rows |= {f"metadata: {k}": str(v) for k, v in meta.items()}
    cells = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                    f"<code>{html.escape(v)}</code></td></tr>" for k, v in rows.items() if v)
    return f"<h3>Run settings</h3><table>{cells}</table>" if cells else ""


def _notes_html(capacities: pd.DataFrame) -> str:
    """What each search did beyond the plain bisection (crossing confirmed, non-monotone points found)."""
    if "notes" not in capacities or capacities.empty:
        return ""
    items = [f"<li>{html.escape(str(r.workload))} × {html.escape(str(r.scheduler))}: {html.escape(str(r.notes))}</li>"
             for r in capacities.itertuples() if isinstance(r.notes, str) and r.notes]
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _intro_html(results_dir: Path, data: dict[str, object]) -> str:
    summary = data["summary"]
    intro = capacity_table_html(data["capacities"]) + _notes_html(data["capacities"])
    scaling = data["scaling"]
    if isinstance(scaling, pd.DataFrame) and has_routers(scaling):
        intro += per_replica_html(scaling)
    if isinstance(summary, ExperimentSummary):
        intro += validation_html((summary.model_extra or {}).get("validation"))
        intro += setup_html(summary.setup)
    intro += run_settings_html(results_dir, summary)
    if isinstance(summary, ExperimentSummary) and not summary.complete:
        d = html.escape(str(results_dir))
        intro = (f'<p class="warn">Partial results: this run was interrupted. Continue it with '
                 f"<code>slobench resume {d}</code>.</p>") + intro
    return intro


def rebuild_report(results_dir: Path, *, png: bool = True) -> tuple[Path, list[str]]:
    """Rebuild ``figures/`` and ``report.html`` in ``results_dir``; return (report path, notices)."""
    results_dir = Path(results_dir)
    data = load_results(results_dir)
    table = sensitivity_table(data["capacities"])
    if not table.empty:  # the numbers behind the sensitivity figure, for scripts and papers
        with atomic_target(results_dir / "sensitivity.csv") as tmp:
            table.to_csv(tmp, index=False)
    scaling = data["scaling"]
    if isinstance(scaling, pd.DataFrame) and has_routers(scaling):  # the numbers behind the per-replica figure
        with atomic_target(results_dir / "scaling.csv") as tmp:
            per_replica_table(scaling).to_csv(tmp, index=False)
    figs = build_figures(data)
    summary = data["summary"]
    title = summary.title if isinstance(summary, ExperimentSummary) else None
    captions = {n: caption_for(n) for n in figs}
    if "capacity" in captions and data["capacities"]["scheduler"].nunique() <= 1:
        captions["capacity"] = captions["capacity"].replace(" labels give the ratio to the first scheduler.", "")
    return write_report(results_dir, figs, title=title or f"slobench: {results_dir.name}",
                        intro_html=_intro_html(results_dir, data), captions=captions, png=png)
