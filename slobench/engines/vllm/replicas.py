"""``--engine vllm --replicas N``: N vLLM servers started as Ray actors, one per GPU (or N small CPU servers).

Why Ray actors, not N subprocesses of slobench: the same command then serves one machine and a cluster
(``--engine-arg ray_address=auto|ray://HOST:PORT``), Ray places each server on a node with a free GPU, and a
server's processes die with its actor. Each actor owns one `VLLMServer` (the launcher this package already
uses for one server), started on its node's address so the driver can reach it; the driver keeps the router and
the load generator (`slobench.engines.openai.routing`), exactly where a real data-parallel deployment keeps
its front end.

Resources: an actor asks for ``tp`` GPUs when the cluster has GPUs, else one CPU, so Ray places N CPU servers
on N cores and refuses (one line, before anything starts) a group the cluster cannot hold instead of leaving
actors pending forever. Every wait on Ray has a timeout. A group is one entry of the engine pool: it is reused
across a capacity search's probes and stopped, with its actors, when the command ends.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slobench.engines.errors import EngineError
from slobench.engines.vllm.launcher import ServerSpec, VLLMServer
from slobench.errors import UserError

CALL_TIMEOUT_S = 30.0  # a control call to a started actor (alive, stop) must answer within this
RELEASE_WAIT_S = 15.0  # how long a new group waits for the resources of actors killed just before (ray.kill is async)
RAY_NEEDED = ("--replicas N with --engine vllm starts the replicas on Ray: pip install 'slobench[ray]' "
              "(or use --replicas 1)")


class ReplicaServer:
    """The body of one replica's actor: one launched vLLM server in the actor's process.

    Plain class, made a Ray actor at use (`ray.remote(ReplicaServer)`), so importing this module needs no ray.
    Its methods run on the actor's main thread, which lives as long as the actor: the server's parent-death
    signal (`procs.spawn`) then fires exactly when the actor dies."""

    def __init__(self) -> None:
        self.server: VLLMServer | None = None

    def start(self, spec: ServerSpec, log_dir: str, cpu_build: bool, startup_timeout_s: float) -> dict[str, Any]:
        import ray

        host = ray.util.get_node_ip_address()
        self.server = VLLMServer(spec, log_dir=Path(log_dir), cpu_build=cpu_build,
                                 startup_timeout_s=startup_timeout_s, host=host)
        self.server.start()
        s = self.server
        return {"base_url": s.base_url, "pid": s.proc.pid, "host": host, "log_path": str(s.log_path),
                "events_path": str(s.events_path), "startup_s": s.startup_s}

    def alive(self) -> bool:
        return self.server is not None and self.server.alive()

    def exit_line(self) -> str:
        """Why the server is gone, in one line (its exit code and its log's most telling line)."""
        if self.server is None:
            return "never started"
        try:
            self.server.check_alive()
        except EngineError as exc:
            return str(exc)
        return "running"

    def stop(self) -> list[int]:
        return self.server.stop() if self.server is not None else []


@dataclass(frozen=True)
class GroupSpec:
    """N replicas of one server spec at one Ray address: equal specs share one running group."""

    server: ServerSpec
    count: int
    ray_address: str  # check_address form; "local" starts Ray on this machine

    def key(self) -> str:
        return json.dumps({"server": json.loads(self.server.key()), "replicas": self.count,
                           "ray": self.ray_address}, sort_keys=True)

    @property
    def label(self) -> str:
        return f"{self.server.label}×{self.count}"


@dataclass
class ReplicaInfo:
    """One started replica, as the driver reaches it."""

    index: int
    base_url: str
    pid: int
    host: str
    log_path: str
    events_path: str  # the in-vLLM policy's events (the file exists only when a slobench policy runs there)
    startup_s: float | None


@dataclass
class ReplicaGroup:
    """N running replicas (Ray actors), or none yet; `start` blocks until all are healthy or one line says why not."""

    spec: GroupSpec
    log_dir: Path
    cpu_build: bool
    startup_timeout_s: float = 600.0
    replicas: list[ReplicaInfo] = field(default_factory=list)
    actors: list[Any] = field(default_factory=list)
    session: Any = None  # engines.ray_session.RaySession
    log_path: Path | None = None  # the first replica's log (the pool's one-server interface)
    driver_host: str = ""  # this machine's node address: replicas here are checked for leftover processes

    def start(self) -> ReplicaGroup:
        from slobench.engines.ray_session import connect, import_ray

        try:
            import_ray()
        except UserError:
            raise UserError(RAY_NEEDED) from None
        self.session = connect(self.spec.ray_address)
        ray = self.session.ray
        self.driver_host = ray.util.get_node_ip_address()
        try:
            resources = self._resources()
            remote = ray.remote(ReplicaServer).options(max_restarts=0, max_task_retries=0, **resources)
            self.actors = [remote.remote() for _ in range(self.spec.count)]
            refs = [a.start.remote(self.spec.server, str(self.log_dir), self.cpu_build, self.startup_timeout_s)
                    for a in self.actors]
            infos = self._wait_started(refs)
        except BaseException:
            self.stop()
            raise
        self.replicas = [ReplicaInfo(index=i, **d) for i, d in enumerate(infos)]
        self.log_path = Path(self.replicas[0].log_path)
        return self

    def _resources(self) -> dict[str, float]:
        """What one actor asks Ray for; a cluster that cannot hold N of them is refused now, in one line."""
        ray, n, tp = self.session.ray, self.spec.count, self.spec.server.tp
        total = ray.cluster_resources()
        kind, each = ("GPU", float(tp)) if total.get("GPU", 0) >= 1 else ("CPU", 1.0)
        have, need = total.get(kind, 0.0), n * each
        if have + 1e-9 < need:
            raise UserError(f"--replicas {n}: the Ray cluster at {self.spec.ray_address} has {have:g} {kind}s and "
                            f"each replica takes {each:g}; use --replicas {int(have // each) or 1} or a larger cluster")
        free = ray.available_resources().get(kind, 0.0)
        deadline = time.monotonic() + RELEASE_WAIT_S
        while free + 1e-9 < need and time.monotonic() < deadline:
            time.sleep(0.25)  # actors just killed (the group this one replaces) give their resources back
            free = ray.available_resources().get(kind, 0.0)
        if free + 1e-9 < need:
            raise UserError(f"--replicas {n}: the Ray cluster at {self.spec.ray_address} has {free:g} of {have:g} "
                            f"{kind}s free (others' work holds the rest) and each replica takes {each:g}; free them "
                            f"or use --replicas {int(free // each) or 1}")
        return {"num_gpus": each} if kind == "GPU" else {"num_cpus": each}

    def _wait_started(self, refs: list[Any]) -> list[dict[str, Any]]:
        """Every replica's start result, or the first failure as one `EngineError` line (never a hang)."""
        ray = self.session.ray
        deadline = time.monotonic() + self.startup_timeout_s + 120.0  # + actor creation, worker start-up
        pending = list(refs)
        started: dict[int, dict[str, Any]] = {}
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineError(f"{self.spec.count} vLLM replicas not started after {self.startup_timeout_s:.0f} s "
                                  f"(raise --engine-arg startup_timeout_s=...); logs: {self.log_dir}")
            ready, pending = ray.wait(pending, num_returns=1, timeout=min(left, 5.0))
            for ref in ready:
                i = refs.index(ref)
                try:
                    started[i] = ray.get(ref, timeout=CALL_TIMEOUT_S)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else exc
                    raise EngineError(f"vLLM replica {i} did not start: {str(cause).splitlines()[0]}") from None
                except ray.exceptions.RayError as exc:
                    raise EngineError(f"vLLM replica {i}'s actor died during start-up "
                                      f"({type(exc).__name__}); logs: {self.log_dir}") from None
        return [started[i] for i in range(len(refs))]

    def health_check(self, index: int) -> None:
        """Raise a one-line `EngineError` when replica ``index``'s server (or its actor) is gone."""
        ray = self.session.ray
        actor = self.actors[index]
        try:
            if ray.get(actor.alive.remote(), timeout=CALL_TIMEOUT_S):
                return
            line = ray.get(actor.exit_line.remote(), timeout=CALL_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            line = f"its actor did not answer within {CALL_TIMEOUT_S:.0f} s"
        except ray.exceptions.RayError as exc:
            line = f"its actor died ({type(exc).__name__})"
        raise EngineError(f"vLLM replica {index}: {line}")

    def alive(self) -> bool:
        """All replicas running (the pool reuses only a whole group)."""
        if not self.actors or self.session is None:
            return False
        try:
            return all(self.session.ray.get([a.alive.remote() for a in self.actors], timeout=CALL_TIMEOUT_S))
        except Exception:  # noqa: BLE001 - a dead actor or a lost node: not alive
            return False

    def stop(self) -> list[int]:
        """Stop every server, then kill the actors and disconnect (if this group connected); return the pids
        that survived (empty = clean). A replica whose actor is already gone took its server with it."""
        from slobench.engines.vllm import procs

        if self.session is None:
            return []
        ray = self.session.ray
        left: list[int] = []
        stops = [a.stop.remote() for a in self.actors]
        for ref in stops:
            try:
                left += ray.get(ref, timeout=CALL_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - dead actor: its server got the parent-death signal
                pass
        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []
        # Servers on this machine: check their pids are gone (a remote node's are its own business).
        deadline = time.monotonic() + 15.0
        pids = [r.pid for r in self.replicas if r.host == self.driver_host]
        while procs.alive(pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        left += procs.alive(pids)
        self.session.close()
        self.session = None
        return sorted(set(left))
