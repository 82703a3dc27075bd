"""The routing boundary: which replica gets a request, decided from what a real router can see.

A router is a pure policy, like a scheduler: no I/O, no engine imports, deterministic for its own
state. The simulator's replica loop calls it (today before the run: `presplit`, with no replica
state, so only state-free routers such as round-robin are exact there; routing inside the event
loop, with stale replica loads as real routers see them, comes with the load-aware routers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from slobench.workloads.model import Request, Workload


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """What a router knows about one replica when it places a request (zeros when routing up front)."""

    replica: int  # index, 0..R-1
    num_waiting: int = 0  # requests queued, not yet scheduled
    num_running: int = 0  # requests holding KV
    kv_used_frac: float = 0.0  # share of the KV blocks in use, 0..1


class Router(Protocol):
    """Places each request on one replica; called once per request, in arrival order."""

    name: str

    def route(self, req: Request, replicas: Sequence[ReplicaLoad]) -> int:
        """The index (into ``replicas``) of the replica that serves ``req``."""
        ...


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
