"""Routing requests across replicas.

`split_round_robin` is the baseline router for independent simulated replicas: request i goes
to replica i mod R (the same first choice SLOs-Serve's router makes before a decline is passed on).
"""

from __future__ import annotations

from dataclasses import replace

from slobench.workloads.model import Workload


def split_round_robin(workload: Workload, replicas: int) -> list[Workload]:
    """Partition a workload's requests over ``replicas`` by arrival order (i mod R)."""
    if replicas <= 1:
        return [workload]
    ordered = sorted(workload.requests, key=lambda r: (r.arrival_s, r.id))
    return [replace(workload, requests=ordered[i::replicas]) for i in range(replicas)]
