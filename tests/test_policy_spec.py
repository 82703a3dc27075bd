"""One policy spec for every engine: `PolicySpec` in `RunConfig`, the registry's ``package.module:Class``,
legacy flat keys, and options given once reaching the simulator and the vLLM launch alike."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import slobench.cli.run as run_mod
from slobench.cli import app
from slobench.cluster.run import ENGINES, RunConfig, run_once, validate_config
from slobench.errors import UserError
from slobench.schedulers.registry import make_policy, make_scheduler
from slobench.schedulers.spec import DraftModel, PolicySpec
from slobench.testing.policies import Fcfs
from tests.run_helpers import one_error_line

runner = CliRunner()
FCFS = "slobench.testing.policies:Fcfs"


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_mod.console, "width", 200)



# --- (c) legacy flat keys ------------------------------------------------------------------------------
def test_legacy_flat_keys_validate_into_the_policy() -> None:
    cfg = validate_config(workload="coding", scheduler="slos-serve", scheduler_options={"capacity_margin": 0.8},
                          spec_alpha=0.6, spec_max_draft=3)
    assert cfg.policy == PolicySpec(name="slos-serve", options={"capacity_margin": 0.8},
                                    draft=DraftModel(alpha=0.6, max_draft=3))
    assert cfg.scheduler == "slos-serve"
    assert validate_config(workload="coding", spec_alpha=None, spec_max_draft=4).policy == PolicySpec(name="vllm")


def test_a_manifest_written_before_the_policy_spec_still_loads() -> None:
    """manifest.json config (and capacity plans) of results folders made before PolicySpec: flat keys."""
    old = {"workload": "coding", "scheduler": "sarathi", "engine": "sim", "rate_rps": 6.0, "num_requests": 200,
           "duration_s": None, "seed": 0, "hardware": "H100-SXM", "model": "Llama-3.1-8B", "tp": 1, "profile": None,
           "replicas": 2, "spec_alpha": None, "spec_max_draft": 4, "scheduler_options": {}, "drain_timeout_s": 600.0,
           "url": None, "engine_options": {}}
    cfg = RunConfig(**old)
    assert cfg.policy == PolicySpec(name="sarathi") and cfg.replicas == 2
    assert RunConfig(**json.loads(json.dumps(cfg.model_dump()))) == cfg  # the new manifest round-trips too


def test_bad_policy_fields_name_their_flag() -> None:
    with pytest.raises(UserError, match=r"^--spec-alpha: must be in \(0, 1\) \(got 1.5\)$"):
        validate_config(workload="chatbot", spec_alpha=1.5)
    with pytest.raises(UserError, match="^--scheduler: must name a policy"):
        validate_config(workload="chatbot", scheduler=" ")
    with pytest.raises(UserError, match="give the policy once"):
        validate_config(workload="chatbot", scheduler="vllm", policy={"name": "sarathi"})


# --- engine options that belong to the policy ----------------------------------------------------------
def test_engine_arg_policy_keys_fold_into_the_policy() -> None:
    """`--engine-arg scheduler_options=JSON` / `spec_alpha=` (documented flags) become the run's policy."""
    cfg = validate_config(workload="chatbot", engine="vllm", scheduler="slos-serve",
                          engine_options={"scheduler_options": '{"capacity_margin": 0.7}', "spec_alpha": 0.5,
                                          "max_num_seqs": 8})
    assert cfg.policy.options == {"capacity_margin": 0.7} and cfg.policy.draft.alpha == 0.5
    assert cfg.engine_options == {"max_num_seqs": 8}


def test_policy_options_given_twice_differently_is_one_error() -> None:
    with pytest.raises(UserError, match="^--engine-arg scheduler_options: the policy's options are given twice"):
        validate_config(workload="chatbot", scheduler_options={"a": 1}, engine_options={"scheduler_options": {"a": 2}})
    with pytest.raises(UserError, match=r"^--engine-arg spec_alpha=0.6: .* given twice, differently \(--spec-alpha"):
        validate_config(workload="chatbot", spec_alpha=0.5, engine_options={"spec_alpha": 0.6})
    same = validate_config(workload="chatbot", scheduler_options={"a": 1},
                           engine_options={"scheduler_options": {"a": 1}})
    assert same.policy.options == {"a": 1}


# --- (d) module:Class errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "expect"), [
    ("no_such_pkg.mod:Policy", "cannot import module 'no_such_pkg.mod' (ModuleNotFoundError"),
    ("slobench.testing.policies:Nope", "module 'slobench.testing.policies' has no attribute 'Nope'"),
    ("slobench.testing.policies.Nope", "module 'slobench.testing.policies' has no attribute 'Nope'"),
    ("slobench.testing.policies:__doc__", "is not a class"),
])
def test_bad_module_class_is_one_user_error_line(name: str, expect: str) -> None:
    with pytest.raises(UserError) as err:
        make_policy(PolicySpec(name=name))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"scheduler '{name}': ") and expect in msg
    assert "package.module:Class" in msg  # the fix


