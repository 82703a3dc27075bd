"""The engine boundary (`EngineJob` → `EngineResult`), the run seam around it, routers and `SchedulerStats`."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from slobench.cluster.run import (
    ENGINES,
    build_latency_model,
    build_workload,
    engine_session,
    run_once,
    validate_config,
)
from slobench.engines.base import EngineJob, EngineResult, OpenLoopLoad, ReplicaSet
from slobench.engines.openai.engine import OpenAIEngine
from slobench.engines.options import validate_engine_options
from slobench.engines.sim import SimEngine
from slobench.errors import UserError
from slobench.metrics.records import StageRecord, records_frame
from slobench.schedulers.routers import make_router, presplit, router_names
from slobench.schedulers.routers.round_robin import split_round_robin
from slobench.schedulers.spec import PolicySpec
from slobench.schedulers.stats import SchedulerStats

ROOT = Path(__file__).resolve().parents[1]


def _job(cfg, **kw) -> EngineJob:  # noqa: ANN001
    perf = build_latency_model(cfg)
    return EngineJob(load=OpenLoopLoad(build_workload(cfg, perf)), policy=cfg.policy, perf=perf, seed=cfg.seed,
                     replicas=ReplicaSet(cfg.replicas), **kw)


def test_sim_engine_is_what_run_once_runs() -> None:
    cfg = validate_config(workload="toolcalling", scheduler="slos-serve", rate_rps=3, num_requests=30, replicas=2)
    seen: list[StageRecord] = []
    progress: list[tuple[int, int]] = []
    engine = ENGINES["sim"](cfg)  # the simulator with the run's ground-truth settings (noise, schedule cost)
    assert isinstance(engine, SimEngine)
    res = engine.run(_job(cfg, on_record=seen.append, on_progress=lambda d, t: progress.append((d, t))))
    # The same records; streamed as they finish (replicas interleaved), returned replica by replica.
    assert len(res.records) == len(seen) and {id(r) for r in res.records} == {id(r) for r in seen}
    assert res.client is None
    assert res.info["deterministic"] is True and res.info["simulator"]["truth_noise_cv"] == cfg.truth_noise_cv
    assert progress[-1] == (30, 30) and set(res.iterations["replica"]) == {0, 1}
    assert res.scheduler_stats["calls"] >= len(res.iterations)  # merged over both replicas' policies
    run = run_once(cfg)
    assert run.records.equals(records_frame(res.records)) and run.iterations.equals(res.iterations)
    assert run.summary.scheduler_stats["plans"] == res.scheduler_stats["plans"]


def test_engine_result_make_empty() -> None:
    empty = EngineResult.make_empty()
    assert empty.records == [] and empty.iterations.empty and empty.client is None and empty.scheduler_stats is None


@dataclass(frozen=True)
class _TraceReplay:
    kind: ClassVar[str] = "trace-replay"


def test_an_unsupported_load_is_one_line() -> None:
    cfg = validate_config(workload="chatbot", num_requests=5)
    job = _job(cfg)
    job.load = _TraceReplay()  # type: ignore[assignment]
    with pytest.raises(UserError, match=r"^--engine sim: trace-replay loads are not supported yet"):
        SimEngine().run(job)
    # Real engines refuse a load they cannot drive before touching a server.
    with pytest.raises(UserError, match=r"^--engine openai: trace-replay loads are not supported yet"):
        OpenAIEngine("http://127.0.0.1:1/v1", validate_engine_options({})).run(job)


def test_openai_refuses_replicas_with_one_line() -> None:
    cfg = validate_config(workload="chatbot", engine="openai", url="http://127.0.0.1:1/v1", num_requests=5,
                          replicas=2)
    with pytest.raises(UserError, match=r"^--replicas 2: --engine openai drives the one server at --url; use "):
        run_once(cfg)


def test_vllm_replicas_refuse_slo_aware_and_a_missing_ray_before_launching(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps({  # a tiny Llama's shape: nothing is launched
        "model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2,
        "num_hidden_layers": 2, "num_key_value_heads": 1, "vocab_size": 1024, "max_position_embeddings": 4096}))
    opts = {"python": "/nonexistent/python"}  # skips the vllm import check: the refusals come first
    cfg = validate_config(workload="chatbot", engine="vllm", model=str(tmp_path), num_requests=5, replicas=2,
                          router="slo-aware", engine_options=opts)
    with pytest.raises(UserError, match=r"^--router slo-aware: real replicas cannot answer the admission query"):
        run_once(cfg)
    import slobench.engines.ray_session as ray_session
    from slobench.engines.ray_session import RAY_EXTRA

    def no_ray() -> None:
        raise UserError(RAY_EXTRA)

    monkeypatch.setattr(ray_session, "import_ray", no_ray)
    cfg = validate_config(workload="chatbot", engine="vllm", model=str(tmp_path), num_requests=5, replicas=2,
                          router="vllm-dp", engine_options=opts)
    with pytest.raises(UserError, match=r"^--replicas N with --engine vllm starts the replicas on Ray: pip install"):
        run_once(cfg)


def test_run_once_writes_the_results_folder_once(tmp_path: Path) -> None:
    cfg = validate_config(workload="chatbot", num_requests=20, rate_rps=4)
    res = run_once(cfg, run_dir=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"requests.jsonl", "requests.parquet", "iterations.parquet",
                                                     "summary.json"}
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == 20 == res.summary.num_requests


# --- routers -----------------------------------------------------------------------------------------------
def test_round_robin_router_is_the_old_split() -> None:
    cfg = validate_config(workload="toolcalling", rate_rps=5, num_requests=23)
    wl = build_workload(cfg, build_latency_model(cfg))
    for n in (1, 2, 3):
        assert presplit(wl, make_router("round-robin"), n) == split_round_robin(wl, n)
    assert presplit(wl, make_router("round_robin"), 1)[0] is wl
    assert router_names()[0] == "round-robin"  # the others: tests/test_routers.py


# --- SchedulerStats ----------------------------------------------------------------------------------------
def test_scheduler_stats_counts_every_call_and_keeps_a_bounded_window() -> None:
    s = SchedulerStats(window=10)
    for i in range(1000):
        s.record_call(i / 1000)
    s.count("admitted", 3)
    d = s.as_dict()
    assert d["calls"] == 1000 and d["admitted"] == 3 and len(s.call_s) <= 20
    assert d["overhead_ms"]["max"] == pytest.approx(999.0) and d["overhead_ms"]["p50"] > 985
    full = SchedulerStats()
    full.record_call(0.001)
    other = SchedulerStats()
    other.record_call(0.003)
    other.count("x")
    full.merge(other)
    assert full.as_dict()["calls"] == 2 and full.as_dict()["x"] == 1
    assert full.as_dict()["overhead_ms"]["max"] == pytest.approx(3.0)
    assert "overhead_ms" not in SchedulerStats().as_dict()


# --- layering of the seam ------------------------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_engines_never_import_the_run_or_the_summary() -> None:
    bad = [f"{f.relative_to(ROOT)}: {m}" for f in sorted((ROOT / "slobench" / "engines").rglob("*.py"))
           for m in _imports(f) if m.startswith(("slobench.cluster", "slobench.report.summary", "slobench.capacity"))]
    assert not bad, bad
    assert not (ROOT / "slobench" / "engines" / "real_runner.py").exists()


def test_cluster_run_is_cheap_to_import_and_reexports_the_engine_session(tmp_path: Path) -> None:
    code = ("import sys, slobench.cluster.run\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('slobench.cli', 'slobench.engines.vllm',"
            " 'slobench.engines.openai', 'vllm', 'torch', 'ray', 'httpx')))\n"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    from slobench.engines.vllm.pool import get_pool

    with engine_session(tmp_path) as pool:
        assert pool is get_pool() and pool.log_dir == tmp_path
    assert get_pool().log_dir != tmp_path


def test_policy_spec_is_what_the_job_carries() -> None:
    cfg = validate_config(workload="chatbot", scheduler="sarathi", spec_alpha=0.6, num_requests=5)
    job = _job(cfg)
    assert job.policy == PolicySpec(name="sarathi", draft={"alpha": 0.6})
    assert job.replicas == ReplicaSet(count=1, router="round-robin") and job.log_dir is None
