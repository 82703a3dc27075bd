"""Replicas in lockstep behind a router (`slobench.engines.sim_cluster`), and closed-loop loads.

The lockstep loop must reproduce the old pre-split run exactly under round-robin (the same records, bit for
bit), ask replicas side-effect-free questions, see stale loads as configured, and never exceed a closed
loop's concurrency.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from slobench.cluster.run import build_latency_model, build_workload, run_once, validate_config
from slobench.engines.base import ClosedLoopLoad, EngineJob, OpenLoopLoad, ReplicaSet
from slobench.engines.sim import SimConfig, SimEngine, engine_limits, simulate
from slobench.engines.sim_cluster import simulate_replicas
from slobench.errors import UserError
from slobench.metrics.records import StageRecord, records_frame
from slobench.schedulers.base import BatchPlan, SchedulerView
from slobench.schedulers.registry import make_policy
from slobench.schedulers.routers import ReplicaLoad, make_router, presplit
from slobench.schedulers.routers.slo_aware import SLOAwareRouter
from slobench.testing.policies import Fcfs
from slobench.workloads.model import Request, Workload


def _setup(workload: str, scheduler: str, n: int, rate: float, replicas: int, seed: int = 2):  # noqa: ANN202
    cfg = validate_config(workload=workload, scheduler=scheduler, num_requests=n, rate_rps=rate, seed=seed,
                          replicas=replicas)
    perf = build_latency_model(cfg)
    return cfg, perf, build_workload(cfg, perf)


def _configs(cfg, perf, replicas: int, **sim: float) -> tuple[list, list[SimConfig]]:  # noqa: ANN001
    """Policies and per-replica configs as SimEngine builds them (seed + r, the engine's batch limits)."""
    gpu = perf.gpu
    policies, configs = [], []
    for r in range(replicas):
        policy = make_policy(cfg.policy, gpu_memory_bytes=gpu.memory_bytes, gpu_name=gpu.name)
        configs.append(replace(SimConfig(truth_noise_cv=0.05, **sim), seed=cfg.seed + r, replica=r,
                               **engine_limits(SimConfig(), policy, gpu.memory_bytes, gpu.name)))
        policies.append(policy)
    return policies, configs


def _key(rec: StageRecord) -> tuple:
    return (rec.request_id, rec.stage_idx)


def _same_records(a: list[StageRecord], b: list[StageRecord]) -> bool:
    """Equal field by field, every float exactly (``repr``: NaN stage starts of unreached stages compare equal)."""
    return [repr(r) for r in sorted(a, key=_key)] == [repr(r) for r in sorted(b, key=_key)]


@pytest.mark.parametrize(("workload", "scheduler", "replicas", "rate"),
                         [("chatbot", "vllm", 3, 27.0), ("toolcalling", "slos-serve", 2, 18.0),
                          # overloaded: slos-serve often plans nothing while holding declined requests, so
                          # replicas wait on idle ticks that foreign arrivals must not shorten
                          ("reasoning", "slos-serve", 2, 30.0)])
def test_lockstep_round_robin_gives_the_presplit_records(workload: str, scheduler: str, replicas: int,
                                                         rate: float) -> None:
    cfg, perf, wl = _setup(workload, scheduler, 90, rate, replicas)
    # The pre-split run stopped each replica its drain timeout after its own last arrival, the lockstep run after
    # the last arrival of all: the last R requests (one per replica) arrive together so both stop at the same time.
    reqs = sorted(wl.requests, key=lambda r: (r.arrival_s, r.id))
    wl = replace(wl, requests=reqs[:-replicas] + [replace(r, arrival_s=reqs[-1].arrival_s) for r in reqs[-replicas:]])
    drain = {"drain_timeout_s": 20.0}  # overloaded runs leave requests unfinished: don't tick for 600 s
    policies, configs = _configs(cfg, perf, replicas, **drain)
    old: list[StageRecord] = []
    for part, policy, c in zip(presplit(wl, make_router("round-robin"), replicas), policies, configs, strict=True):
        old += simulate(part, policy, perf, c).records
    policies, configs = _configs(cfg, perf, replicas, **drain)
    new = simulate_replicas(wl, policies, perf, configs, make_router("round-robin"))
    assert _same_records(old, [rec for sim in new for rec in sim.records])
    assert {rec.replica for sim in new for rec in sim.records} == set(range(replicas))


class _AskEveryoneRoundRobin:
    """Round-robin that first asks every replica's admission query (answers kept, then ignored)."""

    name = "ask-everyone"
    reads_load = True

    def __init__(self) -> None:
        self.answers: list[list[bool]] = []
        self._next = 0

    def route(self, req: Request, replicas: list[ReplicaLoad]) -> int:
        self.answers.append([r.admits() for r in replicas if r.admits is not None])
        self._next += 1
        return (self._next - 1) % len(replicas)


def test_admission_queries_change_nothing() -> None:
    """Asking slos-serve replicas "would you admit" (the slo-aware router's question) leaves their runs as
    they were: the same records as round-robin without asking, while the answers include declines."""
    cfg, perf, wl = _setup("coding", "slos-serve", 120, 60.0, 2)
    plain = simulate_replicas(wl, *_configs(cfg, perf, 2)[:1], perf, _configs(cfg, perf, 2)[1],
                              make_router("round-robin"))
    asker = _AskEveryoneRoundRobin()
    asked = simulate_replicas(wl, *_configs(cfg, perf, 2)[:1], perf, _configs(cfg, perf, 2)[1], asker)
    answers = [a for row in asker.answers for a in row]
    assert len(answers) == 2 * len(wl.requests) and True in answers and False in answers
    assert _same_records([r for s in plain for r in s.records], [r for s in asked for r in s.records])


class _CheckedSLOAware(SLOAwareRouter):
    """slo-aware, recording every replica's answer next to the choice."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[list[bool], int]] = []

    def route(self, req: Request, replicas: list[ReplicaLoad]) -> int:
        answers = [bool(r.admits()) for r in replicas]  # side-effect free, so asking twice is harmless
        choice = super().route(req, replicas)
        self.seen.append((answers, choice))
        return choice


def test_slo_aware_never_sends_to_a_decliner_when_another_admits() -> None:
    cfg, perf, wl = _setup("coding", "slos-serve", 120, 26.0, 2)
    router = _CheckedSLOAware()
    simulate_replicas(wl, *_configs(cfg, perf, 2)[:1], perf, _configs(cfg, perf, 2)[1], router)
    assert len(router.seen) == len(wl.requests)
    assert any(not answers[(i) % 2] and any(answers) for i, (answers, _) in enumerate(router.seen)), \
        "no request was declined by its first replica and admitted by another: the test would prove nothing"
    for answers, choice in router.seen:
        if any(answers):
            assert answers[choice]


def test_slo_aware_idle_replicas_admit() -> None:
    """At light load (2 req/s on 4 replicas) every replica is idle when offered its request, and an idle
    slos-serve replica admits: the requests spread round-robin. An idle replica's paused clock is its own next
    event (infinite when it has none); asked at that time it declined everything, and every request went to
    replica 0 (the slo-aware R = 4 collapse found in docs/routers.md)."""
    cfg, perf, wl = _setup("chatbot", "slos-serve", 60, 2.0, 4)
    router = _CheckedSLOAware()
    simulate_replicas(wl, *_configs(cfg, perf, 4)[:1], perf, _configs(cfg, perf, 4)[1], router)
    assert router.declined_everywhere == 0
    assert all(all(answers) for answers, _ in router.seen)
    assert [choice for _, choice in router.seen] == [i % 4 for i in range(60)]


def _burst(wl: Workload, n: int, spacing_s: float) -> Workload:
    reqs = sorted(wl.requests, key=lambda r: r.id)[:n]
    return replace(wl, requests=[replace(r, arrival_s=i * spacing_s) for i, r in enumerate(reqs)])


def test_vllm_dp_placement_depends_on_the_stats_refresh() -> None:
    """A burst of 24 requests 4 ms apart on 2 replicas: fresh stats see requests move from waiting (score 4) to
    running (score 1) as each replica schedules them; 100 ms-old stats plus local increments do not."""
    cfg, perf, wl = _setup("chatbot", "vllm", 40, 10.0, 2)
    wl = _burst(wl, 24, 0.004)

    def placement(refresh_s: float) -> list[int]:
        sims = simulate_replicas(wl, *_configs(cfg, perf, 2)[:1], perf, _configs(cfg, perf, 2)[1],
                                 make_router("vllm-dp"), refresh_s=refresh_s)
        by_req = {rec.request_id: rec.replica for s in sims for rec in s.records}
        return [by_req[r.id] for r in sorted(wl.requests, key=lambda r: r.arrival_s)]

    stale, fresh = placement(0.1), placement(0.0)
    # Stale: one snapshot of two empty replicas, then only the optimistic increments: strict alternation.
    assert stale == [i % 2 for i in range(24)]
    assert fresh != stale


def _in_flight_max(records: list[StageRecord]) -> int:
    df = records_frame(records)
    spans = df.groupby("request_id").agg(start=("arrival_s", "min"),
                                         end=("token_times_s", lambda s: max(max(t) for t in s if len(t))))
    events = sorted([(a, 1) for a in spans.start] + [(b, -1) for b in spans.end])  # an end before a start at a tie
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


@pytest.mark.parametrize("replicas", [1, 2])
def test_closed_loop_caps_requests_in_flight(replicas: int) -> None:
    cfg, perf, wl = _setup("chatbot", "vllm", 60, 30.0, replicas)
    job = EngineJob(load=ClosedLoopLoad(wl, concurrency=3), policy=cfg.policy, perf=perf, seed=cfg.seed,
                    replicas=ReplicaSet(replicas, "vllm-dp"))
    res = SimEngine(SimConfig(truth_noise_cv=0.05)).run(job)
    assert len({r.request_id for r in res.records}) == 60 and all(r.status.value == "finished" for r in res.records)
    assert _in_flight_max(res.records) == 3
    sent = {r.request_id: r.arrival_s for r in res.records}
    assert any(sent[r.id] > r.arrival_s for r in wl.requests)  # some waited for a slot: their latency counts
    assert all(sent[r.id] >= r.arrival_s for r in wl.requests)  # from the send, never before the arrival
    # The client's evidence says so (what marks a capacity probe INVALID when the cap held the load back).
    lag = max(sent[r.id] - r.arrival_s for r in wl.requests)
    assert res.client is not None and res.client.client_lag_s == lag > 0
    assert res.client.counters["waited_for_slot"] == sum(sent[r.id] > r.arrival_s for r in wl.requests)


@pytest.mark.parametrize("replicas", [1, 2])
def test_closed_loop_with_room_for_everyone_is_the_open_loop(replicas: int) -> None:
    cfg, perf, wl = _setup("toolcalling", "slos-serve", 40, 8.0, replicas)
    engine = SimEngine(SimConfig(truth_noise_cv=0.05))

    def records(load: OpenLoopLoad | ClosedLoopLoad) -> list[StageRecord]:
        job = EngineJob(load=load, policy=cfg.policy, perf=perf, seed=cfg.seed,
                        replicas=ReplicaSet(replicas, "vllm-dp"))
        return engine.run(job).records

    assert _same_records(records(OpenLoopLoad(wl)), records(ClosedLoopLoad(wl, concurrency=40)))
    job = EngineJob(load=ClosedLoopLoad(wl, concurrency=40), policy=cfg.policy, perf=perf, seed=cfg.seed,
                    replicas=ReplicaSet(replicas, "vllm-dp"))
    client = engine.run(job).client
    assert client is not None and client.client_lag_s == 0.0 and client.counters["waited_for_slot"] == 0


def test_run_config_validates_routing_fields_and_records_them(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(UserError, match=r"^--router-refresh-ms: must be a number of milliseconds ≥ 0"):
        validate_config(workload="chatbot", router_refresh_ms=-1)
    with pytest.raises(UserError, match=r"^--max-concurrency: must be ≥ 1"):
        validate_config(workload="chatbot", max_concurrency=0)
    # Real engines take a closed loop too (the load generator's semaphore, tests/test_closed_loop_client.py).
    assert validate_config(workload="chatbot", engine="openai", url="http://127.0.0.1:1/v1",
                           max_concurrency=4).max_concurrency == 4
    cfg = validate_config(workload="chatbot", num_requests=30, replicas=2, router="Power_Of_Two",
                          router_refresh_ms=0, max_concurrency=5)
    assert cfg.router == "power-of-two"
    res = run_once(cfg, run_dir=tmp_path)
    sim = res.summary.engine_info["simulator"]
    assert sim["router"] == "power-of-two" and sim["router_refresh_s"] == 0.0 and sim["max_concurrency"] == 5


@dataclass
class _Batching(Fcfs):
    """Fcfs that holds new requests until the oldest has waited ``hold_s`` (a batching delay): replicas then
    sit in idle ticks with work in hand. Records when it is asked."""

    hold_s: float = 0.05
    asked_s: list[float] = field(default_factory=list)

    def _schedule(self, view: SchedulerView) -> BatchPlan:
        self.asked_s.append(view.now_s)
        if not view.running and view.waiting and view.now_s < view.waiting[0].stage_start_s + self.hold_s:
            return BatchPlan()
        return super()._schedule(view)


def test_a_waiting_replica_is_asked_when_it_would_be_asked_alone() -> None:
    """A replica holding work in idle ticks must not be woken by arrivals routed elsewhere: every schedule()
    call happens at the times of the pre-split run (an extra call at a foreign arrival would be a change)."""
    cfg, perf, wl = _setup("chatbot", "vllm", 60, 6.0, 2)
    reqs = sorted(wl.requests, key=lambda r: (r.arrival_s, r.id))
    wl = replace(wl, requests=reqs[:-2] + [replace(r, arrival_s=reqs[-1].arrival_s) for r in reqs[-2:]])
    configs = _configs(cfg, perf, 2)[1]
    alone = [_Batching(), _Batching()]
    for part, policy, c in zip(presplit(wl, make_router("round-robin"), 2), alone, configs, strict=True):
        simulate(part, policy, perf, c)
    together = [_Batching(), _Batching()]
    simulate_replicas(wl, together, perf, configs, make_router("round-robin"))
    assert sum(len(p.asked_s) for p in alone) > 2 * len(wl.requests)  # idle ticks happened
    assert [p.asked_s for p in together] == [p.asked_s for p in alone]


def test_a_pure_closed_loop_sends_each_request_when_one_ends() -> None:
    """Every arrival at 0 (vLLM bench's ``--request-rate inf``): N requests at 0, each later one sent at the
    moment an earlier one ended (its last token), on any replica."""
    cfg, perf, wl = _setup("chatbot", "vllm", 30, 10.0, 2)
    wl = replace(wl, requests=[replace(r, arrival_s=0.0) for r in wl.requests])
    job = EngineJob(load=ClosedLoopLoad(wl, concurrency=4), policy=cfg.policy, perf=perf, seed=cfg.seed,
                    replicas=ReplicaSet(2, "power-of-two"))
    recs = SimEngine().run(job).records
    sent = sorted(r.arrival_s for r in recs)
    ends = {max(r.token_times_s) for r in recs}
    assert sent[:4] == [0.0] * 4 and sent[4] > 0
    assert all(t in ends for t in sent[4:])
    assert _in_flight_max(recs) == 4
