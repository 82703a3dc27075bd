"""Real replicas behind the driver's router (`engines.openai.routing`), against mock OpenAI servers.

What it must prove without vLLM: each request goes to the replica its router chose when it was sent, with that
replica's index on its records; a tool request's later calls follow its first; load-reading routers see the
driver's counts of calls waiting and streaming, stale by the refresh interval plus the optimistic increment; a
replica killed mid-run leaves the rotation (its in-flight requests end as failed records, kept) while the run
goes on with the others; losing every replica ends the run in one line; `slo-aware` is refused in one line.
"""

from __future__ import annotations

import time

import pytest

from slobench.engines.errors import EngineError
from slobench.engines.openai.client import Replicas, run_load
from slobench.engines.openai.protocol import Endpoint
from slobench.engines.openai.routing import ClientRouter, check_real_router
from slobench.errors import UserError
from slobench.schedulers.routers import make_router
from slobench.testing.mock_server import MockServer
from slobench.workloads.model import SLO, Request, Stage, Workload

SLO_ = SLO(ttft_s=5.0, tpot_s=1.0)


@pytest.fixture
def servers():
    made = [MockServer(ttft_s=0.005, tpot_s=0.002).start() for _ in range(2)]
    yield made
    for s in made:
        s.stop()


def _replicas(servers: list[MockServer], router: str, refresh_s: float = 0.1) -> Replicas:
    def health(srv: MockServer):
        def check() -> None:
            import httpx

            try:
                httpx.get(srv.url + "/models", timeout=2.0)
            except httpx.HTTPError as exc:
                raise EngineError(f"mock replica at {srv.url} is gone ({type(exc).__name__})") from None
        return check

    return Replicas(endpoints=[Endpoint(base_url=s.url, model="mock") for s in servers],
                    health_checks=[health(s) for s in servers],
                    router=ClientRouter.named(router, len(servers), refresh_s, seed=0))


def _poisson(n: int, rate: float, out: int = 10) -> Workload:
    return Workload("wl", [Request(i, i / rate, "chatbot", "chat", (Stage(16, out, SLO_),)) for i in range(n)])


def test_round_robin_alternates_and_records_carry_the_replica(servers: list[MockServer]) -> None:
    reps = _replicas(servers, "round-robin")
    res = run_load(_poisson(10, 50.0), reps.endpoints[0], vocab_size=1024, replicas=reps)
    by_id = {r.request_id: r.replica for r in res.records}
    assert [by_id[i] for i in range(10)] == [0, 1] * 5
    assert [len(s.requests) for s in servers] == [5, 5]  # each server got exactly its share
    routing = res.stats.summary()["routing"]
    assert routing["calls_per_replica"] == [5, 5] and routing["replicas_lost"] == []
    assert routing["router"] == "round-robin"


def test_a_tool_requests_later_call_follows_its_first(servers: list[MockServer]) -> None:
    tool = (Stage(10, 3, SLO_, name="round"), Stage(5, 3, SLO_, gap_s=0.05, name="final"))
    wl = Workload("t", [Request(i, 0.01 * i, "toolcalling", "t", tool) for i in range(4)])
    reps = _replicas(servers, "round-robin")
    res = run_load(wl, reps.endpoints[0], vocab_size=1024, replicas=reps)
    for rid in range(4):
        assert {r.replica for r in res.records if r.request_id == rid} == {rid % 2}
    assert [len(s.requests) for s in servers] == [4, 4]  # two calls per request, on its own replica


def test_vllm_dp_spreads_a_burst_by_the_optimistic_increment() -> None:
    """Ten sends at one instant, counts all zero at the refresh: the local increment alternates them."""
    router = ClientRouter(make_router("vllm-dp"), 2, refresh_s=0.1)
    req = Request(0, 0.0, "chatbot", "c", (Stage(8, 2, SLO_),))
    picks = [router.place(req, 0.0) for _ in range(10)]
    assert picks == [0, 1] * 5


