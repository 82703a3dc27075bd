"""Arrival processes: when requests reach the server.

Pure numpy functions of a seeded ``Generator`` so a spec + seed always gives the same stream.
Every function returns ``n`` sorted arrival times (seconds) with the first at 0, so a run's
duration is ``times[-1]`` and its achieved rate is ``(n-1)/times[-1]`` (SOURCES.md's convention).
"""

from __future__ import annotations

import math

import numpy as np


def _start_at_zero(times: np.ndarray) -> np.ndarray:
    times = np.sort(np.asarray(times, dtype=float))
    return times - times[0] if times.size else times


def poisson(rng: np.random.Generator, rate_rps: float, n: int) -> np.ndarray:
    """Poisson process: exponential inter-arrival times (IAT CV = 1), the paper's default."""
    if n <= 0:
        return np.zeros(0)
    iat = rng.exponential(1.0 / rate_rps, size=n - 1)
    return np.concatenate([[0.0], np.cumsum(iat)])


def gamma(rng: np.random.Generator, rate_rps: float, cv: float, n: int) -> np.ndarray:
    """Gamma renewal process with IAT coefficient of variation ``cv`` (cv=1 is Poisson).

    Shape k = 1/cv², scale = 1/(rate·k) keeps the mean IAT at 1/rate while cv > 1 makes
    bursts (many short gaps, a few long ones) — the knob vLLM's benchmark calls burstiness.
    """
    if n <= 0:
        return np.zeros(0)
    shape = 1.0 / (cv * cv)
    iat = rng.gamma(shape, 1.0 / (rate_rps * shape), size=n - 1)
    return np.concatenate([[0.0], np.cumsum(iat)])


def bursts(rng: np.random.Generator, rate_rps: float, mean_burst_size: float, n: int,
           spread_s: float = 0.0) -> np.ndarray:
    """On/off bursts as in SLOs-Serve: burst starts form a Poisson process, sizes are Geometric.

    Bursts start at rate ``rate_rps / mean_burst_size`` so the request rate stays ``rate_rps``;
    each burst has Geometric(1/mean_burst_size) ≥ 1 requests arriving together (or spread by
    exponential gaps of mean ``spread_s`` when > 0, to avoid exact ties).
    """
    if n <= 0:
        return np.zeros(0)
    p = min(1.0, 1.0 / mean_burst_size)
    out: list[np.ndarray] = []
    t = 0.0
    total = 0
    burst_rate = rate_rps / mean_burst_size
    while total < n:
        size = int(rng.geometric(p))
        offsets = np.zeros(size)
        if spread_s > 0 and size > 1:
            offsets[1:] = np.cumsum(rng.exponential(spread_s, size=size - 1))
        out.append(t + offsets)
        total += size
        t += rng.exponential(1.0 / burst_rate)
    return _start_at_zero(np.concatenate(out)[:n])


