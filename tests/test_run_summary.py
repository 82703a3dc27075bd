"""The typed run summary: built once from the metrics, written atomically, read back through one model
(also from files written before it existed), and every broken file is one UserError line."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from slobench.cluster.run import run_once, validate_config
from slobench.errors import UserError
from slobench.report.summary import SUMMARY_VERSION, RunSummary


def test_summary_round_trips_through_its_file(tmp_path: Path) -> None:
    s = run_once(validate_config(workload="chatbot", scheduler="vllm", rate_rps=4, num_requests=40)).summary
    assert s.schema_version == SUMMARY_VERSION and s.num_requests == 40 and s.achieved_rate_rps is None
    s.write(tmp_path / "summary.json")
    back = RunSummary.read(tmp_path / "summary.json")
    assert back.num_met == s.num_met and back.ttft_s.p50 == pytest.approx(s.ttft_s.p50)
    assert back.per_tier.keys() == s.per_tier.keys()
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_a_summary_written_before_the_model_reads_as_version_1(tmp_path: Path) -> None:
    old = {"num_requests": 2, "num_finished": 2, "attainment": 1.0, "attainment_ttft": 1.0, "attainment_tpot": 1.0,
           "attainment_admitted_only": 1.0, "num_met": 2, "goodput_rps": None, "admission_counts": {"admitted": 2},
           "status_counts": {"finished": 2}, "ttft_s": {"p50": 0.1, "p90": 0.2, "p99": 0.3, "mean": 0.15},
           "tpot_s": {"p50": None, "p90": None, "p99": None, "mean": None}, "itl_s": {}, "per_stage": {},
           "per_tier": {"chat": {"num": 2, "attainment": 1.0}}, "per_app": {}, "workload": "chatbot",
           "scheduler": "vllm", "engine": "sim", "seed": 0, "offered_rate_rps": 4.0, "wall_s": 0.1}
    (tmp_path / "summary.json").write_text(json.dumps(old))
    s = RunSummary.read(tmp_path / "summary.json")
    assert s.schema_version == 1 and s.num_met == 2 and math.isnan(s.goodput_rps) and math.isnan(s.tpot_s.p50)


@pytest.mark.parametrize(("content", "expect"), [
    ("", "unreadable"),
    ('{"num_requests": 3', "unreadable"),
    ("[1, 2]", "expected a JSON object"),
    ('{"title": "a compare summary"}', "not a run summary (num_requests"),
    (json.dumps({"schema_version": SUMMARY_VERSION + 1}), "written by a newer slobench"),
])
def test_a_broken_summary_is_one_user_error(tmp_path: Path, content: str, expect: str) -> None:
    path = tmp_path / "summary.json"
    path.write_text(content)
    with pytest.raises(UserError, match=re.escape(expect)) as err:
        RunSummary.read(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_missing_summary_is_one_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        RunSummary.read(tmp_path / "summary.json")