def test_counts_are_stale_until_the_next_refresh() -> None:
    router = ClientRouter(make_router("vllm-dp"), 2, refresh_s=0.1)
    req = Request(0, 0.0, "chatbot", "c", (Stage(8, 2, SLO_),))
    assert router.place(req, 0.0) == 0
    for _ in range(3):
        router.call_sent(0)  # replica 0 now truly holds 3 waiting calls …
    router._bumps = [0, 1]  # … but the router's increments say replica 1 is the busier one
    assert router.place(req, 0.05) == 0  # stale: the snapshot (0, 0) plus increments
    assert router.place(req, 0.1) == 1  # refreshed at 100 ms: replica 0's three waiting calls are seen
    fresh = ClientRouter(make_router("vllm-dp"), 2, refresh_s=0.0)
    fresh.call_sent(0)
    assert fresh.place(req, 0.0) == 1  # refresh 0: always the true counts


def test_prefix_aware_follows_the_routers_own_tree() -> None:
    router = ClientRouter(make_router("prefix-aware"), 2, refresh_s=0.1)
    first = Request(0, 0.0, "chat", "c", (Stage(2048, 2, SLO_),), prefix_blocks=(1, 2, 3, 4), prefix_block_tokens=512)
    other = Request(1, 0.0, "chat", "c", (Stage(2048, 2, SLO_),), prefix_blocks=(9,), prefix_block_tokens=512)
    again = Request(2, 0.0, "chat", "c", (Stage(2048, 2, SLO_),), prefix_blocks=(1, 2, 3, 5), prefix_block_tokens=512)
    a = router.place(first, 0.0)
    b = router.place(other, 0.0)
    assert a != b  # no cache match: the smaller tree
    assert router._prefix_hit(again, a) == 3 * 512 and router._prefix_hit(again, b) == 0
    assert router.place(again, 0.0) == a  # three of four blocks cached where `first` went


def test_a_replica_killed_mid_run_leaves_the_rotation_and_the_run_goes_on(servers: list[MockServer]) -> None:
    reps = _replicas(servers, "round-robin")
    wl = _poisson(40, 20.0, out=30)  # 2 s of arrivals; each request streams ~0.07 s

    def kill_later() -> None:
        time.sleep(0.6)
        servers[1].kill()

    import threading

    killer = threading.Thread(target=kill_later)
    killer.start()
    res = run_load(wl, reps.endpoints[0], vocab_size=1024, replicas=reps)
    killer.join()
    assert len({r.request_id for r in res.records}) == 40  # every request has its records, none dropped
    routing = res.stats.summary()["routing"]
    lost = routing["replicas_lost"]
    assert [x["replica"] for x in lost] == [1] and 0.5 < lost[0]["at_s"] < 2.5
    assert "gone" in lost[0]["error"]
    finished_on = {r.replica for r in res.records if r.status.value == "finished"}
    assert finished_on == {0, 1}  # replica 1 finished its requests before the kill
    late = [r for r in res.records if r.arrival_s > lost[0]["at_s"] + 0.05]
    assert late and all(r.replica == 0 and r.status.value == "finished" for r in late)  # all on the survivor


def test_losing_every_replica_ends_the_run_in_one_line(servers: list[MockServer]) -> None:
    reps = _replicas(servers, "round-robin")
    for s in servers:
        s.kill()
    records = []
    with pytest.raises(EngineError, match="every replica is gone") as err:
        run_load(_poisson(6, 20.0), reps.endpoints[0], vocab_size=1024, replicas=reps, on_record=records.append)
    assert "\n" not in str(err.value)
    assert records  # the failed ones are kept


def test_slo_aware_is_refused_for_real_replicas() -> None:
    with pytest.raises(UserError, match="--router slo-aware: real replicas cannot answer the admission query"):
        check_real_router("slo_aware", 2)
    check_real_router("slo-aware", 1)  # one replica: no routing happens
