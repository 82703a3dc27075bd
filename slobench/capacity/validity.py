"""Steady-state evidence of one probe and the checks that judge it (docs/capacity.md "Validity").

A probe measures a replica in steady state only if the load it offered could be carried: the queue did
not keep growing over the measured window, the run drained soon after the last arrival, and the offered
tokens per second are within what the latency model can compute at all. Each question is a pure function
of the run's records (``backlog_growth``, ``drain_ratio``, ``offered_tokens``) or of the latency model
(``ceiling_tokens_per_s``), and each check (``check_backlog``, ``check_drain``, ``check_ceiling``) turns the
number into an INVALID reason or None. On real engines one more question is about the measurement itself:
did the token timestamps come in bursts (``burst_share``, ``check_bursts``), i.e. does the client's clock say
when the server sent the tokens at all. `slobench.capacity.execute.probe_result` computes the evidence for
every probe, whichever command runs it; `slobench.capacity.search.check_validity` applies the checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from slobench.metrics.attainment import TOLERANCE
from slobench.metrics.records import Admission

MAX_BATCH_TOKENS = 8192  # vLLM V1's max_num_batched_tokens, the engine default every policy gets
MAX_BATCH_SEQS = 1024  # vLLM V1's max_num_seqs
DECLINED = (Admission.BEST_EFFORT.value, Admission.REJECTED.value)  # admission outcomes the drain check leaves out


@dataclass(frozen=True)
class Backlog:
    """Requests in the system (arrived, not yet finished) over the measured window ``[t0, t1]``."""

    growth: float  # least-squares slope of the in-system count × window length (requests)
    start: int  # in the system at t0
    end: int  # in the system at t1
    mean: float  # time-average in the system
    arrivals: int  # requests arriving inside the window


def request_finish_times(stages: pd.DataFrame) -> pd.DataFrame:
    """One row per request: ``arrival_s`` and ``finish_s`` (when it left the system).

    A request leaves with its last token; one that got no token but ended (rejected, failed) leaves at its
    arrival (it holds no place in the queue); one unfinished or timed out never leaves (``inf``).
    """
    last = _last_tokens(stages)
    open_ = stages["status"].isin(["unfinished", "timeout"]).to_numpy()
    ids, first, inverse = np.unique(stages["request_id"].to_numpy(), return_index=True, return_inverse=True)
    arrival = stages["arrival_s"].to_numpy(dtype=float)[first]
    req_last = np.full(ids.size, -np.inf)
    np.maximum.at(req_last, inverse, np.where(np.isnan(last), -np.inf, last))
    req_open = np.zeros(ids.size, dtype=bool)
    np.logical_or.at(req_open, inverse, open_)
    finish = np.where(np.isfinite(req_last), req_last, arrival)
    finish = np.where(req_open, math.inf, finish)
    return pd.DataFrame({"request_id": ids, "arrival_s": arrival, "finish_s": finish})


def _last_tokens(stages: pd.DataFrame) -> np.ndarray:
    """Each stage's last token time (NaN when it produced none)."""
    return np.fromiter((float(t[-1]) if t is not None and len(t) else math.nan for t in stages["token_times_s"]),
                       dtype=float, count=len(stages))


def backlog_growth(arrival_s: np.ndarray, finish_s: np.ndarray, t0: float, t1: float, samples: int = 256,
                   fit_from: float = 0.5) -> Backlog:
    """How much the number of requests in the system grew over ``[t0, t1]`` (pure).

    The count n(t) = arrived by t − finished by t is sampled at ``samples`` evenly spaced times of the
    window's last ``1 − fit_from`` share (default: its second half); ``growth`` is the least-squares
    slope there times the whole window's length, so neither a burst at one end nor the replica still
    filling up at the start decides it (measured: slos-serve × chatbot at 19–21 req/s needs ~25 s to
    level off, longer than a 10% warm-up of a 60 s probe). A stable queue fluctuates around a level
    (growth ≈ 0); an overloaded one grows by (λ − μ)·T.
    """
    arr = np.sort(np.asarray(arrival_s, dtype=float))
    fin = np.sort(np.asarray(finish_s, dtype=float))
    inside = int(((arr >= t0) & (arr <= t1)).sum())
    if not t1 > t0:
        return Backlog(0.0, 0, 0, 0.0, inside)
    ts = np.linspace(t0 + fit_from * (t1 - t0), t1, samples)
    n = np.searchsorted(arr, ts, side="right") - np.searchsorted(fin, ts, side="right")
    slope = float(np.polyfit(ts - ts[0], n.astype(float), 1)[0])
    start = int(np.searchsorted(arr, t0, side="right") - np.searchsorted(fin, t0, side="right"))
    return Backlog(slope * (t1 - t0), start, int(n[-1]), float(n.mean()), inside)


