"""Requests that share prompt prefixes with other requests: trace hash_ids, the simulator's cross-request prefix
cache (hits, LRU eviction, the prompt − 1 cap, caching off), replicas and routing, the chat-sessions workload."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from slobench.cli import app
from slobench.engines.sim import SimConfig, simulate
from slobench.engines.sim_cluster import simulate_replicas
from slobench.metrics.attainment import stage_metrics
from slobench.metrics.records import records_frame
from slobench.schedulers.routers import make_router
from slobench.schedulers.vllm_v1 import VLLMScheduler
from slobench.workloads import generate
from slobench.workloads.model import SLO, Request, Stage, Workload
from slobench.workloads.prefix import cached_prefix_tokens, prefix_stats
from tests.conftest import LinearLatency

runner = CliRunner()
X = (1, 2, 3, 4)  # four 64-token blocks: a 260-token prompt shares its first 256 tokens
Y = (11, 12, 13, 14)


def _req(i: int, t: float, prompt: int, hashes: tuple[int, ...] = (), out: int = 2) -> Request:
    return Request(id=i, arrival_s=t, app="chatbot", tier="t", stages=(Stage(prompt, out, SLO(1.0, 0.1)),),
                   prefix_blocks=hashes, prefix_block_tokens=64)


def _spaced(specs: list[tuple[int, tuple[int, ...]]], gap_s: float = 1.0, out: int = 2) -> Workload:
    """One request per ``gap_s`` (each alone on the replica): (prompt tokens, hashes) each."""
    return Workload("w", [_req(i, i * gap_s, p, h, out) for i, (p, h) in enumerate(specs)])


def _prefill(res) -> int:  # noqa: ANN001
    return sum(res.iterations.prefill_tokens)


# --- traces: hash_ids kept row by row --------------------------------------------------------------------------


def test_hash_ids_from_a_csv_stay_with_their_row(tmp_path: Path) -> None:
    rows = [(0.0, 600, 10, [0, 1]), (1.0, 700, 20, [0, 2]), (2.5, 130, 5, []), (4.0, 1100, 30, [0, 1, 3])]
    (tmp_path / "t.csv").write_text("t,in,out,h\n" + "".join(f'{t},{i},{o},"{json.dumps(h)}"\n'
                                                            for t, i, o, h in rows))
    spec = {"name": "m", "apps": [{"name": "custom", "tier": "t", "slo": {"main": {"ttft_ms": 500, "tpot_ms": 100}},
                                   "lengths": {"path": "t.csv", "prompt_tokens_column": "in",
                                               "output_tokens_column": "out", "hash_column": "h"}}],
            "arrival": {"process": "poisson"}, "rate_rps": 1.0, "num_requests": 40}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(spec))
    wl = generate(tmp_path / "m.yaml", perf=None, seed=3)  # rows drawn at random: hashes must follow lengths
    by_prompt = {i: tuple(h) for _, i, _, h in rows}
    assert {r.stages[0].prompt_tokens for r in wl.requests} == set(by_prompt)
    for r in wl.requests:
        assert r.prefix_blocks == by_prompt[r.stages[0].prompt_tokens] and r.prefix_block_tokens == 512


def test_a_mooncake_jsonl_becomes_a_replayed_workload_with_hashes(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Mooncake's format (ms timestamps, input_length, output_length, hash_ids) through `workloads new`."""
    monkeypatch.chdir(tmp_path)
    rows = [{"timestamp": 1000 * k, "input_length": 520 + 100 * k, "output_length": 9 + k,
             "hash_ids": [0, 1 + k % 2] if k % 3 else [0]} for k in range(12)]
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = runner.invoke(app, ["workloads", "new", "mc", "--from-trace", "mc.jsonl", "--time-unit", "ms"])
    assert res.exit_code == 0, res.output
    written = yaml.safe_load((tmp_path / "mc.yaml").read_text())
    assert written["apps"][0]["lengths"]["hash_column"] == "hash_ids"
    from slobench.perf import get_latency_model

    wl = generate(tmp_path / "mc.yaml", perf=get_latency_model(), seed=0, num_requests=12)
    by_prompt = {r["input_length"]: tuple(r["hash_ids"]) for r in rows}
    assert len(wl.requests) == 12
    assert all(r.prefix_blocks == by_prompt[r.stages[0].prompt_tokens] for r in wl.requests)
    shown = runner.invoke(app, ["workloads", "show", "mc.yaml"])
    assert shown.exit_code == 0 and "shared prefixes" in shown.output, shown.output


