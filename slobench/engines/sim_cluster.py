"""R simulated replicas in lockstep behind a router, under an open- or closed-loop load.

Each replica is a paused-and-resumed `slobench.engines.sim.replica_loop`; this driver owns the events
outside them, in time order: a request being sent (its arrival, or for a closed loop the moment a slot
frees), and a refresh of the router's stats. Before an event at time t every replica is advanced until
its next decision would be at ≥ t (`replica_loop`'s gate), so the router sees each replica as it is at t
(its state after the iteration in progress at t: the stats that iteration will publish) and the routed
request enters the chosen replica's waiting queue at that replica's first decision ≥ t — exactly where an
arrival known in advance would have entered it. Hence round-robin here gives the records of the old
pre-split run (each replica simulated alone with its share of the stream), which a test checks.

Staleness (vLLM's DP coordinator model): load counts are snapshotted at multiples of ``refresh_s`` — the
router sees the last snapshot taken at or before the send — and between two snapshots the driver adds one
to the chosen replica's waiting count (the client's optimistic increment). ``refresh_s = 0`` snapshots at
every send. The replica's own answers (prefix-cache hit, would the policy admit) are asked at the send: the hit
is read from the replica's prefix map as it is at the send, not from the last snapshot (sglang's router keeps
its own tree up to date at each routing decision, so its match is not stale by the refresh interval either).

Closed loop (`ClosedLoopLoad`): a request is sent at max(its arrival, the earliest time a slot is free);
it holds its slot until its last stage ends (or it is rejected, or left unfinished). Since a completion in
one replica can trigger a send routed to another, replicas then advance conservatively: the one furthest
behind runs, and only up to where the next one is (parallel discrete-event simulation's lookahead rule).
"""

from __future__ import annotations

import gc
import heapq
import math
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace

from slobench.engines.base import ClientEvidence
from slobench.engines.sim import (
    Pause,
    SimConfig,
    SimResult,
    _stage_record,
    check_fits,
    kv_capacity_tokens,
    prefix_hit,
    replica_loop,
)
from slobench.metrics.records import StageRecord, Status
from slobench.perf.base import LatencyModel
from slobench.schedulers.base import Scheduler, SchedulerView, SeqState
from slobench.schedulers.lengths import LengthInfo, make_length_info
from slobench.schedulers.routers import ReplicaLoad, Router
from slobench.workloads.model import Request, Workload


@dataclass
class _Replica:
    """One paused replica loop and what the driver knows about it."""

    index: int
    policy: Scheduler
    cfg: SimConfig
    lengths: LengthInfo
    total_blocks: int
    inbox: list[Request] = field(default_factory=list)  # its own arrivals (the loop reads this list)
    gate: list[float] = field(default_factory=lambda: [math.inf, math.inf])  # [bound, horizon]
    loop: Generator[Pause, None, SimResult] | None = None
    pos: float = -math.inf  # time of its next decision, where it is paused (-inf: not started; inf: ended)
    pause: Pause | None = None
    result: SimResult | None = None
    prefix_cache: OrderedDict[int, int] = field(default_factory=OrderedDict)  # the loop's own map (read here)

    def advance(self, bound: float) -> None:
        """Run until the loop's next decision depends on an event at ``bound`` (or the loop ends)."""
        if self.loop is None or self.result is not None:
            raise RuntimeError(f"replica {self.index}: advanced after its loop ended (a driver bug)")
        self.gate[0] = bound
        try:
            self.pause = next(self.loop)
            self.pos = self.pause[0]
        except StopIteration as stop:
            self.result = stop.value
            self.pause = None
            self.pos = math.inf

    def counts(self) -> list[float]:
        """[waiting, running, kv used share] now (zeros once ended)."""
        if self.pause is None:
            return [0, 0, 0.0]
        _, waiting, running, free = self.pause
        return [len(waiting), len(running), 1.0 - free / self.total_blocks if self.total_blocks else 0.0]

    def prefix_hit_tokens(self, req: Request) -> int:
        """Leading tokens of ``req``'s prompt cached on this replica now (0 without prefix_blocks or caching)."""
        if not req.prefix_blocks or not self.cfg.prefix_caching:
            return 0
        return prefix_hit(self.prefix_cache, req, self.cfg.block_size)[0]

    def admission_query(self, req: Request, t: float, perf: LatencyModel) -> Callable[[], bool] | None:
        """The replica policy's side-effect-free "would you admit ``req`` now?", or None if it has none."""
        ask = getattr(self.policy, "would_admit", None)
        if ask is None or self.pause is None:
            return None
        now, waiting, running, free = self.pause
        cfg = self.cfg

        # When it would decide about ``req``: a busy replica at its next decision (≥ t, the end of the
        # iteration in progress); an idle one at once. An idle replica's pause is at its own next event, which
        # is infinite when it has none: asking it then would make it decline everything (the slo-aware R = 4
        # collapse in docs/routers.md).
        at = t if not waiting and not running else max(now, t)

        def admits() -> bool:
            # Its prefix-cache hit counts as computed, as when it reaches the replica (`replica_loop`).
            seq = SeqState(req=self.lengths.public(req), stage_idx=0, stage_start_s=t,
                           num_tokens=req.stages[0].prompt_tokens, num_computed=self.prefix_hit_tokens(req))
            view = SchedulerView(
                now_s=at, waiting=list(waiting), running=list(running), block_size=cfg.block_size,
                total_kv_blocks=self.total_blocks, free_kv_blocks=free, perf=perf, spec=cfg.spec,
                max_num_batched_tokens=cfg.max_num_batched_tokens, max_num_seqs=cfg.max_num_seqs,
                lengths=self.lengths)
            return bool(ask(view, seq))

        return admits