def drain_ratio(stages: pd.DataFrame, measured: np.ndarray) -> float | None:
    """How late the measured requests that finished during the drain were, in units of their own SLO (pure).

    The drain is the time after the run's last arrival. Of the measured stages whose last token came
    then (or, when none did, the one that finished last), take the largest lateness: last token minus its
    deadline (stage start + TTFT SLO + (n − 1)·TPOT SLO, with the 5% tolerance of the attainment metric),
    divided by the stage's e2e SLO (TTFT SLO + (n − 1)·TPOT SLO). ≤ 0: on time; 5: a request needed five
    more of its SLOs to finish, because the queue ahead of it only cleared once arrivals stopped.
    None: no measured stage produced a token.

    Only work the server took on counts: stages its admission control declined (``admission`` best-effort
    or rejected) are left out. Such a request is already a miss once it is late, however late, and a policy
    that declines a few requests serves them only with leftover capacity, so they may wait until arrivals
    stop without the committed work falling behind (measured: `slo-aware` routing at R = 4 on coding, 97–98%
    attainment, INVALID by 3–25× on declined requests alone). Whether the declined requests pile up faster
    than the replica clears them is the backlog check's question, which counts every request.
    """
    last = _last_tokens(stages)
    ok = np.asarray(measured, dtype=bool) & ~np.isnan(last)
    if "admission" in stages.columns:
        ok &= ~stages["admission"].isin(DECLINED).to_numpy()
    if not ok.any():
        return None
    after = ok & (last > float(stages["arrival_s"].max()))
    pick = after if after.any() else (ok & (last == np.max(np.where(ok, last, -np.inf))))
    n = np.maximum(stages["output_tokens"].to_numpy(dtype=float), 1.0)
    e2e = stages["ttft_slo_s"].to_numpy(dtype=float) + (n - 1) * stages["tpot_slo_s"].to_numpy(dtype=float)
    due = stages["stage_start_s"].to_numpy(dtype=float) + TOLERANCE * e2e
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(e2e > 0, (last - due) / e2e, np.nan)
    vals = ratio[pick]
    vals = vals[~np.isnan(vals)]
    return float(vals.max()) if vals.size else None


@dataclass(frozen=True)
class OfferedTokens:
    """The token work a run's arrivals offered (every request, warm-up included)."""

    prefill: int  # new prompt tokens of every stage
    decode: int  # output tokens of every stage
    decode_ctx: float  # mean context (tokens in the KV cache) a decode step attends to
    span_s: float  # first to last arrival

    @property
    def per_s(self) -> float:
        return (self.prefill + self.decode) / self.span_s if self.span_s > 0 else math.nan


def offered_tokens(stages: pd.DataFrame) -> OfferedTokens | None:
    """Prefill and decode tokens offered per second by the run's stages (pure; None without a span)."""
    if len(stages) < 2:
        return None
    s = stages.sort_values(["request_id", "stage_idx"])
    prompt = s["prompt_tokens"].to_numpy(dtype=float)
    out = s["output_tokens"].to_numpy(dtype=float)
    before = s.assign(tok=prompt + out).groupby("request_id")["tok"].cumsum().to_numpy() - (prompt + out)
    ctx = before + prompt + out / 2  # mean context over the stage's decode steps
    decode = float(out.sum())
    arrivals = s["arrival_s"].to_numpy(dtype=float)
    span = float(arrivals.max() - arrivals.min())
    if not span > 0:
        return None
    return OfferedTokens(int(prompt.sum()), int(decode), float((out * ctx).sum() / decode) if decode else 0.0, span)


