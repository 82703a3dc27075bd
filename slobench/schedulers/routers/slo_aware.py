"""SLO-aware routing: SLOs-Serve's multi-replica router.

Source: SLOs-Serve (the paper's multi-replica routing, DESIGN.md "Routing"; the authors' gulang2019/SLOServe
``entry_points/problem_runner.py``): request i is offered first to replica i mod R; a replica whose
admission planner cannot fit it within its SLOs passes it on to the next; only when all R decline does it
become best-effort.

Here each offer is `ReplicaLoad.admits`, the replica policy's side-effect-free admission query, asked
now (the replica answers for itself: no staleness). A replica whose policy has no admission query
(``admits is None``: vLLM and friends) takes every request, so over such replicas this is round-robin.
When every replica declines, the request is *not* shed: it goes to the least loaded replica (fewest
pending, stale counts), whose policy then treats it as it treats any request it declines — SLOs-Serve
re-plans and may still admit it before its TTFT deadline, else serves it best-effort (a miss), or rejects
it with ``best_effort=false`` (a miss). Shedding outright would hide those requests from every replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from slobench.schedulers.routers.base import ReplicaLoad, least_loaded
from slobench.workloads.model import Request


@dataclass
class SLOAwareRouter:
    """Offer in turn from i mod R; the first replica that admits takes it; none admits → least loaded."""

    name: str = "slo-aware"
    reads_load: ClassVar[bool] = True  # for the fallback only
    _next: int = 0
    declined_everywhere: int = 0  # requests no replica admitted (sent to the least loaded)

    def route(self, req: Request, replicas: Sequence[ReplicaLoad]) -> int:
        n = len(replicas)
        start = self._next % n
        self._next += 1
        for k in range(n):
            i = (start + k) % n
            ask = replicas[i].admits
            if ask is None or ask():
                return i
        self.declined_everywhere += 1
        return least_loaded(replicas)
