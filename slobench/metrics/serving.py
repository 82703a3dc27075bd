"""vLLM-bench-style serving metrics: latency percentiles in ms, tokens/s, and goodput under fixed bounds.

Users coming from ``vllm bench serve`` read a run through these numbers, so they keep vLLM's meaning
(``vllm/benchmarks/serve.py``, ``calculate_metrics``):

- ``--percentile-metrics`` picks among ``ttft, tpot, itl, e2el`` (default ``ttft,tpot,itl``) and
  ``--metric-percentiles`` picks the percentiles (default ``99``); each picked metric reports its mean,
  median, standard deviation and the picked percentiles, in milliseconds, under vLLM's key names
  (``mean_ttft_ms``, ``median_ttft_ms``, ``std_ttft_ms``, ``p99_ttft_ms``, ``p99.9_ttft_ms``).
- TTFT, TPOT (mean time per output token after the first) and ITL are per stage (a stage is one
  prefill-then-decode step, what vLLM calls a request); E2EL is per request: arrival → its last token.
- ``output_tok_s`` / ``total_tok_s``: output tokens (and prompt + output tokens) of completed stages per
  second of the benchmark's duration, which runs from the measured window's start to the last token of a
  measured request (vLLM's ``dur_s`` runs from the first send to the last response).
- ``vllm_goodput_rps`` (only with ``--goodput``): completed requests whose TTFT, mean TPOT and E2EL are all
  within the given bounds (``≤``, no tolerance), per second of that duration. A multi-stage request must
  keep the TTFT and TPOT bounds in every stage. This is *not* slobench's attainment, which judges every
  token against its own deadline (`slobench.metrics.attainment`): a stage can have a mean TPOT within the
  bound and still miss per-token deadlines after a stall, and the reverse (docs/metrics.md).

Parsing the flags lives here too, so `RunConfig` and the CLI validate them the same way (one line each).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from slobench.errors import UserError

GOODPUT_METRICS = ("ttft", "tpot", "e2el")
PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")
DEFAULT_PERCENTILE_METRICS = ("ttft", "tpot", "itl")  # vllm bench serve's defaults
DEFAULT_METRIC_PERCENTILES = (99.0,)


def burstiness_to_cv(burstiness: float, flag: str = "--burstiness") -> float:
    """vLLM's ``--burstiness B`` (shape of the Gamma inter-arrival distribution; B = 1 is Poisson) as the
    coefficient of variation slobench's Gamma arrivals take: CV = 1/√B. B ≤ 0 or not finite is one line."""
    if not (isinstance(burstiness, int | float) and math.isfinite(burstiness) and burstiness > 0):
        raise UserError(f"{flag}: must be a positive number (vLLM's gamma shape: 1 = Poisson, < 1 burstier, "
                        f"> 1 smoother), got {burstiness}")
    return 1.0 / math.sqrt(float(burstiness))


