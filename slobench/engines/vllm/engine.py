"""``--engine vllm``: a launched vLLM server (stock, or with a slobench policy inside) as an `Engine`.

The stock vLLM scheduler *is* the baseline: policy ``vllm`` runs vLLM untouched; any other policy
(``slos-serve``, ``sarathi``, ``package.module:Class`` …) runs inside vLLM through the adapter
class, which gets the job's whole `PolicySpec` (name, options, draft acceptance rate) from the
launcher. Servers come from the process-wide pool (`slobench.engines.vllm.pool`), so a capacity
search reuses one server across its probes. The load is driven by the shared load generator
(`slobench.engines.openai.engine.run_target`); the adapter's statistics come from its events file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slobench.engines.base import EngineJob, EngineResult, client_load
from slobench.engines.openai.engine import Target, run_target
from slobench.engines.options import EngineOptions
from slobench.engines.vllm.launcher import ServerSpec, check_model_arg
from slobench.errors import UserError
from slobench.schedulers.spec import PolicySpec

STOCK = "vllm"  # the policy name that means "vLLM's own scheduler, untouched"


def _vocab_size(model_dir: str) -> int | None:
    try:
        cfg = json.loads((Path(model_dir).expanduser() / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    cfg = {**cfg, **cfg.get("text_config", {})} if isinstance(cfg.get("text_config"), dict) else cfg
    v = cfg.get("vocab_size")
    return int(v) if isinstance(v, int) and v > 8 else None


def server_policy(policy: PolicySpec) -> PolicySpec | None:
    """The policy to load inside vLLM; None = the stock scheduler. Stock vLLM takes no slobench options:
    its settings are server flags (``--engine-arg max_num_batched_tokens=…``), so options are refused."""
    if policy.name.strip().lower() != STOCK:
        return policy
    if policy.options:
        raise UserError(f"--scheduler vllm on --engine vllm runs vLLM's own scheduler, which takes no slobench "
                        f"policy options (got {sorted(policy.options)}); give its settings as --engine-arg "
                        "(e.g. max_num_batched_tokens=2048, max_num_seqs=64)")
    return None


def scheduler_stats(events_path: Path | None) -> dict[str, Any] | None:
    """The adapter's last statistics (schedule() calls, overhead, plan deviations) and its ``loaded`` line."""
    if events_path is None:
        return None
    from slobench.engines.vllm.events import EventReader

    reader = EventReader(events_path)
    stats = reader.last("stats")
    loaded = reader.last("loaded")
    if stats is None and loaded is None:
        return None
    stats = {k: v for k, v in (stats or {}).items() if k not in ("event", "t")}
    return {"loaded": loaded, **stats}


class VLLMEngine:
    """vLLM's OpenAI-compatible server, launched on 127.0.0.1 for ``model`` (a local folder or hub id); with
    ``--replicas N``, N servers on Ray (`slobench.engines.vllm.replicas`) behind the driver's router.

    ``hardware``/``profile`` name the latency model the in-vLLM policy plans with (the model's
    ``config.json`` gives its shape); ``options`` are the server and client options."""

    name = "vllm"

    def __init__(self, *, model: str, options: EngineOptions, hardware: str = "H100-SXM", tp: int = 1,
                 profile: str | None = None) -> None:
        check_model_arg(model)  # before the latency model reads the folder's config.json
        self.model, self.options, self.hardware, self.tp, self.profile = model, options, hardware, tp, profile

    def server_spec(self, policy: PolicySpec) -> ServerSpec:
        """The launch for ``policy`` (equal specs share one running server)."""
        return ServerSpec(model=self.model, policy=server_policy(policy), tp=self.tp,
                          options=self.options.server_fields(), hardware=self.hardware, perf_model=self.model,
                          profile=self.profile)

    def _installed_vllm(self) -> Any:
        """This interpreter's vLLM (version, build), checked before a launch; None with ``python=`` (another
        interpreter's vLLM, which the launch itself checks)."""
        from slobench.engines.vllm.support import require_vllm

        return require_vllm() if self.options.python is None else None

    def _server_target(self, spec: ServerSpec, vllm: Any, base_url: str, health_check: Callable[[], None],
                       events_path: Path | None, **info: Any) -> Target:
        """One running server's endpoint as a `Target`: a lone server and every replica of a group alike."""
        from slobench.engines.openai.protocol import Endpoint

        opts = self.options
        ep = Endpoint(base_url=base_url, model=opts.served_model or spec.model, api=opts.api,
                      token_prompts=opts.token_prompts, extensions=opts.extensions, timeout_s=opts.request_timeout_s)
        return Target(
            endpoint=ep, vocab_size=opts.vocab_size or _vocab_size(self.model), health_check=health_check,
            events_path=events_path if spec.policy is not None else None,
            info={"server_url": base_url, **info, "vllm": vllm.version if vllm else None,
                  "vllm_build": vllm.build if vllm else None,
                  "scheduler_impl": spec.policy.name if spec.policy is not None else "vllm (stock)"},
        )

    def target(self, policy: PolicySpec, log_dir: Path | None) -> Target:
        """A healthy server for ``policy`` (reused from the pool or launched) and its endpoint."""
        from slobench.engines.vllm.pool import get_pool

        vllm = self._installed_vllm()
        spec = self.server_spec(policy)
        srv = get_pool().acquire(spec, cpu_build=vllm is not None and vllm.build == "cpu",
                                 startup_timeout_s=self.options.startup_timeout_s, log_dir=log_dir)
        return self._server_target(spec, vllm, srv.base_url, srv.check_alive, srv.events_path,
                                   server_pid=srv.proc.pid, server_log=str(srv.log_path),
                                   server_startup_s=srv.startup_s)

    def replica_targets(self, policy: PolicySpec, count: int, log_dir: Path | None) -> list[Target]:
        """``count`` healthy replicas of the server for ``policy`` (a `ReplicaGroup` of Ray actors, reused from the
        pool or started) and their endpoints, in replica order."""
        from slobench.engines.vllm.pool import get_pool
        from slobench.engines.vllm.replicas import GroupSpec

        vllm = self._installed_vllm()
        spec = GroupSpec(self.server_spec(policy), count, self.options.ray_address or "local")
        group = get_pool().acquire_group(spec, cpu_build=vllm is not None and vllm.build == "cpu",
                                         startup_timeout_s=self.options.startup_timeout_s, log_dir=log_dir)
        return [self._server_target(spec.server, vllm, r.base_url, lambda i=r.index: group.health_check(i),
                                    Path(r.events_path), server_pid=r.pid,
                                    server_host=r.host, server_log=r.log_path, server_startup_s=r.startup_s,
                                    ray_address=spec.ray_address)
                for r in group.replicas]

    def run(self, job: EngineJob) -> EngineResult:
        n = job.replicas.count  # a router real replicas cannot serve was refused when the engine was built
        client_load(self.name, job)  # refuse unknown loads before launching anything
        if n == 1:
            target = self.target(job.policy, job.log_dir)
            result = run_target(self.name, job, target, self.options)
            result.scheduler_stats = scheduler_stats(target.events_path)
            return result
        targets = self.replica_targets(job.policy, n, job.log_dir)
        result = run_target(self.name, job, targets, self.options)
        per_replica = [scheduler_stats(t.events_path) for t in targets]
        result.scheduler_stats = {"replicas": per_replica} if any(per_replica) else None
        return result
