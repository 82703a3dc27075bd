"""Simulator: textbook queueing result, token accounting, KV bounds, determinism, multi-stage."""

from __future__ import annotations

import numpy as np
import pytest

from slobench.engines.sim import SimConfig, simulate
from slobench.metrics.attainment import stage_metrics, summarize
from slobench.metrics.records import records_frame
from slobench.schedulers.vllm_v1 import VLLMScheduler
from slobench.workloads.model import SLO, Request, Stage, Workload
from tests.conftest import LinearLatency


def _poisson_workload(n: int, rate: float, prompt: int, output: int, seed: int) -> Workload:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    reqs = [
        Request(id=i, arrival_s=float(t), app="chatbot", tier="t", stages=(Stage(prompt, output, SLO(1.0, 0.1)),))
        for i, t in enumerate(arrivals)
    ]
    return Workload(name="poisson", requests=reqs, seed=seed)


def test_md1_queue_matches_pollaczek_khinchine() -> None:
    """One request per batch, constant service time D: M/D/1, mean wait = ρD / (2(1−ρ))."""
    service_s, rate = 0.1, 7.0  # ρ = 0.7
    perf = LinearLatency(base_s=service_s, per_token_s=0.0)
    wl = _poisson_workload(40_000, rate, prompt=8, output=1, seed=1)
    res = simulate(wl, VLLMScheduler(max_num_seqs=1), perf, SimConfig())
    df = stage_metrics(records_frame(res.records))
    waits = df["ttft_s"].to_numpy() - service_s
    rho = rate * service_s
    expected = rho * service_s / (2 * (1 - rho))
    assert waits.mean() == pytest.approx(expected, rel=0.05)


def test_token_accounting_and_timestamps(linear_perf: LinearLatency) -> None:
    wl = _poisson_workload(200, 5.0, prompt=300, output=40, seed=2)
    res = simulate(wl, VLLMScheduler(max_num_batched_tokens=256), linear_perf, SimConfig())
    df = records_frame(res.records)
    assert (df["status"] == "finished").all()
    for times, n, start in zip(df["token_times_s"], df["output_tokens"], df["stage_start_s"], strict=True):
        assert len(times) == n
        assert np.all(np.diff(times) > 0)
        assert times[0] > start
    # chunked prefill: a 300-token prompt under a 256-token budget needs ≥ 2 iterations before its first token
    ttft = stage_metrics(df)["ttft_s"]
    assert ttft.min() >= 2 * linear_perf.base_s


def test_budget_and_kv_never_exceeded() -> None:
    perf = LinearLatency(kv_tokens=4096)
    wl = _poisson_workload(300, 40.0, prompt=500, output=60, seed=3)
    sched = VLLMScheduler(max_num_batched_tokens=512, max_num_seqs=64)
    res = simulate(wl, sched, perf, SimConfig(block_size=16))
    total_blocks = 4096 // 16
    assert max(res.iterations.kv_used_blocks) <= total_blocks
    tokens = np.array(res.iterations.prefill_tokens) + np.array(res.iterations.decode_tokens)
    assert tokens.max() <= 512
    df = records_frame(res.records)
    assert (df["status"] == "finished").all()
    assert df["num_preemptions"].sum() > 0  # the tight KV forced recompute preemptions


def test_deterministic_per_seed(linear_perf: LinearLatency) -> None:
    wl = _poisson_workload(300, 10.0, prompt=200, output=30, seed=4)
    a = summarize(records_frame(simulate(wl, VLLMScheduler(), linear_perf).records))
    b = summarize(records_frame(simulate(wl, VLLMScheduler(), linear_perf).records))
    assert a == b


def test_multistage_reasoning_and_tool_rounds(linear_perf: LinearLatency) -> None:
    think_answer = Request(
        id=0, arrival_s=0.0, app="reasoning", tier="r",
        stages=(Stage(100, 50, SLO(1.0, 0.05), name="think"), Stage(0, 20, SLO(0.1, 0.1), name="answer")),
    )
    tool = Request(
        id=1, arrival_s=0.0, app="toolcalling", tier="t",
        stages=(Stage(500, 10, SLO(1.0, 0.05), name="round"), Stage(80, 10, SLO(0.5, 0.05), gap_s=2.0, name="round"),
                Stage(60, 5, SLO(0.5, 0.1), gap_s=1.0, name="final")),
    )
    res = simulate(Workload("ms", [think_answer, tool]), VLLMScheduler(), linear_perf, SimConfig())
    df = records_frame(res.records).sort_values(["request_id", "stage_idx"])
    assert list(df["stage_name"]) == ["think", "answer", "round", "round", "final"]
    assert (df["status"] == "finished").all()
    r0 = df[df.request_id == 0]
    assert r0.iloc[1]["stage_start_s"] == pytest.approx(r0.iloc[0]["token_times_s"][-1])
    r1 = df[df.request_id == 1]
    assert r1.iloc[1]["stage_start_s"] == pytest.approx(r1.iloc[0]["token_times_s"][-1] + 2.0)
    # prefix caching: round 2 only prefills its 80 new tokens (+ the unaligned tail), so TTFT is short
    assert stage_metrics(r1)["ttft_s"].iloc[1] < linear_perf.prefill_latency_s(300)
    s = summarize(records_frame(res.records))
    assert s["num_requests"] == 2 and s["num_finished"] == 2


def test_overload_marks_unfinished_and_misses(linear_perf: LinearLatency) -> None:
    wl = _poisson_workload(400, 200.0, prompt=2000, output=100, seed=5)
    res = simulate(wl, VLLMScheduler(), linear_perf, SimConfig(drain_timeout_s=1.0))
    s = summarize(records_frame(res.records))
    assert s["num_requests"] == 400
    assert s["num_finished"] < 400
    assert s["attainment"] < 0.5
