"""``--engine openai``: the load generator against any OpenAI-compatible endpoint, as an `Engine`.

Also the part both real engines share (`Target` + `run_target`): a ready endpoint is driven by the
load generator (`slobench.engines.openai.client.run_load`, open or closed loop), which returns the records
and its own evidence (achieved rate, lag, counters). `slobench.engines.vllm.engine.VLLMEngine`
builds its `Target` from a launched server and calls the same `run_target`.

Errors are one-line `EngineError`s naming the failing thing (cluster.run adds where the records
so far are).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slobench.engines.base import ClientEvidence, EngineJob, EngineResult, client_load
from slobench.engines.errors import EngineError
from slobench.engines.options import EngineOptions
from slobench.errors import UserError

if TYPE_CHECKING:
    from slobench.engines.openai.protocol import Endpoint

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


@dataclass
class Target:
    """A ready endpoint plus what the load generator may ask of the engine behind it."""

    endpoint: Endpoint
    vocab_size: int | None  # token-id range for synthetic prompts (None: the generator's default range)
    health_check: Callable[[], None] | None = None  # raises EngineError when the server is gone
    events_path: Path | None = None  # the in-vLLM adapter's events file (admission decisions, stats)
    info: dict[str, Any] = field(default_factory=dict)  # → EngineResult.info


def refuse_replicas(job: EngineJob) -> None:
    """An OpenAI endpoint is one server: more replicas are refused in one line (before anything is sent)."""
    n = job.replicas.count
    if n != 1:
        raise UserError(f"--replicas {n}: --engine openai drives the one server at --url; use --replicas 1 "
                        "(vLLM replicas: --engine vllm --replicas N, with the ray extra)")


def run_target(engine: str, job: EngineJob, target: Target | list[Target], opts: EngineOptions) -> EngineResult:
    """Drive ``job``'s load (open or closed loop) against ``target``; records stream to ``job.on_record`` as
    stages end. A list of targets is a set of replicas behind the job's router (``job.replicas``), placed by
    the driver when each request is sent (`slobench.engines.openai.routing`)."""
    from slobench.engines.openai.client import Replicas, run_load
    from slobench.engines.openai.routing import ClientRouter
    from slobench.engines.vllm.events import EventReader

    workload, concurrency = client_load(engine, job)
    targets = target if isinstance(target, list) else [target]
    readers = [EventReader(t.events_path) for t in targets if t.events_path]
    replicas = None
    if len(targets) > 1:
        rs = job.replicas
        replicas = Replicas(endpoints=[t.endpoint for t in targets], health_checks=[t.health_check for t in targets],
                            router=ClientRouter.named(rs.router, len(targets), rs.refresh_s, job.seed))
    result = run_load(
        workload, targets[0].endpoint, seed=job.seed, vocab_size=targets[0].vocab_size, on_record=job.on_record,
        on_progress=job.on_progress, admission_lookup=_admission_lookup(readers),
        health_check=targets[0].health_check, drain_timeout_s=job.drain_timeout_s,
        max_connections=opts.max_connections, stop=job.stop, max_concurrency=concurrency, replicas=replicas,
    )
    client = result.stats.summary()
    return EngineResult(
        records=result.records,
        client=ClientEvidence(achieved_rate_rps=client.pop("achieved_rate_rps"),
                              client_lag_s=client.pop("client_lag_s"), counters=client),
        info=(targets[0].info if replicas is None else _replicas_info(targets)) | {"run_id": result.run_id},
    )


def _admission_lookup(readers: list[Any]) -> Callable[[str], Any] | None:
    """The server-side admission decision for a request id, from whichever replica's events file holds it."""
    if not readers:
        return None
    if len(readers) == 1:
        return readers[0].admission

    def lookup(sid: str) -> Any:
        for r in readers:
            found = r.admission(sid)
            if found is not None:
                return found
        return None

    return lookup


def _replicas_info(targets: list[Target]) -> dict[str, Any]:
    """``engine_info`` of a replicated run: what every replica's info says alike, plus each one's own."""
    first = targets[0].info
    same = {k: v for k, v in first.items() if all(t.info.get(k) == v for t in targets[1:])}
    return same | {"replicas": [t.info for t in targets]}


def normalize_url(url: str) -> str:
    """``http://host:8000`` or ``…/v1`` → the API base ending in ``/v1``."""
    u = url.strip().rstrip("/")
    if not u.startswith(("http://", "https://")):
        raise UserError(f"--url {url!r}: must start with http:// or https://")
    return u if u.endswith("/v1") else u + "/v1"


def _api_key(opts: EngineOptions) -> str | None:
    """The key from the environment variable *named* by the options (the key itself is never stored)."""
    name = opts.api_key_env or DEFAULT_API_KEY_ENV
    key = os.environ.get(name)
    if opts.api_key_env and not key:
        raise UserError(f"--engine-arg api_key_env={name}: environment variable {name} is not set; "
                        f"export {name}=<your key>")
    return key or None


class OpenAIEngine:
    """Any OpenAI-compatible server at ``url`` (``--engine openai``): the server schedules, the policy
    name is only a label; the server is checked (``/models``) before the first request."""

    name = "openai"

    def __init__(self, url: str | None, options: EngineOptions) -> None:
        if not url:
            raise UserError("--url is required with --engine openai (e.g. --url http://127.0.0.1:8000/v1)")
        self.url = url
        self.options = options

    def target(self) -> Target:
        """Check the server and build its endpoint (served model from ``/models`` unless given)."""
        import httpx

        from slobench.engines.openai.protocol import Endpoint

        opts, url = self.options, self.url
        base = normalize_url(url)
        key = _api_key(opts)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        model = opts.served_model
        try:
            resp = httpx.get(base + "/models", headers=headers, timeout=10.0)
        except httpx.HTTPError as exc:
            raise EngineError(f"--url {url}: cannot reach the server ({type(exc).__name__}: {exc}); "
                              "is it running, and is the address right?") from None
        if resp.status_code in (401, 403):
            name = opts.api_key_env or DEFAULT_API_KEY_ENV
            raise EngineError(f"--url {url}: HTTP {resp.status_code} (not authorised); put the API key in "
                              f"${name} or name its variable with --engine-arg api_key_env=NAME")
        if model is None:
            try:
                model = resp.json()["data"][0]["id"] if resp.status_code == 200 else None
            except (ValueError, KeyError, IndexError, TypeError):
                model = None
            if model is None:
                raise EngineError(f"--url {url}: cannot list the served models (HTTP {resp.status_code} from "
                                  f"{base}/models); give the name with --engine-arg served_model=NAME")

        def health() -> None:
            try:
                httpx.get(base + "/models", headers=headers, timeout=5.0)
            except httpx.HTTPError as exc:
                raise EngineError(f"--url {url}: the server stopped answering mid-run "
                                  f"({type(exc).__name__}: {exc})") from None

        ep = Endpoint(base_url=base, model=model, api=opts.api, token_prompts=opts.token_prompts,
                      extensions=opts.extensions, api_key=key, timeout_s=opts.request_timeout_s)
        return Target(endpoint=ep, vocab_size=opts.vocab_size, health_check=health,
                      info={"server_url": base, "served_model": model, "scheduler_impl": "the server's own"})

    def run(self, job: EngineJob) -> EngineResult:
        refuse_replicas(job)
        client_load(self.name, job)  # refuse unknown loads before touching the server
        return run_target(self.name, job, self.target(), self.options)
