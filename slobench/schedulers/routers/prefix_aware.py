"""Prefix-aware routing with a load-imbalance override: sglang's cache-aware policy (and vllm-router's).

Source: sglang's router (``sgl-router``/``sgl-model-gateway``, ``src/policies/cache_aware.rs``; vllm-router is a
fork of it): the system is *imbalanced* when ``max_load − min_load > balance_abs_threshold`` and
``max_load > min_load · balance_rel_threshold`` (load = requests in flight per worker); then the request goes
to the least loaded worker. Otherwise it goes to the worker whose approximate radix tree matches the longest
share of the prompt, if that share exceeds ``cache_threshold``; below it, to the worker with the most cache
space left (the smallest tree). Defaults are the gateway's: 0.3, 64, 1.5.

Here the match is `ReplicaLoad.prefix_hit_tokens` (what the replica's cache really holds, not the router's
approximation of it). "Most cache space" is, as in sglang, the router's own approximate tree: it adds each
routed prompt to the chosen worker's tree at once (no staleness), so this fallback rotates over the workers
between stats refreshes instead of herding onto the one whose stale KV use looks lowest. The gateway evicts
the approximate trees periodically (``eviction_interval_secs``); here they only grow, which ranks workers
by the prompt tokens sent to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from slobench.schedulers.routers.base import ReplicaLoad, least_loaded
from slobench.workloads.model import Request


@dataclass
class PrefixAwareRouter:
    """Longest cached prefix, unless the load is imbalanced beyond both thresholds."""

    cache_threshold: float = 0.3  # share of the prompt that must be cached to follow the cache
    balance_abs_threshold: int = 64  # requests
    balance_rel_threshold: float = 1.5
    name: str = "prefix-aware"
    reads_load: ClassVar[bool] = True
    tree_tokens: list[int] = field(default_factory=list)  # the approximate tree per replica: prompt tokens sent

    def route(self, req: Request, replicas: Sequence[ReplicaLoad]) -> int:
        if len(self.tree_tokens) != len(replicas):
            self.tree_tokens = [0] * len(replicas)
        choice = self._choose(req, replicas)
        self.tree_tokens[choice] += req.stages[0].prompt_tokens
        return choice

    def _choose(self, req: Request, replicas: Sequence[ReplicaLoad]) -> int:
        loads = [r.pending for r in replicas]
        hi, lo = max(loads), min(loads)
        if hi - lo > self.balance_abs_threshold and hi > lo * self.balance_rel_threshold:
            return least_loaded(replicas)
        prompt = max(1, req.stages[0].prompt_tokens)
        best = max(range(len(replicas)), key=lambda i: (replicas[i].prefix_hit_tokens, -i))
        if replicas[best].prefix_hit_tokens / prompt > self.cache_threshold:
            return best
        return min(range(len(replicas)), key=lambda i: (self.tree_tokens[i], i))
