"""The fitted schedule() cost: not extrapolated beyond the queue lengths it was fitted on; the fit script."""

from __future__ import annotations

import pytest

from slobench.perf.schedule_cost import ScheduleCost, schedule_cost_for


def test_queue_lengths_beyond_the_fit_are_priced_as_the_largest_fitted() -> None:
    cost = ScheduleCost(a=1e-4, b=2e-5, c=1e-6, max_waiting=100, max_running=200)
    assert cost.seconds(50, 100) == pytest.approx(1e-4 + 50 * 2e-5 + 100 * 1e-6)
    assert cost.seconds(5000, 100) == cost.seconds(100, 100)  # a burst cannot make planning run away
    assert cost.seconds(10, 10_000) == cost.seconds(10, 200)
    assert ScheduleCost(a=1e-4, b=2e-5).seconds(5000, 0) == pytest.approx(1e-4 + 0.1)  # no range: linear


@pytest.mark.parametrize("policy", ["slos-serve", "vllm", "mypkg.mod:Custom"])
def test_shipped_fits_carry_their_range(policy: str) -> None:
    cost = schedule_cost_for(policy)
    assert cost.max_waiting is not None and cost.max_waiting > 0 and cost.max_running is not None
    assert cost.as_dict()["max_waiting"] == cost.max_waiting


def _fit_script():  # noqa: ANN202
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "fit_schedule_cost.py"
    spec = importlib.util.spec_from_file_location("fit_schedule_cost", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _synthetic_calls(seed: int = 0):  # noqa: ANN202
    """Calls whose cost is 100 µs + 2 µs/waiting + 3 µs/running with work waiting, 10 µs + 1 µs/running without."""
    import numpy as np

    rng = np.random.default_rng(seed)
    w = np.concatenate([rng.integers(1, 60, 400), np.zeros(2000, dtype=int)])
    r = rng.integers(0, 200, len(w))
    y = np.where(w > 0, 100e-6 + 2e-6 * w + 3e-6 * r, 10e-6 + 1e-6 * r) * rng.lognormal(0, 0.01, len(w))
    return np.column_stack([w, r, y]).astype(float)


def test_the_fit_recovers_both_regimes() -> None:
    fit = _fit_script().fit(_synthetic_calls())
    assert fit["a"] == pytest.approx(100e-6, rel=0.05) and fit["b"] == pytest.approx(2e-6, rel=0.05)
    assert fit["c"] == pytest.approx(3e-6, rel=0.05)
    assert fit["idle"]["a"] == pytest.approx(10e-6, rel=0.05) and fit["idle"]["c"] == pytest.approx(1e-6, rel=0.05)
    assert fit["calls"] < 400 and fit["idle"]["calls"] < 2000  # each regime without its slowest 1%


def test_refitting_some_policies_keeps_the_others_and_where_they_were_measured(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import json
    import sys

    mod = _fit_script()
    old = {"machine": "old box", "date": "2026-12-01 10:39 UTC", "load_average": 4.5,
           "policies": {"vllm": {"a": 4e-6, "b": 0.0, "c": 4e-7, "max_waiting": 9, "max_running": 99},
                        "slos-serve": {"a": 3e-4, "b": 3e-5, "c": 7e-6, "max_waiting": 9, "max_running": 99}}}
    path = tmp_path / "schedule_cost.json"
    path.write_text(json.dumps(old))
    monkeypatch.setattr(mod, "SCHEDULE_COST_FILE", path)
    monkeypatch.setattr(mod, "measure", lambda name: _synthetic_calls())
    monkeypatch.setattr(sys, "argv", ["fit_schedule_cost.py", "--policies", "slos-serve"])
    assert mod.main() == 0
    new = json.loads(path.read_text())
    assert new["policies"]["vllm"]["a"] == 4e-6 and new["policies"]["vllm"]["fitted"]["machine"] == "old box"
    assert "perf_counter" in new["policies"]["vllm"]["fitted"]["timer"]
    assert new["policies"]["slos-serve"]["a"] == pytest.approx(100e-6, rel=0.05)
    assert "thread_time" in new["policies"]["slos-serve"]["fitted"]["timer"]
    assert new["default"]["a"] == new["policies"]["slos-serve"]["a"]  # element-wise max, per regime
    assert new["default"]["idle"]["a"] == max(4e-6, new["policies"]["slos-serve"]["idle"]["a"])
    monkeypatch.setattr(sys, "argv", ["fit_schedule_cost.py", "--policies", "nope"])
    with pytest.raises(SystemExit) as e:
        mod.main()
    assert e.value.code == 2
