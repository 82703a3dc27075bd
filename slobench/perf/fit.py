"""Fit latency models to measured iterations: roofline efficiencies, or the paper's piecewise-linear form.

A measured row is one iteration: ``(q_lens, ctx_lens, latency_s)`` or ``(q_lens, ctx_lens,
latency_s, spec_steps)`` — a tuple, or a mapping with those keys; a pandas DataFrame with those
columns works too. `fit_roofline` recovers (ηc, ηm, t0) of `RooflineModel` by bounded least squares
on relative residuals (iterations span ~10 ms decodes to ~1 s prefills; relative errors keep the
small ones from being ignored). `fit_piecewise` fits T = max_i(k1_i·n_tokens + k2_i·s + b_i) with
L-BFGS-B, as SLOs-Serve does. Both report R² on the raw latencies; DESIGN.md aims for R² ≥ 0.95.

Identifiability: a profile whose batches are all memory-bound says nothing about ηc (and
vice versa); profile both decode-heavy and prefill-heavy batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares, minimize

from slobench.errors import UserError
from slobench.perf.hardware import GPUSpec
from slobench.perf.models import ModelSpec
from slobench.perf.profiles import PiecewiseLinearModel
from slobench.perf.roofline import RooflineModel


@dataclass(frozen=True)
class FitResult:
    """Fitted roofline efficiencies and goodness of fit."""

    eta_compute: float
    eta_memory: float
    t0_s: float
    r2: float
    n: int

    def model(self, gpu: GPUSpec, model: ModelSpec, tp: int = 1) -> RooflineModel:
        """The fitted `RooflineModel`."""
        return RooflineModel(gpu, model, tp=tp, eta_compute=self.eta_compute, eta_memory=self.eta_memory,
                             t0_s=self.t0_s)


Row = tuple[np.ndarray, np.ndarray, float, int]


def _rows(rows: Any) -> list[Row]:
    """Normalise tuples / mappings / a DataFrame into (q, ctx, latency, spec_steps) rows."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        rows = rows.to_dict("records")
    out: list[Row] = []
    for i, r in enumerate(rows if isinstance(rows, Iterable) else []):
        try:
            if isinstance(r, Mapping):
                q, c, y, s = r["q_lens"], r["ctx_lens"], r["latency_s"], r.get("spec_steps", 0)
            else:
                q, c, y = r[0], r[1], r[2]
                s = r[3] if len(r) > 3 else 0
        except (KeyError, IndexError, TypeError) as exc:
            raise UserError(f"profile row {i}: expected (q_lens, ctx_lens, latency_s[, spec_steps]) ({exc})") from exc
        q_arr = np.asarray(q, dtype=np.int64).reshape(-1)
        c_arr = np.asarray(c, dtype=np.int64).reshape(-1)
        if q_arr.shape != c_arr.shape:
            raise UserError(f"profile row {i}: q_lens and ctx_lens differ in length ({q_arr.size} vs {c_arr.size})")
        y_f = float(y)
        if not np.isfinite(y_f) or y_f <= 0:
            raise UserError(f"profile row {i}: latency_s must be a positive number (got {y})")
        out.append((q_arr, c_arr, y_f, int(s or 0)))
    if len(out) < 3:
        raise UserError(f"need at least 3 measured iterations to fit a latency model (got {len(out)})")
    return out


