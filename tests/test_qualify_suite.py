"""Qualification suites: the shipped files, loading by name/version/path, one-line errors, the plan."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import yaml

from slobench.errors import UserError
from slobench.qualify import suite as suite_mod
from slobench.qualify.suite import (
    SLO_PRESETS,
    ConcurrencySweep,
    load_suite,
    plan_suite,
    resolve_suite,
    search_rates_estimate,
    shipped_suites,
    suite_digest,
)

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, data: dict, name: str = "mine.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def _minimal(**over: object) -> dict:
    return {"name": "mine", "version": 1, "scenarios": [{"name": "chat", "workload": "chatbot"}]} | over


def test_shipped_suites_load_and_are_named_after_their_fields() -> None:
    assert {"quick-v1", "standard-v1"} <= set(shipped_suites())
    for stem in shipped_suites():
        s = load_suite(stem)
        assert s.label == stem and s.source == suite_mod.SUITES_DIR / f"{stem}.yaml"


def test_a_family_name_picks_the_newest_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for v in (1, 2, 10):
        _write(tmp_path, _minimal(name="quick", version=v), f"quick-v{v}.yaml")
    monkeypatch.setattr(suite_mod, "SUITES_DIR", tmp_path)
    assert resolve_suite("quick").name == "quick-v10.yaml"  # numeric, not lexical
    assert load_suite("quick-v2").version == 2


def test_a_path_loads_and_an_unknown_name_lists_the_suites(tmp_path: Path) -> None:
    s = load_suite(str(_write(tmp_path, _minimal())))
    assert s.label == "mine-v1" and s.rules.target_attainment == 0.9
    with pytest.raises(UserError, match=r"--suite nope: unknown suite; use one of .*quick"):
        load_suite("nope")
    with pytest.raises(UserError, match="suite file not found"):
        load_suite(str(tmp_path / "missing.yaml"))


def test_a_shipped_file_must_match_its_name_and_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, _minimal(name="quick", version=3), "quick-v2.yaml")
    monkeypatch.setattr(suite_mod, "SUITES_DIR", tmp_path.resolve())
    with pytest.raises(UserError, match="name/version say 'quick-v3' but the file is quick-v2.yaml"):
        load_suite("quick-v2")


@pytest.mark.parametrize("data, message", [
    (_minimal(rules={"min_duraton_s": 5}), r"rules\.min_duraton_s: Extra inputs are not permitted — known fields "
     r"here: target_attainment, min_duration_s"),
    (_minimal(rules={"concurrency": {"strat": 1}}), r"rules\.concurrency\.strat: .* known fields here: start"),
    (_minimal(scenarios=[{"name": "c", "workload": "chatbot", "colour": 1}]), r"scenarios\.0\.colour: .*known "
     r"fields here: name, workload"),
    ({"name": "mine", "version": 1}, r"scenarios: Field required — add it"),
    (_minimal(scenarios=[{"name": "c", "workload": "chatbott"}]), r"scenarios\.0\.workload: .*unknown workload "
     r"'chatbott'; use one of .*chatbot"),
    (_minimal(scenarios=[{"name": "c", "workload": "chatbot", "model": "GPT-9"}]), r"unknown model 'GPT-9'; use "
     r"one of .*Llama-3.1-8B"),
    (_minimal(scenarios=[{"name": "c", "workload": "chatbot", "hardware": "TPU"}]), r"unknown hardware 'TPU'; use "
     r"one of .*H100-SXM"),
    (_minimal(scenarios=[{"name": "c", "workload": "chatbot", "slo": "strict"}]), r"unknown SLO preset 'strict'; "
     r"use one of loose, paper, tight or add it under slo_presets"),
    (_minimal(scenarios=[{"name": "c", "workload": "chatbot"}] * 2), r"scenario names repeat: c"),
    (_minimal(scenarios=[{"name": "c", "workload": "chatbot", "seeds": [1, 1]}]), r"seeds repeat"),
    (_minimal(rules={"target_attainment": 1.5}), r"rules\.target_attainment: Input should be less than 1"),
    (_minimal(rules={"concurrency": {"max_points": 33}}), r"max_points: Input should be less than or equal to 32"),
    (_minimal(slo_presets={"zero": 0}), r"slo_presets: .*positive"),
])
def test_a_bad_field_is_one_line_naming_file_field_and_fix(tmp_path: Path, data: dict, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(UserError, match=message) as exc:
        load_suite(str(path))
    line = str(exc.value)
    assert "\n" not in line and line.startswith(str(path))


def test_bad_yaml_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml: not valid YAML"):
        load_suite(str(p))


def test_slo_presets_scale_every_target(tmp_path: Path) -> None:
    assert SLO_PRESETS == {"paper": 1.0, "tight": 0.5, "loose": 2.0}
    s = load_suite(str(_write(tmp_path, _minimal(
        slo_presets={"strict": 0.25},
        scenarios=[{"name": "a", "workload": "chatbot", "slo": "strict"},
                   {"name": "b", "workload": "chatbot", "slo": "tight", "target_attainment": 0.95}]))))
    a, b = s.scenarios
    assert s.slo_scale(a) == 0.25 and s.slo_scale(b) == 0.5
    assert s.target(a) == 0.9 and s.target(b) == 0.95


def test_required_requests_is_the_largest_floor() -> None:
    rules = load_suite("standard").rules
    assert rules.required_requests() == 141  # 90% ± 5% at 95% beats early stopping's 44
    assert load_suite("quick").rules.required_requests() == 44  # early stopping beats 90% ± 10% (37)
    assert rules.model_copy(update={"min_requests": 1000}).required_requests() == 1000
    assert rules.model_copy(update={"attainment_margin": None}).required_requests() == 44
    assert rules.required_requests(0.99) == 459


def test_concurrency_levels_are_distinct_and_capped() -> None:
    assert ConcurrencySweep().levels() == [1, 2, 4, 8, 16, 32, 64, 128]
    assert ConcurrencySweep(start=3, factor=1.5, max_points=5).levels() == [3, 5, 8, 12, 18]
    assert ConcurrencySweep(start=1, factor=1.1, max_points=4).levels() == [1, 2, 3, 4]


def test_suite_digest_is_the_files_sha256(tmp_path: Path) -> None:
    p = _write(tmp_path, _minimal())
    assert suite_digest(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert suite_digest(load_suite("quick").source) != suite_digest(load_suite("standard").source)
    with pytest.raises(UserError, match="cannot read"):
        suite_digest(tmp_path / "gone.yaml")


def test_plan_lists_search_and_points_and_estimates_time() -> None:
    s = load_suite("standard")
    plan = plan_suite(s, "vllm")
    assert [p.scenario for p in plan.scenarios] == [x.name for x in s.scenarios]
    p = plan.scenarios[0]
    r = s.rules
    assert p.concurrency == (1, 2, 4, 8, 16, 32, 64) and p.model == "(engine's model)"
    rates = search_rates_estimate(r.capacity)
    assert rates == min(r.capacity.max_probes, 3 + 1 + math.ceil(math.log2(15)))
    expected = (rates * (r.warmup_s + r.capacity.probe_s * 1.1) + r.warmup_s + r.capacity.probe_s * 10 * 1.1
                + 7 * (r.warmup_s + r.min_duration_s * 1.1) + 60)
    assert p.estimate_s == pytest.approx(expected)
    assert plan.estimate_s == pytest.approx(expected * len(s.scenarios))
    assert 3600 * 6 < plan.estimate_s < 3600 * 24  # hours on one GPU
    lines = plan.lines()
    assert lines[0].startswith("suite standard-v1 on engine vllm: 6 scenario(s)")
    assert any("concurrency points: 1, 2, 4, 8, 16, 32, 64 × 600 s" in ln for ln in lines)
    assert sum("prefix cache expected" in ln for ln in lines) == 2
    sim = plan_suite(s, "sim")
    assert sim.scenarios[0].model == "Llama-3.1-8B" and "simulated" in sim.lines()[0]
    with pytest.raises(UserError, match="unknown engine"):
        plan_suite(s, "tgi")


def test_quick_is_small() -> None:
    s = load_suite("quick")
    assert len(s.scenarios) <= 2
    assert plan_suite(s, "vllm").estimate_s <= 200  # ≤ 3 min on CPU vLLM, server start included
    assert plan_suite(s, "sim").estimate_s <= 200  # simulated seconds: a second or two of wall time


def test_suite_files_are_package_data() -> None:
    lines = (ROOT / "pyproject.toml").read_text().splitlines()
    package_data = next(ln for ln in lines if ln.startswith("slobench = ["))
    assert '"qualify/suites/*.yaml"' in package_data  # [tool.setuptools.package-data] (tomllib is 3.11+)
    assert "recursive-include slobench/qualify/suites *.yaml" in (ROOT / "MANIFEST.in").read_text()
