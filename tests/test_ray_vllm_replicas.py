"""Two real CPU vLLM replicas as Ray actors behind the driver's router, one of them killed mid-run.

`slobench run --engine vllm --replicas 2` end to end (CliRunner, the tiny model, a local Ray with 2 CPUs): both
replicas serve records; replica 1's server is killed (SIGKILL) once it has finished a few requests, and the run
goes on with replica 0, keeps every record, and reports the lost replica in summary.json and its table; when the
command ends no server process, actor or Ray is left. Skips with the reason without ray or vllm (CI installs both).
One server start per replica (≈ 1–2 min on 2 cores, both at once), so the two checks share one run.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slobench.cli import app
from slobench.testing.kit import pids_serving_port, require_vllm_or_skip, tiny_model_dir, tiny_workload

pytest.importorskip("ray", reason="needs the ray extra (pip install 'slobench[ray]'; CI installs it)")
require_vllm_or_skip()


def _finished_on(run_root: Path, replica: int) -> int:
    n = 0
    for f in run_root.glob("*/requests.jsonl"):
        for line in f.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            n += rec.get("replica") == replica and rec.get("status") == "finished"
    return n


def test_two_replicas_one_killed_mid_run(tmp_path: Path, vllm_pool) -> None:  # noqa: ANN001 - the session pool
    import ray

    from slobench.engines.vllm.replicas import ReplicaGroup

    assert not ray.is_initialized()  # the command starts (and stops) its own local Ray
    tiny = tiny_model_dir()
    wl = tiny_workload(tmp_path / "wl", n_rows=48, ttft_ms=5000, tpot_ms=500)
    out = tmp_path / "out"
    seen: dict[str, list] = {}

    def killer() -> None:
        """Wait for the group to be serving and replica 1 to have finished 3 requests, then SIGKILL its server."""
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            groups = [g for g in vllm_pool.servers.values() if isinstance(g, ReplicaGroup) and g.replicas]
            if groups and _finished_on(out, 1) >= 3:
                g = groups[0]
                seen["pids"] = [r.pid for r in g.replicas]
                seen["ports"] = [int(r.base_url.rsplit(":", 1)[1].split("/")[0]) for r in g.replicas]
                seen["killed_at"] = [time.monotonic()]
                os.kill(g.replicas[1].pid, signal.SIGKILL)
                return
            time.sleep(0.2)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    res = CliRunner().invoke(app, [
        "run", "--engine", "vllm", "--model", str(tiny), "-w", str(wl), "-n", "48", "--rate", "3",
        "--replicas", "2", "--router", "round-robin", "--out", str(out)])
    t.join(5)
    assert res.exit_code == 0, res.output
    assert "pids" in seen, "replica 1 never finished 3 requests before the run ended"
    run_dir = next(out.glob("*/summary.json")).parent
    summary = json.loads((run_dir / "summary.json").read_text())
    routing = summary["client"]["routing"]
    assert [x["replica"] for x in routing["replicas_lost"]] == [1]
    assert "replica 1" in routing["replicas_lost"][0]["error"]
    assert "replica 1 lost at" in res.output  # the table says so
    assert len(summary["engine_info"]["replicas"]) == 2 and summary["replicas"] == 2

    import pandas as pd

    df = pd.read_parquet(run_dir / "requests.parquet")
    assert df["request_id"].nunique() == 48  # every request has its records, the killed replica's included
    done = df[df["status"] == "finished"]
    assert set(done["replica"]) == {0, 1}  # both served
    lost_at = routing["replicas_lost"][0]["at_s"]
    after = df[df["arrival_s"] > lost_at + 0.5]
    assert len(after) and (after["replica"] == 0).all() and (after["status"] == "finished").all()

    # Nothing left: servers, their process trees, the actors, Ray itself.
    time.sleep(1.0)
    assert not ray.is_initialized()
    for port in seen["ports"]:
        assert pids_serving_port(port) == [], f"a vLLM server on port {port} outlived the command"
    assert not [g for g in vllm_pool.servers.values() if isinstance(g, ReplicaGroup)]
