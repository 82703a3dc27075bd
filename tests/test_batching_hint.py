"""`BatchDraft.max_tokens_within` with the roofline's closed-form starting point must give the bisection's
answer exactly (the hint only saves probes), for plain and feedback-scaled models, with drafts, and for
budgets that equal a latency to the last bit."""

from __future__ import annotations

import random

from slobench.perf.hardware import GPUS
from slobench.perf.models import MODELS
from slobench.perf.roofline import RooflineModel
from slobench.schedulers.batching import BatchDraft
from slobench.schedulers.slos_serve.feedback import ScaledLatency


def _bisect(d: BatchDraft, budget_s: float, ctx: int, cap: int) -> int:
    """The search without the hint (the reference answer)."""
    if cap <= 0 or d.latency_with_s(1, ctx) > budget_s:
        return 0
    if d.latency_with_s(cap, ctx) <= budget_s:
        return cap
    lo, hi = 1, 2
    while hi < cap and d.latency_with_s(hi, ctx) <= budget_s:
        lo, hi = hi, hi * 2
    hi = min(hi, cap)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if d.latency_with_s(mid, ctx) <= budget_s:
            lo = mid
        else:
            hi = mid
    return lo


def test_hinted_search_matches_bisection() -> None:
    rng = random.Random(0)
    models = []
    for g in list(GPUS)[:3]:
        for m in list(MODELS)[:4]:
            for tp in (1, 2):
                try:
                    models.append(RooflineModel(GPUS[g], MODELS[m], tp=tp))
                except Exception:  # noqa: BLE001 — a model that does not fit this GPU
                    pass
    assert models
    for _ in range(4000):
        perf = rng.choice(models)
        if rng.random() < 0.4:
            perf = ScaledLatency(perf, rng.uniform(0.5, 3.0))
        nb = rng.randint(0, 40)
        d = BatchDraft(perf, [rng.choice([1, 1, 5, rng.randint(1, 4000)]) for _ in range(nb)],
                       [rng.randint(0, 30000) for _ in range(nb)], rng.choice([0, 0, 1, 4]))
        ctx, cap = rng.randint(0, 30000), rng.randint(1, 20000)
        budget = d.latency_with_s(rng.randint(1, cap), ctx) if rng.random() < 0.3 else rng.uniform(1e-3, 0.5)
        assert d.max_tokens_within(budget, ctx, cap) == _bisect(d, budget, ctx, cap)


def test_decodes_constructor_is_the_general_one() -> None:
    """`BatchDraft.decodes(perf, ctx)` is ``BatchDraft(perf, [1] * len(ctx), ctx)``: the same lists, sums and
    latencies, with the roofline, a scaled roofline and an empty batch."""
    rng = random.Random(1)
    base = RooflineModel(GPUS[list(GPUS)[0]], MODELS[list(MODELS)[0]], tp=1)
    for perf in (base, ScaledLatency(base, 1.37)):
        for n in (0, 1, 5, 40):
            ctx = [rng.randint(0, 9000) for _ in range(n)]
            a, b = BatchDraft.decodes(perf, list(ctx)), BatchDraft(perf, [1] * n, ctx)
            assert (a.q, a.ctx, a.spec_steps, a._sums) == (b.q, b.ctx, b.spec_steps, b._sums)
            assert a.latency_s() == b.latency_s()
            assert a.max_tokens_within(0.05, 700, 4096) == b.max_tokens_within(0.05, 700, 4096)
