"""Round-robin routing: request i (in arrival order) goes to replica i mod R.

The baseline router for independent replicas (and the same first choice SLOs-Serve's router makes
before a decline is passed on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from slobench.schedulers.routers.base import ReplicaLoad
from slobench.workloads.model import Request, Workload


@dataclass
class RoundRobinRouter:
    """Cycles through the replicas; ignores their load."""

    name: str = "round-robin"
    _next: int = 0
    reads_load: ClassVar[bool] = False

    def route(self, req: Request, replicas: Sequence[ReplicaLoad]) -> int:
        i = self._next % len(replicas)
        self._next += 1
        return i


def split_round_robin(workload: Workload, replicas: int) -> list[Workload]:
    """Partition a workload's requests over ``replicas`` by arrival order (i mod R)."""
    if replicas <= 1:
        return [workload]
    ordered = sorted(workload.requests, key=lambda r: (r.arrival_s, r.id))
    return [replace(workload, requests=ordered[i::replicas]) for i in range(replicas)]
