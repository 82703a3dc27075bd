"""Each router's rule on hand-made replica loads (no simulation): the rule its docstring cites."""

from __future__ import annotations

import pytest

from slobench.errors import UserError
from slobench.schedulers.routers import ReplicaLoad, make_router, router_names
from slobench.workloads.model import SLO, Request, Stage

REQ = Request(id=1, arrival_s=0.0, app="chatbot", tier="chat",
              stages=(Stage(prompt_tokens=100, output_tokens=10, slo=SLO(ttft_s=1.0, tpot_s=0.1)),))


def loads(*counts: tuple[int, int], kv: tuple[float, ...] = (), hits: tuple[int, ...] = ()) -> list[ReplicaLoad]:
    return [ReplicaLoad(i, num_waiting=w, num_running=r, kv_used_frac=kv[i] if kv else 0.0,
                        prefix_hit_tokens=hits[i] if hits else 0) for i, (w, r) in enumerate(counts)]


def test_registry_names_and_unknown_name() -> None:
    assert router_names() == ["round-robin", "vllm-dp", "power-of-two", "prefix-aware", "slo-aware"]
    assert make_router("VLLM_DP").name == "vllm-dp"
    with pytest.raises(UserError, match=r"^--router: unknown router 'p2c'; choose one of: round-robin, vllm-dp"):
        make_router("p2c")


def test_round_robin_ignores_load() -> None:
    rr = make_router("round-robin")
    assert [rr.route(REQ, loads((9, 9), (0, 0), (0, 0))) for _ in range(4)] == [0, 1, 2, 0]


def test_vllm_dp_scores_four_waiting_plus_running() -> None:
    dp = make_router("vllm-dp")
    assert dp.route(REQ, loads((1, 0), (0, 3), (0, 5))) == 1  # scores 4, 3, 5
    assert dp.route(REQ, loads((0, 5), (1, 0), (0, 4))) == 1  # 5, 4, 4: the first lowest wins
    assert dp.route(REQ, loads((2, 0), (0, 7))) == 1  # 8 vs 7: running is cheap


def test_power_of_two_never_picks_the_most_loaded_of_three_and_is_seeded() -> None:
    lo = loads((0, 1), (0, 2), (5, 9))
    p2 = make_router("power-of-two", seed=3)
    picks = [p2.route(REQ, lo) for _ in range(200)]
    assert 2 not in picks and {0, 1} <= set(picks)
    # Replica 1 wins only when sampled with 2 (1/3 of pairs): roughly a third of the picks.
    assert 40 < picks.count(1) < 95
    again = make_router("power-of-two", seed=3)
    assert [again.route(REQ, lo) for _ in range(200)] == picks
    other = make_router("power-of-two", seed=4)
    assert [other.route(REQ, lo) for _ in range(200)] != picks


def test_prefix_aware_follows_the_cache_unless_imbalanced() -> None:
    pa = make_router("prefix-aware")
    # Balanced, replica 2 holds 60% of the prompt: cache wins over load.
    assert pa.route(REQ, loads((0, 10), (0, 2), (0, 12), hits=(0, 0, 60))) == 2
    # A hit below the 0.3 threshold: the smallest approximate tree (prompt tokens this router sent there so far:
    # 100 to replica 2 above), whatever the stale KV use says.
    assert pa.route(REQ, loads((0, 10), (0, 2), (0, 12), kv=(0.5, 0.1, 0.0), hits=(20, 0, 0))) == 0
    assert pa.route(REQ, loads((0, 10), (0, 2), (0, 12), kv=(0.5, 0.1, 0.0), hits=(20, 0, 0))) == 1
    assert pa.tree_tokens == [100, 100, 100]
    # Imbalanced beyond both thresholds (100 − 2 > 64 and 100 > 1.5·2): shortest queue, whatever the cache.
    assert pa.route(REQ, loads((50, 50), (0, 2), (0, 30), hits=(100, 0, 0))) == 1
    # Beyond the absolute threshold only (300 − 230 > 64, but 300 < 1.5·230): not imbalanced, the cache wins.
    assert pa.route(REQ, loads((0, 300), (0, 230), hits=(100, 0))) == 0
    # Beyond the relative threshold only (60 > 1.5·2, but 60 − 2 < 64): not imbalanced either.
    assert pa.route(REQ, loads((0, 60), (0, 2), hits=(100, 0))) == 0


def test_slo_aware_offers_in_turn_and_falls_back_to_the_least_loaded() -> None:
    asked: list[int] = []

    def answer(i: int, ok: bool):  # noqa: ANN202
        def admits() -> bool:
            asked.append(i)
            return ok
        return admits

    def with_answers(*oks: bool, counts: tuple[tuple[int, int], ...] = ((0, 0), (0, 0), (0, 0))) -> list[ReplicaLoad]:
        return [ReplicaLoad(i, num_waiting=w, num_running=r, admits=answer(i, ok))
                for i, ((w, r), ok) in enumerate(zip(counts, oks, strict=True))]

    slo = make_router("slo-aware")
    assert slo.route(REQ, with_answers(True, True, True)) == 0  # request 0 starts at replica 0
    assert slo.route(REQ, with_answers(True, False, True)) == 2  # request 1 starts at 1, which declines
    assert asked == [0, 1, 2]
    asked.clear()
    assert slo.route(REQ, with_answers(False, True, False)) == 1  # request 2 starts at 2, wraps to 0, then 1
    assert asked == [2, 0, 1]
    # Nobody admits: the least loaded (fewest waiting + running), counted.
    assert slo.route(REQ, with_answers(False, False, False, counts=((3, 1), (0, 2), (1, 0)))) == 2
    assert slo.declined_everywhere == 1
    # Replicas without an admission query take every request: round-robin.
    plain = make_router("slo-aware")
    assert [plain.route(REQ, loads((5, 5), (0, 0))) for _ in range(3)] == [0, 1, 0]
