"""The probe store's files: typed, versioned rows; results folders written before the models still work."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import slobench.cluster.run as cluster_run
from slobench.capacity.plan import Plan, SearchSettings, SearchSpec
from slobench.capacity.search import EVIDENCE_FIELDS, ProbeResult, ValidityLimits, make_probe
from slobench.capacity.store import Collector, probe_row
from slobench.cli import app
from slobench.report.probes import (
    PROBES_VERSION,
    SERVING_COLUMNS,
    SUMMARY_VERSION,
    ExperimentSummary,
    ProbeRow,
    read_probe_rows,
    write_probe_rows,
)
from tests.test_cli_compare import _fake_run_once, _no_png, _no_real_schedulers, _only_dir  # noqa: F401

# probes.csv as slobench wrote it before the typed rows (no schema_version column).
OLD_COLUMNS = ["workload", "scheduler", "rate_rps", "seed", "attainment", "ci_low", "ci_high", "num_met",
               "num_requests", "valid", "reason", "offered_rate_rps", "achieved_rate_rps", "client_lag_s", "tail_s",
               "unfinished"]
QUICK = {"hardware": "H100-SXM", "model": "Llama-3.1-8B", "tp": 1, "replicas": 1, "engine": "sim",
         "num_requests": 200}


def _old_results(root: Path, rates: list[float]) -> Path:
    """An interrupted `compare --quick --schedulers vllm` folder in the old format, written by hand."""
    run_dir = root / "20250101-000000-compare-coding"
    run_dir.mkdir(parents=True)
    plan = {"kind": "compare", "title": "slobench compare: coding (H100-SXM, Llama-3.1-8B, sim)",
            "specs": [{"label": "coding", "scheduler": "vllm", "run_kwargs": QUICK | {"workload": "coding"},
                       "extra": {}}],
            "search": {"target": 0.9, "seeds": [0], "rel_tol": 0.05, "rate_start": 1.0, "rate_lo": 0.05,
                       "rate_hi": 1024.0, "rates": None, "refine_interval": False},
            "scaling": False, "strict": True}
    (run_dir / "manifest.json").write_text(json.dumps({"command": "slobench compare --quick --schedulers vllm",
                                                       "config": {"name": "compare-coding"}, "seed": 0,
                                                       "plan": plan}, indent=2))
    lines = [",".join(OLD_COLUMNS)]
    for rate in rates:  # the fake engine passes every rate below its knee (3 req/s) with all 200 requests
        lines.append(f"coding,vllm,{rate},0,1.0,0.981,1.0,200,200,True,,{rate},{rate},,-1.5,0")
    (run_dir / "probes.csv").write_text("\n".join(lines) + "\n")
    (run_dir / "summary.json").write_text(json.dumps({
        "title": plan["title"], "target": 0.9, "complete": False, "capacities": [], "scaling": [], "wall_s": 1.0}))
    return run_dir


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, int]]:
    ran: list[tuple[str, float, int]] = []

    def counting(cfg, **kw: object):  # noqa: ANN202
        ran.append((cfg.scheduler, cfg.rate_rps, cfg.seed))
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(cluster_run, "run_once", counting)
    _no_real_schedulers(monkeypatch)
    return ran


def test_old_format_folder_reports_and_resumes(tmp_path: Path, fake_engine: list) -> None:
    run_dir = _old_results(tmp_path / "old", [1.0, 2.0])
    res = CliRunner().invoke(app, ["report", str(run_dir), "--no-png"])  # drawable as it is
    assert res.exit_code == 0, res.output
    assert "Partial results" in (run_dir / "report.html").read_text()

    res = CliRunner().invoke(app, ["resume", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert "2 saved probes reused" in res.output
    assert ("vllm", 1.0, 0) not in fake_engine and ("vllm", 2.0, 0) not in fake_engine  # replayed, not rerun

    clean = CliRunner().invoke(app, ["compare", "--quick", "--schedulers", "vllm", "--out", str(tmp_path / "clean")])
    assert clean.exit_code == 0, clean.output
    clean_dir = _only_dir(tmp_path / "clean")
    caps = [ExperimentSummary.read(d / "summary.json").capacities for d in (clean_dir, run_dir)]
    sizing = {"probe_requests", "warmup"}  # the old plan sized probes by count; the new one by duration
    assert [c.model_dump(exclude=sizing) for c in caps[0]] == [c.model_dump(exclude=sizing) for c in caps[1]]
    assert caps[0][0].status == "ok" and caps[1][0].probe_requests is None and caps[0][0].probe_requests == 200
    old, new = (pd.read_csv(d / "probes.csv") for d in (run_dir, clean_dir))
    assert list(old["rate_rps"]) == list(new["rate_rps"])
    # the old columns first, in their order; the steady-state evidence, the hold span and the vLLM-style figures
    # appended (empty in old rows), then the version
    assert list(old.columns) == OLD_COLUMNS + list(EVIDENCE_FIELDS) + ["span_factor"] + list(SERVING_COLUMNS) + [
        "schema_version"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["schema_version"] == SUMMARY_VERSION and summary["complete"] is True


def test_old_files_read_as_version_1_with_defaults(tmp_path: Path) -> None:
    run_dir = _old_results(tmp_path, [1.0])
    (row,) = read_probe_rows(run_dir / "probes.csv")
    assert row.schema_version == 1 and row.client_lag_s is None and row.reason == "" and row.valid is True
    assert row.key == ("coding", "vllm", 1.0, 0)
    # Optional evidence columns missing (an even older file): the report still reads it, with defaults.
    df = pd.read_csv(run_dir / "probes.csv").drop(columns=["client_lag_s", "tail_s", "unfinished"])
    df.to_csv(run_dir / "probes.csv", index=False)
    (row,) = read_probe_rows(run_dir / "probes.csv")
    assert (row.tail_s, row.unfinished) == (None, 0)
    summary = ExperimentSummary.read(run_dir / "summary.json")
    assert summary.schema_version == 1 and summary.complete is False
    # …but resuming needs the evidence, and says so in one line.
    res = CliRunner().invoke(app, ["resume", str(run_dir)])
    assert res.exit_code == 2 and "columns client_lag_s, tail_s, unfinished missing" in res.output


def test_newer_version_is_one_clear_line(tmp_path: Path) -> None:
    run_dir = _old_results(tmp_path, [1.0])
    df = pd.read_csv(run_dir / "probes.csv").assign(schema_version=PROBES_VERSION + 1)
    df.to_csv(run_dir / "probes.csv", index=False)
    res = CliRunner().invoke(app, ["report", str(run_dir), "--no-png"])
    assert res.exit_code == 2 and "newer slobench" in res.output and "Traceback" not in res.output


def test_rows_round_trip_through_the_file(tmp_path: Path) -> None:
    spec = SearchSpec("coding slo_scale=0.5", "vllm", {"workload": "coding"},
                      extra={"base_workload": "coding", "slo_scale": 0.5})
    p = make_probe(4.0, 1, ProbeResult(150, 200, offered_rate_rps=4.0, achieved_rate_rps=2.0, tail_s=3.0,
                                       unfinished=2), ValidityLimits())
    row = probe_row(spec, p)
    assert row.schema_version == PROBES_VERSION and not row.valid and row.model_extra == {
        "base_workload": "coding", "slo_scale": 0.5}
    write_probe_rows(tmp_path / "probes.csv", [row])
    assert read_probe_rows(tmp_path / "probes.csv") == [row]
    assert not list(tmp_path.glob(".probes.csv*"))  # the temp file was renamed into place
    store = Collector(tmp_path, 0.9, "t")
    assert store.load_previous() == 1
    again = store.cached_result(row.key)
    assert again is not None and make_probe(4.0, 1, again, ValidityLimits()).row() == p.row()


def test_plan_round_trips_through_the_manifest() -> None:
    plan = Plan("sweep", "t", [SearchSpec("a", "vllm", {"workload": "coding", "replicas": 2}, {"replicas": 2})],
                SearchSettings(rates=[1.0, 2.0]), scaling=True, strict=False)
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    cfg = plan.specs[0].config(3.0, 7)
    assert (cfg.workload, cfg.scheduler, cfg.rate_rps, cfg.seed, cfg.replicas) == ("coding", "vllm", 3.0, 7, 2)
    assert ProbeRow.model_fields["schema_version"].default == 1
