"""`--max-concurrency` on real engines: the load generator's closed loop against a mock OpenAI server.

What it must prove: never more than N generations in flight at the server, every request still sent
(one waiting for a slot goes when a slot frees), latency counted from the send (records carry the send
time as ``arrival_s``, as vLLM's benchmark and the simulator's closed loop do), a multi-stage request
holding its slot through its tool gap, the generator's own lateness measured from the moment a slot
freed (apart from the wait for the slot), and a run that stops while sends wait for a slot ending at once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slobench.cli import app
from slobench.engines.openai.client import run_load
from slobench.engines.openai.protocol import Endpoint
from slobench.testing.mock_server import MockServer
from slobench.workloads.model import SLO, Request, Stage, Workload

SLO_ = SLO(ttft_s=5.0, tpot_s=1.0)


@pytest.fixture
def mock():
    srv = MockServer(ttft_s=0.005, tpot_s=0.002).start()
    yield srv
    srv.stop()


def _burst(n: int, out: int = 20) -> Workload:
    """``n`` one-stage requests all arriving at 0: a pure closed loop."""
    return Workload("burst", [Request(i, 0.0, "chatbot", "chat", (Stage(16, out, SLO_),)) for i in range(n)])


def test_cap_holds_at_the_server_and_every_request_is_sent(mock: MockServer) -> None:
    res = run_load(_burst(12), Endpoint(base_url=mock.url, model="mock"), vocab_size=1024, max_concurrency=3)
    assert mock.max_in_flight == 3  # reached, never passed
    assert len(res.records) == 12 and all(r.status.value == "finished" for r in res.records)
    counters = res.stats.summary()
    assert counters["max_concurrency"] == 3 and counters["waited_for_slot"] == 9
    # Latency counts from the send: a request that waited for a slot carries its send time, not 0.
    sends = sorted(r.arrival_s for r in res.records)
    assert sends[:3] == pytest.approx([0.0, 0.0, 0.0], abs=0.2) and sends[-1] > 0.05
    assert all(r.stage_start_s == r.arrival_s for r in res.records)
    # Against the arrival schedule the cap shows as lag; the generator's own lateness (from slot free) is small.
    assert counters["client_lag_s"] > 0.05
    assert counters["send_lag_s"] < 0.25


def test_a_tool_request_holds_its_slot_through_the_gap(mock: MockServer) -> None:
    tool = (Stage(10, 3, SLO_, name="round"), Stage(5, 3, SLO_, gap_s=0.1, name="final"))
    wl = Workload("tools", [Request(0, 0.0, "toolcalling", "t", tool), Request(1, 0.0, "chatbot", "c",
                                                                               (Stage(8, 2, SLO_),))])
    res = run_load(wl, Endpoint(base_url=mock.url, model="mock"), vocab_size=1024, max_concurrency=1)
    by = {(r.request_id, r.stage_idx): r for r in res.records}
    assert by[(1, 0)].arrival_s >= by[(0, 1)].token_times_s[-1]  # sent after the tool request's last token
    assert mock.max_in_flight == 1


def test_stop_while_sends_wait_for_a_slot_ends_the_run(mock: MockServer) -> None:
    slow = MockServer(ttft_s=0.05, tpot_s=0.05).start()
    try:
        done: list[object] = []
        t0 = time.perf_counter()
        res = run_load(_burst(8, out=10), Endpoint(base_url=slow.url, model="mock"), vocab_size=1024,
                       max_concurrency=1, on_record=done.append, stop=lambda: len(done) >= 2)
        assert time.perf_counter() - t0 < 3.0  # 8 sequential requests would take ≥ 4 s
    finally:
        slow.stop()
    assert len(res.records) == 8  # every request has its record: finished, unfinished or never sent
    assert sum(r.status.value == "finished" for r in res.records) == 2


def test_run_cli_with_max_concurrency_on_openai(mock: MockServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["run", "--engine", "openai", "--url", mock.url, "-w", "chatbot", "-n", "10",
                                 "--rate", "500", "--max-concurrency", "2", "--engine-arg", "vocab_size=1024"])
    assert r.exit_code == 0, r.output
    summary = json.loads(next((tmp_path / "results").rglob("summary.json")).read_text())
    assert summary["num_finished"] == 10 and mock.max_in_flight <= 2
    assert summary["client"]["max_concurrency"] == 2
    manifest = json.loads(next((tmp_path / "results").rglob("manifest.json")).read_text())
    assert manifest["config"]["max_concurrency"] == 2
