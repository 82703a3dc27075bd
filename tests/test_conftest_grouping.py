"""The parallel test run's grouping (tests/conftest.py): real-engine tests outside their listed files are refused,
and the scheduler puts each listed group on one worker while every other test is its own unit."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import conftest


def _item(name: str, *, marker: str | None = None, fixtures: tuple[str, ...] = ()) -> SimpleNamespace:
    return SimpleNamespace(path=Path("tests") / name, fixturenames=fixtures,
                           get_closest_marker=lambda m: object() if m == marker else None)


def test_a_real_engine_test_in_an_unlisted_file_stops_the_collection() -> None:
    fine = [_item("test_real_vllm.py", marker="vllm"), _item("test_sim.py"), _item("test_ray_fanout.py")]
    conftest.pytest_collection_modifyitems(fine)  # listed files, or no real engine: accepted
    for stray in (_item("test_new.py", marker="vllm"), _item("test_new.py", fixtures=("tiny_server",)),
                  _item("test_ray_new.py")):
        with pytest.raises(pytest.UsageError, match=r"add test_(ray_)?new\.py to REAL_ENGINE_FILES"):
            conftest.pytest_collection_modifyitems([*fine, stray])


def test_the_scheduler_groups_listed_files_and_leaves_the_rest_alone() -> None:
    pytest.importorskip("xdist")
    config = SimpleNamespace(getoption=lambda name: "loadgroup", getvalue=lambda name: ["2*popen"])
    sched = conftest.pytest_xdist_make_scheduler(config, None)
    scope = sched._split_scope  # noqa: SLF001 - the one method the scheduler overrides
    assert scope("tests/test_real_vllm.py::test_a") == scope("tests/test_calibrate.py::test_b[x]") == "vllm"
    assert scope("tests/test_ray_fanout.py::test_c") == scope("tests/test_ray_vllm_replicas.py::Test::d") == "ray"
    assert scope("tests/test_sim.py::test_e[1]") == "tests/test_sim.py::test_e[1]"
    # another --dist: xdist's own scheduler
    assert conftest.pytest_xdist_make_scheduler(SimpleNamespace(getoption=lambda name: "load"), None) is None
