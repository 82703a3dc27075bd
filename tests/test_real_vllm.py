"""The whole real path on vLLM's CPU build with a tiny locally built Llama (CI runs this).

Economy: the model is built once; two servers (stock vLLM = the baseline, and vLLM with the
SLOs-Serve adapter class) start once per session (tests/conftest.py `vllm_pool`, shared with
tests/test_calibrate.py) and every test, the CLI `compare` included, reuses them through the engine pool.
Workloads are a handful of short requests. Tests run in file order: the last ones kill or stop the
shared servers on purpose.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from slobench.testing.kit import require_vllm_or_skip  # noqa: E402

require_vllm_or_skip()

from typer.testing import CliRunner  # noqa: E402

from slobench.cli import app  # noqa: E402
from slobench.engines.openai.client import run_load  # noqa: E402
from slobench.engines.openai.protocol import Endpoint  # noqa: E402
from slobench.engines.vllm import procs  # noqa: E402
from slobench.engines.vllm.events import EventReader  # noqa: E402
from slobench.engines.vllm.launcher import VLLMServer  # noqa: E402
from slobench.engines.vllm.pool import get_pool  # noqa: E402
from slobench.testing.kit import (  # noqa: E402
    adapter_policy,
    pids_serving_port,
    shared_server_spec,
    tiny_model_dir,
    tiny_workload,
)
from slobench.workloads.model import SLO, Request, Stage, Workload  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(600)]
runner = CliRunner()


POLICY = adapter_policy()


@pytest.fixture(scope="module")
def tiny() -> Path:
    return tiny_model_dir()


@pytest.fixture(scope="module", autouse=True)
def _pool(vllm_pool):  # noqa: ANN001, ANN202
    """The session's pool (tests/conftest.py); this module ends the servers' lives (the last tests stop or kill
    them), and after it nothing may be left running."""
    yield vllm_pool
    assert vllm_pool.stop_all() == []


@pytest.fixture(scope="module")
def stock(tiny_server) -> VLLMServer:  # noqa: ANN001
    """Stock vLLM: the spec `slobench run/compare --engine vllm --model <tiny>` builds (so the CLI reuses it)."""
    return tiny_server(None)


@pytest.fixture(scope="module")
def adapter(tiny_server) -> VLLMServer:  # noqa: ANN001
    """The SLOs-Serve adapter server; tests/test_calibrate.py uses the same one when both run in one session."""
    return tiny_server(POLICY)


def _mixed() -> Workload:
    slo = SLO(ttft_s=5.0, tpot_s=1.0)
    return Workload("mixed-real", [
        Request(0, 0.0, "chatbot", "chat", (Stage(48, 8, slo),)),
        Request(1, 0.05, "chatbot", "chat", (Stage(17, 5, slo),)),
        Request(2, 0.10, "reasoning", "r", (Stage(24, 6, slo, name="think"), Stage(0, 4, slo, name="answer"))),
        Request(3, 0.15, "toolcalling", "t", (Stage(30, 3, slo, name="round"),
                                              Stage(12, 5, slo, gap_s=0.2, name="final"))),
    ])


def _check_records(records: list) -> None:  # noqa: ANN001
    by = {(r.request_id, r.stage_idx): r for r in records}
    assert len(by) == 6, [(r.request_id, r.stage_idx, r.status, r.error) for r in records]
    for r in by.values():
        assert r.status == "finished", (r.request_id, r.stage_idx, r.error)
        assert len(r.token_times_s) == r.output_tokens and r.token_times_s == sorted(r.token_times_s)
        assert r.token_times_s[0] >= r.stage_start_s
    think, answer = by[(2, 0)], by[(2, 1)]
    assert answer.stage_start_s == think.token_times_s[-1]
    rnd, final = by[(3, 0)], by[(3, 1)]
    assert final.stage_start_s >= rnd.token_times_s[-1] + 0.2 - 1e-3


def test_stock_server_streams_token_exact(stock: VLLMServer) -> None:
    res = run_load(_mixed(), Endpoint(base_url=stock.base_url, model=stock.served_model), seed=0, vocab_size=1024,
                   health_check=stock.check_alive)
    _check_records(res.records)
    s = res.stats.summary()
    # vLLM's usage confirms it processed exactly the prompt tokens we sent (tool round: the whole context).
    assert s["prompt_tokens_sent"] == 48 + 17 + 24 + 30 + (30 + 3 + 12) == s["prompt_tokens_reported"]
    assert s["usage_mismatches"] == 0 and s["tokens"] == 8 + 5 + 10 + 3 + 5


def test_slos_serve_class_loaded_and_called(adapter: VLLMServer) -> None:
    events = EventReader(adapter.events_path)
    res = run_load(_mixed(), Endpoint(base_url=adapter.base_url, model=adapter.served_model), seed=0,
                   vocab_size=1024, admission_lookup=events.admission, health_check=adapter.check_alive)
    _check_records(res.records)
    loaded = events.last("loaded")
    assert loaded is not None and loaded["policy"] == POLICY and loaded["variant"] == "sync"
    deadline = time.monotonic() + 10
    while (stats := events.last("stats")) is None or stats["scheduled_tokens"] < 40:
        assert time.monotonic() < deadline, stats
        time.sleep(0.2)
    assert stats["calls"] > 10 and stats["unplanned_tokens"] == 0
    assert {r.admission for r in res.records} <= {"admitted", "best_effort"}
    assert len(events.admissions) >= 5  # one decision per HTTP request, keyed by slobench id
    log = adapter.log_path.read_text()
    assert "slobench.engines.vllm.adapter.PolicySchedulerAdapter" in log
    assert f"slobench scheduler adapter loaded: policy={POLICY} variant=sync" in log


def _one_error_line(output: str) -> str:
    errs = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1 and "Traceback" not in output, output
    return errs[0]


def test_openai_engine_drives_the_vllm_server(stock: VLLMServer, tiny: Path, tmp_path: Path) -> None:
    wl = tiny_workload(tmp_path / "wl")
    r = runner.invoke(app, ["run", "--engine", "openai", "--url", stock.base_url.removesuffix("/v1"), "-w", str(wl),
                            "-n", "10", "--rate", "4", "--engine-arg", "vocab_size=1024", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    summary = json.loads(next(tmp_path.glob("*-run-*/summary.json")).read_text())
    assert summary["num_finished"] == 10 and summary["engine_info"]["served_model"] == str(tiny)


def test_compare_vllm_quick_writes_report(stock: VLLMServer, adapter: VLLMServer, tiny: Path, tmp_path: Path) -> None:
    pool = get_pool()
    before = {k: s.proc.pid for k, s in pool.servers.items()}
    wl = tiny_workload(tmp_path / "wl")
    r = runner.invoke(app, ["compare", "-w", str(wl), "--engine", "vllm", "--model", str(tiny), "--quick",
                            "--schedulers", f"vllm,{POLICY}", "--num-requests", "10", "--rate-start", "4",
                            "--rate-max", "16", "--out", str(tmp_path / "out")])
    assert r.exit_code in (0, 3), r.output  # 3: no capacity inside the small rate range (still reported)
    out = next((tmp_path / "out").iterdir())
    assert (out / "report.html").exists(), r.output
    probes = json.loads(json.dumps(list((out / "probes.csv").read_text().splitlines())))
    assert any(",vllm," in p for p in probes) and any(f",{POLICY}," in p for p in probes)
    # Both searches reused the already-running servers: no relaunch per probe, none left behind.
    assert {k: s.proc.pid for k, s in pool.servers.items()} == before
    assert stock.alive() and adapter.alive()


def test_rejection_and_best_effort_reach_the_records(tiny: Path, tmp_path: Path) -> None:
    """Admission control inside vLLM is visible to the client: rejected streams end with 0 tokens and
    are recorded as rejected; best-effort requests are served and labelled. The policy's options, given
    once on the command line, reach it inside vLLM (its `loaded` event echoes them into the summary)."""
    wl = tiny_workload(tmp_path / "wl")
    r = runner.invoke(app, ["run", "--engine", "vllm", "--model", str(tiny), "-w", str(wl), "-n", "10", "--rate", "5",
                            "--scheduler", "slobench.testing.policies:RejectEvenPolicy",
                            "--scheduler-options", '{"parity": 1}', "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    summary = json.loads(next((tmp_path / "o").glob("*/summary.json")).read_text())
    assert summary["scheduler_stats"]["loaded"]["options"] == {"parity": 1}
    assert summary["scheduler_stats"]["rejected"] == 5
    rows = [json.loads(x) for x in next((tmp_path / "o").glob("*/requests.jsonl")).read_text().splitlines()]
    assert len(rows) == 10
    for row in rows:
        if row["admission"] == "rejected":
            assert row["status"] == "rejected" and not row["token_times_s"] and "admission control" in row["error"]
        else:
            assert row["admission"] == "best_effort" and row["status"] == "finished"
            assert len(row["token_times_s"]) == row["output_tokens"]
    assert sum(row["admission"] == "rejected" for row in rows) == 5


def test_nonexistent_model_is_one_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["run", "--engine", "vllm", "--model", "/nonexistent/model", "-n", "10",
                            "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--model /nonexistent/model: no such folder" in _one_error_line(r.output)


def test_port_in_use_is_one_line(tiny: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = runner.invoke(app, ["run", "--engine", "vllm", "--model", str(tiny), "-n", "10", "--scheduler", "sarathi",
                                "--engine-arg", f"port={port}", "--out", str(tmp_path)])
    assert r.exit_code == 2 and f"port {port} on 127.0.0.1 is already in use" in _one_error_line(r.output)
    assert not pids_serving_port(port)  # nothing was launched


def test_startup_exception_leaves_no_process(tiny: Path, tmp_path: Path) -> None:
    """An error during start-up (here: the health wait times out while vLLM is spawning its engine)."""
    from slobench.engines.errors import EngineError

    srv = VLLMServer(shared_server_spec(tiny, None), log_dir=tmp_path, cpu_build=True, startup_timeout_s=12)
    with pytest.raises(EngineError, match="not healthy after 12 s"):
        srv.start()
    assert srv.proc.poll() is not None and not procs.pids_in_group(srv.proc.pid)
    assert not pids_serving_port(srv.port)


def _wait_for_records(root: Path, n: int, timeout_s: float) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for f in root.glob("*/requests.jsonl"):
            if len(f.read_text().splitlines()) >= n:
                return f
        time.sleep(0.2)
    raise AssertionError(f"no {n} records under {root} within {timeout_s} s")


def _default_sigint() -> None:
    """Ctrl-C as in a terminal: a shell's background job inherits SIGINT ignored, and Python then never
    raises KeyboardInterrupt (CI launched with `&` would fail this test for that reason alone)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_mid_run_keeps_records_and_no_process(tiny: Path, tmp_path: Path) -> None:
    """A separate slobench process with its own server; SIGINT mid-run."""
    wl = tiny_workload(tmp_path / "wl")
    cmd = [sys.executable, "-c", "from slobench.cli import main; main()", "run", "--engine", "vllm",
           "--model", str(tiny), "-w", str(wl), "-n", "60", "--rate", "2", "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ | {"HF_HUB_OFFLINE": "1"}, preexec_fn=_default_sigint)
    try:
        jsonl = _wait_for_records(tmp_path / "out", 3, 300)
        log = next(jsonl.parent.glob("vllm-server-*.log"))
        port = int(log.stem.rsplit("-", 1)[1])
        api = pids_serving_port(port)
        tree = api + [p for pid in api for p in procs.descendants(pid)]
        assert len(tree) >= 2  # the API server and vLLM's engine core (at least)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert sum(r["status"] == "finished" for r in rows) >= 3
    end = time.monotonic() + 20
    while procs.alive(tree) and time.monotonic() < end:
        time.sleep(0.2)
    assert not procs.alive(tree) and not pids_serving_port(port)


def test_server_killed_mid_run_is_one_line(stock: VLLMServer, tiny: Path, tmp_path: Path) -> None:
    """Kills the shared stock server (run late on purpose) while `slobench run` streams from it."""
    wl = tiny_workload(tmp_path / "wl")
    tree = [stock.proc.pid, *procs.descendants(stock.proc.pid)]

    def crash() -> None:
        _wait_for_records(tmp_path / "out", 3, 120)
        os.killpg(stock.proc.pid, signal.SIGKILL)

    t = threading.Thread(target=crash, daemon=True)
    t.start()
    r = runner.invoke(app, ["run", "--engine", "vllm", "--model", str(tiny), "-w", str(wl), "-n", "60",
                            "--rate", "2", "--out", str(tmp_path / "out")])
    t.join(5)
    assert r.exit_code == 2, r.output
    line = _one_error_line(r.output)
    assert "vLLM server" in line and "exited with code -9 mid-run" in line and "records so far" in line
    rows = [json.loads(x) for x in next((tmp_path / "out").glob("*/requests.jsonl")).read_text().splitlines()]
    assert sum(x["status"] == "finished" for x in rows) >= 3
    get_pool().stop(stock)
    assert not procs.alive(tree)


def test_clean_stop_after_success(adapter: VLLMServer) -> None:
    tree = [adapter.proc.pid, *procs.descendants(adapter.proc.pid)]
    assert len(tree) >= 2
    assert get_pool().stop(adapter) == []
    assert not procs.alive(tree) and not pids_serving_port(adapter.port)