@pytest.mark.parametrize(("cell", "says"), [
    ("7", "must hold a list of block hashes per row"),
    ('"[0, -4]"', "row 2 has hash id -4"),
    ('"[0, 1, 2, 3]"', "row 2 has 4 hashes of 512 tokens"),
])
def test_bad_hash_cells_are_one_line_naming_file_and_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         cell: str, says: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "h.csv").write_text('timestamp,input_length,output_length,hash_ids\n0,600,10,"[0, 1]"\n'
                                    f"1,700,20,{cell}\n")
    res = runner.invoke(app, ["workloads", "new", "t", "--from-trace", "h.csv"])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "h.csv" in lines[0] and says in lines[0] and "hash_column" in lines[0]


def test_prefix_blocks_survive_the_workload_json_round_trip() -> None:
    wl = _spaced([(260, X), (100, ())])
    back = Workload.from_json(wl.to_json())
    assert [r.prefix_blocks for r in back.requests] == [X, ()]
    assert back.requests[0].prefix_block_tokens == 64


# --- the simulator's prefix cache ----------------------------------------------------------------------------


def test_cached_prefix_never_covers_the_last_prompt_token() -> None:
    cache = dict.fromkeys(X, 64)
    assert cached_prefix_tokens(cache, _req(0, 0, 260, X)) == (256, 4)
    assert cached_prefix_tokens(cache, _req(0, 0, 256, X)) == (255, 4)  # all cached: the last token is computed
    assert cached_prefix_tokens({1: 64, 3: 64}, _req(0, 0, 260, X)) == (64, 1)  # contiguous from the start only


def test_hits_shorten_prefill_and_ttft(linear_perf: LinearLatency) -> None:
    shared = _spaced([(260, X)] * 5)
    plain = replace(shared, requests=[replace(r, prefix_blocks=()) for r in shared.requests])
    hit = simulate(shared, VLLMScheduler(), linear_perf, SimConfig())
    base = simulate(plain, VLLMScheduler(), linear_perf, SimConfig())
    assert _prefill(base) == 5 * 260
    assert _prefill(hit) == 260 + 4 * 4  # 256 of each later prompt are cached: 4 tokens prefilled
    assert hit.prefix_cache == {"requests": 5, "prompt_tokens": 1300, "hit_tokens": 1024, "requests_hit": 4,
                                "evicted_blocks": 0}
    assert base.prefix_cache == {}
    t_hit = stage_metrics(records_frame(hit.records))["ttft_s"].to_numpy()
    t_base = stage_metrics(records_frame(base.records))["ttft_s"].to_numpy()
    assert t_hit[0] == pytest.approx(t_base[0]) and (t_hit[1:] < t_base[1:]).all()


def test_a_fully_cached_prompt_still_prefills_its_last_block(linear_perf: LinearLatency) -> None:
    res = simulate(_spaced([(256, X), (256, X)]), VLLMScheduler(), linear_perf, SimConfig())
    assert _prefill(res) == 256 + 16  # hit capped at 255 tokens, rounded down to the 16-token KV block: 240


def test_prefix_caching_off_gives_no_hits(linear_perf: LinearLatency) -> None:
    shared = _spaced([(260, X)] * 4)
    plain = replace(shared, requests=[replace(r, prefix_blocks=()) for r in shared.requests])
    off = simulate(shared, VLLMScheduler(), linear_perf, SimConfig(prefix_caching=False))
    base = simulate(plain, VLLMScheduler(), linear_perf, SimConfig(prefix_caching=False))
    assert _prefill(off) == 4 * 260 and off.prefix_cache == {}
    assert [r.token_times_s for r in off.records] == [r.token_times_s for r in base.records]


def test_hashes_that_never_repeat_change_nothing(linear_perf: LinearLatency) -> None:
    wl = Workload("w", [_req(i, 0.05 * i, 200 + 37 * (i % 7), tuple(range(10 * i, 10 * i + 3))) for i in range(60)])
    plain = replace(wl, requests=[replace(r, prefix_blocks=()) for r in wl.requests])
    a = simulate(wl, VLLMScheduler(), linear_perf, SimConfig())
    b = simulate(plain, VLLMScheduler(), linear_perf, SimConfig())
    assert [r.token_times_s for r in a.records] == [r.token_times_s for r in b.records]
    assert a.iterations.as_dict() == b.iterations.as_dict() and a.prefix_cache["hit_tokens"] == 0


