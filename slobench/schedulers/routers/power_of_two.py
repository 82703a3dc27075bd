"""Power of two choices: Ray Serve LLM's default request router.

Source: Ray Serve ``PowerOfTwoChoicesRequestRouter`` (``ray/serve/_private/request_router/pow_2_router.py``),
the default router of Ray Serve deployments and so of Ray Serve LLM: sample two distinct replicas at random,
send the request to the one with fewer pending (queued + ongoing) requests, as reported by the replicas'
cached queue lengths. Mitzenmacher's result: two random choices cut the maximum load from
O(log n / log log n) to O(log log n) at almost no probing cost. Ray also prefers replicas in the same
node/AZ and backs off when both are full; a single simulated node has neither.

Randomness comes from a `random.Random` seeded with the run's seed, so a run is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from slobench.schedulers.routers.base import ReplicaLoad
from slobench.workloads.model import Request


@dataclass
class PowerOfTwoRouter:
    """Two random replicas; fewer pending wins (the first sampled on a tie)."""

    seed: int = 0
    name: str = "power-of-two"
    reads_load: ClassVar[bool] = True
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def route(self, req: Request, replicas: Sequence[ReplicaLoad]) -> int:
        if len(replicas) == 1:
            return 0
        a, b = self._rng.sample(range(len(replicas)), 2)
        return b if replicas[b].pending < replicas[a].pending else a