def _number(flag: str, what: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{flag}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{flag}: {what} {text!r} is not a finite number")
    return value


def _items(text: str) -> list[str]:
    return [t for t in re.split(r"[,\s]+", text.strip()) if t]


def parse_goodput(text: str | None) -> dict[str, float]:
    """``ttft:MS,tpot:MS,e2el:MS`` (any subset, commas or spaces) → ``{"ttft": ms, ...}``; one line when bad."""
    if text is None:
        return {}
    items = _items(text)
    if not items:
        raise UserError("--goodput: empty; give e.g. ttft:500,tpot:50 (milliseconds; any of ttft, tpot, e2el)")
    bounds: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition(":")
        name = name.strip().lower()
        if not sep or not value:
            raise UserError(f"--goodput: {item!r} is not METRIC:MILLISECONDS; give e.g. ttft:500,tpot:50")
        if name not in GOODPUT_METRICS:
            raise UserError(f"--goodput: unknown metric {name!r}; use ttft, tpot or e2el")
        if name in bounds:
            raise UserError(f"--goodput: {name} given twice; give each metric once")
        ms = _number("--goodput", f"{name} bound", value)
        if ms <= 0:
            raise UserError(f"--goodput: {name} bound must be a positive number of milliseconds, got {value}")
        bounds[name] = ms
    return bounds


def check_goodput(bounds: dict[str, Any] | None) -> dict[str, float]:
    """A goodput dict given directly (a saved plan, `RunConfig`): the same rules as `parse_goodput`."""
    if not bounds:
        return {}
    return parse_goodput(",".join(f"{k}:{v}" for k, v in bounds.items()))


def parse_percentile_metrics(text: str | Sequence[str] | None) -> list[str]:
    """``ttft,tpot,itl,e2el`` (any subset) → the list; None → vLLM's default; one line when bad."""
    if text is None:
        return list(DEFAULT_PERCENTILE_METRICS)
    items = _items(text) if isinstance(text, str) else [str(t) for t in text]
    if not items:
        raise UserError("--percentile-metrics: empty; give a comma-separated subset of ttft, tpot, itl, e2el")
    out: list[str] = []
    for item in items:
        name = item.strip().lower()
        if name not in PERCENTILE_METRICS:
            raise UserError(f"--percentile-metrics: unknown metric {name!r}; use ttft, tpot, itl or e2el")
        if name in out:
            raise UserError(f"--percentile-metrics: {name} given twice; give each metric once")
        out.append(name)
    return out


def parse_metric_percentiles(text: str | Sequence[float] | None) -> list[float]:
    """``50,90,99`` → ``[50.0, 90.0, 99.0]`` (each in (0, 100]); None → vLLM's default ``[99]``."""
    if text is None:
        return list(DEFAULT_METRIC_PERCENTILES)
    items = _items(text) if isinstance(text, str) else [str(t) for t in text]
    if not items:
        raise UserError("--metric-percentiles: empty; give e.g. 50,90,99")
    out: list[float] = []
    for item in items:
        p = _number("--metric-percentiles", "percentile", item)
        if not 0 < p <= 100:
            raise UserError(f"--metric-percentiles: {item} is not a percentile in (0, 100]")
        if p in out:
            raise UserError(f"--metric-percentiles: {item} given twice; give each percentile once")
        out.append(p)
    return out


def parse_metadata(pairs: Iterable[str] | None) -> dict[str, str]:
    """``--metadata KEY=VALUE`` (repeatable) → a dict saved with the results; a bad pair is one line."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--metadata: {pair!r} is not KEY=VALUE; e.g. --metadata team=serving")
        if key in out and out[key] != value:
            raise UserError(f"--metadata: key {key!r} given twice, differently; give it once")
        out[key] = value
    return out


def percentile_word(p: float) -> str:
    """vLLM's name of a percentile: 99 → "99", 99.9 → "99.9"."""
    return str(int(p)) if float(p).is_integer() else f"{p:g}"


def latency_keys(metrics: Sequence[str], percentiles: Sequence[float]) -> list[str]:
    """The flat keys (vLLM's names, ms) `serving_metrics` fills for these choices, in their order."""
    keys: list[str] = []
    for m in metrics:
        keys += [f"mean_{m}_ms", f"median_{m}_ms", f"std_{m}_ms"]
        keys += [f"p{percentile_word(p)}_{m}_ms" for p in percentiles]
    return keys


_LATENCY_KEY = re.compile(r"^(mean|median|std|p\d+(\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")


def is_latency_key(name: str) -> bool:
    """Is ``name`` one of `latency_keys`' columns (e.g. ``p99_ttft_ms``), whatever percentiles were chosen?"""
    return bool(_LATENCY_KEY.match(name))


def _stats_ms(values: np.ndarray, metric: str, percentiles: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)] * 1e3
    nan = math.nan
    out = {f"mean_{metric}_ms": float(v.mean()) if v.size else nan,
           f"median_{metric}_ms": float(np.median(v)) if v.size else nan,
           f"std_{metric}_ms": float(v.std()) if v.size else nan}
    # All percentiles in one call (one partition of v; the same floats as one call each).
    ps = np.percentile(v, list(percentiles)) if v.size and len(percentiles) else [nan] * len(percentiles)
    for p, x in zip(percentiles, ps, strict=True):
        out[f"p{percentile_word(p)}_{metric}_ms"] = float(x)
    return out


