"""SLOs-Serve admission control: which waiting requests can be admitted without breaking any SLO.

Problem (SLOs-Serve §4, DESIGN.md "DP admission"). Given the replica's decode load and the
requests with pending prefill — *committed* ones (already admitted: must stay) and *candidates*
(new or previously declined) — choose the candidates to admit so that every admitted request's
prefill finishes by its TTFT deadline, decodes stay feasible (ρ > 0) and KV memory suffices,
maximising the admitted profit (1 per request, or a tier weight).

Model. Requests are processed in deadline (EDF) order, the order in which the batch builder
prefills them. Between consecutive deadlines the replica prefills at rate ρ(n), where n counts the
decodes per TPOT tier (`rate_model.PrefillRateModel`); a request admitted at step j adds its tier
to n from then on. A request j is admissible when the prefill *surplus* accumulated up to its
deadline covers its prompt. A first token appears only at the end of the batch holding the last
chunk, but the batch builder ends a batch at the most urgent prefill's deadline whenever that
prefill can finish in it (`policy.py`, step 4), so batches re-align on deadlines and the whole
interval up to ``d_j`` counts; what the extra, shorter batches cost in fixed overhead is what
the rate model's ``margin`` absorbs:

    S_j = S_{j−1} + ρ(n)·(d_j − d_{j−1});   admit j  ⇔  S_j ≥ p_j,  M + m_j ≤ M_free,  ρ(n + e_t) > 0

then ``S ← (S_j − p_j)·(1 − (ρ(n) − ρ(n+e_t))/ρ(n))``: under EDF a request with surplus left
finishes its prefill ``(S_j − p_j)/ρ`` early and decodes during that time, which the plain window
accounting (decode load counted from the deadline on) would miss.

Dynamic programme. State after step j: the decode counts per tier ``n`` (which fixes ρ) plus
a Pareto set over (profit ↑, surplus ↑, memory ↓); transitions: admit or decline candidate j.
Committed requests are always kept, and a state in which they no longer fit is discarded —
admitting a candidate with an earlier deadline must not make an admitted request late — unless
the replica was overcommitted already without any candidate (then the request goes into surplus
debt that later candidates must repay first). Answer: the highest-profit state after the last
request, ties to the largest surplus.
Complexity: O(J · K · P) transitions for J requests, K count-vectors alive and P Pareto points per
vector. K is exponential in the number of tiers (≤ Π_t (J_t+1)), so we keep a beam of the
``beam_width`` best count-vectors (by profit, then surplus) and stop after ``max_transitions``
(deterministic) or ``time_limit_s`` (wall clock, optional; makes results depend on the machine),
falling back to greedy EDF (admit in deadline order whenever feasible), and count how often.

Difference from the authors' code (gulang2019/SLOServe c9dbc0d, `promax_spec_sch.cc`): their
state also carries the planned finish time and their Pareto rule `dominates()` ranks *less*
prefill surplus as better. More surplus can only help later requests (it is prefill capacity
already earned), so that rule discards strictly better states; ``surplus_rule="less"`` reproduces
it so both can be measured (see docs/slos-serve.md for the measured difference).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

RateFn = Callable[[tuple[int, ...]], tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One request with pending prefill, as the DP sees it."""

    key: int
    deadline_s: float
    prefill_tokens: int
    tier: int
    kv_blocks: int
    weight: float = 1.0
    committed: bool = False


@dataclass(frozen=True, slots=True)
class AdmissionResult:
    admitted: list[int]  # keys of admitted candidates (committed ones excluded)
    fallback: bool  # the DP hit its guard and greedy EDF decided
    transitions: int


# A DP state: (profit, surplus tokens, KV blocks used, admitted keys as a linked list (key, parent)).
_State = tuple[float, float, int, tuple | None]


def _chain(node: tuple | None) -> list[int]:
    out: list[int] = []
    while node is not None:
        out.append(node[0])
        node = node[1]
    return out


def _pareto(states: list[_State], more_surplus_better: bool, keep: int) -> list[_State]:
    """Drop states another one dominates on (profit ↑, surplus ↑ or ↓, memory ↓); keep the best ``keep``."""
    sign = 1.0 if more_surplus_better else -1.0
    states = sorted(states, key=lambda s: (-s[0], -sign * s[1], s[2]))
    front: list[_State] = []
    for s in states:
        if not any(f[0] >= s[0] and sign * f[1] >= sign * s[1] and f[2] <= s[2] for f in front):
            front.append(s)
            if len(front) >= keep:
                break
    return front


