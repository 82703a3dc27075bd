"""Speculative probes (`slobench.capacity.speculate`): results handed over, never changed; spare cores returned."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

import slobench.cluster.run as runner
from slobench.capacity.search import ProbeResult, capacity_search
from slobench.capacity.speculate import LocalSlots, Speculator
from slobench.cli import app
from tests.test_cli_compare import _fake_run_once, _no_real_schedulers, _only_dir


def _double(key: int) -> int:
    if key < 0:
        raise ValueError("no negatives")
    if key >= 100:
        time.sleep(30)  # long enough to be killed, never to finish inside a test
    return 2 * key


def test_take_hands_over_a_childs_result_and_returns_its_core() -> None:
    slots = LocalSlots(1)
    with Speculator(_double, slots) as spec:
        spec.hint([3, 4])  # one core: 3 starts, 4 waits
        assert slots.n == 0
        assert spec.take(3) == 6
        assert spec.take(4) == 8  # started when 3's core came back, or run by this process's borrowed core
        assert spec.take(5) is None  # never hinted: the caller computes it
        assert spec.used == 2
    assert slots.n == 1


def test_poll_starts_a_queued_hint_on_a_core_freed_mid_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """A core that frees up while this process computes a probe (another search ended, a child finished) is
    used at the next `poll`, not only at the next hint or take."""
    import slobench.capacity.speculate as speculate_mod

    monkeypatch.setattr(speculate_mod, "POLL_EVERY_S", 0.0)
    slots = LocalSlots(0)
    with Speculator(_double, slots) as spec:
        spec.hint([3])
        spec.poll()
        assert not spec._running  # noqa: SLF001 - no core yet: queued
        slots.release()  # another search ended
        spec.poll()
        assert list(spec._running) == [3]  # noqa: SLF001
        assert slots.n == 0
        assert spec.take(3) == 6
    assert slots.n == 1


def test_a_failing_child_gives_none_so_the_caller_raises_it_itself() -> None:
    slots = LocalSlots(1)
    with Speculator(_double, slots) as spec:
        spec.hint([-1])
        assert spec.take(-1) is None
    assert slots.n == 1


def test_dropped_hints_are_killed_and_no_child_outlives_close() -> None:
    slots = LocalSlots(2)
    spec = Speculator(_double, slots)
    spec.hint([100, 101])  # both sleep
    pids = [pid for pid, _ in spec._running.values()]  # noqa: SLF001 - checking the children themselves
    assert len(pids) == 2
    spec.hint([101], now=[])  # 100 is no longer wanted
    assert list(spec._running) == [101]  # noqa: SLF001
    spec.close()
    for pid in pids:
        with pytest.raises(ChildProcessError):  # reaped: not a zombie, not running
            os.waitpid(pid, os.WNOHANG)
    assert slots.n == 2


def test_the_key_about_to_be_taken_is_kept_but_never_started() -> None:
    slots = LocalSlots(1)
    with Speculator(_double, slots) as spec:
        spec.hint([7])
        spec.hint([8], now=[7])  # 7 runs on (the search asks for it next); 8 waits for a core
        assert list(spec._running) == [7]  # noqa: SLF001
        spec.hint([], now=[9])
        assert spec._queue == []  # noqa: SLF001 - 9 is the caller's to compute
        assert spec.take(9) is None


def _curve(knee: float):
    def probe(rate: float, seed: int) -> ProbeResult:
        att = 1.0 if rate <= knee else max(0.0, 1 - (rate - knee) / knee)
        return ProbeResult(num_met=round(att * 1000), num_requests=1000, offered_rate_rps=rate,
                           achieved_rate_rps=rate)
    return probe


@pytest.mark.parametrize("knee", [0.3, 4.7, 13.1, 700.0])
def test_the_search_asks_for_the_same_probes_with_hints(knee: float) -> None:
    """Hints change nothing the search does: the same probes in the same order, the same answer."""
    def run(speculate=None):
        asked: list[tuple[float, float]] = []
        probe, hold = _curve(knee), _curve(knee * 1.01)

        def p(rate: float, seed: int) -> ProbeResult:
            asked.append((rate, 1.0))
            return probe(rate, seed)

        def h(rate: float, seed: int) -> ProbeResult:
            asked.append((rate, 4.0))
            return hold(rate, seed)

        res = capacity_search(p, hold=h, hold_factor=4.0, confirm=2, refine_interval=True, speculate=speculate)
        return asked, res

    hints: list[tuple[list, list]] = []
    plain, res_plain = run()
    hinted, res_hinted = run(lambda keys, now: hints.append((keys, now)))
    assert hinted == plain
    assert (res_hinted.capacity_rps, res_hinted.lower_rps, res_hinted.upper_rps) == (
        res_plain.capacity_rps, res_plain.lower_rps, res_plain.upper_rps)
    assert hints[-1] == ([], [])  # a finished search leaves nothing running
    hinted_keys = {(r, span) for keys, _ in hints for r, _, span in keys}
    assert len(hinted_keys & set(plain)) >= len(plain) // 3  # the hints are mostly probes it then asked for


def test_capacity_with_a_spare_core_gives_the_serial_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`capacity -j 2` (one search, one spare core) writes what `-j 1` writes, in the same order, and the spare
    core did run probes (calls from other processes)."""
    _no_real_schedulers(monkeypatch)
    calls = tmp_path / "calls.txt"

    def logging_run(cfg, **kw: object) -> SimpleNamespace:
        with open(calls, "a") as f:
            f.write(f"{os.getpid()}\n")
        return _fake_run_once(cfg, **kw)

    monkeypatch.setattr(runner, "run_once", logging_run)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the speculator keeps its children's results
    args = ["capacity", "--workload", "coding", "--scheduler", "slos-serve", "--seed", "0"]
    out = {}
    for jobs in ("1", "2"):
        calls.unlink(missing_ok=True)
        res = CliRunner().invoke(app, [*args, "-j", jobs, "--out", str(tmp_path / jobs)])
        assert res.exit_code == 0, res.output
        out[jobs] = _only_dir(tmp_path / jobs)
        pids = calls.read_text().split()
        if jobs == "2":
            assert set(pids) - {str(os.getpid())}, "no probe ran on the spare core"
    assert list(scratch.iterdir()) == []  # the speculator's folder is gone
    a, b = (pd.read_csv(out[j] / "probes.csv") for j in ("1", "2"))
    pd.testing.assert_frame_equal(a, b)
    ra, rb = (pd.read_parquet(out[j] / "requests.parquet") for j in ("1", "2"))
    pd.testing.assert_frame_equal(ra, rb)
