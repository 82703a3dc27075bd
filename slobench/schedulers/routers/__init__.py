"""Routing policies across replicas behind one `Router` protocol, looked up by name (``--router``)."""

from __future__ import annotations

from collections.abc import Callable

from slobench.errors import UserError
from slobench.schedulers.routers.base import ReplicaLoad, Router, presplit
from slobench.schedulers.routers.round_robin import RoundRobinRouter

ROUTERS: dict[str, Callable[[], Router]] = {
    "round-robin": RoundRobinRouter,
}


def router_names() -> list[str]:
    return list(ROUTERS)


def make_router(name: str) -> Router:
    """A fresh router called ``name`` (one of `router_names()`)."""
    key = name.strip().lower().replace("_", "-")
    if key not in ROUTERS:
        raise UserError(f"unknown router '{name}'; choose one of: {', '.join(ROUTERS)}")
    return ROUTERS[key]()


__all__ = ["ROUTERS", "ReplicaLoad", "Router", "make_router", "presplit", "router_names"]
