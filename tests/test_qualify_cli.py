"""`slobench qualify` as a user runs it: the quick suite on the simulator end to end, the dry run, the sealed
folder's `--check` (intact, edited, added, deleted, a rewritten manifest against `--expect`), and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slobench.cli import app
from tests.run_helpers import one_error_line

runner = CliRunner()



@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One quick-suite qualification on the simulator: (folder, root digest, output)."""
    out = tmp_path_factory.mktemp("qualify")
    r = runner.invoke(app, ["qualify", "--suite", "quick", "--engine", "sim", "--out", str(out)])
    assert r.exit_code in (0, 3), r.output
    [folder] = [p for p in out.iterdir() if p.is_dir()]
    digest = next(ln.split()[-1] for ln in r.output.splitlines() if ln.startswith("root digest"))
    return folder, digest, r.output


def test_quick_suite_on_the_simulator_is_valid_and_sealed(sealed: tuple[Path, str, str]) -> None:
    folder, digest, output = sealed
    q = json.loads((folder / "qualification.json").read_text())
    assert q["verdict"] == "VALID", output
    assert any(sc["status"] == "VALID" for sc in q["scenarios"])
    for sc in q["scenarios"]:
        assert sc["capacity_rps"] and sc["capacity_point"]["status"] == "VALID"
        assert len(sc["curve"]) >= 2 and sc["pareto"]
        for p in sc["curve"]:  # each point says which bound it met
            assert p["required"]["met"] >= p["required"]["needed"] or p["status"] == "INVALID"
            assert p["energy"]["valid"] is False and p["energy"]["reason"] == "energy_not_available"
    for name in ("report.html", "suite.yaml", "environment.json", "MANIFEST.sha256"):
        assert (folder / name).exists(), name
    assert len(digest) == 64 and "verdict: VALID" in output


def test_check_passes_on_an_intact_folder(sealed: tuple[Path, str, str]) -> None:
    folder, digest, _ = sealed
    r = runner.invoke(app, ["qualify", "--check", str(folder), "--expect", digest])
    assert r.exit_code == 0, r.output
    assert "intact" in r.output


@pytest.mark.parametrize("tamper", ["edit", "add", "delete"])
def test_check_names_the_tampered_file(sealed: tuple[Path, str, str], tamper: str, tmp_path: Path) -> None:
    folder, digest, _ = sealed
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    target = copy / "qualification.json"
    if tamper == "edit":
        q = json.loads(target.read_text())
        q["verdict"] = "VALID" if q["verdict"] != "VALID" else "INVALID"
        target.write_text(json.dumps(q))
        says = "changed: qualification.json"
    elif tamper == "add":
        (copy / "extra.csv").write_text("a,b\n1,2\n")
        says = "added: extra.csv"
    else:
        target.unlink()
        says = "removed: qualification.json"
    r = runner.invoke(app, ["qualify", "--check", str(copy)])
    assert r.exit_code == 1 and says in r.output, r.output
    assert "Traceback" not in r.output


def test_a_rewritten_manifest_fails_only_against_the_published_digest(sealed: tuple[Path, str, str],
                                                                      tmp_path: Path) -> None:
    from slobench.qualify.manifest import write_manifest

    folder, digest, _ = sealed
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "environment.json").write_text("{}")
    write_manifest(copy)  # the forger seals the edited folder again
    assert runner.invoke(app, ["qualify", "--check", str(copy)]).exit_code == 0
    r = runner.invoke(app, ["qualify", "--check", str(copy), "--expect", digest])
    assert r.exit_code == 1 and "expected" in r.output, r.output


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    r = runner.invoke(app, ["qualify", "--suite", "standard", "--engine", "vllm", "--model", "m", "--dry-run",
                            "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "standard" in r.output and "estimate" in r.output.lower()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "says"), [
    (["--suite", "nope"], "--suite"),
    (["--engine", "tpu"], "--engine tpu"),
    (["--engine", "vllm"], "--model: missing"),
    (["--engine", "openai"], "--url: missing"),
    (["--slo-scale", "0"], "--slo-scale: must be > 0"),
    (["--expect", "ab"], "--expect"),
    (["--check", "/nonexistent/folder"], "/nonexistent/folder"),
    (["--check", ".", "--expect", "xyz"], "--expect"),
])
def test_bad_input_is_one_line(args: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["qualify", *args])
    assert r.exit_code == 2, r.output
    assert says in one_error_line(r.output)
    assert not (tmp_path / "results").exists()


def test_openai_engine_against_a_mock_server(tmp_path: Path) -> None:
    """`--engine openai` end to end on a small suite file: the real load generator (open loop for the search, its
    closed loop for the curve), the server's usage counted, no GPU so energy is marked not available."""
    from slobench.testing.mock_server import MockServer

    suite = tmp_path / "mini.yaml"
    suite.write_text(
        "name: mini\nversion: 1\n"
        "rules: {min_duration_s: 1, warmup_s: 0.2, attainment_margin: 0.2, concurrency: {start: 2, factor: 4, "
        "max_points: 2}, capacity: {probe_s: 1.5, probe_requests: 10, rate_start: 16, rate_min: 4, max_probes: 3, "
        "hold_factor: 2, max_hold_probes: 1}}\n"
        "scenarios: [{name: chat, workload: coding, slo: loose}]\n")
    srv = MockServer(ttft_s=0.005, tpot_s=0.001).start()
    try:
        r = runner.invoke(app, ["qualify", "--suite", str(suite), "--engine", "openai", "--url", srv.url,
                                "--engine-arg", "vocab_size=1024", "--out", str(tmp_path / "out")])
    finally:
        srv.stop()
    assert r.exit_code in (0, 3), r.output
    [folder] = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    q = json.loads((folder / "qualification.json").read_text())
    [sc] = q["scenarios"]
    assert [p["concurrency"] for p in sc["curve"]] == [2, 8]
    run = json.loads((folder / sc["curve"][-1]["run_dir"] / "summary.json").read_text())
    assert run["client"]["max_concurrency"] == 8 and run["client"]["usage_reported"] > 0
    assert all(p["energy"]["reason"] == "energy_not_available" for p in sc["curve"])
    assert runner.invoke(app, ["qualify", "--check", str(folder)]).exit_code == 0
