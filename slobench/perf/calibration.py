"""From measured iterations and zero-load requests to a profile: the fit, its honest quality, the front-end cost.

Pure (no engine, no I/O): `slobench.engines.vllm.calibrate` measures, this module fits, `slobench.perf.profile_file`
stores. Three steps:

1. **Hold back** a seeded ~20% of the iterations; fit `fit_piecewise` on the rest in four forms — 1 or 2 pieces,
   without or with the per-sequence and Σcontext terms — and keep the one with the lowest median
   |predicted/measured − 1| on the held-back points; a more complex form must beat the simpler ones by more
   than 1 percentage point (noise should not buy parameters). Relative error, not R², chooses: R² is ruled by
   the largest iterations (second-long prefills), while a 10 ms decode step sets TPOT just as much.
2. **Quality on the held-back points**: R² and |predicted/measured − 1| percentiles. A profile whose held-back
   R² is poor says so in its file and in calibrate's table; it is still written (a user may want to look).
3. **Front-end cost**: for each zero-load request, client TTFT − the engine's own time for that request's prefill
   iteration (its ``schedule()`` + execution + output processing) is what the request spent outside iterations
   (HTTP, JSON, tokenising the id list, the API server ↔ engine-core hop, detokenising, streaming back). A
   non-negative least-squares line against prompt length gives ``constant_s`` and ``per_prompt_token_s``.
   ``per_output_token_s`` is left 0: at zero load the client's inter-token gaps match the engine's steps within
   noise on this path, so no per-token cost is charged beyond the constant (docs/calibration.md).

Against an OpenAI endpoint there are no iterations to fit: `fit_client_visible` fits what its client sees
(zero-load TTFT against prompt length, inter-token latency against concurrency) with `fit_line`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import nnls

from slobench.errors import UserError
from slobench.perf.fit import fit_piecewise, r_squared
from slobench.perf.profile_file import ClientVisibleSection, ErrorPercentiles, FitSection, FrontendCost, LinearFit
from slobench.perf.profiles import PiecewiseLinearModel

HOLDOUT_SHARE = 0.2
MIN_ITERATIONS = 8  # below this a fit (and a held-back share of it) means nothing


@dataclass(frozen=True)
class ZeroLoadSample:
    """One request sent alone: its prompt length, what the client saw, what the engine spent on its prefill."""

    prompt_tokens: int
    client_ttft_s: float
    engine_prefill_s: float

    @property
    def frontend_s(self) -> float:
        return self.client_ttft_s - self.engine_prefill_s


@dataclass
class CalibrationFit:
    """The fitted model and how good it is."""

    model: PiecewiseLinearModel
    fit: FitSection
    frontend: FrontendCost
    holdout_rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def iteration_rows(lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Iterations-file lines → `fit` rows (q_lens, ctx_lens, latency_s, spec_steps); lines without a batch
    or a positive latency are dropped (an aborted step)."""
    rows = []
    for ln in lines:
        q, ctx, lat = ln.get("q"), ln.get("ctx"), ln.get("latency_s")
        if not q or lat is None or not lat > 0:
            continue
        spec = ln.get("spec") or [0]
        kind = "decode" if not ln.get("prefill_tokens") else "prefill" if not ln.get("decode_seqs") else "mixed"
        rows.append({"q_lens": list(q), "ctx_lens": list(ctx), "latency_s": float(lat), "spec_steps": max(spec),
                     "kind": kind})
    return rows


def _abs_err_pct(model: PiecewiseLinearModel, rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    y = np.array([r["latency_s"] for r in rows])
    pred = np.array([model.batch_latency_s(r["q_lens"], r["ctx_lens"], int(r["spec_steps"])) for r in rows])
    return y, pred


def split_holdout(n: int, share: float = HOLDOUT_SHARE, seed: int = 0) -> np.ndarray:
    """A seeded boolean mask, True = held back: ``share`` of the points, at least one, always ≥ 3 left to fit."""
    rng = np.random.default_rng(seed)
    k = max(1, int(round(n * share)))
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=min(k, n - 3), replace=False)] = True
    return mask


def fit_iterations(rows: Sequence[dict[str, Any]], *, name: str, kv_tokens: int, seed: int = 0) -> CalibrationFit:
    """Fit on ~80% of ``rows``, judge on the rest (see module docstring)."""
    if len(rows) < MIN_ITERATIONS:
        raise UserError(f"calibrate: only {len(rows)} iterations were recorded (need ≥ {MIN_ITERATIONS}); "
                        "measure more grid points (--points) or check that the server records iterations")
    mask = split_holdout(len(rows), seed=seed)
    train = [r for r, m in zip(rows, mask, strict=True) if not m]
    held = [r for r, m in zip(rows, mask, strict=True) if m]
    best: tuple[float, PiecewiseLinearModel, float] | None = None
    for pieces, extra in ((1, False), (2, False), (1, True), (2, True)):  # simplest first
        model, r2_train = fit_piecewise(train, pieces=pieces, seed=seed, name=name, kv_tokens=kv_tokens, extra=extra)
        y, pred = _abs_err_pct(model, held)
        p50 = float(np.median(np.abs(pred / y - 1.0))) * 100.0
        if best is None or p50 < best[0] - 1.0:
            best = (p50, model, r2_train)
    assert best is not None
    _, model, r2_train = best
    y, pred = _abs_err_pct(model, held)
    r2_held = r_squared(y, pred) if len(held) > 1 else float("nan")
    err = np.abs(pred / y - 1.0) * 100.0
    fit = FitSection(r2=round(float(r2_held), 4), r2_train=round(float(r2_train), 4), n_train=len(train),
                     n_holdout=len(held),
                     abs_error_pct=ErrorPercentiles(p50=round(float(np.percentile(err, 50)), 2),
                                                    p90=round(float(np.percentile(err, 90)), 2),
                                                    max=round(float(err.max()), 2)))
    fit.bias_pct = bias_by_kind(model, rows)
    fit.repeat_noise_pct = repeat_noise_pct(rows)
    return CalibrationFit(model=model, fit=fit, frontend=FrontendCost(), holdout_rows=held)


