"""Users' own trace files: timestamps, token counts and context limits that used to go wrong silently."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from slobench.cli import app
from slobench.errors import UserError
from slobench.workloads import generate, load_spec

runner = CliRunner()


def _trace_spec(tmp_path: Path, rows: list[tuple], *, arrival: dict | None = None, lengths: dict | None = None,
                num_requests: int = 10) -> Path:
    """A CSV (t, in, out) and a workload YAML that reads its lengths (and, by default, its arrivals) from it."""
    csv = tmp_path / "trace.csv"
    csv.write_text("t,in,out\n" + "".join(f"{t},{i},{o}\n" for t, i, o in rows))
    spec = {
        "name": "mine",
        "apps": [{"name": "custom", "tier": "t",
                  "lengths": {"path": "trace.csv", "prompt_tokens_column": "in", "output_tokens_column": "out"}
                  | (lengths or {}),
                  "slo": {"main": {"ttft_ms": 500, "tpot_ms": 100}}}],
        "arrival": arrival if arrival is not None else {"process": "trace", "trace": "trace.csv",
                                                        "timestamp_column": "t"},
        "rate_rps": 2.0,
        "num_requests": num_requests,
    }
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _one_line(res) -> str:  # noqa: ANN001
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), res.output
    return lines[0]


# --- 1. timestamps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["inf", "-inf"])
def test_non_finite_timestamp_is_one_line_naming_file_column_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 bad: str) -> None:
    """An inf time used to make the simulator loop forever (only NaN was checked)."""
    monkeypatch.chdir(tmp_path)
    spec = _trace_spec(tmp_path, [(0, 100, 10), (1.5, 200, 20), (bad, 300, 30), (3, 50, 5)])
    line = _one_line(runner.invoke(app, ["run", "--workload", str(spec)]))
    assert "arrival.timestamp_column: column 't'" in line and "trace.csv" in line and "row 3" in line
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_all_equal_timestamps_are_refused_not_sent_at_t0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = _trace_spec(tmp_path, [(5, 100, 10), (5, 200, 20), (5, 300, 30), (5, 50, 5)])
    line = _one_line(runner.invoke(app, ["run", "--workload", str(spec)]))
    assert "all 4 timestamps are equal" in line and "t = 0" in line and "arrival.process: poisson" in line


def test_a_replayed_window_inside_a_tie_is_refused(tmp_path: Path) -> None:
    """Distinct times overall, but the requested window lies inside one tie: still never silently at t = 0."""
    spec = _trace_spec(tmp_path, [(0, 100, 10)] * 6 + [(1, 50, 5)],
                       arrival={"process": "trace", "trace": "trace.csv", "timestamp_column": "t",
                                "random_start": False})
    with pytest.raises(UserError, match="all share one timestamp"):
        generate(load_spec(spec), perf=None, seed=0, num_requests=3)
    assert generate(load_spec(spec), perf=None, seed=0, num_requests=7).requests[-1].arrival_s > 0
