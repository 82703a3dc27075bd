"""Scheduler benchmarks: capacity of every policy per workload, and `schedule()` overhead.

Two measurements the SLOs-Serve issue asks for, kept out of the unit tests (performance claims
live in benchmarks):

* `capacity_table`: for each workload and policy, the highest rate with ≥ target joint attainment
  (`slobench.capacity.execute.run_search`, the search and probe adapter `compare` uses, the same seeds for
  every policy), plus each policy's ratio to every baseline and the geometric mean over workloads.
* `overhead`: wall time of one `schedule()` call of `slos-serve` on a synthetic replica with
  ``running`` decoding requests and ``waiting`` new requests spread over three TPOT tiers — the
  worst case, where every call re-plans (a fresh policy each trial, so every waiting request is new).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slobench.capacity.execute import run_search
from slobench.capacity.plan import (
    CONFIRM,
    DEFAULT_REQUESTS,
    DEFAULT_WARMUP,
    HOLD,
    MIN_PROBE_S,
    SearchSettings,
    SearchSpec,
    check_warmup,
)
from slobench.capacity.search import CapacityResult


@dataclass(frozen=True)
class BenchRow:
    """One (workload, policy) capacity of the benchmark table; ``result`` keeps the search's probes."""

    workload: str
    scheduler: str
    capacity_rps: float | None
    status: str
    probes: int
    wall_s: float
    result: CapacityResult | None = field(default=None, repr=False, compare=False)

    @property
    def notes(self) -> str:
        """What the search did beyond bisection (the crossing's confirmation), as in compare's capacity row."""
        return "; ".join(self.result.notes) if self.result is not None else ""

    def as_row(self) -> dict[str, Any]:
        """The CSV row of ``bench schedulers --out`` (without the probes)."""
        return {"workload": self.workload, "scheduler": self.scheduler, "capacity_rps": self.capacity_rps,
                "status": self.status, "probes": self.probes, "wall_s": self.wall_s, "notes": self.notes}


def bench_spec(workload: str, scheduler: str, num_requests: int, run_kwargs: dict[str, Any],
               warmup: float = DEFAULT_WARMUP) -> SearchSpec:
    """The search of one (workload, policy) cell: ``run_kwargs`` plus its own ``scheduler_options``.

    Probes are sized as `compare`'s (`slobench.capacity.plan.probe_size`): ``num_requests`` expected
    requests per replica, the first ``warmup`` share of the duration not counted.
    ``run_kwargs["scheduler_options_for"]`` maps a policy name to its options (``--slos-serve-opt``).
    """
    kwargs = dict(run_kwargs)
    per_scheduler = kwargs.pop("scheduler_options_for", {})
    if scheduler in per_scheduler:
        kwargs["scheduler_options"] = per_scheduler[scheduler]
    kwargs.setdefault("replicas", 1)
    kwargs.setdefault("min_duration_s", MIN_PROBE_S)
    return SearchSpec(workload, scheduler, kwargs | {"workload": workload, "probe_requests": num_requests,
                                                     "warmup": check_warmup(warmup)})


def bench_settings(target: float, rel_tol: float, seeds: Sequence[int], confirm: int = CONFIRM,
                   hold: float = HOLD) -> SearchSettings:
    """The benchmark's search: from 1 req/s on the default rate range, no interval refinement."""
    return SearchSettings(target=target, seeds=list(seeds), rel_tol=rel_tol, rate_start=1.0, refine_interval=False,
                          confirm=confirm, hold_factor=hold)


def _capacity_row(wl: str, sched: str, num_requests: int, target: float, rel_tol: float, seeds: tuple[int, ...],
                  run_kwargs: dict[str, Any], warmup: float = DEFAULT_WARMUP, confirm: int = CONFIRM,
                  hold: float = HOLD) -> BenchRow:
    t0 = time.perf_counter()
    res = run_search(bench_spec(wl, sched, num_requests, run_kwargs, warmup),
                     bench_settings(target, rel_tol, seeds, confirm, hold))
    assert res is not None  # a search, not a rate grid
    return BenchRow(wl, sched, res.capacity_rps, res.status, len(res.probes), time.perf_counter() - t0, res)


def capacity_table(workloads: Sequence[str], schedulers: Sequence[str], *, num_requests: int = DEFAULT_REQUESTS,
                   target: float = 0.9, rel_tol: float = 0.02, seeds: Sequence[int] = (0,),
                   run_kwargs: dict[str, Any] | None = None,  # + "scheduler_options_for": {name: opts}
                   on_row: Callable[[BenchRow], None] | None = None, jobs: int | None = 1,
                   warmup: float = DEFAULT_WARMUP, confirm: int = CONFIRM, hold: float = HOLD,
                   ray_address: str | None = None) -> list[BenchRow]:
    """Capacity of each scheduler on each workload (same seeds and rate grid for all).

    Every search is `slobench.capacity.execute.run_search` without a results folder, so each probe
    goes through the same `probe_result` adapter and validity checks as `compare`'s. With
    ``jobs > 1`` the (workload, scheduler) searches run in that many processes; every search is
    seeded, so the table is the same either way, only faster on a many-core machine. ``ray_address``
    (``--ray-address``): they run as Ray tasks there instead, at most ``jobs`` at once (None: the
    cluster's CPUs); there is nothing to save per probe, so a task returns its row.
    """
    tasks = [(wl, sched, num_requests, target, rel_tol, tuple(seeds), run_kwargs or {}, warmup, confirm, hold)
             for wl in workloads for sched in schedulers]
    if ray_address is not None:
        return _ray_table(tasks, jobs, ray_address, on_row)
    jobs = 1 if jobs is None else jobs
    if jobs <= 1 or len(tasks) == 1:
        rows = []
        for task in tasks:
            rows.append(_capacity_row(*task))
            if on_row is not None:
                on_row(rows[-1])
        return rows
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(min(jobs, len(tasks))) as pool:
        futures = {pool.submit(_capacity_row, *task): i for i, task in enumerate(tasks)}
        done: dict[int, BenchRow] = {}
        for fut in as_completed(futures):
            done[futures[fut]] = fut.result()
            if on_row is not None:
                on_row(done[futures[fut]])
    return [done[i] for i in range(len(tasks))]