def ceiling_tokens_per_s(perf: Any, offered: OfferedTokens, *, max_tokens: int = MAX_BATCH_TOKENS,
                         max_seqs: int = MAX_BATCH_SEQS) -> float:
    """The most tokens per second one replica can compute for this prefill/decode mix (latency model).

    Two packings, the better one counts: every iteration a full ``max_tokens`` batch holding the offered
    mix (decodes ≤ ``max_seqs`` sequences and ≤ what the KV cache holds at the mean decode context, the
    rest prefill), or prefill-only and decode-only full batches in the offered proportion. Iterations of a
    real run are rarely that full, so a run offering more than this cannot be carried whatever the policy.
    """
    total = offered.prefill + offered.decode
    if total <= 0:
        return math.inf
    share_d = offered.decode / total
    ctx = max(int(round(offered.decode_ctx)), 1)
    kv_seqs = max(1, int(perf.kv_capacity_tokens() // ctx))
    d = min(max_seqs, kv_seqs, int(round(max_tokens * share_d)))
    p = min(max_tokens - d, int(round(d * (1 - share_d) / share_d))) if share_d > 0 else max_tokens
    best = 0.0
    if d + p > 0:
        q = np.array(([p] if p else []) + [1] * d, dtype=np.int64)
        c = np.array(([0] if p else []) + [ctx] * d, dtype=np.int64)
        best = (d + p) / float(perf.batch_latency_s(q, c))
    # Separate full batches: prefill in 1024-token chunks, decode at the most sequences that fit.
    chunks = max_tokens // 1024
    t_p = float(perf.batch_latency_s(np.full(chunks, 1024, dtype=np.int64), np.zeros(chunks, dtype=np.int64)))
    per_p = t_p / (chunks * 1024)
    dd = max(1, min(max_seqs, kv_seqs, max_tokens))
    per_d = float(perf.batch_latency_s(np.ones(dd, dtype=np.int64), np.full(dd, ctx, dtype=np.int64))) / dd
    best = max(best, 1.0 / ((1 - share_d) * per_p + share_d * per_d))
    return best


def kv_full_share(iterations: pd.DataFrame, total_blocks: int, t0: float, t1: float, *,
                  level: float = 0.95) -> float | None:
    """Share of the measured window ``[t0, t1]`` during which a replica's KV cache held at least ``level`` of
    its ``total_blocks`` (the largest share over replicas; None without a KV log).

    Each logged iteration's ``kv_used_blocks`` holds from its end (``time_s``) to the next iteration's end.
    """
    if total_blocks <= 0 or not t1 > t0 or not {"time_s", "kv_used_blocks"} <= set(iterations.columns):
        return None
    groups = iterations.groupby("replica") if "replica" in iterations.columns else [(0, iterations)]
    best = 0.0
    for _, it in groups:
        t = it["time_s"].to_numpy(dtype=float)
        kv = it["kv_used_blocks"].to_numpy(dtype=float)
        order = np.argsort(t, kind="stable")
        t, kv = t[order], kv[order]
        start = np.clip(t, t0, t1)
        end = np.clip(np.append(t[1:], t1), t0, t1)
        full = kv >= level * total_blocks
        best = max(best, float((end - start)[full].sum()) / (t1 - t0))
    return best


# --- the checks: evidence → INVALID reason or None -------------------------------------------------------

def check_backlog(growth: float | None, arrivals: int | None, mean_in_system: float | None, *,
                  max_share: float = 0.10, sigmas: float = 4.0) -> str | None:
    """INVALID when the in-system count grew by more than ``max_share`` of the window's arrivals (the
    replica finished fewer requests than arrived) and by more than ``sigmas``·√(mean count) (a stable
    queue's own fluctuation)."""
    if growth is None or not arrivals:
        return None
    limit = max(max_share * arrivals, sigmas * math.sqrt(max(mean_in_system or 0.0, 1.0)))
    if growth > limit:
        return (f"backlog grew by {growth:.0f} requests over the measured window ({growth / arrivals:.0%} of its "
                f"{arrivals} arrivals): the queue does not drain")
    return None


def check_drain(ratio: float | None, *, max_ratio: float = 3.0) -> str | None:
    """INVALID when a measured request finishing after the last arrival was more than ``max_ratio`` of its
    own e2e SLO late (the run only ended because arrivals stopped)."""
    if ratio is not None and ratio > max_ratio:
        return (f"a measured request finishing after the last arrival was {ratio:.1f}× its e2e SLO after its "
                f"deadline (> {max_ratio:g}×): the queue does not drain")
    return None


def check_kv_full(share: float | None, *, max_share: float = 0.01) -> str | None:
    """INVALID when the KV cache was (nearly) full for more than ``max_share`` of the measured window: there a
    burst forces recompute preemptions, whose re-prefill slows every iteration and forces more (metastable;
    docs/capacity.md "KV headroom"), so the attainment depends on whether a cascade started in this run."""
    if share is not None and share > max_share:
        return (f"KV cache ≥ 95% full for {share:.1%} of the measured window (> {max_share:.0%}): at its KV limit "
                "a burst forces preemptions that can cascade; not a steady state")
    return None


def check_ceiling(offered_tok_s: float | None, ceiling_tok_s: float | None) -> str | None:
    """INVALID when the offered tokens per second exceed the modelled compute ceiling of the replicas."""
    if offered_tok_s is not None and ceiling_tok_s is not None and offered_tok_s > ceiling_tok_s:
        return (f"offered load {offered_tok_s:,.0f} tok/s above the replicas' ceiling {ceiling_tok_s:,.0f} tok/s "
                "(latency model, full batches)")
    return None


# --- real engines: token timestamps that came in bursts ---------------------------------------------------

BURST_GAP_S = 0.001  # chunks of one stream closer than this were read back to back, not produced apart
BURST_MIN_TOKENS = 5  # a clump is a burst from this many tokens on (4 token-times of delay at least)


def clumps(token_times_s: Any, *, gap_s: float = BURST_GAP_S) -> list[tuple[int, int]]:
    """A stage's tokens as clumps: ``(tokens, chunks)`` per run of chunks whose client timestamps lie less than
    ``gap_s`` after the previous chunk's (pure).

    A chunk is the tokens sharing one timestamp exactly: the load generator stamps every token of a chunk with
    the chunk's arrival (`slobench.engines.openai.protocol.stream_generation`), so a speculative step's tokens
    or a server's stream batching are one chunk, never a clump by themselves.
    """
    t = np.asarray(token_times_s if token_times_s is not None else [], dtype=float)
    if t.size == 0:
        return []
    stamps, counts = np.unique(t, return_counts=True)
    breaks = np.flatnonzero(np.diff(stamps) >= gap_s) + 1
    return [(int(c.sum()), int(c.size)) for c in np.split(counts, breaks)]


def burst_share(stages: pd.DataFrame, measured: np.ndarray, *, gap_s: float = BURST_GAP_S,
                min_tokens: int = BURST_MIN_TOKENS) -> float | None:
    """Share of the measured stages' output tokens that arrived in bursts (pure; None without tokens).

    A burst is a clump (`clumps`) of at least two chunks and ``min_tokens`` tokens: chunks of one stream that
    reached the client within ``gap_s`` of each other although a server sends one chunk per engine step, and a
    step takes milliseconds (tens on a CPU). That happens when the load generator (or the server's streaming
    front end) stalled and then read what had piled up at once, so the tokens carry the time they were read,
    not the time they were produced: TPOT and inter-token gaps measured there are wrong. A single chunk of many
    tokens is not counted (speculative decoding and stream batching send those on a healthy server).
    """
    tok = 0
    burst = 0
    for times, keep in zip(stages["token_times_s"], np.asarray(measured, dtype=bool), strict=True):
        if not keep or times is None or not len(times):
            continue
        for n_tok, n_chunks in clumps(times, gap_s=gap_s):
            tok += n_tok
            if n_chunks >= 2 and n_tok >= min_tokens:
                burst += n_tok
    return burst / tok if tok else None


BURST_SHARE_LIMIT = 0.05  # a probe gated on bursts (`ValidityLimits.max_burst_share`) allows this share


def check_bursts(share: float | None, *, max_share: float = BURST_SHARE_LIMIT, gap_s: float = BURST_GAP_S,
                 min_tokens: int = BURST_MIN_TOKENS) -> str | None:
    """INVALID when more than ``max_share`` of a real engine's measured tokens arrived in bursts: their client
    timestamps say when the client read them, not when the server sent them (docs/capacity.md "Validity")."""
    if share is not None and share > max_share:
        return (f"{share:.1%} of the measured tokens arrived in bursts (≥ {min_tokens} tokens in chunks "
                f"< {gap_s * 1e3:g} ms apart; > {max_share:.0%}): the client (or the server's stream) stalled, so "
                "token timestamps and TPOT are not the server's")
    return None