def simulate_replicas(
    workload: Workload,
    policies: Sequence[Scheduler],
    perf: LatencyModel,
    configs: Sequence[SimConfig],
    router: Router,
    *,
    refresh_s: float = 0.1,
    concurrency: int | None = None,
    on_record: Callable[[StageRecord], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[SimResult]:
    """Simulate ``len(policies)`` replicas (replica r: ``policies[r]``, ``configs[r]``) behind ``router``.

    ``concurrency``: at most this many requests in flight (a closed loop; records carry the send time as
    ``arrival_s``); None: open loop. Returns one `SimResult` per replica; a request that was never sent
    (the run stopped first) is reported as unfinished, once, at its arrival time, by replica 0.
    The cyclic garbage collector is paused meanwhile, as in `simulate` (the same loop, the same reason).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _simulate_replicas(workload, policies, perf, configs, router, refresh_s=refresh_s,
                                  concurrency=concurrency, on_record=on_record, on_progress=on_progress)
    finally:
        if was_enabled:
            gc.enable()


def _simulate_replicas(
    workload: Workload,
    policies: Sequence[Scheduler],
    perf: LatencyModel,
    configs: Sequence[SimConfig],
    router: Router,
    *,
    refresh_s: float,
    concurrency: int | None,
    on_record: Callable[[StageRecord], None] | None,
    on_progress: Callable[[int], None] | None,
) -> list[SimResult]:
    if refresh_s < 0 or not math.isfinite(refresh_s):
        raise ValueError(f"refresh_s must be a finite number ≥ 0 (got {refresh_s})")
    reqs = sorted(workload.requests, key=lambda r: (r.arrival_s, r.id))
    n = len(reqs)
    replicas: list[_Replica] = []
    done_total = 0
    k = 0  # next request to send
    closed = concurrency is not None
    slots: list[float] = [0.0] * min(concurrency, n) if concurrency is not None else []  # times slots freed
    last_arrival = reqs[-1].arrival_s if reqs else 0.0

    def send_time() -> float:
        if k >= n:
            return math.inf
        if not closed:
            return reqs[k].arrival_s
        return max(reqs[k].arrival_s, slots[0]) if slots else math.inf

    def progress(_: int) -> None:
        nonlocal done_total
        done_total += 1
        if on_progress is not None:
            on_progress(done_total)

    def make_done(rep: _Replica) -> Callable[[int, float], None]:
        def done(req_id: int, t: float) -> None:
            if closed and k < n:
                heapq.heappush(slots, t)
                nxt = send_time()
                if nxt < rep.gate[0]:
                    rep.gate[0] = nxt  # a send may now come before this replica's next decision: pause there
        return done

    for r, (policy, cfg) in enumerate(zip(policies, configs, strict=True)):
        kv_tokens = kv_capacity_tokens(cfg, perf)
        if r == 0:
            check_fits(reqs, kv_tokens, cfg.block_size)
        rep = _Replica(r, policy, cfg, make_length_info(cfg.oracle_lengths, workload.spec, kv_tokens),
                       kv_tokens // cfg.block_size)
        # Open loop: every replica stops the drain timeout after the last arrival; closed loop: after the last
        # send (moved forward at each send).
        rep.gate[1] = (last_arrival if not closed else 0.0) + cfg.drain_timeout_s
        rep.loop = replica_loop(rep.inbox, policy, perf, cfg, rep.lengths, rep.gate, on_record=on_record,
                                on_progress=progress, on_done=make_done(rep), prefix_cache=rep.prefix_cache)
        replicas.append(rep)

    reads_load = getattr(router, "reads_load", True)
    stale: list[list[float]] = [[0, 0, 0.0] for _ in replicas]  # the router's view of the counts
    snap_tick = -1  # index of the refresh tick of the last snapshot
    snapped_at = -math.inf  # refresh_s = 0: time of the last snapshot
    while True:
        t_send = send_time()
        t_ev = t_send
        snap_due = False
        if reads_load and t_send < math.inf:
            if refresh_s > 0:
                tick = math.floor(t_send / refresh_s)
                if tick > snap_tick:
                    t_ev, snap_due = min(tick * refresh_s, t_send), True
            elif t_send > snapped_at or k == 0:
                snap_due = True
        # Bring every replica to its first decision at ≥ t_ev.
        if closed and len(replicas) > 1:
            rep = min(replicas, key=lambda x: x.pos)
            if rep.pos < t_ev:
                ahead = min((x.pos for x in replicas if x is not rep), default=math.inf)
                rep.advance(min(t_ev, math.nextafter(ahead, math.inf)))
                continue
        else:
            for rep in replicas:
                if rep.pos < t_ev:
                    rep.advance(t_ev)
            if send_time() < t_send:
                continue  # a completion freed a slot: a send comes before the event we advanced to
        if t_ev == math.inf:
            break  # everything sent (or nothing can be sent): the replicas finish below
        if snap_due:
            stale = [rep.counts() for rep in replicas]
            if refresh_s > 0:
                snap_tick = math.floor(t_send / refresh_s)
            snapped_at = t_send
            if t_ev < t_send:
                continue  # replicas paused at the tick; now bring them to the send
        req = reqs[k]
        if req.arrival_s != t_send:
            req = replace(req, arrival_s=t_send)  # closed loop: latency counts from the send
        loads = [
            ReplicaLoad(rep.index, num_waiting=int(c[0]), num_running=int(c[1]), kv_used_frac=float(c[2]),
                        prefix_hit_tokens=rep.prefix_hit_tokens(req), admits=rep.admission_query(req, t_send, perf))
            for rep, c in zip(replicas, stale, strict=True)
        ]
        target = router.route(req, loads)
        if not 0 <= target < len(replicas):
            raise ValueError(f"router {router.name} chose replica {target} of {len(replicas)}")
        stale[target][0] += 1  # optimistic local increment until the next snapshot
        chosen = replicas[target]
        chosen.inbox.append(req)
        chosen.pos = min(chosen.pos, t_send)  # it now acts at the send, if it was waiting for later
        k += 1
        if closed:
            heapq.heappop(slots)
            for rep in replicas:
                rep.gate[1] = t_send + rep.cfg.drain_timeout_s
        if k == n:
            for rep in replicas:
                rep.gate[0] = math.inf

    for rep in replicas:  # run each to its end (an idle one paused with nothing ahead reports pos = inf)
        while rep.result is None:
            rep.advance(math.inf)
    results = [rep.result for rep in replicas]
    assert all(res is not None for res in results)
    out: list[SimResult] = [res for res in results if res is not None]
    for req in reqs[k:]:  # never sent: the run stopped (drain timeout) with the client still waiting
        for j in range(len(req.stages)):
            rec = _stage_record(req, j, req.arrival_s if j == 0 else math.nan, 0)
            rec.status = Status.UNFINISHED
            out[0].records.append(rec)
            if on_record is not None:
                on_record(rec)
        progress(0)
    return out


def closed_loop_evidence(workload: Workload, records: Sequence[StageRecord], concurrency: int) -> ClientEvidence:
    """The closed-loop client's account of itself, in the terms real load generators use: how late each send
    was against its arrival (waiting for a slot) and the send rate achieved. A capacity search at a fixed
    ``--max-concurrency`` then marks a probe INVALID where the cap, not the server, held the load back (lag
    above 1 s, achieved rate off the offered one: `capacity.search.check_validity`), instead of reporting an
    attainment measured on a load that was never offered."""
    arrival = {r.id: r.arrival_s for r in workload.requests}
    sent = {r.request_id: r.arrival_s for r in records if r.stage_idx == 0}
    lags = sorted(sent[i] - arrival[i] for i in sent if i in arrival)
    times = sorted(sent.values())
    span = times[-1] - times[0] if times else 0.0
    achieved = (len(times) - 1) / span if len(times) >= 2 and span > 0 else None
    counters: dict[str, float | int] = {"max_concurrency": concurrency,
                                        "waited_for_slot": sum(1 for x in lags if x > 0)}
    if lags:
        counters |= {"lag_p50_s": lags[len(lags) // 2], "lag_p99_s": lags[min(len(lags) - 1, int(0.99 * len(lags)))]}
    return ClientEvidence(achieved_rate_rps=achieved, client_lag_s=lags[-1] if lags else None, counters=counters)
