"""vLLM bench's flags with vLLM's meaning (issue 12, item 2): --burstiness, --goodput, --percentile-metrics,
--metric-percentiles, --metadata; the figures they add to summary.json and probes.csv; their bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from slobench.capacity.search import ProbeResult, ValidityLimits, make_probe
from slobench.capacity.store import Collector, probe_row
from slobench.cli import app
from slobench.cluster.run import build_latency_model, build_workload, validate_config
from slobench.metrics.attainment import summarize
from slobench.metrics.records import StageRecord, records_frame
from slobench.metrics.serving import burstiness_to_cv, latency_keys
from slobench.report.probes import read_probe_rows, write_probe_rows
from slobench.report.summary import RunSummary

runner = CliRunner()


def _one_line(res) -> str:  # noqa: ANN001
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), res.output
    return lines[0]


# --- --burstiness: vLLM's gamma shape, stored as the CV slobench's Gamma arrivals take ---------------------


def test_burstiness_is_the_gamma_shape_so_the_cv_is_one_over_its_root() -> None:
    assert burstiness_to_cv(1.0) == 1.0 and burstiness_to_cv(4.0) == 0.5 and burstiness_to_cv(0.25) == 2.0
    cfg = validate_config(workload="chatbot", num_requests=4000, rate_rps=10.0, burstiness_cv=burstiness_to_cv(0.25))
    wl = build_workload(cfg, build_latency_model(cfg))
    gaps = np.diff([r.arrival_s for r in wl.requests])
    assert abs(gaps.std() / gaps.mean() - 2.0) < 0.2  # B = 0.25 → CV 2 (Poisson would give 1)
    assert abs(len(wl.requests) / wl.duration_s - 10.0) < 1.5  # the rate is kept


def test_burstiness_on_a_trace_replay_is_refused(tmp_path: Path) -> None:
    pd.DataFrame({"timestamp": np.arange(50) * 0.5, "input_length": 100, "output_length": 20}).to_csv(
        tmp_path / "t.csv", index=False)
    assert runner.invoke(app, ["workloads", "new", "tr", "--from-trace", str(tmp_path / "t.csv"), "--out",
                               str(tmp_path / "tr.yaml")]).exit_code == 0
    line = _one_line(runner.invoke(app, ["run", "-w", str(tmp_path / "tr.yaml"), "--burstiness", "2",
                                         "--out", str(tmp_path / "r")]))
    assert "--burstiness" in line and "trace" in line
    assert not (tmp_path / "r").exists()  # refused before a results folder was made


# --- goodput and percentiles, as vLLM computes them ----------------------------------------------------------


def _records() -> pd.DataFrame:
    """Three single-stage requests with known timings (arrivals 0, 1, 2 s; 11 tokens each):
    TTFT 0.1 / 0.2 / 0.5 s, TPOT 0.01 / 0.05 / 0.01 s, so E2EL 0.2 / 0.7 / 0.6 s."""
    rows = []
    for i, (ttft, tpot) in enumerate(((0.1, 0.01), (0.2, 0.05), (0.5, 0.01))):
        times = list(i + ttft + tpot * np.arange(11))
        rows.append(StageRecord(request_id=i, stage_idx=0, stage_name="main", num_stages=1, app="chatbot", tier="t",
                                arrival_s=float(i), stage_start_s=float(i), prompt_tokens=100, output_tokens=11,
                                ttft_slo_s=1.0, tpot_slo_s=0.1, token_times_s=times))
    return records_frame(rows)


@pytest.mark.parametrize(("bounds", "good"), [
    ({"ttft": 300}, 2), ({"tpot": 20}, 2), ({"e2el": 650}, 2), ({"ttft": 300, "tpot": 20}, 1),
    ({"ttft": 100, "tpot": 10, "e2el": 200}, 1),  # bounds are inclusive (vLLM: bound ≥ value)
])
def test_vllm_goodput_counts_requests_within_every_bound(bounds: dict[str, float], good: int) -> None:
    s = summarize(_records(), goodput_ms=bounds)
    assert s["num_good"] == good
    assert s["bench_duration_s"] == pytest.approx(2.6)  # first arrival (0) → last token (2 + 0.5 + 0.1)
    assert s["vllm_goodput_rps"] == pytest.approx(good / 2.6)
    assert s["num_met"] == 3  # slobench's attainment judges per-token deadlines: a different question


def test_latency_keys_follow_the_chosen_metrics_and_percentiles_in_ms() -> None:
    s = summarize(_records(), percentile_metrics=["ttft", "e2el"], metric_percentiles=[50, 99.9])
    assert list(s["latency_ms"]) == latency_keys(["ttft", "e2el"], [50, 99.9])
    assert list(s["latency_ms"])[:4] == ["mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p50_ttft_ms"]
    assert s["latency_ms"]["median_ttft_ms"] == pytest.approx(200.0)
    assert s["latency_ms"]["mean_e2el_ms"] == pytest.approx(500.0)
    assert "p99.9_e2el_ms" in s["latency_ms"] and "mean_tpot_ms" not in s["latency_ms"]
    default = summarize(_records())  # vLLM's defaults: ttft, tpot, itl at p99
    assert default["percentile_metrics"] == ["ttft", "tpot", "itl"] and default["metric_percentiles"] == [99.0]
    assert default["vllm_goodput_rps"] is None  # not asked for
    assert default["output_tok_s"] == pytest.approx(33 / 2.6) and default["total_tok_s"] == pytest.approx(333 / 2.6)


# --- run: the flags reach summary.json, manifest.json and the table ----------------------------------------


def test_run_writes_the_figures_and_metadata(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", "-n", "40", "--rate", "4", "--goodput", "ttft:500,tpot:50", "--metric-percentiles",
                              "50,90", "--percentile-metrics", "ttft,e2el", "--metadata", "team=infra",
                              "--metadata", "gpu=h100", "--burstiness", "4", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    [run_dir] = list(tmp_path.iterdir())
    summary = RunSummary.read(run_dir / "summary.json")
    assert summary.schema_version == 4 and summary.metadata == {"team": "infra", "gpu": "h100"}
    assert summary.goodput_bounds_ms == {"ttft": 500.0, "tpot": 50.0} and summary.vllm_goodput_rps is not None
    assert set(summary.latency_ms) == set(latency_keys(["ttft", "e2el"], [50, 90]))
    assert summary.workload == "chatbot-cv0.5"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["metadata"] == {"team": "infra", "gpu": "h100"} and manifest["config"]["burstiness_cv"] == 0.5
    for text in ("goodput, vLLM-style", "goodput, slobench", "E2EL ms mean/median/p50/p90", "metadata team"):
        assert text in res.output, text


def test_a_version_3_summary_still_reads_and_prints(tmp_path: Path) -> None:
    from slobench.cli.run import summary_table

    data = {"schema_version": 3, "num_requests": 10, "num_finished": 10, "num_met": 9, "attainment": 0.9,
            "attainment_ttft": 0.9, "attainment_tpot": 1.0, "attainment_admitted_only": 0.9, "goodput_rps": 1.0,
            "ttft_s": {"p50": 0.1, "p90": 0.2, "p99": 0.3, "mean": 0.12}}
    (tmp_path / "summary.json").write_text(json.dumps(data))
    s = RunSummary.read(tmp_path / "summary.json")
    assert s.latency_ms == {} and s.vllm_goodput_rps is None and s.metadata == {}
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(summary_table(s, "old"))
    assert "TTFT ms p50/p90/p99" in console.export_text()  # the old rows, not empty new ones


# --- capacity searches: the figures in probes.csv, kept on resume ---------------------------------------------


def test_probes_csv_carries_the_figures_and_a_replayed_probe_keeps_them(tmp_path: Path) -> None:
    from slobench.capacity.plan import SearchSpec

    serving = {"goodput_rps": 1.5, "vllm_goodput_rps": 1.2, "output_tok_s": 300.0, "total_tok_s": 900.0,
               "p99_ttft_ms": 120.0, "p99.9_itl_ms": 40.0}
    p = make_probe(2.0, 0, ProbeResult(9, 10, serving=serving), ValidityLimits())
    row = probe_row(SearchSpec("coding", "vllm", {"workload": "coding"}), p)
    write_probe_rows(tmp_path / "probes.csv", [row])
    header = (tmp_path / "probes.csv").read_text().splitlines()[0].split(",")
    assert {"goodput_rps", "vllm_goodput_rps", "output_tok_s", "p99_ttft_ms", "p99.9_itl_ms"} <= set(header)
    (again,) = read_probe_rows(tmp_path / "probes.csv")
    assert again.serving() == serving
    store = Collector(tmp_path, 0.9, "t")
    store.load_previous()
    replayed = store.cached_result(row.key)
    assert replayed is not None and replayed.serving == serving


def test_capacity_writes_latency_columns_and_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import slobench.report.html as html

    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")
    res = runner.invoke(app, ["capacity", "-w", "chatbot", "--scheduler", "vllm", "--quick", "--num-requests", "20",
                              "--rate-start", "4", "-j", "1", "--goodput", "e2el:8000", "--metric-percentiles", "90",
                              "--metadata", "run=ci", "--out", str(tmp_path)])
    assert res.exit_code in (0, 3), res.output
    [out] = list(tmp_path.iterdir())
    df = pd.read_csv(out / "probes.csv")
    assert {"p90_ttft_ms", "median_itl_ms", "vllm_goodput_rps", "output_tok_s", "goodput_rps"} <= set(df.columns)
    assert df["vllm_goodput_rps"].notna().all() and (df["output_tok_s"] > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metadata"] == {"run": "ci"}
    cap = summary["capacities"][0]
    assert cap["capacity_rps"] is not None, cap  # the figures of the probes at the capacity, mean over seeds
    at = df[df["rate_rps"] == cap["capacity_rps"]]
    assert len(at) and cap["at_capacity"]["p90_ttft_ms"] == pytest.approx(at["p90_ttft_ms"].mean())
    assert json.loads((out / "manifest.json").read_text())["metadata"] == {"run": "ci"}
    # the report: the vLLM-style figure, the workload's statistics and the run settings beside the setup
    assert (out / "figures" / "serving-chatbot.html").exists()
    [setup] = summary["setup"]
    assert setup["workload"].startswith("poisson arrivals; prompt tokens mean")
    assert "e2el ≤ 8000 ms" in setup["vLLM-style figures"]
    page = (out / "report.html").read_text()
    for text in ("Run settings", "metadata: run", ">command<", ">seeds<", "TTFT (ms)"):
        assert text in page, text


def test_the_serving_figure_needs_version_4_probes() -> None:
    from slobench.report.figures import serving_vs_rate

    old = pd.DataFrame({"workload": ["w"] * 2, "scheduler": ["a"] * 2, "rate_rps": [1.0, 2.0], "valid": [True] * 2})
    assert serving_vs_rate(old) is None  # a folder written before version 4 draws no empty panels
    new = old.assign(output_tok_s=[10.0, 20.0], total_tok_s=[50.0, 90.0], goodput_rps=[1.0, 1.9],
                     vllm_goodput_rps=[None, None], p50_ttft_ms=[5.0, 6.0], p99_ttft_ms=[9.0, 12.0])
    fig = serving_vs_rate(new)
    names = {t.name for t in fig.data}
    assert "a: p99_ttft" in names and "a: p50_ttft" not in names  # the highest percentile chosen
    assert "a: every token on time (slobench)" in names and not any("vLLM" in n for n in names)  # not asked for


# --- every bad input: one line, exit 2 --------------------------------------------------------------------------

BAD = {
    "burstiness zero": (["--burstiness", "0"], "--burstiness: must be a positive number"),
    "burstiness negative": (["--burstiness", "-1"], "--burstiness: must be a positive number"),
    "burstiness inf": (["--burstiness", "inf"], "--burstiness: must be a positive number"),
    "goodput unknown metric": (["--goodput", "foo:5"], "--goodput: unknown metric 'foo'; use ttft, tpot or e2el"),
    "goodput not a number": (["--goodput", "ttft:fast"], "--goodput: ttft bound 'fast' is not a number"),
    "goodput no value": (["--goodput", "ttft"], "--goodput: 'ttft' is not METRIC:MILLISECONDS"),
    "goodput twice": (["--goodput", "ttft:5,ttft:6"], "--goodput: ttft given twice"),
    "goodput negative": (["--goodput", "tpot:-5"], "--goodput: tpot bound must be a positive number"),
    "percentile metric unknown": (["--percentile-metrics", "ttft,latency"],
                                  "--percentile-metrics: unknown metric 'latency'"),
    "percentile metric twice": (["--percentile-metrics", "itl,itl"], "--percentile-metrics: itl given twice"),
    "percentile out of range": (["--metric-percentiles", "50,150"], "--metric-percentiles: 150 is not a percentile"),
    "percentile zero": (["--metric-percentiles", "0"], "--metric-percentiles: 0 is not a percentile"),
    "percentile not a number": (["--metric-percentiles", "p99"], "--metric-percentiles: percentile 'p99' is not"),
    "metadata without =": (["--metadata", "team"], "--metadata: 'team' is not KEY=VALUE"),
    "metadata empty key": (["--metadata", "=x"], "--metadata: '=x' is not KEY=VALUE"),
    "metadata key twice": (["--metadata", "a=1", "--metadata", "a=2"], "--metadata: key 'a' given twice"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_flag_is_one_line(tmp_path: Path, case: str) -> None:
    args, expected = BAD[case]
    line = _one_line(runner.invoke(app, ["run", "-n", "20", *args, "--out", str(tmp_path / "r")]))
    assert expected in line, line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["compare", "capacity"])
def test_bad_flags_are_refused_by_the_search_commands_before_a_folder(tmp_path: Path, command: str) -> None:
    line = _one_line(runner.invoke(app, [command, "--quick", "--goodput", "ttft:1,foo:2", "--out", str(tmp_path)]))
    assert "unknown metric 'foo'" in line and not list(tmp_path.iterdir())


def test_sweep_refuses_burstiness_beside_a_burstiness_axis(tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("workload: chatbot\ngrid: {burstiness_cv: [1, 2]}\n")
    line = _one_line(runner.invoke(app, ["sweep", "--grid", str(grid), "--burstiness", "2", "--out",
                                         str(tmp_path / "o")]))
    assert "already sweeps burstiness_cv" in line and not (tmp_path / "o").exists()


def test_a_saved_plan_with_a_bad_goodput_is_one_line() -> None:
    from slobench.errors import UserError

    with pytest.raises(UserError, match="--goodput: unknown metric 'x'"):
        validate_config(workload="chatbot", goodput_ms={"x": 1})
    assert math.isclose(validate_config(workload="chatbot", goodput_ms={"ttft": 5}).goodput_ms["ttft"], 5.0)


# --- the overall progress line of multi-search commands -----------------------------------------------------


def test_time_left_uses_the_finished_searches_probe_counts() -> None:
    from slobench.cli.display import time_left_s

    assert time_left_s(0.0, 4, [], []) is None  # nothing finished yet: no estimate
    assert time_left_s(10.0, 4, [], [5], prior_probes=10) == pytest.approx(70.0)  # 5 of 40 probes in 10 s
    assert time_left_s(30.0, 3, [10, 14], [6]) == pytest.approx(1 * 30 / 5)  # 12 per search; 30 done of 36
    assert time_left_s(30.0, 2, [10, 10], []) == 0.0


def test_search_progress_shows_an_overall_line_with_the_time_left() -> None:
    from io import StringIO

    from rich.console import Console

    from slobench.capacity.plan import SearchSpec
    from slobench.cli.display import SearchProgress

    prog = SearchProgress(Console(file=StringIO(), width=200), prior_probes=4)
    specs = [SearchSpec("coding", s, {}) for s in ("vllm", "slos-serve")]
    probe = make_probe(1.0, 0, ProbeResult(10, 10), ValidityLimits())
    prog.started -= 8.0  # as if 8 s had passed
    prog.start_search(specs[0], 1, 2)
    assert "overall: 0/2 searches done, 0 probes" in prog.overall_text()
    assert "estimating time left" in prog.overall_text()
    for _ in range(4):
        prog.finished(probe, cached=False)
    prog.finished_search(specs[0], None)
    prog.start_search(specs[1], 2, 2)
    text = prog.overall_text()
    assert "1/2 searches done, 4 probes" in text and "≈ 0:08 left" in text  # 4 more probes at 2 s each
    assert prog.overall is not None  # drawn as a second line of the live display


# --- a user's big trace: read column-wise, not row by row ----------------------------------------------------


def test_length_columns_are_read_through_arrow_not_row_by_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """datasets ≥ 3 hands ``ds[column]`` out as a lazy column decoded row by row: 12 s for a 100k-row trace
    (scripts/trace_scale_check.py). The table must come from the Arrow columns."""
    arrow_dataset = pytest.importorskip("datasets.arrow_dataset")
    import slobench.workloads.sources as sources

    if hasattr(arrow_dataset, "Column"):
        def refuse(self):  # noqa: ANN001, ANN202
            raise AssertionError("a length column was iterated row by row")

        monkeypatch.setattr(arrow_dataset.Column, "__iter__", refuse)
    pd.DataFrame({"in": [5, 7, 9], "out": [1, 2, 3]}).to_csv(tmp_path / "l.csv", index=False)
    table = sources._read_file(tmp_path / "l.csv", prompt_col="in", output_col="out", text_col=None, tokenizer=None,
                               answer_col=None, output_tokens=None, origin="lengths")
    assert list(table.prompt) == [5, 7, 9] and list(table.output) == [1, 2, 3]


# --- engines and URLs (docs/bad-inputs.md rows without a test elsewhere) -------------------------------------

ENGINE_BAD = {
    "unknown engine": (["--engine", "tpu"], "--engine: Input should be 'sim', 'vllm' or 'openai'"),
    "url not http": (["--engine", "openai", "--url", "notaurl"], "--url 'notaurl': must start with http://"),
    "engine-arg without =": (["--engine-arg", "max_num_seqs"], "--engine-arg 'max_num_seqs': expected KEY=VALUE"),
    "engine-arg not a number": (["--engine-arg", "max_num_seqs=lots"], "--engine-arg max_num_seqs: Input should be"),
    "engine-config missing": (["--engine-config", "nope.yaml"], "--engine-config nope.yaml: file not found"),
}


@pytest.mark.parametrize("case", sorted(ENGINE_BAD))
def test_bad_engine_inputs_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    args, expected = ENGINE_BAD[case]
    line = _one_line(runner.invoke(app, ["run", "-n", "5", *args]))
    assert expected in line, line
    assert not Path("results").exists()


def test_bad_cells_and_keys_are_named_as_the_user_wrote_them(tmp_path: Path) -> None:
    """A negative count shows as -3 (not numpy's repr: the columns are read through Arrow now), and an unknown
    top-level `rate` is not 'corrected' to itself (arrival has a `rate` field)."""
    pd.DataFrame({"t": [0, 1, 2], "in": [100, -3, 300], "out": [10, 20, 30]}).to_csv(tmp_path / "n.csv", index=False)
    app_ = {"name": "custom", "tier": "t", "slo": {"main": {"ttft_ms": 2000, "tpot_ms": 100}},
            "lengths": {"path": "n.csv", "prompt_tokens_column": "in", "output_tokens_column": "out"}}
    (tmp_path / "n.yaml").write_text(json.dumps({"name": "n", "apps": [app_], "rate_rps": 1.0}))
    line = _one_line(runner.invoke(app, ["run", "-w", str(tmp_path / "n.yaml"), "-n", "5", "--out", str(tmp_path)]))
    assert "row 2 is -3 (1 such rows)" in line, line
    (tmp_path / "k.yaml").write_text(json.dumps({"name": "k", "apps": [app_], "rate_rps": 1.0, "rate": 2}))
    line = _one_line(runner.invoke(app, ["run", "-w", str(tmp_path / "k.yaml"), "-n", "5", "--out", str(tmp_path)]))
    assert "field `rate`: Extra inputs are not permitted" in line and "did you mean `rate`" not in line, line
