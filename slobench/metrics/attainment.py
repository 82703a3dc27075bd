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

Warm-up: with ``warmup_s > 0`` only requests arriving at or after ``warmup_s`` (the *measured window*, up to
the end of arrivals) are counted: every figure of `summarize` is over them, the requests before still ran
(they load the replica) and stay in the records, flagged by `measured_flags`. A replica starts empty, so
the first requests of a run see less load than the rest; counting them flatters every policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from slobench.metrics.serving import DEFAULT_METRIC_PERCENTILES, DEFAULT_PERCENTILE_METRICS, serving_metrics

TOLERANCE = 1.05


def _flatten_times(column: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All stages' token timestamps as one array: (flat times, tokens per stage, stage start offsets).

    Stage i's tokens are ``flat[offsets[i]:offsets[i] + lengths[i]]``. Cells may be lists or arrays
    (parquet reads them back as arrays); a missing cell (None) counts as no tokens.
    """
    cells = [() if t is None else t for t in np.asarray(column, dtype=object)]
    lengths = np.fromiter((len(t) for t in cells), dtype=np.int64, count=len(cells))
    offsets = np.zeros(len(cells), dtype=np.int64)
    if len(cells):
        np.cumsum(lengths[:-1], out=offsets[1:])
    flat = np.fromiter(chain.from_iterable(cells), dtype=float, count=int(lengths.sum()))
    return flat, lengths, offsets


def _itl_within(flat: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(every inter-token gap of ``flat``, True where that gap lies inside one stage)."""
    diffs = np.diff(flat)
    within = np.ones(diffs.size, dtype=bool)
    # The gap before each stage's first token belongs to two stages; offsets[i] - 1 indexes it.
    cross = offsets[(offsets > 0) & (offsets <= diffs.size)] - 1
    within[cross] = False
    return diffs, within


def _stage_metrics(df: pd.DataFrame, tolerance: float) -> tuple[pd.DataFrame, np.ndarray]:
    """`stage_metrics` plus every within-stage inter-token gap in row order (for the ITL summary).

    Vectorised over one flat array of all token times (a capacity search summarises ~10 runs of
    thousands of stages; a per-row Python loop cost as much as the simulation). Each element goes
    through the same floating-point operations, in the same order, as the per-stage definition in
    the module docstring, so results are bit-identical to computing stage by stage.
    """
    n = len(df)
    ttft = np.full(n, np.nan)
    tpot = np.full(n, np.nan)
    max_itl = np.full(n, np.nan)
    last = np.full(n, np.nan)
    starts = df["stage_start_s"].to_numpy(dtype=float)
    ttft_slo = df["ttft_slo_s"].to_numpy(dtype=float)
    tpot_slo = df["tpot_slo_s"].to_numpy(dtype=float)
    expected = df["output_tokens"].to_numpy(dtype=np.int64)
    finished = df["status"].to_numpy() == "finished"
    flat, lengths, offsets = _flatten_times(df["token_times_s"])
    has = lengths > 0
    first_i = offsets[has]
    last_i = offsets[has] + lengths[has] - 1
    ttft[has] = flat[first_i] - starts[has]
    last[has] = flat[last_i]
    multi = lengths > 1
    m_first, m_last = offsets[multi], offsets[multi] + lengths[multi] - 1
    tpot[multi] = (flat[m_last] - flat[m_first]) / (lengths[multi] - 1)
    diffs, within = _itl_within(flat, lengths, offsets)
    if multi.any():
        masked = np.where(within, diffs, -np.inf)
        max_itl[multi] = np.maximum.reduceat(masked, m_first)
    complete = has & finished & (lengths >= expected)
    met_ttft = complete & (ttft <= ttft_slo * tolerance)
    # Per-token deadlines: t0 = max(start + ttft_slo, first token) (as Python's max: the first
    # argument unless the second is larger), token j due at t0 + j·tpot_slo·tolerance.
    a = starts + ttft_slo
    b = np.full(n, np.nan)
    b[has] = flat[first_i]
    t0 = np.where(b > a, b, a)
    stage_of = np.repeat(np.arange(n), lengths)
    pos = np.arange(flat.size) - offsets[stage_of]
    due = t0[stage_of] + pos * tpot_slo[stage_of] * tolerance
    late = np.zeros(n, dtype=bool)
    late[stage_of[~(flat <= due + 1e-9)]] = True
    met_tpot = complete & ~late
    out = df.copy()
    out["ttft_s"] = ttft
    out["tpot_s"] = tpot
    out["max_itl_s"] = max_itl
    out["last_token_s"] = last
    out["complete"] = complete
    out["met_ttft"] = met_ttft
    out["met_tpot"] = met_tpot
    out["met"] = met_ttft & met_tpot
    return out, diffs[within]


def stage_met(status: str, stage_start_s: float, ttft_slo_s: float, tpot_slo_s: float, output_tokens: int,
              token_times_s: Any, tolerance: float = TOLERANCE) -> bool:
    """One stage's ``met`` as `stage_metrics` computes it, for a single record without building a frame (the
    early-fail monitor judges each record on the load generator's event loop, where a frame costs ~1 ms).
    The same operations in the same order; `tests/test_metrics.py` checks both agree on random stages."""
    times = token_times_s
    n = len(times)
    if n == 0 or str(status) != "finished" or n < output_tokens:
        return False
    first = float(times[0])
    if not first - stage_start_s <= ttft_slo_s * tolerance:
        return False
    a = stage_start_s + ttft_slo_s
    t0 = first if first > a else a
    step = tpot_slo_s * tolerance
    return all(float(t) <= t0 + j * step + 1e-9 for j, t in enumerate(times))


def stage_metrics(df: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Add per-stage latency and SLO columns to a records frame (one row per stage)."""
    return _stage_metrics(df, tolerance)[0]


def request_metrics(stages: pd.DataFrame) -> pd.DataFrame:
    """One row per request: joint attainment across its stages (needs `stage_metrics` columns)."""
    if len(stages) and stages["request_id"].is_unique:
        return _single_stage_request_metrics(stages)
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


def _single_stage_request_metrics(stages: pd.DataFrame) -> pd.DataFrame:
    """`request_metrics` when every request has one stage row (chatbot, coding): each group is one row, so
    the aggregation is the rows sorted by request id (``first``, ``all`` and ``max`` of one value are the
    value; ``count`` is 1; a stage row missing for a multi-stage request still fails ``whole``). pandas'
    groupby-aggregate of eleven columns cost a third of `summarize`; `tests/test_metrics.py` checks both
    frames are equal, dtypes included."""
    s = stages.sort_values("request_id", kind="stable")
    n = len(s)
    req = pd.DataFrame({
        "request_id": s["request_id"].to_numpy(), "app": s["app"].to_numpy(), "tier": s["tier"].to_numpy(),
        "arrival_s": s["arrival_s"].to_numpy(), "admission": s["admission"].to_numpy(),
        "num_stages": s["num_stages"].to_numpy(), "stages_seen": np.ones(n, dtype=np.int64),
        "met": s["met"].to_numpy(dtype=bool), "met_ttft": s["met_ttft"].to_numpy(dtype=bool),
        "met_tpot": s["met_tpot"].to_numpy(dtype=bool), "complete": s["complete"].to_numpy(dtype=bool),
        "finish_s": s["last_token_s"].to_numpy(dtype=float),
    })
    whole = req["stages_seen"] >= req["num_stages"]
    for col in ("met", "met_ttft", "met_tpot", "complete"):
        req[col] = req[col] & whole
    return req


def _pct(values: pd.Series | np.ndarray, qs: tuple[int, ...] = (50, 90, 99)) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {f"p{q}": math.nan for q in qs} | {"mean": math.nan}
    # One call for all quantiles: one partition of the array instead of one per quantile (the ITL array holds
    # every token gap of the run, ~10⁵–10⁶ values), and the same floats as separate calls.
    ps = np.percentile(v, qs)
    return {f"p{q}": float(p) for q, p in zip(qs, ps, strict=True)} | {"mean": float(v.mean())}


def _share(mask: pd.Series) -> float:
    return float(mask.mean()) if len(mask) else math.nan


def measured_flags(arrival_s: pd.Series | np.ndarray, warmup_s: float) -> np.ndarray:
    """True for the requests (or stages: the request's arrival) of the measured window: arriving at or after
    ``warmup_s``. With no warm-up every request is measured."""
    arrivals = np.asarray(arrival_s, dtype=float)
    return arrivals >= warmup_s if warmup_s > 0 else np.ones(arrivals.shape, dtype=bool)


def summarize(records: pd.DataFrame, *, duration_s: float | None = None, warmup_s: float = 0.0,
              goodput_ms: dict[str, float] | None = None, percentile_metrics: Sequence[str] | None = None,
              metric_percentiles: Sequence[float] | None = None) -> dict[str, Any]:
    """Attainment, goodput and latency percentiles of one run; overall, per stage name, per tier.

    Beside them, the vLLM-bench-style figures of `slobench.metrics.serving` (latency mean/median/std and
    ``metric_percentiles`` of ``percentile_metrics`` in ms, tokens/s, and ``vllm_goodput_rps`` under the
    ``goodput_ms`` bounds), so a user can compare with ``vllm bench serve`` on the same terms.

    ``warmup_s`` > 0: every figure is over the measured window only (requests arriving at or after it);
    ``num_arrivals`` counts every request and ``num_warmup`` those left out; goodput divides by the
    window's length (``duration_s`` − ``warmup_s``). The run's last arrival and tail are over all requests.
    """
    if warmup_s > 0:
        everyone = records
        records = records[measured_flags(records["arrival_s"], warmup_s)]
        if duration_s is not None:
            duration_s = max(duration_s - warmup_s, 0.0) or None
    stages, itl = _stage_metrics(records, TOLERANCE)
    reqs = request_metrics(stages)
    n = len(reqs)
    span = duration_s
    if span is None:
        span = float(reqs["arrival_s"].max() - reqs["arrival_s"].min()) if n > 1 else math.nan
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
    start = float(warmup_s) if warmup_s > 0 else (float(reqs["arrival_s"].min()) if n else 0.0)
    summary |= serving_metrics(
        stages, reqs, itl, window_start_s=start, goodput_ms=goodput_ms,
        percentile_metrics=DEFAULT_PERCENTILE_METRICS if percentile_metrics is None else percentile_metrics,
        metric_percentiles=DEFAULT_METRIC_PERCENTILES if metric_percentiles is None else metric_percentiles)
    if n:
        last_arrival = float(reqs["arrival_s"].max())
        summary["last_arrival_s"] = last_arrival
        finished_at = stages["last_token_s"]
        summary["tail_s"] = float(finished_at.max()) - last_arrival if finished_at.notna().any() else math.nan
    if warmup_s > 0:
        total = int(everyone["request_id"].nunique()) if len(everyone) else 0
        summary |= {"warmup_s": float(warmup_s), "num_arrivals": total, "num_warmup": total - n}
        if len(everyone):
            ends = everyone["token_times_s"].map(lambda t: t[-1] if t is not None and len(t) else math.nan)
            summary["last_arrival_s"] = float(everyone["arrival_s"].max())
            summary["tail_s"] = float(ends.max()) - summary["last_arrival_s"] if ends.notna().any() else math.nan
    return summary
