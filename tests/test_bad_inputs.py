"""Bad results folders and output paths, as a user meets them: one red `error:` line and exit 2, never a traceback.

Capacity folders are made with the synthetic engine of test_cli_compare (seconds), then damaged the way a
kill, a full disk or a partial copy damages them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import slobench.cluster.run as cluster_run
import slobench.report.results as results
from slobench.cli import app
from tests.run_helpers import interrupt_runs_after
from tests.test_cli_compare import _fake_run_once, _no_real_schedulers

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_png(monkeypatch: pytest.MonkeyPatch) -> None:
    import slobench.report.html as html

    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_run, "run_once", _fake_run_once)
    _no_real_schedulers(monkeypatch)


@pytest.fixture(scope="module")
def capacity_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished capacity folder (synthetic engine), copied by each test before it damages it."""
    mp = pytest.MonkeyPatch()
    import slobench.report.html as html

    mp.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")
    mp.setattr(cluster_run, "run_once", _fake_run_once)
    _no_real_schedulers(mp)
    root = tmp_path_factory.mktemp("cap")
    try:
        res = runner.invoke(app, ["capacity", "--workload", "coding", "--scheduler", "vllm", "--quick",
                                  "--out", str(root)])
        assert res.exit_code == 0, res.output
    finally:
        mp.undo()
    [run_dir] = [p for p in root.iterdir() if p.is_dir()]
    return run_dir


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def one_error_line(res, needle: str) -> str:  # noqa: ANN001
    """The output is exactly one line, `error: …` containing ``needle``, and the exit code is 2."""
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error:") and needle in lines[0], lines[0]
    return lines[0]


# --- --out that cannot hold a results folder ----------------------------------------------------------

OUT_COMMANDS = {
    "run": ["run", "-w", "chatbot", "-n", "5"],
    "compare": ["compare", "-w", "coding", "--quick"],
    "capacity": ["capacity", "-w", "coding", "--quick"],
    "sweep": ["sweep", "--grid", "GRID", "--quick"],
}


@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
@pytest.mark.parametrize("where", ["file", "under-file"])
def test_out_that_is_a_file_is_one_line(tmp_path: Path, fake_engine: None, command: str, where: str) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text("workload: coding\ngrid: {slo_scale: [1]}\n")
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    out = afile if where == "file" else afile / "sub"
    args = [a if a != "GRID" else str(grid) for a in OUT_COMMANDS[command]]
    res = runner.invoke(app, [*args, "--out", str(out)])
    line = one_error_line(res, f"--out {out}")
    assert ("is a file" in line) if where == "file" else ("cannot create a results folder" in line)


def test_unwritable_out_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the user may not write to (simulated: tests may run as root, who may write anywhere)."""
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if self.parent == tmp_path / "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    (tmp_path / "locked").mkdir()
    monkeypatch.setattr(Path, "mkdir", refuse)
    res = runner.invoke(app, ["run", "-w", "chatbot", "-n", "5", "--out", str(tmp_path / "locked")])
    line = one_error_line(res, f"--out {tmp_path / 'locked'}: cannot create a results folder there")
    assert "Permission denied" in line


def test_new_run_dir_that_loses_a_race_takes_the_next_suffix(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process creates the folder between a check and the mkdir: the loser takes `-2`, no crash."""

    class FrozenClock:
        @staticmethod
        def now():  # noqa: ANN205
            from datetime import datetime

            return datetime(2026, 1, 1, 12, 0, 0)

    monkeypatch.setattr(results, "datetime", FrozenClock)
    (tmp_path / "20260101-120000-x").mkdir()
    real_exists = Path.exists
    # Every existence check answers "free", as it would have an instant before the other process won.
    monkeypatch.setattr(Path, "exists", lambda self: False if self.name.startswith("2026") else real_exists(self))
    path = results.new_run_dir("x", tmp_path)
    assert path.name == "20260101-120000-x-2" and path.is_dir()
    assert results.new_run_dir("x", tmp_path).name == "20260101-120000-x-3"


# --- damaged capacity folders ------------------------------------------------------------------------


def _truncate(path: Path, n: int) -> None:
    path.write_bytes(path.read_bytes()[:n])


@pytest.mark.parametrize("command", ["report", "resume"])
def test_truncated_requests_parquet_is_one_line(tmp_path: Path, fake_engine: None, capacity_dir: Path,
                                                command: str) -> None:
    d = _copy(capacity_dir, tmp_path)
    _truncate(d / "requests.parquet", 300)
    args = [command, str(d), "--no-png"] if command == "report" else [command, str(d)]
    one_error_line(runner.invoke(app, args), "requests.parquet: not a readable parquet file")


def test_torn_probe_part_is_one_line_on_resume(tmp_path: Path, fake_engine: None, capacity_dir: Path) -> None:
    d = _copy(capacity_dir, tmp_path)
    (d / "parts").mkdir()
    (d / "parts" / "requests-0123456789abcdef.parquet").write_bytes(b"PAR1 torn")
    one_error_line(runner.invoke(app, ["resume", str(d)]), "requests-0123456789abcdef.parquet: not a readable")