def iteration_kind(row: dict[str, Any]) -> str:
    """prefill (no sequence decodes), decode (only decodes) or mixed: the adapter's own classification when the
    row came from an iterations file, else a sequence with 1 token over a non-empty context is a decode."""
    if row.get("kind"):
        return str(row["kind"])
    decoding = [q == 1 and c > 0 for q, c in zip(row["q_lens"], row["ctx_lens"], strict=True)]
    return "decode" if all(decoding) else "prefill" if not any(decoding) else "mixed"


def bias_by_kind(model: PiecewiseLinearModel, rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Median (predicted/measured − 1) in % per `iteration_kind`: a model can fit well overall and still be
    biased where serving spends most of its time (decodes)."""
    out: dict[str, float] = {}
    y, pred = _abs_err_pct(model, rows)
    kinds = np.array([iteration_kind(r) for r in rows])
    for kind in ("prefill", "decode", "mixed"):
        sel = kinds == kind
        if sel.any():
            out[kind] = round(float(np.median(pred[sel] / y[sel] - 1.0) * 100.0), 1)
    return out


def repeat_noise_pct(rows: Sequence[dict[str, Any]]) -> float | None:
    """Median |y/median(group) − 1| in % over groups of identical batches (same q and ctx per sequence) seen
    more than once; None when no batch repeated."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((tuple(r["q_lens"]), tuple(r["ctx_lens"])), []).append(r["latency_s"])
    dev = [abs(v / float(np.median(vs)) - 1.0) for vs in groups.values() if len(vs) > 1 for v in vs]
    return round(float(np.median(dev)) * 100.0, 1) if dev else None


def fit_frontend(samples: Sequence[ZeroLoadSample]) -> tuple[FrontendCost, float | None]:
    """``constant_s + per_prompt_token_s·prompt`` by non-negative least squares on the zero-load samples, and
    its R² (None with fewer than 3 samples or one prompt length: then only the median is kept as a constant)."""
    if not samples:
        return FrontendCost(), None
    p = np.array([s.prompt_tokens for s in samples], dtype=float)
    y = np.array([max(s.frontend_s, 0.0) for s in samples])
    if len(samples) < 3 or len(set(p)) < 2:
        return FrontendCost(constant_s=float(np.median(y))), None
    a = np.column_stack([np.ones_like(p), p])
    coef, _ = nnls(a, y)
    r2 = r_squared(y, a @ coef)
    return FrontendCost(constant_s=float(coef[0]), per_prompt_token_s=float(coef[1])), round(float(r2), 4)


# --- client-visible fits (an OpenAI endpoint: no iterations to see) ----------------------------------------

def fit_line(points: Sequence[tuple[float, float]]) -> LinearFit:
    """``y = a + b·x`` with a, b ≥ 0 by non-negative least squares (a latency cannot fall with load or length),
    and its R² (None with fewer than 3 points or one distinct x; then ``a`` is the median and ``b`` 0)."""
    if not points:
        raise UserError("calibrate: nothing was measured; no request came back from the endpoint")
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    if len(points) < 3 or len(set(x)) < 2:
        return LinearFit(intercept_s=float(max(np.median(y), 0.0)), slope_s=0.0, r2=None, n=len(points))
    a = np.column_stack([np.ones_like(x), x])
    coef, _ = nnls(a, y)
    r2 = r_squared(y, a @ coef)
    # R² of a flat line is ≈ 0 whatever the noise: it says "no dependence on x", not "a bad fit".
    return LinearFit(intercept_s=float(coef[0]), slope_s=float(coef[1]),
                     r2=round(float(r2), 4) + 0.0 if np.isfinite(r2) else None, n=len(points))


def fit_client_visible(ttft_points: Sequence[tuple[int, float]],
                       itl_points: Sequence[tuple[int, float]]) -> ClientVisibleSection:
    """What an OpenAI endpoint's client can fit: zero-load TTFT = a + b·prompt tokens (one request at a time, so
    no queueing; a = the endpoint's fixed cost plus a short prefill, b = its prefill cost per token) and
    inter-token latency = d + e·requests in flight (d ≈ one decode step plus the stream's per-token cost, e = what
    each more sequence in the batch adds). Neither separates the front end from the engine, nor shows batch
    shapes: that is why such a profile cannot drive the simulator (`slobench.perf.profile_file.to_model`)."""
    return ClientVisibleSection(ttft=fit_line(ttft_points), itl=fit_line(itl_points),
                                ttft_points=[(int(p), round(float(t), 6)) for p, t in ttft_points],
                                itl_points=[(int(c), round(float(t), 6)) for c, t in itl_points])
