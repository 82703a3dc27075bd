"""What the report and the capacity table say: captions that match the figure, unstacked token counts,
no ratio for a single scheduler, workload names instead of paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import slobench.cli.display as display
import slobench.cluster.run as cluster_run
from slobench.cli import app
from slobench.report.figures import batch_timeline, capacity_bars, latency_cdfs
from slobench.report.probes import CapacityRow
from slobench.report.rebuild import capacity_table_html, caption_for
from tests.test_cli_compare import _fake_run_once, _no_real_schedulers

runner = CliRunner()


def test_latency_cdf_caption_says_mean_tpot_is_not_the_tpot_check() -> None:
    caption = caption_for("latency-cdf-coding")
    assert "left of the dashed 1.0 line = within the SLO" not in caption
    assert "mean TPOT" in caption and "deadline" in caption and "right of 1.0" in caption
    stages = pd.DataFrame({"ttft_s": [0.1], "ttft_slo_s": [0.2], "tpot_s": [0.06], "tpot_slo_s": [0.05]})
    assert latency_cdfs(stages).layout.annotations[1].text == "mean TPOT / TPOT SLO"


def test_a_stage_right_of_one_in_the_tpot_panel_can_meet_every_deadline() -> None:
    """The case the old caption got wrong: first token early, mean TPOT 1.2× the SLO, every token on time."""
    from slobench.metrics.attainment import stage_metrics
    from slobench.metrics.records import StageRecord, records_frame

    rec = StageRecord(request_id=0, stage_idx=0, stage_name="main", num_stages=1, app="a", tier="t", arrival_s=0.0,
                      stage_start_s=0.0, prompt_tokens=10, output_tokens=5, ttft_slo_s=1.0, tpot_slo_s=0.05,
                      token_times_s=list(0.1 + 0.06 * np.arange(5)), status="finished")
    row = stage_metrics(records_frame([rec])).iloc[0]
    assert row["tpot_s"] / row["tpot_slo_s"] == pytest.approx(1.2) and bool(row["met_tpot"])


def test_batch_timeline_draws_prefill_and_decode_unstacked() -> None:
    it = pd.DataFrame({"time_s": [0.0, 0.1, 0.2], "prefill_tokens": [8000, 0, 4000], "decode_tokens": [64, 70, 72],
                       "latency_s": [0.05, 0.01, 0.03], "budget_s": [np.nan] * 3})
    fig = batch_timeline(it)
    traces = {t.name: t for t in fig.data}
    decode = traces["decode tokens"]
    assert not decode.stackgroup and not traces["prefill tokens"].stackgroup
    assert max(decode.y) == 72  # drawn at its own height, not on top of 8000 prefill tokens


def _cap(workload: str, scheduler: str, cap: float) -> CapacityRow:
    return CapacityRow(workload=workload, scheduler=scheduler, capacity_rps=cap, lower_rps=cap, upper_rps=cap * 1.1)


def test_one_scheduler_shows_no_ratio_anywhere() -> None:
    one = [_cap("coding", "sarathi", 4.0)]
    table = display.capacity_table(one)
    assert [c.header for c in table.columns] == ["workload", "scheduler", "capacity", "interval", "status"]
    assert "ratio" not in str(table.caption)
    frame = pd.DataFrame([r.model_dump() for r in one])
    assert "vs sarathi" not in capacity_table_html(frame)
    fig = capacity_bars(frame)
    assert "ratio" not in fig.layout.title.text and "×" not in fig.data[0].text[0]
    # Two schedulers: the ratio stays.
    two = [*one, _cap("coding", "slos-serve", 8.0)]
    assert "ratio" in [c.header for c in display.capacity_table(two).columns]
    frame = pd.DataFrame([r.model_dump() for r in two])
    assert "vs sarathi" in capacity_table_html(frame) and "2.00×" in capacity_bars(frame).data[1].text[0]


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    import slobench.report.html as html

    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")
    monkeypatch.setattr(cluster_run, "run_once", _fake_run_once)
    _no_real_schedulers(monkeypatch)
    monkeypatch.setattr(display.console, "width", 200)


def test_capacity_table_shows_the_workload_name_not_its_path(tmp_path: Path, fake_engine: None) -> None:
    from slobench.workloads.spec import SPEC_DIR

    shown = "my-long-context-workload"
    raw = yaml.safe_load((SPEC_DIR / "coding.yaml").read_text())
    raw["name"] = shown
    deep = tmp_path / "a" / "rather" / "deep" / "folder" / "of" / "workload" / "files"
    deep.mkdir(parents=True)
    path = deep / "coding-copy.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = runner.invoke(app, ["capacity", "--workload", str(path), "--scheduler", "vllm", "--quick",
                              "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if "vllm" in line and "│" in line)
    assert row.split("│")[1].strip() == shown, row
    assert str(deep) not in res.output.split("report:")[0]
    [run_dir] = list((tmp_path / "out").iterdir())
    assert set(pd.read_csv(run_dir / "probes.csv")["workload"]) == {shown}


def test_workload_labels_fall_back_to_the_argument_when_names_collide(tmp_path: Path) -> None:
    from slobench.capacity.plan import workload_labels
    from slobench.workloads.spec import SPEC_DIR

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "w.yaml").write_text((SPEC_DIR / "coding.yaml").read_text())  # both named "coding"
    a, b = str(tmp_path / "a" / "w.yaml"), str(tmp_path / "b" / "w.yaml")
    assert workload_labels([a, "chatbot"]) == ["coding", "chatbot"]
    assert workload_labels([a, b]) == [a, b]  # labels identify searches: never two with one label
    assert workload_labels([str(tmp_path / "missing.yaml")]) == ["missing"]  # the preflight reports it