def _ray_table(tasks: list[tuple[Any, ...]], jobs: int | None, address: str,
               on_row: Callable[[BenchRow], None] | None) -> list[BenchRow]:
    """`capacity_table`'s searches as Ray tasks (`slobench.cluster.ray_fanout.map_unordered`), rows in
    table order; ``local`` starts a Ray with ``jobs`` CPUs (default every core) and stops it after."""
    from slobench.cluster.ray_fanout import connect, map_unordered

    session = connect(address, num_cpus=jobs)
    try:
        width = max(1, min(jobs or session.cpus(), len(tasks)))
        done: dict[int, BenchRow] = {}
        for i, row in map_unordered(session, _capacity_row, tasks, width,
                                    what=lambda i: f"search {tasks[i][0]} × {tasks[i][1]}"):
            done[i] = row
            if on_row is not None:
                on_row(row)
    finally:
        session.close()
    return [done[i] for i in range(len(tasks))]


def ratios(rows: Sequence[BenchRow], subject: str, baseline: str) -> tuple[dict[str, float], float]:
    """Per-workload capacity ratio subject/baseline and its geometric mean (NaN where undefined)."""
    cap = {(r.workload, r.scheduler): r.capacity_rps for r in rows}
    out: dict[str, float] = {}
    for wl in dict.fromkeys(r.workload for r in rows):
        a, b = cap.get((wl, subject)), cap.get((wl, baseline))
        out[wl] = a / b if a and b else math.nan
    vals = [v for v in out.values() if math.isfinite(v) and v > 0]
    return out, float(np.exp(np.mean(np.log(vals)))) if vals else math.nan


def synthetic_view(running: int, waiting: int, seed: int, now_s: float = 100.0):  # noqa: ANN201
    """A replica mid-run: ``running`` decodes and ``waiting`` fresh arrivals over 3 TPOT tiers."""
    from slobench.perf import get_latency_model
    from slobench.schedulers.base import Admission, SchedulerView, SeqState
    from slobench.workloads.model import SLO, Request, Stage

    perf = get_latency_model()
    rng = np.random.default_rng(seed)
    tiers = [(0.05, "coding"), (0.1, "chat"), (0.2, "batch")]
    bs = 16
    run: list[SeqState] = []
    wait: list[SeqState] = []
    for i in range(running + waiting):
        tpot, tier = tiers[i % 3]
        prompt = int(rng.integers(50, 3000))
        out = int(rng.integers(20, 600))
        slo = SLO(ttft_s=max(0.05, 5 * perf.prefill_latency_s(prompt)), tpot_s=tpot)
        req = Request(id=i, arrival_s=now_s - (rng.uniform(1, 20) if i < running else rng.uniform(0, 0.3)),
                      app=tier, tier=tier, stages=(Stage(prompt, out, slo),))
        if i < running:
            done = int(rng.integers(1, out))
            seq = SeqState(req=req, stage_start_s=req.arrival_s, num_tokens=prompt + done,
                           num_computed=prompt + done - 1, stage_out=done,
                           first_token_s=req.arrival_s + slo.ttft_s * 0.5, admission=Admission.ADMITTED)
            seq.kv_blocks = math.ceil(seq.num_computed / bs)
            run.append(seq)
        else:
            wait.append(SeqState(req=req, stage_start_s=req.arrival_s, num_tokens=prompt))
    total = perf.kv_capacity_tokens() // bs
    used = sum(s.kv_blocks for s in run)
    return SchedulerView(now_s=now_s, waiting=wait, running=run, block_size=bs, total_kv_blocks=total,
                         free_kv_blocks=total - used, perf=perf)


def overhead(running: int = 256, waiting: int = 256, trials: int = 200, steady_calls: int = 200) -> dict[str, float]:
    """p50/p99 ms of `schedule()`: re-planning calls (fresh policy) and steady calls (no new arrivals)."""
    from slobench.schedulers.registry import make_scheduler

    replan, steady = [], []
    for t in range(trials):
        view = synthetic_view(running, waiting, seed=t)
        policy = make_scheduler("slos-serve")
        t0 = time.perf_counter()
        policy.schedule(view)
        replan.append(time.perf_counter() - t0)
    view = synthetic_view(running, waiting, seed=0)
    policy = make_scheduler("slos-serve")
    policy.schedule(view)
    for _ in range(steady_calls):
        t0 = time.perf_counter()
        policy.schedule(view)
        steady.append(time.perf_counter() - t0)
    ms = lambda xs, q: float(np.percentile(np.asarray(xs) * 1e3, q))  # noqa: E731
    return {"replan_p50_ms": ms(replan, 50), "replan_p99_ms": ms(replan, 99), "steady_p50_ms": ms(steady, 50),
            "steady_p99_ms": ms(steady, 99)}