def trace_replay(rng: np.random.Generator, timestamps_s: np.ndarray, rate_rps: float, n: int,
                 random_start: bool = True, *, jitter_s: float = 0.0,
                 mode: str = "time") -> tuple[np.ndarray, np.ndarray]:
    """Replay ``n`` arrivals of a real trace: time-scaled to ``rate_rps`` (``mode="time"``), thinned to it
    (``"thin"``) or at the recorded rate (``"native"``).

    The window starts at a seeded random row (or row 0) and wraps around the trace end (one mean
    IAT between copies), so bursts and lulls of the original are kept, only squeezed or stretched.
    ``time``: the window's *own* rate is rescaled to the target (not the whole trace's) so a capacity probe
    at rate r really offers r req/s even when the window happens to be a busy part of the trace.
    ``thin``: real time is kept and each row is kept with probability ``rate_rps / native`` (native = the
    whole trace's rate, which the caller checks is ≥ the target): the offered rate is the target on
    average over the trace, while a window keeps the trace's own busy and quiet stretches in seconds.
    ``native``: the window as recorded; ``rate_rps`` is ignored.
    ``jitter_s`` > 0 adds a seeded U[0, jitter_s) offset to every arrival (in the trace's time, before any
    scaling) and re-sorts: requests logged in one quantised tick are spread over it instead of arriving
    together. With the defaults, the random stream is used exactly as before these options existed.

    Returns (arrival times starting at 0, row indices into ``timestamps_s`` as given, sorted or not)
    so callers can pair each arrival with the lengths of the same trace row (Azure traces replay "as is").
    """
    raw_ts = np.asarray(timestamps_s, dtype=float)
    # Stable order: rows of a sorted trace keep their indices; an unsorted file's rows are replayed
    # in time order but still reported by their own row index (so lengths stay paired).
    order = np.argsort(raw_ts, kind="stable")
    ts = raw_ts[order]
    m = ts.size
    if n <= 0 or m == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    start = int(rng.integers(0, m)) if random_start else 0
    if mode == "thin":
        keep_p = min(1.0, rate_rps / native_rate(ts))
        if not keep_p > 0:  # a trace without a span (the caller refuses those) would never fill the window
            raise ValueError("thinning needs a trace with a positive span and a positive rate")
        pos_parts: list[np.ndarray] = []
        got, nxt = 0, start
        while got < n:  # draw rows in chunks until n are kept (≈ n / keep_p rows)
            k = int(math.ceil((n - got) / keep_p * 1.1)) + 16
            pos = nxt + np.arange(k)
            kept = pos[rng.random(k) < keep_p]
            pos_parts.append(kept)
            got += kept.size
            nxt += k
        positions = np.concatenate(pos_parts)[:n]
    else:
        positions = start + np.arange(n)
    idx = positions % m
    wraps = positions // m
    period = (ts[-1] - ts[0]) + (ts[-1] - ts[0]) / max(m - 1, 1)  # span + one mean IAT
    raw = ts[idx] - ts[0] + wraps * period
    rows = order[idx].astype(np.int64)
    if jitter_s > 0:
        raw = raw + rng.uniform(0.0, jitter_s, size=n)
        resort = np.argsort(raw, kind="stable")
        raw, rows = raw[resort], rows[resort]
    raw = raw - raw[0]
    span = raw[-1]
    if mode == "time" and n > 1 and span > 0:
        raw = raw * ((n - 1) / rate_rps) / span
    return raw, rows


def native_rate(timestamps_s: np.ndarray) -> float:
    """A trace's recorded rate, (rows − 1) / span, in req/s (nan when it has no span)."""
    ts = np.asarray(timestamps_s, dtype=float)
    span = float(ts.max() - ts.min()) if ts.size else 0.0
    return (ts.size - 1) / span if span > 0 else float("nan")


def quantisation_tick_s(timestamps_s: np.ndarray) -> float:
    """The smallest positive gap between distinct times: a quantised trace's tick (``jitter_s: auto``)."""
    distinct = np.unique(np.asarray(timestamps_s, dtype=float))
    gaps = np.diff(distinct)
    return float(gaps.min()) if gaps.size else 0.0


def iat_quantiles(times_s: np.ndarray, qs: tuple[float, ...] = (50, 90, 99),
                  near_zero_s: float = 1e-3) -> tuple[np.ndarray, float]:
    """Inter-arrival-time percentiles (s) and the share of gaps below ``near_zero_s`` (ties of a
    quantised log show up as a large share of near-zero gaps, which the CV alone does not reveal)."""
    iat = np.diff(np.sort(np.asarray(times_s, dtype=float)))
    if iat.size == 0:
        return np.full(len(qs), np.nan), float("nan")
    return np.percentile(iat, qs), float(np.mean(iat < near_zero_s))


def iat_cv(times_s: np.ndarray) -> float:
    """Coefficient of variation of the inter-arrival times (1 for Poisson)."""
    iat = np.diff(np.sort(np.asarray(times_s, dtype=float)))
    if iat.size < 2 or iat.mean() == 0:
        return float("nan")
    return float(iat.std() / iat.mean())
