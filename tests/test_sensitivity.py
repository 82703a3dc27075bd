"""`slobench sensitivity`: the two axes, the table, the figure, and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import slobench.cluster.run as runner
from slobench.capacity.sensitivity import check_axis, points
from slobench.cli import app
from slobench.errors import UserError
from slobench.report.sensitivity import sensitivity_table
from tests.test_cli_compare import _fake_run_once

cli = CliRunner()


@pytest.fixture(autouse=True)
def _no_png(monkeypatch: pytest.MonkeyPatch) -> None:
    import slobench.report.html as html

    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")


def test_points_share_the_preset_point_once() -> None:
    pts = points([0.5, 1.0, 2.0], [0.0, 0.2])
    assert {(p["slo_scale"], p["truth_bias"]) for p in pts} == {(0.5, 0.0), (1.0, 0.0), (2.0, 0.0), (1.0, 0.2)}
    assert len(pts) == 4
    pts = points([0.5], [0.1], base_error=0.1)  # the SLO axis at a 10% error
    assert {(p["slo_scale"], p["truth_bias"]) for p in pts} == {(0.5, 0.1), (1.0, 0.1)}


@pytest.mark.parametrize(("axis", "values", "fragment"), [
    ("slo_scale", [0.0], "--slo-scale: 0 is not a positive factor"),
    ("slo_scale", [math.inf], "--slo-scale: inf"),
    ("truth_bias", [-1.0], "--model-error: -1 is not a fraction > -1"),
    ("truth_bias", [], "--model-error: give at least one value"),
])
def test_bad_axis_values_are_one_line(axis: str, values: list[float], fragment: str) -> None:
    with pytest.raises(UserError, match=fragment.replace("(", r"\(")):
        check_axis(axis, values)


def test_table_reads_each_axis_through_the_preset_point() -> None:
    rows = []
    for sched, knee in (("vllm", 4.0), ("slos-serve", 12.0)):
        for scale, bias in ((0.5, 0.0), (1.0, 0.0), (2.0, 0.0), (1.0, 0.2)):
            rows.append({"base_workload": "coding", "scheduler": sched, "slo_scale": scale, "truth_bias": bias,
                         "capacity_rps": knee * scale / (1 + bias) * (1.5 if sched == "vllm" and bias else 1)})
    table = sensitivity_table(pd.DataFrame(rows))
    slo = table[table["axis"] == "SLO scale"].set_index("value")
    err = table[table["axis"] == "model error"].set_index("value")
    assert list(slo.index) == [0.5, 1.0, 2.0] and list(err.index) == [0.0, 0.2]
    assert slo.loc[2.0, "slos-serve ÷ vllm"] == pytest.approx(3.0)
    assert err.loc[0.2, "vllm (req/s)"] == pytest.approx(4.0 * 1.5 / 1.2)
    assert err.loc[0.2, "slos-serve ÷ vllm"] == pytest.approx(2.0)  # 12/1.2 ÷ 6/1.2
    assert err.loc[0.0, "slos-serve ÷ vllm"] == slo.loc[1.0, "slos-serve ÷ vllm"]  # the shared point


def test_table_without_a_capacity_gives_no_ratio() -> None:
    df = pd.DataFrame([{"base_workload": "c", "scheduler": "vllm", "slo_scale": 1.0, "truth_bias": 0.0,
                        "capacity_rps": None},
                       {"base_workload": "c", "scheduler": "slos-serve", "slo_scale": 1.0, "truth_bias": 0.0,
                        "capacity_rps": 5.0}])
    assert sensitivity_table(df)["slos-serve ÷ vllm"].isna().all()


def _fake_biased(cfg, **kw: object):  # noqa: ANN202
    """test_cli_compare's fake engine with knees that fall by 1/(1 + e) when the GPU is e slower than planned."""
    res = _fake_run_once(cfg.model_copy(update={"rate_rps": cfg.rate_rps * (1 + cfg.truth_bias)}), **kw)
    res.summary.offered_rate_rps = cfg.rate_rps
    return res


def test_cli_end_to_end_writes_table_and_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "run_once", _fake_biased)
    res = cli.invoke(app, ["sensitivity", "--workload", "coding", "--slo-scale", "0.5,1", "--model-error", "0,0.5",
                           "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    [out] = [p for p in tmp_path.iterdir() if p.name.endswith("sensitivity-coding")]
    table = pd.read_csv(out / "sensitivity.csv")
    assert set(table["axis"]) == {"SLO scale", "model error"}
    err = table[table["axis"] == "model error"].set_index("value")
    # The fake's knees fall by 1/(1+e): each policy's capacity drops by ≈ 1/1.5 at 50% error (5% grid).
    assert err.loc[0.5, "vllm (req/s)"] < err.loc[0.0, "vllm (req/s)"] * 0.75
    assert (out / "figures" / "sensitivity-coding.html").exists()
    assert not any(p.name.startswith("capacity-vs-") for p in (out / "figures").iterdir())
    assert "Sensitivity: capacity" in res.output, res.output[-2000:]
    # Saved like any plan: a second report rebuild gives the same table.
    assert cli.invoke(app, ["report", str(out), "--no-png"]).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "sensitivity.csv"), table)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--slo-scale", "abc"], "--slo-scale: 'abc' is not a number"),
    (["--slo-scale", "-1"], "--slo-scale: -1 is not a positive factor"),
    (["--model-error", "-2"], "--model-error: -2 is not a fraction > -1"),
    (["--schedulers", "vllm"], "--schedulers: give at least two policies"),
    (["--workload", "no-such-workload"], "no-such-workload"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: list[str], fragment: str) -> None:
    res = cli.invoke(app, ["sensitivity", "--quick", "--out", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    assert fragment in res.output and "Traceback" not in res.output
    assert not list(tmp_path.iterdir())


def test_many_settings_print_what_they_share_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "run_once", _fake_biased)
    res = cli.invoke(app, ["sensitivity", "--workload", "coding", "--slo-scale", "0.5,1,2", "--model-error", "0",
                           "--quick", "-j", "1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert res.output.count("output lengths: realistic") == 1  # shared by every search: said once
    assert "SLOs: vary between the 3 settings" in " ".join(res.output.split())
