"""Why a qualification point is not VALID: machine-readable reason codes and the pure checks behind them.

A point (one capacity probe or one fixed-concurrency run) is VALID when `judge_point` returns no reason.
Each check reads only `PointEvidence`, which `evidence_from_summary` fills from a run's ``summary.json``
(`slobench.report.summary.RunSummary`), so a result folder can be re-judged later without rerunning it. Codes
are stable strings (they go into results files and are what a report or a CI gate filters on); the detail is
for people.

Modelled on MLPerf LoadGen's "Result is: VALID" (min duration, min queries, early stopping) and on InferenceX's
validity flags; the capacity search's own steady-state checks (`slobench.capacity.search.check_validity`:
backlog growth, drain, compute ceiling, KV full, stopped early) map to codes of their own.

``usage_not_available`` is a NOTE by default (`point_notes`), not a reason: the server returned no token usage,
so ``token_count_mismatch`` cannot be checked, but attainment is computed from the client's own token
timestamps and stays right. Many OpenAI-compatible servers omit streaming usage; refusing every point there would
make the suite unusable against them. A suite that qualifies a stack end to end sets ``require_usage: true``
(standard-v1 does) and then it is a reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from slobench.capacity.search import ProbeResult, ValidityLimits
from slobench.qualify.statistics import PointBound
from slobench.qualify.suite import Rules


class ReasonCode(str, Enum):
    """Why a point is not VALID (``str()`` is the code written to files; a 3.10-safe StrEnum)."""

    TOO_SHORT = "too_short"  # measured span < min_duration_s
    TOO_FEW_REQUESTS = "too_few_requests"  # measured requests < what the statistic needs
    RATE_BELOW_OFFERED = "rate_below_offered"  # open loop: achieved rate; closed loop: concurrency held
    CLIENT_LAG = "client_lag"  # the load generator fell behind its schedule
    ERROR_RATE = "error_rate"  # failed requests above the allowed share
    PREFIX_CACHE_HITS = "prefix_cache_hits"  # cached prompt tokens where the scenario shares no prefix
    TOKEN_COUNT_MISMATCH = "token_count_mismatch"  # the server's usage differs from what the client counted
    USAGE_NOT_AVAILABLE = "usage_not_available"  # NOTE unless rules.require_usage
    UNFINISHED = "unfinished"  # requests still running at the horizon
    BACKLOG_GROWTH = "backlog_growth"  # capacity validity: the queue grew over the window
    NO_DRAIN = "no_drain"  # capacity validity: requests finished only after arrivals stopped
    COMPUTE_CEILING = "compute_ceiling"  # capacity validity: offered tokens/s above the modelled ceiling
    KV_FULL = "kv_full"  # capacity validity: KV cache at its limit for too long
    STOPPED_EARLY = "stopped_early"  # capacity validity: a real-engine probe stopped as a certain FAIL
    CAPACITY_VALIDITY = "capacity_validity"  # any other `check_validity` reason (text in the detail)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


NOTE_CODES = frozenset({ReasonCode.USAGE_NOT_AVAILABLE})  # reported, not invalidating (unless the rules say so)


@dataclass(frozen=True)
class Reason:
    """One reason a point is not VALID (or a note): a stable code and a human detail."""

    code: ReasonCode
    detail: str

    def line(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(frozen=True)
class PointEvidence:
    """What a point's checks read. None: not measured by this engine (the check is skipped), never 0.

    Filled by `evidence_from_summary` from ``summary.json``; the simulator has no client block (no HTTP, no
    usage), so the client fields stay None there.
    """

    duration_s: float | None  # measured arrival (issue) span: warm-up end → last arrival (MLPerf, Endpoints)
    num_requests: int  # requests of the measured window
    num_met: int | None = None  # of them, meeting every SLO
    num_arrivals: int | None = None  # every request of the run, warm-up included
    offered_rate_rps: float | None = None  # the rate asked for (open loop)
    achieved_rate_rps: float | None = None  # the rate the load generator achieved
    client_lag_s: float | None = None  # max send lateness vs the schedule
    requests_failed: int = 0  # failed (HTTP/transport errors; stages with status "failed" on the simulator)
    requests_total: int | None = None  # the denominator of requests_failed, in the same unit
    prefix_cached_tokens: int | None = None  # prompt tokens served from a prefix cache
    prompt_tokens_sent: int | None = None  # token-id prompts the client sent …
    prompt_tokens_reported: int | None = None  # … and what the server's usage said it processed
    usage_mismatches: int | None = None  # responses whose completion-token usage ≠ tokens streamed
    usage_available: bool | None = None  # did the server report usage at all (None: no server, the simulator)
    unfinished: int = 0  # stages unfinished or timed out at the horizon
    requested_concurrency: int | None = None  # closed loop: the cap asked for (None: open loop)
    achieved_concurrency: float | None = None  # closed loop: mean requests in flight (Little's law)
    send_lag_s: float | None = None  # closed loop: the load generator's own lateness, from the slot freeing
    stopped_early: str | None = None  # a real-engine probe stopped as a certain FAIL: why


def _num(v: Any) -> float | None:
    """A finite float, or None (JSON null, NaN, missing)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _int(v: Any) -> int | None:
    x = _num(v)
    return None if x is None else int(x)


