"""`bench schedulers` and `compare` measure capacity the same way: one search, one RunResult → probe adapter.

Both go through `slobench.capacity.execute.run_search` and `probe_result`, so for the same setup they probe
the same rates and give the same capacity, and a run the adapter cannot trust (unfinished requests, a tail
that never drains, the wrong arrival rate) is INVALID in both.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import slobench.cluster.run as cluster_run
from slobench.capacity.bench import capacity_table
from slobench.capacity.execute import probe_result, run_search
from slobench.capacity.plan import SearchSpec, run_kwargs, search_settings
from slobench.capacity.store import Collector
from slobench.metrics.records import StageRecord, records_frame
from slobench.report.summary import RunSummary


def _compare_search(tmp_path: Path, scheduler: str) -> tuple[object, Collector]:
    """What `slobench compare --quick --schedulers <scheduler>` runs for the coding workload (seed 0)."""
    kw = run_kwargs(hardware="H100-SXM", model="Llama-3.1-8B", tp=1, profile=None, replicas=1, engine="sim",
                    num_requests=None, quick=True)
    spec = SearchSpec("coding", scheduler, kw | {"workload": "coding"})
    settings = search_settings(0.9, [0], True, 1.0, 0.05, 1024.0, None)
    store = Collector(tmp_path, settings.target, "agree")
    return run_search(spec, settings, store=store), store


# What `compare --quick` sets besides the probe size: no 120 s floor on a probe's duration.
QUICK = {"min_duration_s": 0.0}


def _rows(probes: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(probes).reset_index(drop=True)


@pytest.mark.parametrize("scheduler", ["vllm", "slos-serve"])
def test_bench_and_compare_give_the_same_capacity_and_probes(tmp_path: Path, scheduler: str) -> None:
    result, store = _compare_search(tmp_path, scheduler)
    (row,) = capacity_table(["coding"], [scheduler], num_requests=200, rel_tol=0.05, seeds=(0,), confirm=0, hold=0,
                            run_kwargs=QUICK)
    assert result is not None and row.result is not None
    assert row.capacity_rps == result.capacity_rps == store.capacities[0].capacity_rps
    assert row.status == result.status == "ok"
    assert row.probes == len(result.probes) == store.capacities[0].num_probes
    want = _rows([r.model_dump(exclude={"workload", "scheduler", "schema_version"})
                  for r in store.probe_rows])
    pd.testing.assert_frame_equal(_rows(row.result.probe_rows()), want)


def _stage(i: int, start: float, *, last_token_s: float | None = None, status: str = "finished",
           shift: float = 0.0, prompt: int = 50) -> StageRecord:
    first = start + 0.1 + shift
    times = list(first + 0.03 * np.arange(5))
    if last_token_s is not None:
        times[-1] = last_token_s
    return StageRecord(request_id=i, stage_idx=0, stage_name="main", num_stages=1, app="coding", tier="t",
                       arrival_s=start, stage_start_s=start, prompt_tokens=prompt, output_tokens=5, ttft_slo_s=0.4,
                       tpot_slo_s=0.05, token_times_s=times if status == "finished" else times[:2], status=status)


def _faulty_run_once(fault: str, from_rate: float):
    """Every request meets its SLOs, but from ``from_rate`` on the run cannot be trusted because of ``fault``."""

    def run(cfg, **_: object) -> SimpleNamespace:
        n = cfg.num_requests or round(cfg.rate_rps * cfg.duration_s)
        bad = cfg.rate_rps >= from_rate
        recs = [_stage(i, i / cfg.rate_rps) for i in range(n)]
        offered = cfg.rate_rps
        if bad and fault == "drain":  # the last token comes 100 s after the last deadline
            recs[-1] = _stage(n - 1, (n - 1) / cfg.rate_rps, last_token_s=(n - 1) / cfg.rate_rps + 100.0)
        elif bad and fault == "backlog":  # the replica finishes requests a third slower than they arrive
            recs = [_stage(i, i / cfg.rate_rps, shift=0.5 * i / cfg.rate_rps) for i in range(n)]
        elif bad and fault == "ceiling":  # prompts far beyond what the latency model computes at this rate
            recs = [_stage(i, i / cfg.rate_rps, prompt=40_000) for i in range(n)]
        elif bad and fault == "unfinished":
            recs[-3:] = [_stage(i, i / cfg.rate_rps, status="unfinished") for i in range(n - 3, n)]
        elif bad and fault == "rate":  # the generator produced half the asked-for arrivals per second
            offered = cfg.rate_rps / 2
        summary = RunSummary(num_requests=n, num_finished=n, num_met=n, attainment=1.0, attainment_ttft=1.0,
                             attainment_tpot=1.0, attainment_admitted_only=1.0, goodput_rps=cfg.rate_rps,
                             status_counts={"finished": n}, offered_rate_rps=offered, warmup_s=cfg.warmup_s)
        return SimpleNamespace(records=records_frame(recs), summary=summary, iterations=pd.DataFrame(), config=cfg)

    return run


@pytest.mark.parametrize(("fault", "needle"), [
    ("drain", "e2e SLO after its deadline"),
    ("backlog", "backlog grew"),
    ("ceiling", "above the replicas' ceiling"),
    ("unfinished", "unfinished at the horizon"),
    ("rate", "achieved arrival rate"),
])
def test_an_untrustworthy_probe_is_invalid_in_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str,
                                                   needle: str) -> None:
    monkeypatch.setattr(cluster_run, "run_once", _faulty_run_once(fault, from_rate=4.0))
    result, store = _compare_search(tmp_path, "vllm")
    (row,) = capacity_table(["coding"], ["vllm"], num_requests=200, rel_tol=0.05, seeds=(0,), confirm=0, hold=0,
                            run_kwargs=QUICK)
    assert row.result is not None and result is not None
    for probes in (row.result.probes, result.probes):
        invalid = [p for p in probes if not p.valid]
        assert invalid and all(p.rate_rps >= 4.0 for p in invalid)
        assert all(needle in p.reason for p in invalid), [p.reason for p in invalid]
        assert all(p.valid for p in probes if p.rate_rps < 4.0)
    # Every request met its SLOs, yet the invalid rates count as misses: capacity stays below them.
    assert row.capacity_rps == result.capacity_rps < 4.0
    assert [(p.rate_rps, p.valid, p.reason) for p in row.result.probes] == \
        [(r.rate_rps, r.valid, r.reason) for r in store.probe_rows]
    # the same evidence, column for column, from both commands
    assert [p.row() for p in row.result.probes] == [p.row() for p in result.probes]


def test_probe_result_reads_the_typed_summary() -> None:
    """The adapter's evidence: counts, offered vs achieved rate (sim: the generated rate), lag, tail."""
    recs = records_frame([_stage(i, i * 0.5) for i in range(10)])
    s = RunSummary(num_requests=10, num_finished=10, num_met=9, attainment=0.9, attainment_ttft=1.0,
                   attainment_tpot=0.9, attainment_admitted_only=0.9, goodput_rps=1.8, offered_rate_rps=2.1)
    sim = probe_result(SimpleNamespace(summary=s, records=recs), 2.0)
    assert (sim.num_met, sim.num_requests, sim.offered_rate_rps, sim.achieved_rate_rps) == (9, 10, 2.0, 2.1)
    assert sim.client_lag_s is None and sim.unfinished == 0 and sim.tail_s is not None and sim.tail_s < 0
    real = probe_result(SimpleNamespace(summary=s.model_copy(update={"achieved_rate_rps": 1.7, "client_lag_s": 0.3}),
                                        records=recs), 2.0)
    assert (real.achieved_rate_rps, real.client_lag_s) == (1.7, 0.3)
    nan = probe_result(SimpleNamespace(summary=s.model_copy(update={"achieved_rate_rps": float("nan")}),
                                       records=recs), 2.0)
    assert nan.achieved_rate_rps is None