def plan_admission(
    requests: Sequence[Candidate],
    rate: RateFn,
    base_counts: tuple[int, ...],
    now_s: float,
    kv_free_blocks: int,
    *,
    beam_width: int = 16,
    pareto_size: int = 3,
    max_transitions: int = 20_000,
    time_limit_s: float | None = None,
    surplus_rule: Literal["more", "less"] = "more",
) -> AdmissionResult:
    """Choose which candidates to admit (see module docstring). ``requests`` need not be sorted."""
    reqs = sorted(requests, key=lambda c: (c.deadline_s, c.key))
    if not any(not c.committed for c in reqs):
        return AdmissionResult([], False, 0)
    result = _run(reqs, rate, base_counts, now_s, kv_free_blocks, beam_width, pareto_size, max_transitions,
                  time_limit_s, surplus_rule == "more")
    if result is not None:
        return result
    greedy = _run(reqs, rate, base_counts, now_s, kv_free_blocks, 1, 1, None, None, True, greedy=True)
    assert greedy is not None
    return AdmissionResult(greedy.admitted, True, greedy.transitions)


def _bumped(counts: tuple[int, ...], tier: int) -> tuple[int, ...]:
    return counts[:tier] + (counts[tier] + 1,) + counts[tier + 1:]


def _committed_baseline(reqs: Sequence[Candidate], rho: RateFn, base_counts: tuple[int, ...],
                        now_s: float) -> dict[int, float]:
    """Surplus before each committed request when no candidate is admitted.

    Admitting candidates must never cost an already-admitted request its deadline: a DP state may
    leave a committed request short only where this baseline does too (the replica was already
    overcommitted) and only with at least the baseline's surplus at that point.
    """
    counts, surplus, t_prev = base_counts, 0.0, now_s
    out: dict[int, float] = {}
    for c in reqs:
        r, _ = rho(counts)
        surplus += r * max(0.0, c.deadline_s - t_prev)  # the DP's own arithmetic, step for step
        t_prev = max(t_prev, c.deadline_s)
        if not c.committed:
            continue
        out[c.key] = surplus
        bumped = _bumped(counts, c.tier)
        surplus = _after_prefill(surplus, c.prefill_tokens, r, rho(bumped)[0])
        counts = bumped
    return out


def _after_prefill(surplus: float, prefill_tokens: int, rate: float, rate_after: float) -> float:
    """Surplus left once a request's prompt is paid for, less its decodes during its early finish."""
    s = surplus - prefill_tokens
    if s > 0:
        s *= max(0.0, 1.0 - (rate - rate_after) / rate) if rate > 0 else 0.0
    return s


def _run(reqs: Sequence[Candidate], rate: RateFn, base_counts: tuple[int, ...], now_s: float, kv_free: int,
         beam_width: int, pareto_size: int, max_transitions: int | None, time_limit_s: float | None,
         more_surplus_better: bool, greedy: bool = False) -> AdmissionResult | None:
    t_start = time.perf_counter()
    layer: dict[tuple[int, ...], list[_State]] = {base_counts: [(0.0, 0.0, 0, None)]}
    rates: dict[tuple[int, ...], tuple[float, float]] = {}

    def rho(counts: tuple[int, ...]) -> tuple[float, float]:
        if counts not in rates:
            rates[counts] = rate(counts)
        return rates[counts]

    baseline = _committed_baseline(reqs, rho, base_counts, now_s)
    t_prev = now_s
    transitions = 0
    for c in reqs:
        dt = max(0.0, c.deadline_s - t_prev)
        t_prev = max(t_prev, c.deadline_s)
        nxt: dict[tuple[int, ...], list[_State]] = {}
        for counts, states in layer.items():
            r, _ = rho(counts)
            bumped = _bumped(counts, c.tier)
            r2, _ = rho(bumped)
            for profit, surplus, mem, node in states:
                transitions += 1
                s1 = surplus + r * dt
                fits = s1 >= c.prefill_tokens and mem + c.kv_blocks <= kv_free and r2 > 0
                if c.committed and not fits and s1 < baseline[c.key] - 1e-6:
                    continue  # this state's admissions would make an admitted request late
                if c.committed or fits:
                    s2 = _after_prefill(s1, c.prefill_tokens, r, r2)
                    admitted = node if c.committed else (c.key, node)
                    gain = 0.0 if c.committed else c.weight
                    nxt.setdefault(bumped, []).append((profit + gain, s2, mem + c.kv_blocks, admitted))
                if not c.committed and not (greedy and fits):
                    nxt.setdefault(counts, []).append((profit, s1, mem, node))
        layer = {k: _pareto(v, more_surplus_better, pareto_size) for k, v in nxt.items()}
        if len(layer) > beam_width:
            best = sorted(layer.items(), key=lambda kv: (-kv[1][0][0], -kv[1][0][1]))[:beam_width]
            layer = dict(best)
        if max_transitions is not None and transitions > max_transitions:
            return None
        if time_limit_s is not None and time.perf_counter() - t_start > time_limit_s:
            return None
    final = [s for states in layer.values() for s in states]
    if not final:  # cannot happen (declining every candidate is the baseline), but never crash a replica
        return AdmissionResult([], False, transitions)
    best = max(final, key=lambda s: (s[0], s[1]))
    return AdmissionResult(sorted(_chain(best[3])), False, transitions)