def r_squared(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination of ``pred`` against ``y``."""
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)


def fit_roofline(rows: Any, gpu: GPUSpec, model: ModelSpec, tp: int = 1) -> FitResult:
    """Least-squares (ηc, ηm, t0) of `RooflineModel` on measured iterations, from several starts."""
    data = _rows(rows)
    y = np.array([r[2] for r in data])

    def predict(x: np.ndarray) -> np.ndarray:
        m = RooflineModel(gpu, model, tp=tp, eta_compute=float(x[0]), eta_memory=float(x[1]), t0_s=float(x[2]))
        return np.array([m.batch_latency_s(q, c, s) for q, c, _, s in data])

    def resid(x: np.ndarray) -> np.ndarray:
        return (predict(x) - y) / y

    lo, hi = [0.01, 0.01, 0.0], [1.0, 1.0, 1.0]
    best = None
    for x0 in ([0.5, 0.8, 5e-3], [0.3, 0.5, 1e-2], [0.8, 0.95, 1e-3]):
        res = least_squares(resid, x0, bounds=(lo, hi), x_scale=[0.1, 0.1, 1e-3], xtol=1e-12, ftol=1e-12)
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    x = best.x
    return FitResult(float(x[0]), float(x[1]), float(x[2]), r_squared(y, predict(x)), len(data))


def fit_piecewise(rows: Any, pieces: int = 1, seed: int = 0, name: str = "fitted",
                  kv_tokens: int = 0, extra: bool = False) -> tuple[PiecewiseLinearModel, float]:
    """Fit T(n, s) = max_i(k1_i·n + k2_i·s + b_i), coefficients ≥ 0, by L-BFGS-B (as SLOs-Serve does).

    Features are scaled (n per 1k tokens) so the optimiser sees O(1) numbers; a 2-piece fit starts
    from a split of the data at several token counts plus seeded random starts and keeps the best.
    ``kv_tokens`` is passed to the returned model (the fit itself knows nothing about memory).
    ``extra`` adds ``per_seq_s·sequences + per_ctx_token_s·Σctx`` outside the max (both ≥ 0), the terms a
    decode-heavy batch pays beyond its token count (`PiecewiseLinearModel`).
    """
    if pieces not in (1, 2):
        raise UserError(f"pieces must be 1 or 2 (got {pieces})")
    data = _rows(rows)
    n = np.array([float(r[0].sum()) for r in data])
    s = np.array([float(r[3]) for r in data])
    y = np.array([r[2] for r in data])
    n_scale, ctx_scale = 1000.0, 100_000.0
    a = np.column_stack([n / n_scale, s, np.ones_like(n)])  # per-piece design matrix
    # shared terms outside the max: sequences, Σctx per 100k tokens (none without ``extra``)
    e = (np.column_stack([[float(r[0].size) for r in data], [float(r[1].sum()) / ctx_scale for r in data]])
         if extra else np.zeros((len(y), 0)))
    n_extra = e.shape[1]
    y_var = float(np.var(y)) or 1.0

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        k = theta[: 3 * pieces].reshape(pieces, 3)
        phi = theta[3 * pieces:]
        preds = a @ k.T  # rows × pieces
        arg = preds.argmax(axis=1)
        err = preds[np.arange(len(y)), arg] + e @ phi - y
        grad = np.zeros_like(k)
        for i in range(pieces):
            sel = arg == i
            grad[i] = 2.0 * (err[sel] @ a[sel]) / len(y)
        g_phi = 2.0 * (err @ e) / len(y)
        return float(err @ err) / len(y) / y_var, np.concatenate([grad.reshape(-1), g_phi]) / y_var

    def lstsq(sel: np.ndarray) -> np.ndarray:
        if sel.sum() < 3:
            sel = np.ones_like(sel)
        coef, *_ = np.linalg.lstsq(a[sel], y[sel], rcond=None)
        return np.maximum(coef, 0.0)

    starts: list[np.ndarray] = [np.tile(lstsq(np.ones(len(y), dtype=bool)), pieces)]
    if pieces == 2:
        for qtl in (0.1, 0.25, 0.5, 0.75, 0.9):
            cut = np.quantile(n, qtl)
            starts.append(np.concatenate([lstsq(n <= cut), lstsq(n > cut)]))
        rng = np.random.default_rng(seed)
        base = starts[0][:3]
        for _ in range(4):
            starts.append(np.concatenate([base * rng.uniform(0.5, 1.5, 3), base * rng.uniform(0.5, 1.5, 3)]))
    bounds = [(0.0, None)] * (3 * pieces + n_extra)
    if n_extra:
        starts = [np.concatenate([x0, np.zeros(n_extra)]) for x0 in starts]
    best = None
    for x0 in starts:
        res = minimize(loss_grad, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    k = best.x[: 3 * pieces].reshape(pieces, 3)
    phi = best.x[3 * pieces:]
    fitted = [(float(k1 / n_scale), float(k2), float(b)) for k1, k2, b in k]
    per_seq, per_ctx = (float(phi[0]), float(phi[1]) / ctx_scale) if n_extra else (0.0, 0.0)
    model = PiecewiseLinearModel(fitted, kv_tokens, name=name, per_seq_s=per_seq, per_ctx_token_s=per_ctx)
    pred = np.array([model.batch_latency_s(q, c, si) for q, c, _, si in data])
    return model, r_squared(y, pred)