@pytest.mark.parametrize("command", ["report", "resume"])
@pytest.mark.parametrize(("cut", "needle"), [("header", "cut short inside its header line"),
                                             ("row", "is cut short (the file is truncated")])
def test_truncated_probes_csv_is_one_line(tmp_path: Path, fake_engine: None, capacity_dir: Path, command: str,
                                          cut: str, needle: str) -> None:
    d = _copy(capacity_dir, tmp_path)
    text = (d / "probes.csv").read_text()
    header_len = text.index("\n")
    _truncate(d / "probes.csv", header_len // 2 if cut == "header" else header_len + 1 + 20)
    args = [command, str(d), "--no-png"] if command == "report" else [command, str(d)]
    one_error_line(runner.invoke(app, args), needle)


@pytest.mark.parametrize(("content", "needle"), [("{\"plan\": ", "manifest.json: unreadable"),
                                                 ("", "manifest.json: unreadable"),
                                                 ("[1, 2]", "not a slobench manifest"),
                                                 ("{}", "no saved plan")])
def test_corrupt_manifest_is_one_line_on_resume(tmp_path: Path, fake_engine: None, capacity_dir: Path,
                                                content: str, needle: str) -> None:
    d = _copy(capacity_dir, tmp_path)
    (d / "manifest.json").write_text(content)
    one_error_line(runner.invoke(app, ["resume", str(d)]), needle)


def test_empty_summary_is_one_line_on_report(tmp_path: Path, fake_engine: None, capacity_dir: Path) -> None:
    d = _copy(capacity_dir, tmp_path)
    (d / "summary.json").write_text("")
    one_error_line(runner.invoke(app, ["report", str(d), "--no-png"]), "summary.json: unreadable")


# --- a `slobench run` folder: report summarises it, resume says why not ------------------------------


@pytest.fixture
def interrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `slobench run` stopped by Ctrl-C after 30 of 200 requests: only manifest.json + requests.jsonl."""
    import slobench.cli.run as run_mod

    monkeypatch.chdir(tmp_path)
    real_run_once = run_mod.run_once
    interrupt_runs_after(monkeypatch, 30)
    res = runner.invoke(app, ["run", "-w", "chatbot", "-n", "200", "--rate", "4"])
    assert res.exit_code == 130, res.output
    monkeypatch.setattr(run_mod, "run_once", real_run_once)
    [run_dir] = list((tmp_path / "results").iterdir())
    assert sorted(p.name for p in run_dir.iterdir()) == ["manifest.json", "requests.jsonl"]
    return run_dir


def test_report_summarises_an_interrupted_run(interrupted_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import slobench.cli.run as run_mod
    from slobench.report.summary import RunSummary

    monkeypatch.setattr(run_mod.console, "width", 200)
    # A kill mid-write leaves a torn last line: it is dropped, the complete records count.
    with (interrupted_run / "requests.jsonl").open("a") as fh:
        fh.write('{"request_id": 31, "stage')
    res = runner.invoke(app, ["report", str(interrupted_run)])
    assert res.exit_code == 0, res.output
    assert "requests sent / finished" in res.output and "30 / 30" in res.output and "chatbot × vllm" in res.output
    assert "interrupted: 30 of 200 requests have records" in res.output
    summary = RunSummary.read(interrupted_run / "summary.json")
    assert summary.num_requests == 30 and summary.workload == "chatbot" and summary.scheduler == "vllm"
    assert summary.offered_rate_rps == pytest.approx(4.0, rel=0.3)  # from the regenerated workload
    assert json.loads((interrupted_run / "summary.json").read_text())["rebuilt_from_records"] is True
    # A second report reads the summary it wrote.
    res = runner.invoke(app, ["report", str(interrupted_run)])
    assert res.exit_code == 0 and "30 / 30" in res.output and "summary:" not in res.output, res.output


def test_report_on_a_run_whose_spec_is_gone_says_goodput_span_is_unknown(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", "-w", "chatbot", "-n", "20", "--rate", "4"])
    assert res.exit_code == 0, res.output
    [run_dir] = list((tmp_path / "results").iterdir())
    (run_dir / "summary.json").unlink()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["config"]["workload"] = "gone/mine.yaml"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    res = runner.invoke(app, ["report", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert "duration is unknown" in res.output and "span of the recorded arrivals" in res.output


def test_resume_on_a_run_folder_points_to_report(interrupted_run: Path) -> None:
    line = one_error_line(runner.invoke(app, ["resume", str(interrupted_run)]), "cannot be resumed")
    assert f"slobench report {interrupted_run}" in line


def test_report_on_an_empty_run_is_one_line(interrupted_run: Path) -> None:
    (interrupted_run / "requests.jsonl").write_text("")
    one_error_line(runner.invoke(app, ["report", str(interrupted_run)]), "kept no finished records")
