"""Routing policies across replicas behind one `Router` protocol, looked up by name (``--router``).

One module per router, each named after the system it models (docs/routers.md has the rules and sources).
"""

from __future__ import annotations

from collections.abc import Callable

from slobench.errors import UserError
from slobench.schedulers.routers.base import ReplicaLoad, Router, least_loaded, presplit
from slobench.schedulers.routers.power_of_two import PowerOfTwoRouter
from slobench.schedulers.routers.prefix_aware import PrefixAwareRouter
from slobench.schedulers.routers.round_robin import RoundRobinRouter
from slobench.schedulers.routers.slo_aware import SLOAwareRouter
from slobench.schedulers.routers.vllm_dp import VLLMDPRouter

# name → factory(seed): a fresh router per run (routers keep state: a cursor, an RNG).
ROUTERS: dict[str, Callable[[int], Router]] = {
    "round-robin": lambda seed: RoundRobinRouter(),
    "vllm-dp": lambda seed: VLLMDPRouter(),
    "power-of-two": lambda seed: PowerOfTwoRouter(seed=seed),
    "prefix-aware": lambda seed: PrefixAwareRouter(),
    "slo-aware": lambda seed: SLOAwareRouter(),
}


def router_names() -> list[str]:
    return list(ROUTERS)


def canonical_router(name: str) -> str:
    """``name`` as the registry spells it (case and _/- insensitive); unknown names unchanged."""
    return name.strip().lower().replace("_", "-")


def make_router(name: str, seed: int = 0) -> Router:
    """A fresh router called ``name`` (one of `router_names()`); ``seed`` feeds randomised routers."""
    key = canonical_router(name)
    if key not in ROUTERS:
        raise UserError(f"--router: unknown router '{name}'; choose one of: {', '.join(ROUTERS)}")
    return ROUTERS[key](seed)


__all__ = ["ROUTERS", "ReplicaLoad", "Router", "canonical_router", "least_loaded", "make_router", "presplit",
           "router_names"]