def evidence_from_summary(summary: Mapping[str, Any]) -> PointEvidence:
    """The evidence of one run from its ``summary.json`` dict (`RunSummary.as_dict()` or the file read back).

    - duration: last arrival − warm-up (the measured window's issue span; MLPerf counts the last query's
      scheduled time, Endpoints the steady-state window's issue time), else ``bench_duration_s``;
    - failures: the client's ``http_errors`` + ``transport_errors`` over ``requests_sent`` (requests, whole
      run) when a client block exists, else stages with status ``failed`` over all stages (measured window);
    - prefix cache: the simulator's ``engine_info.simulator.prefix_cache.hit_tokens``, or a client's
      ``cached_prompt_tokens`` (a server's ``usage.prompt_tokens_details.cached_tokens``); None when unknown;
    - usage: a client's ``usage_reported`` count (responses with a usage block) when present; from older clients
      only "seen" can be inferred (prompt tokens reported for token-id prompts), never "missing": text prompts
      leave both counts at 0 whether or not usage came back;
    - closed loop: requested concurrency from ``client.max_concurrency`` (or ``engine_info``); achieved mean
      concurrency from ``client.mean_concurrency`` when a client measured it, else Little's law
      L = λ·W = (measured requests / measured span) × mean end-to-end latency.
    """
    client = summary.get("client") or {}
    info = summary.get("engine_info") or {}
    sim = info.get("simulator") if isinstance(info.get("simulator"), dict) else {}
    status = summary.get("status_counts") or {}
    n = int(summary.get("num_requests") or 0)
    warmup = _num(summary.get("warmup_s")) or 0.0
    last = _num(summary.get("last_arrival_s"))
    duration = last - warmup if last is not None else _num(summary.get("bench_duration_s"))

    if client and ("http_errors" in client or "transport_errors" in client):
        failed = int(client.get("http_errors") or 0) + int(client.get("transport_errors") or 0)
        total = _int(client.get("requests_sent")) or _int(summary.get("num_arrivals")) or n
    else:
        failed = int(status.get("failed") or 0)
        total = sum(int(v or 0) for v in status.values()) or n

    cached = None
    pc = sim.get("prefix_cache") if isinstance(sim, dict) else None
    if isinstance(pc, dict) and "hit_tokens" in pc:
        cached = int(pc["hit_tokens"] or 0)
    elif "cached_prompt_tokens" in client:
        cached = _int(client.get("cached_prompt_tokens"))

    sent = _int(client.get("prompt_tokens_sent")) if client else None
    reported = _int(client.get("prompt_tokens_reported")) if client else None
    mismatches = _int(client.get("usage_mismatches")) if client else None
    usage: bool | None = None
    if "usage_reported" in client and (_int(client.get("requests_sent")) or n):
        usage = bool(_int(client.get("usage_reported")))
    elif reported:
        usage = True  # older clients: prompt tokens reported ⇒ usage came back; none is unknown (text prompts)

    conc = _int(client.get("max_concurrency")) or _int(info.get("max_concurrency")) or _int(
        (sim or {}).get("max_concurrency"))
    achieved_conc = _num(client.get("mean_concurrency"))
    if conc is not None and achieved_conc is None:
        e2el = summary.get("e2el_s") or {}
        w = _num(e2el.get("mean")) if isinstance(e2el, dict) else None
        if w is not None and duration and duration > 0 and n:
            achieved_conc = n / duration * w

    return PointEvidence(
        duration_s=duration, num_requests=n, num_met=_int(summary.get("num_met")),
        num_arrivals=_int(summary.get("num_arrivals")), offered_rate_rps=_num(summary.get("offered_rate_rps")),
        achieved_rate_rps=_num(summary.get("achieved_rate_rps")), client_lag_s=_num(summary.get("client_lag_s")),
        requests_failed=failed, requests_total=total, prefix_cached_tokens=cached, prompt_tokens_sent=sent,
        prompt_tokens_reported=reported, usage_mismatches=mismatches, usage_available=usage,
        unfinished=int(status.get("unfinished") or 0) + int(status.get("timeout") or 0),
        requested_concurrency=conc, achieved_concurrency=achieved_conc,
        stopped_early=summary.get("stopped_early") or None, send_lag_s=_num(client.get("send_lag_s")),
    )