def test_kv_pressure_evicts_the_least_recently_used_prefix() -> None:
    """x then y cached (512 tokens); a 639-token request leaves 24 free blocks (384 tokens): x's first two blocks
    (the least recently used) are evicted, so x misses afterwards while y still hits. With room, both hit."""
    specs = [(260, X), (260, Y), (639, ()), (260, Y), (260, X)]
    small = simulate(_spaced(specs, out=1), VLLMScheduler(), LinearLatency(kv_tokens=1024), SimConfig())
    large = simulate(_spaced(specs, out=1), VLLMScheduler(), LinearLatency(kv_tokens=1 << 20), SimConfig())
    assert _prefill(large) == 260 + 260 + 639 + 4 + 4
    assert _prefill(small) == 260 + 260 + 639 + 4 + 260
    assert small.prefix_cache["evicted_blocks"] == 2 and large.prefix_cache["evicted_blocks"] == 0


# --- replicas and routing ------------------------------------------------------------------------------------


def _replicas(wl: Workload, router: str, n: int = 2) -> list:
    perf = LinearLatency()
    return simulate_replicas(wl, [VLLMScheduler() for _ in range(n)], perf,
                             [SimConfig(replica=r) for r in range(n)], make_router(router), refresh_s=0.0)


def test_a_prefix_is_cached_only_on_the_replica_that_computed_it() -> None:
    res = _replicas(_spaced([(260, X)] * 3), "round-robin")  # replicas 0, 1, 0
    assert [_prefill(r) for r in res] == [260 + 4, 260]


def test_prefix_aware_routing_sends_a_repeat_prefix_where_it_is_cached() -> None:
    wl = _spaced([(260, X), (260, Y)] * 4, gap_s=0.5)
    aware = _replicas(wl, "prefix-aware")
    rr = _replicas(wl, "round-robin")
    place = {rec.request_id: rec.replica for res in aware for rec in res.records}
    assert len({place[i] for i in range(0, 8, 2)}) == 1 and len({place[i] for i in range(1, 8, 2)}) == 1
    assert place[0] != place[1]
    assert sum(_prefill(r) for r in aware) == 2 * 260 + 6 * 4
    # x, y alternate, so round-robin happens to keep them apart too: now break the alternation
    wl2 = _spaced([(260, X), (260, X), (260, Y), (260, Y)] * 2, gap_s=0.5)
    aware2, rr2 = _replicas(wl2, "prefix-aware"), _replicas(wl2, "round-robin")
    assert sum(_prefill(r) for r in aware2) == 2 * 260 + 6 * 4
    assert sum(_prefill(r) for r in rr2) > sum(_prefill(r) for r in aware2)
    assert sum(_prefill(r) for r in rr) == 2 * 260 + 6 * 4


# --- the shipped session workload ------------------------------------------------------------------------------


def test_chat_sessions_share_prefixes_and_the_simulator_hits_them() -> None:
    from slobench.perf import get_latency_model

    perf = get_latency_model()
    wl = generate("chat-sessions", perf=perf, seed=1, rate_rps=2.0, num_requests=150)
    stats = prefix_stats(wl.requests)
    assert stats["shared_token_share"] > 0.5 and stats["requests_sharing"] > 0.9
    plain = replace(wl, requests=[replace(r, prefix_blocks=()) for r in wl.requests])
    hit = simulate(wl, VLLMScheduler(), perf, SimConfig())
    base = simulate(plain, VLLMScheduler(), perf, SimConfig())
    assert hit.prefix_cache["hit_tokens"] > 0.5 * hit.prefix_cache["prompt_tokens"]
    assert _prefill(hit) < 0.5 * _prefill(base)


def test_sessions_that_cannot_fit_a_first_turn_are_one_error(tmp_path: Path) -> None:
    from slobench.errors import UserError
    from slobench.perf import get_latency_model
    from slobench.workloads.spec import SPEC_DIR

    spec = yaml.safe_load((SPEC_DIR / "chat-sessions.yaml").read_text())
    spec["apps"][0]["lengths"]["max_context"] = 600  # below the 1024-token system prompt
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(UserError, match="no session's first turn fits"):
        generate(tmp_path / "s.yaml", perf=get_latency_model(), seed=0, num_requests=20)
