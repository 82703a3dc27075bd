"""Launcher inputs: the vLLM command line built from engine options, and early model-path checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slobench.engines.errors import EngineError
from slobench.engines.options import EngineOptions
from slobench.engines.vllm.launcher import (
    ADAPTER_CLS,
    POLICY_ENV,
    ServerSpec,
    VLLMServer,
    build_command,
    check_model_arg,
)
from slobench.schedulers.spec import PolicySpec


def _cmd(policy: str | None = None, cpu: bool = True, tp: int = 1, **opts: object) -> list[str]:
    spec = ServerSpec(model="/m", policy=PolicySpec(name=policy) if policy else None, tp=tp,
                      options=EngineOptions(**opts).server_fields())
    return build_command(spec, 4321, cpu_build=cpu)


def _flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_stock_cpu_command() -> None:
    cmd = _cmd()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(cmd, "--host") == "127.0.0.1" and _flag(cmd, "--port") == "4321"
    assert _flag(cmd, "--kv-cache-memory-bytes") == str(1 << 30) and "--enforce-eager" in cmd
    assert "--scheduler-cls" not in cmd  # the baseline is vLLM untouched


def test_gpu_command_passes_options_through() -> None:
    spec = {"method": "ngram", "num_speculative_tokens": 4}
    cmd = _cmd("slos-serve", cpu=False, tp=2, max_num_batched_tokens=4096, max_num_seqs=64,
               gpu_memory_utilization=0.85, dtype="bfloat16", speculative_config=spec,
               extra_args="--enable-prefix-caching --block-size 32")
    assert _flag(cmd, "--scheduler-cls") == ADAPTER_CLS
    assert _flag(cmd, "--tensor-parallel-size") == "2" and _flag(cmd, "--max-num-batched-tokens") == "4096"
    assert _flag(cmd, "--max-num-seqs") == "64" and _flag(cmd, "--gpu-memory-utilization") == "0.85"
    assert _flag(cmd, "--dtype") == "bfloat16" and json.loads(_flag(cmd, "--speculative-config")) == spec
    assert "--kv-cache-memory-bytes" not in cmd and "--enforce-eager" not in cmd  # vLLM's own GPU defaults
    assert cmd[-3:] == ["--enable-prefix-caching", "--block-size", "32"]


def test_spec_key_separates_configurations() -> None:
    a = ServerSpec(model="/m", policy=None, options=EngineOptions().server_fields())
    b = ServerSpec(model="/m", policy=None, options=EngineOptions(max_num_seqs=8).server_fields())
    c = ServerSpec(model="/m", policy=None, options=EngineOptions(api="chat").server_fields())
    assert a.key() != b.key() and a.key() == c.key()  # client-only options share the server
    p1 = ServerSpec(model="/m", policy=PolicySpec(name="slos-serve"))
    p2 = ServerSpec(model="/m", policy=PolicySpec(name="slos-serve", options={"capacity_margin": 0.8}))
    assert len({a.key(), p1.key(), p2.key()}) == 3  # the policy's options make a different server


def test_server_env_carries_the_whole_policy_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter runs in vLLM's process: the run's PolicySpec reaches it whole, as one JSON variable."""
    monkeypatch.setenv("SLOBENCH_POLICY_OPTIONS", "{\"stale\": 1}")  # a leftover of an older launcher
    policy = PolicySpec(name="slobench.testing.policies:Fcfs", options={"token_budget": 7}, draft={"alpha": 0.6})
    srv = VLLMServer(ServerSpec(model="/m", policy=policy, hardware="H200", perf_model="/m", profile="p"),
                     log_dir=tmp_path, cpu_build=True)
    srv.events_path = tmp_path / "events.jsonl"
    env = srv._env()
    assert PolicySpec.model_validate_json(env[POLICY_ENV]) == policy
    assert env["SLOBENCH_HARDWARE"] == "H200" and env["SLOBENCH_PROFILE"] == "p"
    assert "SLOBENCH_POLICY_OPTIONS" not in env
    monkeypatch.setenv(POLICY_ENV, env[POLICY_ENV])
    stock = VLLMServer(ServerSpec(model="/m"), log_dir=tmp_path, cpu_build=True)._env()
    assert POLICY_ENV not in stock  # the stock server never sees a policy


def test_model_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EngineError, match="no such folder"):
        check_model_arg(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(EngineError, match="not a folder"):
        check_model_arg(str(tmp_path / "file"))
    with pytest.raises(EngineError, match="no config.json"):
        check_model_arg(str(tmp_path))
    with pytest.raises(EngineError, match="not a local folder"):
        check_model_arg("Llama-3.1-8B")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EngineError, match="HF_HUB_OFFLINE"):
        check_model_arg("meta-llama/Llama-3.1-8B")
    (tmp_path / "config.json").write_text("{}")
    check_model_arg(str(tmp_path))