# --- the checks -------------------------------------------------------------------------------------------

def _rate_tolerance(ev: PointEvidence, rules: Rules) -> float:
    """The search's tolerance: ``max_rate_error``, or 4σ of a Poisson count of the run's arrivals if wider."""
    n = ev.num_arrivals or ev.num_requests
    return max(rules.max_rate_error, 4 / math.sqrt(n)) if n > 0 else rules.max_rate_error


def judge_point(ev: PointEvidence, rules: Rules, *, bounds: Sequence[PointBound] = (),
                prefix_cache_expected: bool = False, capacity: ProbeResult | None = None,
                limits: ValidityLimits | None = None) -> list[Reason]:
    """Every reason ``ev`` is not VALID under ``rules`` (empty: VALID), in a stable order.

    ``bounds``: the statistics this point is gated on (`slobench.qualify.statistics`); each one not reached is a
    ``too_few_requests`` reason, as is a point below ``rules.min_requests``. ``capacity``: a capacity probe's
    `ProbeResult`, whose steady-state evidence adds the search's own checks (`capacity_reasons`). Closed-loop
    points (``requested_concurrency`` set) skip the lag and rate checks, which a concurrency cap breaks by
    design (requests wait for a slot), and check the concurrency actually held instead.
    """
    out: list[Reason] = []
    if ev.duration_s is not None and ev.duration_s < rules.min_duration_s:
        out.append(Reason(ReasonCode.TOO_SHORT, f"measured span {ev.duration_s:.1f} s < {rules.min_duration_s:g} s"))
    if rules.min_requests is not None and ev.num_requests < rules.min_requests:
        out.append(Reason(ReasonCode.TOO_FEW_REQUESTS, f"n={ev.num_requests} < {rules.min_requests} "
                          "(rules.min_requests)"))
    if ev.num_requests <= 0:
        out.append(Reason(ReasonCode.TOO_FEW_REQUESTS, "no measured requests"))
    out += [Reason(ReasonCode.TOO_FEW_REQUESTS, b.line()) for b in bounds if not b.enough]
    closed = ev.requested_concurrency is not None
    if closed:
        c, got = ev.requested_concurrency, ev.achieved_concurrency
        if got is not None and c and got < c * (1 - rules.max_rate_error):
            out.append(Reason(ReasonCode.RATE_BELOW_OFFERED, f"held {got:.2f} requests in flight on average, "
                              f"below the requested concurrency {c} by > {rules.max_rate_error:.0%}"))
        if ev.send_lag_s is not None and ev.send_lag_s > rules.max_client_lag_s:
            out.append(Reason(ReasonCode.CLIENT_LAG, f"the client sent {ev.send_lag_s:.2f} s after a slot freed "
                              f"(> {rules.max_client_lag_s:g} s)"))
    else:
        off, ach = ev.offered_rate_rps, ev.achieved_rate_rps
        tol = _rate_tolerance(ev, rules)
        if off and ach is not None and ach < off * (1 - tol):
            out.append(Reason(ReasonCode.RATE_BELOW_OFFERED, f"achieved {ach:.3g} req/s, offered {off:.3g} req/s "
                              f"(> {tol:.0%} below)"))
        if ev.client_lag_s is not None and ev.client_lag_s > rules.max_client_lag_s:
            out.append(Reason(ReasonCode.CLIENT_LAG, f"the client lagged {ev.client_lag_s:.2f} s behind its schedule "
                              f"(> {rules.max_client_lag_s:g} s)"))
    if ev.requests_total and ev.requests_failed / ev.requests_total > rules.max_error_rate:
        out.append(Reason(ReasonCode.ERROR_RATE, f"{ev.requests_failed} of {ev.requests_total} failed "
                          f"({ev.requests_failed / ev.requests_total:.1%} > {rules.max_error_rate:.1%})"))
    if ev.prefix_cached_tokens and not prefix_cache_expected:
        out.append(Reason(ReasonCode.PREFIX_CACHE_HITS, f"{ev.prefix_cached_tokens} prompt tokens came from the "
                          "prefix cache, but this scenario shares no prefix on purpose: the server did less work "
                          "than the workload asks"))
    out += _token_reasons(ev, rules)
    if ev.usage_available is False and rules.require_usage:
        out.append(_usage_reason(required=True))
    if ev.unfinished:
        out.append(Reason(ReasonCode.UNFINISHED, f"{ev.unfinished} stages unfinished or timed out at the horizon"))
    if ev.stopped_early:
        out.append(Reason(ReasonCode.STOPPED_EARLY, ev.stopped_early))
    if capacity is not None:
        out += [r for r in capacity_reasons(capacity, limits) if r.code is not ReasonCode.STOPPED_EARLY
                or not ev.stopped_early]
    return out


