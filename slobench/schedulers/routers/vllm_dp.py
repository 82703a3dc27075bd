"""vLLM's data-parallel load balancer (``--data-parallel-size N`` with the internal balancer).

Source: vLLM ``vllm/v1/engine/core_client.py``, ``DPLBAsyncMPClient.get_core_engine_for_request``: for
each engine, starting from the client's start index (0 for a single API server), score =
``waiting * 4 + running`` from the counts the DP coordinator publishes (every 100 ms,
``coordinator.py``); the first engine with the strictly lowest score wins, and the client adds one to
the chosen engine's local waiting count so that a burst between two publications is spread out.
Waiting counts four times as much as running because a queued request is a TTFT in the making.

Here the staleness (refresh interval) and the optimistic increment are the simulator driver's
(`slobench.engines.sim_cluster`), common to every load-reading router; this module is the rule only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from slobench.schedulers.routers.base import ReplicaLoad
from slobench.workloads.model import Request

WAITING_WEIGHT = 4  # score = WAITING_WEIGHT · waiting + running (vLLM core_client.py)


@dataclass
class VLLMDPRouter:
    """Lowest 4·waiting + running wins; ties go to the lowest index (vLLM's scan order with one client)."""

    name: str = "vllm-dp"
    reads_load: ClassVar[bool] = True

    def route(self, req: Request, replicas: Sequence[ReplicaLoad]) -> int:
        best, best_score = 0, None
        for i, r in enumerate(replicas):
            score = WAITING_WEIGHT * r.num_waiting + r.num_running
            if best_score is None or score < best_score:
                best, best_score = i, score
        return best
