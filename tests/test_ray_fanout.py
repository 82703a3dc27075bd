"""Ray fan-out (`--ray-address`): the same probes and capacities as a serial run, on a local Ray and on a
two-node local cluster; failures and Ctrl-C as the local pool reports them; one line without ray.

The Ray tests skip, with the reason, when ray is not installed; the input checks run everywhere. One
local Ray (2 CPUs) serves the file and is shut down at its end; the two-node cluster test makes and
stops its own. Probes are small (30 requests) so the file stays within about a minute and a half.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from slobench.cli import app
from slobench.cluster.ray_fanout import RAY_EXTRA
from slobench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--quick", "--num-requests", "30", "--workload", "coding", "--schedulers", "vllm,slos-serve"]
KEY = ["workload", "scheduler", "rate_rps", "seed"]
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(autouse=True)
def _no_png(monkeypatch: pytest.MonkeyPatch) -> None:
    import slobench.report.html as html

    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")


def _pids(node: Any) -> list[int]:
    """The processes a Ray node started (GCS, raylet, ...), to check none outlives its shutdown."""
    return [p.process.pid for infos in node.all_processes.values() for p in infos if p.process is not None]


def _alive(pids: list[int], wait_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + wait_s
    while True:
        alive = [p for p in pids if Path(f"/proc/{p}").exists()
                 and "zombie" not in Path(f"/proc/{p}/status").read_text(errors="replace").lower()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    """One local Ray with 2 CPUs for the file; its processes must be gone after `ray.shutdown()`."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'slobench[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    pids = _pids(ray._private.worker._global_node)
    assert pids
    yield ray
    ray.shutdown()
    assert not _alive(pids), "Ray processes left after ray.shutdown()"