def test_bad_module_class_on_the_cli_is_one_line_and_leaves_no_folder(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["run", "-w", "chatbot", "-n", "5", "--scheduler", "no_such_pkg:Policy"])
    assert r.exit_code == 2 and "cannot import module 'no_such_pkg'" in one_error_line(r.output)
    r = runner.invoke(app, ["run", "-w", "chatbot", "-n", "5", "--scheduler", FCFS, "--scheduler-options", '{"x": 1}'])
    assert r.exit_code == 2 and "bad option" in one_error_line(r.output)
    r = runner.invoke(app, ["run", "-w", "chatbot", "-n", "5", "--scheduler-options", "{oops"])
    assert r.exit_code == 2 and "--scheduler-options: not valid JSON" in one_error_line(r.output)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


# --- (b) + (a, simulator) a module:Class policy with its options, in the simulator -------------------------
def test_module_class_policy_runs_in_the_simulator_with_its_options(tmp_path: Path) -> None:
    r = runner.invoke(app, ["run", "-w", "chatbot", "-n", "30", "--rate", "4", "--scheduler", FCFS,
                            "--scheduler-options", '{"token_budget": 64}', "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    [run_dir] = list(tmp_path.iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["policy"] == {"name": FCFS, "options": {"token_budget": 64}, "draft": None,
                                            "oracle_lengths": False}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["scheduler"] == FCFS and summary["num_finished"] == 30
    assert summary["scheduler_stats"]["calls"] > 0  # the policy's own SchedulerStats
    it = pd.read_parquet(run_dir / "iterations.parquet")
    assert (it.prefill_tokens + it.decode_tokens).max() == 64  # the option reached the simulated policy


def test_policy_options_reach_every_simulated_replica() -> None:
    cfg = validate_config(workload="chatbot", scheduler=FCFS, scheduler_options={"token_budget": 32}, rate_rps=8,
                          num_requests=40, replicas=2)
    res = run_once(cfg)
    assert set(res.iterations["replica"]) == {0, 1}
    assert (res.iterations.prefill_tokens + res.iterations.decode_tokens).max() == 32
    wide = run_once(cfg.model_copy(update={"policy": PolicySpec(name=FCFS)}))
    assert (wide.iterations.prefill_tokens + wide.iterations.decode_tokens).max() > 32


def test_dotted_class_path_and_registry_names_build_the_same_way() -> None:
    assert isinstance(make_policy(PolicySpec(name="slobench.testing.policies.Fcfs", options={"max_seqs": 3})), Fcfs)
    assert make_scheduler("vllm", max_num_seqs=5).max_num_seqs == 5
    assert make_policy("slos-serve").name == "slos-serve"
    offered = {"max_num_batched_tokens": 100, "max_num_seqs": 7}
    assert make_policy(PolicySpec(name=FCFS), offered=offered).token_budget == 2048  # not its option: not taken
    assert make_policy(PolicySpec(name="vllm", options={"max_num_seqs": 3}), offered=offered).max_num_seqs == 3


# --- (a, vLLM) the same options reach the vLLM launch ------------------------------------------------------
@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


def test_policy_options_reach_the_vllm_server_spec(model_dir: Path) -> None:
    """RunConfig's policy (options given once: here as the legacy --engine-arg) is the launched server's."""
    cfg = validate_config(workload="chatbot", engine="vllm", model=str(model_dir), scheduler=FCFS,
                          engine_options={"scheduler_options": '{"token_budget": 7}', "max_num_seqs": 4})
    engine = ENGINES["vllm"](cfg)
    spec = engine.server_spec(cfg.policy)
    assert spec.policy == PolicySpec(name=FCFS, options={"token_budget": 7})
    assert spec.options["max_num_seqs"] == 4 and "scheduler_options" not in spec.options
    assert engine.server_spec(PolicySpec(name="vllm")).policy is None  # the baseline: vLLM untouched


def test_stock_vllm_refuses_policy_options(model_dir: Path) -> None:
    cfg = validate_config(workload="chatbot", engine="vllm", model=str(model_dir), scheduler="vllm",
                          scheduler_options={"max_num_seqs": 4})
    with pytest.raises(UserError, match="vLLM's own scheduler, which takes no slobench policy options"):
        ENGINES["vllm"](cfg).server_spec(cfg.policy)


def test_module_class_policy_is_searched_by_compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from slobench.report import html

    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")
    r = runner.invoke(app, ["compare", "-w", "chatbot", "--schedulers", f"vllm,{FCFS}", "--quick",
                            "--no-refine-interval", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    probes = pd.read_csv(next(tmp_path.iterdir()) / "probes.csv")
    assert set(probes["scheduler"]) == {"vllm", FCFS}
