"""Calibrated profile files: ``--profile FILE.yaml`` everywhere a shipped ``paper:`` name works, one line per bad
file, and the simulator charging the profile's front-end cost to TTFT (and only there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from slobench.cli import app
from slobench.engines.sim import SimConfig, simulate
from slobench.errors import UserError
from slobench.perf import get_latency_model
from slobench.perf.profile_file import load_profile_file, write_profile_file
from slobench.schedulers.registry import make_scheduler
from slobench.workloads.model import SLO, Request, Stage, Workload

runner = CliRunner()

GOOD: dict = {
    "slobench_profile": 1,
    "name": "test-cpu",
    "latency": {"kind": "piecewise", "pieces": [[2.0e-5, 0.0, 0.004]]},
    "kv_capacity_tokens": 200_000,
    "frontend": {"constant_s": 0.05, "per_prompt_token_s": 1.0e-4, "per_output_token_s": 0.002},
    "fit": {"r2": 0.97, "n_train": 40, "n_holdout": 10, "abs_error_pct": {"p50": 3.0, "p90": 9.0, "max": 20.0}},
    "environment": {"hardware": "cpu", "engine": "vllm", "engine_version": "0.32.0", "model": "/m",
                    "date": "2026-12-01T00:00:00Z", "measured": "iterations"},
}


def _write(tmp_path: Path, data: dict, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_profile_file_round_trips_and_builds_the_model(tmp_path: Path) -> None:
    prof = load_profile_file(_write(tmp_path, GOOD))
    out = write_profile_file(prof, tmp_path / "sub" / "again.yaml")
    assert load_profile_file(out) == prof
    m = get_latency_model(profile=str(out))
    assert m.kv_capacity_tokens() == 200_000 and m.hardware_label == "cpu"
    assert m.prefill_latency_s(1000) == pytest.approx(0.004 + 0.02)
    assert m.frontend.ingress_s(100) == pytest.approx(0.05 + 0.01)
    assert not list((tmp_path / "sub").glob(".again.yaml.*"))  # the atomic write left no temp file


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda d: d["latency"].update(pieces=[[-1e-5, 0, 0.004]]), "piece 0 k1 must be a finite number ≥ 0"),
    (lambda d: d["latency"].pop("pieces"), "latency.pieces: Field required"),
    (lambda d: d["frontend"].update(constant_s=-0.1), "frontend.constant_s: Value error, must be a finite number ≥ 0"),
    (lambda d: d.update(colour="blue"), "colour: Extra inputs are not permitted"),
    (lambda d: d.pop("kv_capacity_tokens"), "kv_capacity_tokens: required in a profile measured from iterations"),
    (lambda d: d.update(slobench_profile=2), "re-run calibrate"),
])
def test_bad_profile_is_one_line_naming_the_field(tmp_path: Path, mutate, needle: str) -> None:  # noqa: ANN001
    data = json.loads(json.dumps(GOOD))
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(UserError, match="docs/calibration.md") as exc:
        load_profile_file(path)
    assert needle in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_missing_and_unparsable_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found; give a profile written by `slobench calibrate"):
        get_latency_model(profile=str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("latency: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        get_latency_model(profile=str(bad))


@pytest.mark.parametrize("args", [
    ["run", "-n", "20", "--rate", "2"],
    ["compare", "--quick", "--num-requests", "30", "--rate-start", "1", "--rate-max", "2", "--schedulers", "vllm"],
])
def test_cli_bad_profile_exits_2_with_one_line(tmp_path: Path, args: list[str]) -> None:
    data = json.loads(json.dumps(GOOD))
    data["latency"]["pieces"] = [[1e-5, 0, "fast"]]
    path = _write(tmp_path, data)
    r = runner.invoke(app, [*args, "-w", "chatbot", "--profile", str(path), "--out", str(tmp_path / "o")])
    errs = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert r.exit_code == 2 and len(errs) == 1 and "Traceback" not in r.output, r.output
    assert "latency.pieces.0.2" in errs[0]


def test_run_with_profile_file_labels_hardware_from_it(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    r = runner.invoke(app, ["run", "-w", "chatbot", "-n", "30", "--rate", "2", "--profile", str(path),
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    summary = json.loads(next((tmp_path / "o").glob("*/summary.json")).read_text())
    assert summary["hardware"] == "cpu" and summary["num_finished"] == 30


def _one_request(prompt: int = 100, out: int = 5, gap: float | None = None) -> Workload:
    slo = SLO(ttft_s=10.0, tpot_s=1.0)
    stages = (Stage(prompt, out, slo),) if gap is None else (Stage(prompt, out, slo, name="round"),
                                                             Stage(20, out, slo, gap_s=gap, name="final"))
    return Workload("one", [Request(0, 1.0, "chat", "chat", stages)])


def test_simulator_charges_frontend_cost_to_ttft_only(tmp_path: Path) -> None:
    """Ingress (constant + per prompt token) delays the engine's arrival; egress delays every token alike:
    TTFT grows by exactly ingress + egress, the gaps between tokens do not change."""
    with_fe = get_latency_model(profile=str(_write(tmp_path, GOOD)))
    no = json.loads(json.dumps(GOOD))
    no.pop("frontend")
    without = get_latency_model(profile=str(_write(tmp_path, no, "no.yaml")))
    runs = [simulate(_one_request(), make_scheduler("vllm"), m, SimConfig()).records[0] for m in (with_fe, without)]
    a, b = runs
    assert a.arrival_s == b.arrival_s == a.stage_start_s == 1.0  # the client's clock
    extra = (a.token_times_s[0] - a.stage_start_s) - (b.token_times_s[0] - b.stage_start_s)
    assert extra == pytest.approx(0.05 + 100 * 1e-4 + 0.002)
    gaps = [[y - x for x, y in zip(r.token_times_s, r.token_times_s[1:], strict=False)] for r in runs]
    assert gaps[0] == pytest.approx(gaps[1])


def test_frontend_cost_charged_again_for_a_tool_round(tmp_path: Path) -> None:
    """A tool round is a new HTTP request carrying the whole context: it pays ingress on that context."""
    m = get_latency_model(profile=str(_write(tmp_path, GOOD)))
    recs = simulate(_one_request(gap=0.5), make_scheduler("vllm"), m, SimConfig()).records
    first, final = sorted(recs, key=lambda r: r.stage_idx)
    assert final.stage_start_s == pytest.approx(first.token_times_s[-1] + 0.5)  # client: last token + gap
    ctx = 100 + 5 + 20
    assert final.token_times_s[0] - final.stage_start_s > 0.05 + ctx * 1e-4 + 0.002


def test_shipped_profile_run_is_labelled_with_its_gpu_and_roofline_with_hardware() -> None:
    from slobench.cluster.run import build_latency_model, hardware_label, validate_config

    cfg = validate_config(workload="chatbot", profile="paper:opt-13b-a100-tp2")
    assert hardware_label(cfg, build_latency_model(cfg)) == "A100-80GB"  # not the --hardware default, H100-SXM
    cfg = validate_config(workload="chatbot", hardware="L40S")
    assert hardware_label(cfg, build_latency_model(cfg)) == "L40S"
