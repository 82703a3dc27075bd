"""The routing boundary: which replica gets a request, decided from what a real router can see.

A router is a pure policy, like a scheduler: no I/O, no engine imports, deterministic for its own
state (and its seed). The simulator's multi-replica driver (`slobench.engines.sim_cluster`) calls it
inside the event loop, once per request at the moment the request is sent, with one `ReplicaLoad` per
replica: counts as of the last stats refresh plus the router side's own optimistic increments (stale,
as real routers see them), and two questions the replica answers itself, now (prefix-cache hit, would
its policy admit the request). `presplit` is the old, state-free placement before the run, kept as
the reference the lockstep loop is checked against (round-robin gives identical records).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol

from slobench.workloads.model import Request, Workload


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """What a router knows about one replica when it places a request.

    Counts are stale by up to the refresh interval (``--router-refresh-ms``); the driver adds one to
    ``num_waiting`` of the replica it just chose until the next refresh, as vLLM's client does.
    """

    replica: int  # index, 0..R-1
    num_waiting: int = 0  # requests queued, not yet scheduled (stale + local increments)
    num_running: int = 0  # requests holding KV (stale)
    kv_used_frac: float = 0.0  # share of the KV blocks in use, 0..1 (stale)
    prefix_hit_tokens: int = 0  # leading tokens of this request's prompt cached there, read from the replica's
    # prefix map at the send (fresh, not stale); 0 for requests without prefix_blocks
    admits: Callable[[], bool] | None = None  # ask the replica's policy, now, whether it would admit this
    # request (side-effect free); None: the policy has no admission control (it takes every request)

    @property
    def pending(self) -> int:
        """Requests the replica holds (waiting + running): Ray Serve's and sglang's notion of load."""
        return self.num_waiting + self.num_running


class Router(Protocol):
    """Places each request on one replica; called once per request, in send order."""

    name: str
    reads_load: ClassVar[bool]  # False: ignores `ReplicaLoad` counts (the driver then takes no stats snapshots)

    def route(self, req: Request, replicas: Sequence[ReplicaLoad]) -> int:
        """The index (into ``replicas``) of the replica that serves ``req``."""
        ...


def least_loaded(replicas: Sequence[ReplicaLoad]) -> int:
    """The replica with the fewest pending requests (waiting + running), lowest index on ties."""
    return min(range(len(replicas)), key=lambda i: (replicas[i].pending, i))


def presplit(workload: Workload, router: Router, replicas: int) -> list[Workload]:
    """Route every request up front, in arrival order, with no replica state: one workload per replica.

    One replica gets the workload itself (unchanged, not re-sorted)."""
    if replicas <= 1:
        return [workload]
    loads = [ReplicaLoad(i) for i in range(replicas)]
    parts: list[list[Request]] = [[] for _ in range(replicas)]
    for req in sorted(workload.requests, key=lambda r: (r.arrival_s, r.id)):
        parts[router.route(req, loads)].append(req)
    return [replace(workload, requests=p) for p in parts]
