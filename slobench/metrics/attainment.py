"""Metrics, defined once for every engine (see docs/metrics.md for the definitions in prose).

Per stage (from its token timestamps):
- TTFT = first token − stage start (the moment the stage's input was available).
- TPOT = (last token − first token) / (n − 1), as vLLM's `benchmark_serving` computes it.
- ITL = gaps between consecutive token timestamps (tokens of one chunk share a timestamp).
- Per-token deadlines (SLOs-Serve): token i (0-based) is due at ``t0 + i·tpot_slo`` with
  ``t0 = max(stage start + ttft_slo, first token)``; a 5% tolerance applies to both targets.
- ``met_ttft``: finished and TTFT ≤ 1.05·ttft_slo; ``met_tpot``: finished and every token meets its
  deadline; ``met``: both (and every expected token arrived).
Per request: ``met`` iff every stage met (joint, DistServe style); likewise TTFT-only / TPOT-only.
Attainment is over *all* arrivals: failed, timed-out, unfinished and rejected requests are misses.
Best-effort requests are judged on their measured timing (a user who got the SLO got it);
``attainment_admitted_only`` counts them as misses too, as the SLOs-Serve paper does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

TOLERANCE = 1.05


def stage_metrics(df: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Add per-stage latency and SLO columns to a records frame (one row per stage)."""
    n = len(df)
    ttft = np.full(n, np.nan)
    tpot = np.full(n, np.nan)
    max_itl = np.full(n, np.nan)
    met_ttft = np.zeros(n, dtype=bool)
    met_tpot = np.zeros(n, dtype=bool)
    complete = np.zeros(n, dtype=bool)
    last = np.full(n, np.nan)
    starts = df["stage_start_s"].to_numpy(dtype=float)
    ttft_slo = df["ttft_slo_s"].to_numpy(dtype=float)
    tpot_slo = df["tpot_slo_s"].to_numpy(dtype=float)
    expected = df["output_tokens"].to_numpy(dtype=np.int64)
    statuses = df["status"].to_numpy()
    for i, times in enumerate(df["token_times_s"].to_numpy()):
        t = np.asarray(times, dtype=float)
        if t.size == 0:
            continue
        ttft[i] = t[0] - starts[i]
        last[i] = t[-1]
        if t.size > 1:
            tpot[i] = (t[-1] - t[0]) / (t.size - 1)
            max_itl[i] = float(np.max(np.diff(t)))
        complete[i] = statuses[i] == "finished" and t.size >= expected[i]
        met_ttft[i] = complete[i] and ttft[i] <= ttft_slo[i] * tolerance
        t0 = max(starts[i] + ttft_slo[i], t[0])
        due = t0 + np.arange(t.size) * tpot_slo[i] * tolerance
        met_tpot[i] = complete[i] and bool(np.all(t <= due + 1e-9))
    out = df.copy()
    out["ttft_s"] = ttft
    out["tpot_s"] = tpot
    out["max_itl_s"] = max_itl
    out["last_token_s"] = last
    out["complete"] = complete
    out["met_ttft"] = met_ttft
    out["met_tpot"] = met_tpot
    out["met"] = met_ttft & met_tpot
    return out


def request_metrics(stages: pd.DataFrame) -> pd.DataFrame:
    """One row per request: joint attainment across its stages (needs `stage_metrics` columns)."""
    g = stages.groupby("request_id", sort=True)
    req = g.agg(
        app=("app", "first"), tier=("tier", "first"), arrival_s=("arrival_s", "first"),
        admission=("admission", "first"), num_stages=("num_stages", "first"), stages_seen=("stage_idx", "count"),
        met=("met", "all"), met_ttft=("met_ttft", "all"), met_tpot=("met_tpot", "all"),
        complete=("complete", "all"), finish_s=("last_token_s", "max"),
    )
    whole = req["stages_seen"] >= req["num_stages"]
    for col in ("met", "met_ttft", "met_tpot", "complete"):
        req[col] = req[col] & whole
    return req.reset_index()


def _pct(values: pd.Series | np.ndarray, qs: tuple[int, ...] = (50, 90, 99)) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {f"p{q}": math.nan for q in qs} | {"mean": math.nan}
    return {f"p{q}": float(np.percentile(v, q)) for q in qs} | {"mean": float(v.mean())}


def _share(mask: pd.Series) -> float:
    return float(mask.mean()) if len(mask) else math.nan


def summarize(records: pd.DataFrame, *, duration_s: float | None = None) -> dict[str, Any]:
    """Attainment, goodput and latency percentiles of one run; overall, per stage name, per tier."""
    stages = stage_metrics(records)
    reqs = request_metrics(stages)
    n = len(reqs)
    span = duration_s
    if span is None:
        span = float(reqs["arrival_s"].max() - reqs["arrival_s"].min()) if n > 1 else math.nan
    itl = np.concatenate(
        [np.diff(np.asarray(t, dtype=float)) for t in stages["token_times_s"] if len(t) > 1] or [np.array([])]
    )
    admitted = reqs["admission"].isin(["admitted", "pending"])
    summary: dict[str, Any] = {
        "num_requests": n,
        "num_finished": int(reqs["complete"].sum()),
        "attainment": _share(reqs["met"]),
        "attainment_ttft": _share(reqs["met_ttft"]),
        "attainment_tpot": _share(reqs["met_tpot"]),
        "attainment_admitted_only": _share(reqs["met"] & admitted),
        "num_met": int(reqs["met"].sum()),
        "goodput_rps": float(reqs["met"].sum() / span) if span and span > 0 else math.nan,
        "admission_counts": {str(k): int(v) for k, v in reqs["admission"].value_counts().items()},
        "status_counts": {str(k): int(v) for k, v in stages["status"].value_counts().items()},
        "ttft_s": _pct(stages["ttft_s"]),
        "tpot_s": _pct(stages["tpot_s"]),
        "itl_s": _pct(itl),
        "per_stage": {},
        "per_tier": {},
        "per_app": {},
    }
    for name, grp in stages.groupby("stage_name", sort=True):
        summary["per_stage"][str(name)] = {
            "num": len(grp), "attainment": _share(grp["met"]), "attainment_ttft": _share(grp["met_ttft"]),
            "attainment_tpot": _share(grp["met_tpot"]), "ttft_s": _pct(grp["ttft_s"]), "tpot_s": _pct(grp["tpot_s"]),
        }
    for col, key in (("tier", "per_tier"), ("app", "per_app")):
        for name, grp in reqs.groupby(col, sort=True):
            summary[key][str(name)] = {"num": len(grp), "attainment": _share(grp["met"])}
    if n:
        last_arrival = float(reqs["arrival_s"].max())
        summary["last_arrival_s"] = last_arrival
        finished_at = stages["last_token_s"]
        summary["tail_s"] = float(finished_at.max()) - last_arrival if finished_at.notna().any() else math.nan
    return summary