def serving_metrics(stages: pd.DataFrame, reqs: pd.DataFrame, itl_s: np.ndarray, *, window_start_s: float,
                    goodput_ms: dict[str, float] | None = None,
                    percentile_metrics: Sequence[str] = DEFAULT_PERCENTILE_METRICS,
                    metric_percentiles: Sequence[float] = DEFAULT_METRIC_PERCENTILES) -> dict[str, Any]:
    """The vLLM-style figures of one run (see the module docstring), from `stage_metrics`' and
    `request_metrics`' frames of the measured requests and the within-stage inter-token gaps ``itl_s``."""
    nan = math.nan
    complete = stages["complete"].to_numpy(dtype=bool) if len(stages) else np.zeros(0, dtype=bool)
    e2el = (reqs["finish_s"] - reqs["arrival_s"]).to_numpy(dtype=float) if len(reqs) else np.zeros(0)
    req_complete = reqs["complete"].to_numpy(dtype=bool) if len(reqs) else np.zeros(0, dtype=bool)
    values = {"ttft": stages["ttft_s"].to_numpy(dtype=float)[complete] if len(stages) else np.zeros(0),
              "tpot": stages["tpot_s"].to_numpy(dtype=float)[complete] if len(stages) else np.zeros(0),
              "itl": np.asarray(itl_s, dtype=float), "e2el": e2el[req_complete]}
    latency: dict[str, float] = {}
    for m in percentile_metrics:
        latency |= _stats_ms(values[m], m, metric_percentiles)
    end = float(stages["last_token_s"].max()) if len(stages) and stages["last_token_s"].notna().any() else nan
    duration = end - window_start_s if math.isfinite(end) and end > window_start_s else nan
    out_tok = float(stages.loc[complete, "output_tokens"].sum()) if len(stages) else 0.0
    in_tok = float(stages.loc[complete, "prompt_tokens"].sum()) if len(stages) else 0.0
    result: dict[str, Any] = {
        "latency_ms": latency, "percentile_metrics": list(percentile_metrics),
        "metric_percentiles": [float(p) for p in metric_percentiles],
        "e2el_s": _pct_s(values["e2el"]), "bench_duration_s": duration,
        "output_tok_s": out_tok / duration if duration == duration else nan,
        "total_tok_s": (out_tok + in_tok) / duration if duration == duration else nan,
        "goodput_bounds_ms": dict(goodput_ms or {}), "num_good": None, "vllm_goodput_rps": None,
    }
    if goodput_ms:
        good = _good_requests(stages, reqs, goodput_ms)
        result["num_good"] = int(good.sum())
        result["vllm_goodput_rps"] = float(good.sum() / duration) if duration == duration else nan
    return result


def _pct_s(v: np.ndarray) -> dict[str, float]:
    v = v[np.isfinite(v)]
    if not v.size:
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "mean": math.nan}
    p50, p90, p99 = np.percentile(v, (50, 90, 99))  # one partition; the same floats as three calls
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(v.mean())}


def _good_requests(stages: pd.DataFrame, reqs: pd.DataFrame, bounds_ms: dict[str, float]) -> np.ndarray:
    """True per row of ``reqs`` for a completed request within every given bound (vLLM: bound ≥ value).
    A single-token stage has no TPOT (vLLM counts it as 0), so it keeps any TPOT bound."""
    if not len(reqs):
        return np.zeros(0, dtype=bool)
    ok_stage = pd.Series(True, index=stages.index)
    if "ttft" in bounds_ms:
        ok_stage &= stages["ttft_s"] <= bounds_ms["ttft"] / 1e3
    if "tpot" in bounds_ms:
        ok_stage &= stages["tpot_s"].isna() | (stages["tpot_s"] <= bounds_ms["tpot"] / 1e3)
    per_req = ok_stage.groupby(stages["request_id"]).all()
    good = reqs["complete"].to_numpy(dtype=bool) & reqs["request_id"].map(per_req).fillna(False).to_numpy(dtype=bool)
    if "e2el" in bounds_ms:
        good &= (reqs["finish_s"] - reqs["arrival_s"]).to_numpy(dtype=float) <= bounds_ms["e2el"] / 1e3
    return good
