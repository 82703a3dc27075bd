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


# --- 2. max_context and zero token counts ------------------------------------------------------------


def _warning_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning:")]


def test_default_max_context_clipping_is_warned_once_with_counts(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-context file used to lose most of its input tokens to the default 8192 without a word."""
    monkeypatch.chdir(tmp_path)
    rows = [(i, 20_000, 100) for i in range(6)] + [(i + 6, 1_000, 100) for i in range(4)]
    spec = _trace_spec(tmp_path, rows, arrival={"process": "poisson"}, num_requests=8)
    res = runner.invoke(app, ["run", "--workload", str(spec), "--rate", "0.5"])
    assert res.exit_code == 0, res.output
    [line] = _warning_lines(res.output)  # once, although the run reads the file twice (check, then generate)
    assert "6 of 10 rows" in line and "max_context 8192 (the default)" in line
    lost = 6 * (20_000 - 8191)
    assert f"{lost:,} of {6 * 20_000 + 4 * 1_000:,} input tokens" in line
    assert "set apps.0.lengths.max_context (the longest row needs 20,100)" in line
    # A spec that sets its limit chose to clip: no warning.
    spec = _trace_spec(tmp_path, rows, arrival={"process": "poisson"}, lengths={"max_context": 8192},
                       num_requests=8)
    res = runner.invoke(app, ["run", "--workload", str(spec), "--rate", "0.5"])
    assert res.exit_code == 0 and _warning_lines(res.output) == [], res.output


def test_zero_token_counts_are_warned_with_their_row_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = _trace_spec(tmp_path, [(0, 0, 10), (1, 100, 0), (2, 0, 0), (3, 100, 10)], arrival={"process": "poisson"},
                       num_requests=5)
    res = runner.invoke(app, ["run", "--workload", str(spec), "--rate", "1"])
    assert res.exit_code == 0, res.output
    [line] = _warning_lines(res.output)
    assert "3 of 4 rows" in line and "column 'in': 2, column 'out': 2" in line and "sent as 1 token" in line


def test_library_callers_get_a_python_warning(tmp_path: Path) -> None:
    from slobench.errors import InputWarning

    spec = _trace_spec(tmp_path, [(0, 0, 10), (1, 100, 5)], arrival={"process": "poisson"}, num_requests=4)
    with pytest.warns(InputWarning, match="1 of 2 rows"):
        wl = generate(load_spec(spec), perf=None, seed=0)
    assert min(r.stages[0].prompt_tokens for r in wl.requests) >= 1


def test_capacity_search_shows_each_warning_once(tmp_path: Path) -> None:
    rows = [(i, 12_000, 0) for i in range(5)]
    spec = _trace_spec(tmp_path, rows, arrival={"process": "poisson"}, num_requests=10)
    res = runner.invoke(app, ["capacity", "--workload", str(spec), "--scheduler", "vllm", "--quick",
                              "--num-requests", "10", "--rate-max", "4", "--out", str(tmp_path / "out")])
    assert res.exit_code in (0, 3), res.output
    warned = _warning_lines(res.output)
    assert len(warned) == 2 and len(set(warned)) == 2, res.output  # clipping + zero counts, not once per probe


# --- 5. a user's file is parsed once per process -----------------------------------------------------


def test_user_files_are_parsed_once_until_they_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import slobench.workloads.sources as sources

    calls = {"lengths": 0, "timestamps": 0}
    real_file, real_ts = sources._read_file, sources._read_timestamps

    def count_file(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["lengths"] += 1
        return real_file(*a, **k)

    def count_ts(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["timestamps"] += 1
        return real_ts(*a, **k)

    monkeypatch.setattr(sources, "_read_file", count_file)
    monkeypatch.setattr(sources, "_read_timestamps", count_ts)
    spec = load_spec(_trace_spec(tmp_path, [(t, 100 + t, 10) for t in range(20)]))
    first = [generate(spec, perf=None, seed=s, rate_rps=r) for s, r in ((0, 1.0), (1, 2.0), (0, 4.0))]
    assert calls == {"lengths": 1, "timestamps": 1}
    assert first[0].requests[0].stages == generate(spec, perf=None, seed=0, rate_rps=1.0).requests[0].stages
    # Other columns of the same file, or the file rewritten: read again.
    (tmp_path / "trace.csv").write_text("t,in,out\n" + "".join(f"{t},{7 + t},3\n" for t in range(21)))
    wl = generate(spec, perf=None, seed=0, rate_rps=1.0)
    assert calls == {"lengths": 2, "timestamps": 2}
    assert {r.stages[0].output_tokens for r in wl.requests} == {3}


# --- 4. quantised timestamps -------------------------------------------------------------------------


def test_jitter_turns_a_quantised_logs_bursts_back_into_servable_traffic(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A log in 3-second ticks (10 requests stamped with each tick's time) replays as 10 simultaneous
    requests per tick at any rate, which used to set vLLM's capacity to zero; `jitter_s: auto` spreads each
    tick's requests over it, as they really arrived. Measured here at one rate, seeded, on the simulator."""
    import json

    import numpy as np

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    rows = [(3.0 * (i // 10), int(rng.integers(500, 3000)), int(rng.integers(50, 300))) for i in range(600)]
    attainment = {}
    for jitter in (None, "auto"):
        arrival = {"process": "trace", "trace": "trace.csv", "timestamp_column": "t"}
        if jitter:
            arrival["jitter_s"] = jitter
        spec = _trace_spec(tmp_path, rows, arrival=arrival, lengths={"max_context": 8192}, num_requests=600)
        raw = yaml.safe_load(spec.read_text())
        raw["apps"][0]["slo"]["main"] = {"ttft_slowdown": 5, "tpot_ms": 100}  # the shipped chatbot's SLOs
        spec.write_text(yaml.safe_dump(raw))
        res = runner.invoke(app, ["run", "--workload", str(spec), "--scheduler", "vllm", "--rate", "12",
                                  "--out", str(tmp_path / f"out-{jitter}")])
        assert res.exit_code == 0, res.output
        [summary] = (tmp_path / f"out-{jitter}").glob("*/summary.json")
        attainment[jitter] = json.loads(summary.read_text())["attainment"]
    assert attainment[None] < 0.3 and attainment["auto"] > 0.7, attainment
