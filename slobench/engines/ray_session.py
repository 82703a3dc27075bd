"""Connecting to Ray (``--ray-address``, ``--engine-arg ray_address``), without importing it before it is asked for.

Two users, on two layers: the capacity layer fans simulator searches out as Ray tasks
(`slobench.cluster.ray_fanout`), and the vLLM engine starts real replicas as Ray actors
(`slobench.engines.vllm.replicas`). Both connect the same way, so the address forms, the one-line errors
and the rule that a process already connected to Ray keeps its session live here, below both.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from slobench.errors import UserError

RAY_EXTRA = "--ray-address needs the ray extra: pip install 'slobench[ray]'"
ADDRESS_FORMS = "auto | local | ray://HOST:PORT | HOST:PORT"
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-]+:\d{1,5}$")


def check_address(address: str) -> str:
    """``--ray-address``'s value, checked without importing ray: ``auto`` (the running cluster this machine
    belongs to), ``local`` (start Ray here), ``ray://HOST:PORT`` (Ray Client) or ``HOST:PORT`` (a head
    node's GCS address, as `ray start --head` prints it). Anything else is one line (exit 2)."""
    a = address.strip()
    if a in ("auto", "local"):
        return a
    rest = a[len("ray://"):] if a.startswith("ray://") else a
    if _HOST_PORT.match(rest) and 0 < int(rest.rsplit(":", 1)[1]) < 65536:
        return a
    raise UserError(f"--ray-address: {address!r} is not a Ray address; use {ADDRESS_FORMS}")


def import_ray() -> Any:
    """The ray module, or the one-line `UserError` telling how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(RAY_EXTRA) from None
    return ray


@dataclass
class RaySession:
    """A connection to Ray; ``owned``: this command started or joined it and disconnects at `close`
    (a script or test that called `ray.init` itself keeps its session)."""

    ray: Any
    owned: bool
    address: str

    def cpus(self) -> int:
        """CPUs of the whole cluster (every node), the default number of tasks at once."""
        return int(self.ray.cluster_resources().get("CPU", 0))

    def close(self) -> None:
        """Disconnect if this session connected (a local Ray it started stops with it)."""
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


def connect(address: str, num_cpus: int | None = None) -> RaySession:
    """Connect to Ray at ``address`` (see `check_address`); ``local`` starts Ray here with ``num_cpus`` CPUs
    (None: every core). A process already connected to Ray (a script, a test) keeps its connection.
    An unreachable cluster is one `UserError` line."""
    address = check_address(address)
    ray = import_ray()
    if ray.is_initialized():
        return RaySession(ray, owned=False, address=address)
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kw)
        else:
            ray.init(address=address, **kw)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, gRPC errors: all one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--ray-address {address}: cannot connect to Ray ({first})") from None
    session = RaySession(ray, owned=True, address=address)
    if session.cpus() < 1:
        session.close()
        raise UserError(f"--ray-address {address}: the Ray cluster has no CPUs to run searches on")
    return session