def _only_dir(root: Path) -> Path:
    dirs = [p for p in root.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def _probes(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "probes.csv").sort_values(KEY).reset_index(drop=True)


def _capacities(run_dir: Path) -> list[tuple[str, str, float]]:
    caps = pd.read_json(run_dir / "summary.json", typ="series")["capacities"]
    return sorted((c["workload"], c["scheduler"], c["capacity_rps"]) for c in caps)


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same compare, serial (-j 1), in this process."""
    out = tmp_path_factory.mktemp("serial")
    res = CliRunner().invoke(app, ["compare", *SMALL, "-j", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return _only_dir(out)


def test_compare_on_local_ray_equals_serial(ray_session: Any, serial_run: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["compare", *SMALL, "-j", "2", "--ray-address", "local", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    got = _only_dir(tmp_path)
    pd.testing.assert_frame_equal(_probes(got), _probes(serial_run))
    assert _capacities(got) == _capacities(serial_run)
    assert len(pd.read_parquet(got / "requests.parquet")) == len(pd.read_parquet(serial_run / "requests.parquet"))


def test_bench_schedulers_on_ray_equals_j1(ray_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import slobench.capacity.bench as bench

    monkeypatch.setattr(bench, "overhead", lambda: dict.fromkeys(  # the table is the subject, not timing
        ("replan_p50_ms", "replan_p99_ms", "steady_p50_ms", "steady_p99_ms"), 0.0))
    args = ["bench", "schedulers", "--quick", "-n", "60", "--workloads", "coding", "--schedulers", "vllm,slos-serve"]
    tables = []
    for name, extra in (("j1", ["-j", "1"]), ("ray", ["-j", "2", "--ray-address", "local"])):
        res = CliRunner().invoke(app, [*args, *extra, "--out", str(tmp_path / f"{name}.csv")])
        assert res.exit_code == 0, res.output
        tables.append(pd.read_csv(tmp_path / f"{name}.csv").drop(columns="wall_s"))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert tables[0]["capacity_rps"].notna().all()


def _saved_plan(run_dir: Path) -> Any:
    import json

    from slobench.capacity.plan import Plan

    return Plan.from_dict(json.loads((run_dir / "manifest.json").read_text())["plan"])


def test_ctrl_c_on_ray_keeps_the_probes_that_arrived(ray_session: Any, serial_run: Path, tmp_path: Path) -> None:
    """Ctrl-C in the driver (here: raised by the observer at the 3rd saved probe) cancels the tasks and
    keeps what arrived; every kept row is the serial run's row."""
    from slobench.capacity.execute import NullObserver, execute
    from slobench.capacity.store import Collector

    class Interrupt(NullObserver):
        seen = 0

        def finished(self, probe: Any, cached: bool) -> None:
            self.seen += 1
            if self.seen == 3:
                raise KeyboardInterrupt

    plan = _saved_plan(serial_run)
    store = Collector(tmp_path, plan.search.target, plan.title)
    out = execute(plan, store, Interrupt(), jobs=2, ray_address="local")
    assert out.interrupted and out.exit_code == 130
    kept = _probes(tmp_path).set_index(KEY)
    assert 3 <= len(kept) < len(_probes(serial_run))
    # check_dtype: an all-empty column reads back as float, not string
    pd.testing.assert_frame_equal(kept, _probes(serial_run).set_index(KEY).loc[kept.index], check_dtype=False)


def test_worker_user_error_is_the_local_line(ray_session: Any, tmp_path: Path) -> None:
    """A search that fails with a UserError inside a Ray task gives the line the local pool gives,
    for compare's searches (messages over the queue) and bench's (task return values) alike."""
    from slobench.capacity.bench import capacity_table
    from slobench.capacity.execute import execute
    from slobench.capacity.plan import Plan, SearchSettings, SearchSpec
    from slobench.capacity.store import Collector

    specs = [SearchSpec("nope", s, {"workload": "no-such-workload", "probe_requests": 60}) for s in ("vllm", "sarathi")]
    lines = []
    for address in (None, "local"):
        (tmp_path / str(address)).mkdir()
        store = Collector(tmp_path / str(address), 0.9, "t")
        with pytest.raises(UserError) as err:
            execute(Plan("compare", "t", specs, SearchSettings()), store, jobs=2, ray_address=address)
        lines.append(str(err.value))
        with pytest.raises(UserError) as err:
            capacity_table(["no-such-workload"], ["vllm", "sarathi"], num_requests=60, jobs=2, ray_address=address)
        lines.append(str(err.value))
    assert len(set(lines)) == 1, lines
    assert "no-such-workload" in lines[0] and "\n" not in lines[0]


def test_two_node_cluster_by_address(ray_session: Any, serial_run: Path, tmp_path: Path) -> None:
    """`--ray-address HOST:PORT` of a head + one worker node (1 CPU each, so the two searches run one per
    node) gives the serial results; the cluster's processes are gone after its shutdown."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(timeout=60)
        pids = _pids(cluster.head_node) + [p for n in cluster.worker_nodes for p in _pids(n)]
        cmd = [sys.executable, "-c", "from slobench.cli import main; main()", "compare", *SMALL,
               "--ray-address", cluster.address, "--out", str(tmp_path)]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180,
                           env=os.environ | {"PYTHONPATH": str(ROOT)})
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    finally:
        cluster.shutdown()
    got = _only_dir(tmp_path)
    pd.testing.assert_frame_equal(_probes(got), _probes(serial_run))
    assert _capacities(got) == _capacities(serial_run)
    assert not _alive(pids), "cluster processes left after cluster.shutdown()"


@pytest.mark.parametrize("address", ["nonsense", "ray://host", "ray://host:99999", "http://host:6379"])
def test_bad_address_is_one_line(address: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["compare", *SMALL, "--ray-address", address, "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "--ray-address" in res.output and "auto | local" in res.output
    assert not list(tmp_path.iterdir())  # refused before a results folder was made


@pytest.mark.parametrize("command", [["compare", *SMALL], ["bench", "schedulers", "--quick"]])
def test_without_ray_the_flag_is_one_line(command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    res = CliRunner().invoke(app, [*command, "--ray-address", "local", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"error: {RAY_EXTRA}"]


def test_without_the_flag_nothing_imports_ray() -> None:
    """The CLI, the local pool and the bench path load no ray; a bad address is refused without it too."""
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom slobench.cli import app\n"
            "import slobench.capacity.parallel, slobench.capacity.bench, slobench.cli.bench_cmd\n"
            "r = CliRunner().invoke(app, ['compare', '--ray-address', 'bogus'])\n"
            "assert r.exit_code == 2, r.output\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'ray')\nprint(bad)\nsys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
