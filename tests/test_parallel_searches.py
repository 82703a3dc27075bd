"""Searches in worker processes (`-j`): the same results as a serial run, Ctrl-C and resume still whole."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

import slobench.cluster.run as runner
from slobench.capacity.execute import parallel_jobs
from slobench.capacity.plan import Plan, SearchSettings, SearchSpec
from slobench.cli import app
from tests.test_cli_compare import _fake_run_once, _interrupting, _no_real_schedulers, _only_dir

ARGS = ["compare", "--quick", "--refine-interval", "--workload", "coding,chatbot", "--schedulers", "vllm,slos-serve",
        "--seed", "0", "--seed", "1"]
KEY = ["workload", "scheduler", "rate_rps", "seed"]


@pytest.fixture(autouse=True)
def _no_png(monkeypatch: pytest.MonkeyPatch) -> None:
    import slobench.report.html as html

    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(keys).reset_index(drop=True)


def _same_results(a: Path, b: Path) -> None:
    pd.testing.assert_frame_equal(_sorted(pd.read_csv(a / "probes.csv"), KEY), _sorted(pd.read_csv(b / "probes.csv"),
                                                                                         KEY))
    ra, rb = pd.read_parquet(a / "requests.parquet"), pd.read_parquet(b / "requests.parquet")
    keys = [*KEY, "request_id", "stage_idx"]
    pd.testing.assert_frame_equal(_sorted(ra, keys).drop(columns="token_times_s"),
                                  _sorted(rb, keys).drop(columns="token_times_s"))
    caps = lambda d: sorted((c["workload"], c["scheduler"], c["capacity_rps"])  # noqa: E731
                            for c in pd.read_json(d / "summary.json", typ="series")["capacities"])
    assert caps(a) == caps(b)


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference both tests compare with: ARGS run serially (-j 1) on the fake engine, once for the module."""
    import slobench.report.html as html

    out = tmp_path_factory.mktemp("serial")
    with pytest.MonkeyPatch.context() as mp:
        _no_real_schedulers(mp)
        mp.setattr(runner, "run_once", _fake_run_once)
        mp.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")
        res = CliRunner().invoke(app, [*ARGS, "-j", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return _only_dir(out)


def test_parallel_equals_serial(serial_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_real_schedulers(monkeypatch)
    monkeypatch.setattr(runner, "run_once", _fake_run_once)
    res = CliRunner().invoke(app, [*ARGS, "-j", "3", "--out", str(tmp_path / "3")])
    assert res.exit_code == 0, res.output
    _same_results(serial_run, _only_dir(tmp_path / "3"))


def test_parallel_interrupt_keeps_probes_and_resume_completes(serial_run: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _no_real_schedulers(monkeypatch)
    monkeypatch.setattr(runner, "run_once", _interrupting(3))  # each worker stops at its 4th probe
    res = CliRunner().invoke(app, [*ARGS, "-j", "2", "--out", str(tmp_path / "cut")])
    assert res.exit_code == 130, res.output
    cut = _only_dir(tmp_path / "cut")
    saved = pd.read_csv(cut / "probes.csv")
    assert len(saved) >= 3  # at least the first worker's three finished probes
    calls = tmp_path / "calls.txt"

    def logging_run(cfg, **kw: object) -> SimpleNamespace:  # counts calls across processes
        with calls.open("a") as f:
            f.write(f"{cfg.workload} {cfg.scheduler} {cfg.rate_rps} {cfg.seed}\n")
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(runner, "run_once", logging_run)
    res = CliRunner().invoke(app, ["resume", str(cut), "-j", "2"])
    assert res.exit_code == 0, res.output
    assert f"{len(saved)} saved probes reused" in res.output
    total = len(pd.read_csv(serial_run / "probes.csv"))
    assert len(calls.read_text().splitlines()) == total - len(saved)  # nothing saved was rerun
    _same_results(serial_run, cut)


def test_worker_failure_is_reported_and_probes_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_real_schedulers(monkeypatch)

    def failing(cfg, **kw: object) -> SimpleNamespace:
        if cfg.scheduler == "slos-serve" and cfg.rate_rps > 2:
            raise ValueError("engine exploded")
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(runner, "run_once", failing)
    res = CliRunner().invoke(app, ["compare", "--quick", "-j", "2", "--out", str(tmp_path)])
    assert res.exit_code != 0
    assert "engine exploded" in str(res.exception)
    assert len(pd.read_csv(_only_dir(tmp_path) / "probes.csv")) >= 2  # finished probes were saved


def test_jobs_only_for_simulator_searches() -> None:
    spec = SearchSpec("coding", "vllm", {"engine": "sim"})
    plan = Plan("compare", "t", [spec, SearchSpec("coding", "slos-serve", {})], SearchSettings())
    assert parallel_jobs(plan, 8) == 2 and parallel_jobs(plan, 1) == 1 and parallel_jobs(plan, None) >= 1
    real = Plan("compare", "t", [SearchSpec("coding", "vllm", {"engine": "vllm"}), spec], SearchSettings())
    assert parallel_jobs(real, 8) == 1