def point_notes(ev: PointEvidence, rules: Rules) -> list[Reason]:
    """NOTE-level findings that do not invalidate the point under ``rules`` (printed beside VALID)."""
    if ev.usage_available is False and not rules.require_usage:
        return [_usage_reason(required=False)]
    return []


def _usage_reason(*, required: bool) -> Reason:
    tail = "and the suite requires it" if required else "attainment stands on the client's own token times"
    return Reason(ReasonCode.USAGE_NOT_AVAILABLE, f"the server reported no token usage: token counts are "
                  f"unverified ({tail})")


def _token_reasons(ev: PointEvidence, rules: Rules) -> list[Reason]:
    """The server's usage against the client's own counts: completions streamed vs reported, prompt tokens sent
    vs reported (a server that truncates or pads prompts serves a different workload)."""
    out: list[Reason] = []
    if ev.usage_mismatches:
        out.append(Reason(ReasonCode.TOKEN_COUNT_MISMATCH, f"{ev.usage_mismatches} responses reported a completion "
                          "token count different from the tokens streamed"))
    sent, rep = ev.prompt_tokens_sent, ev.prompt_tokens_reported
    if sent and rep is not None and abs(rep - sent) / sent > rules.max_token_mismatch_share:
        out.append(Reason(ReasonCode.TOKEN_COUNT_MISMATCH, f"the server reported {rep} prompt tokens for {sent} sent "
                          f"({(rep - sent) / sent:+.2%}; allowed ±{rules.max_token_mismatch_share:.2%})"))
    return out


# --- the capacity search's own validity ---------------------------------------------------------------------

def capacity_reasons(result: ProbeResult, limits: ValidityLimits | None = None) -> list[Reason]:
    """The capacity search's steady-state checks (`slobench.capacity.validity`) on one probe, each with its own
    code; unlike `check_validity`, every failing check is listed, not just the first. Rate, lag and unfinished
    are left to `judge_point`, which checks them from the point's evidence."""
    from slobench.capacity.validity import check_backlog, check_ceiling, check_drain, check_kv_full

    lim = limits or ValidityLimits()
    out: list[Reason] = []
    if result.stopped_early:
        out.append(Reason(ReasonCode.STOPPED_EARLY, result.stopped_early))
    if lim.check_ceiling and (why := check_ceiling(result.offered_tok_s, result.ceiling_tok_s)):
        out.append(Reason(ReasonCode.COMPUTE_CEILING, why))
    if why := check_kv_full(result.kv_full_share, max_share=lim.max_kv_full_share):
        out.append(Reason(ReasonCode.KV_FULL, why))
    if why := check_backlog(result.backlog_growth, result.backlog_arrivals, result.backlog_mean,
                            max_share=lim.max_backlog_share, sigmas=lim.backlog_sigmas):
        out.append(Reason(ReasonCode.BACKLOG_GROWTH, why))
    if why := check_drain(result.drain_ratio, max_ratio=lim.max_drain_ratio):
        out.append(Reason(ReasonCode.NO_DRAIN, why))
    return out


# `check_validity`'s texts (and probes.csv's ``reason`` column) → codes, first match wins.
_TEXT_CODES: tuple[tuple[re.Pattern[str], ReasonCode], ...] = (
    (re.compile(r"^stopped early"), ReasonCode.STOPPED_EARLY),
    (re.compile(r"^no requests$"), ReasonCode.TOO_FEW_REQUESTS),
    (re.compile(r"^client lagged"), ReasonCode.CLIENT_LAG),
    (re.compile(r"unfinished at the horizon"), ReasonCode.UNFINISHED),
    (re.compile(r"above the replicas' ceiling"), ReasonCode.COMPUTE_CEILING),
    (re.compile(r"^KV cache"), ReasonCode.KV_FULL),
    (re.compile(r"^backlog grew"), ReasonCode.BACKLOG_GROWTH),
    (re.compile(r"finishing after the last arrival"), ReasonCode.NO_DRAIN),
)
_RATE_TEXT = re.compile(r"^achieved arrival rate ([0-9.eE+-]+) rps differs from offered ([0-9.eE+-]+) rps")


def reason_from_validity(text: str) -> Reason:
    """A `check_validity` reason string (or a probes.csv ``reason``) as a `Reason`; the text is the detail.
    An achieved rate *below* the offered one is ``rate_below_offered``; anything unrecognised (including a rate
    above the offered one) is ``capacity_validity``."""
    if m := _RATE_TEXT.match(text):
        below = float(m[1]) < float(m[2])
        return Reason(ReasonCode.RATE_BELOW_OFFERED if below else ReasonCode.CAPACITY_VALIDITY, text)
    for pattern, code in _TEXT_CODES:
        if pattern.search(text):
            return Reason(code, text)
    return Reason(ReasonCode.CAPACITY_VALIDITY, text)
