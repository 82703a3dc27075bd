"""The driver's router in front of real replicas: what it can see of them, how stale, and which are alive.

A real front end (vLLM's data-parallel client, Ray Serve's router, sglang's gateway) knows the requests it
sent and what came back, not the replicas' queues. So does this one: per replica it counts its requests
*waiting* (sent, no token back yet) and *running* (streaming), per HTTP call (a tool gap holds nothing on a
replica). The router sees those counts as of the last stats refresh (``refresh_s``; 0 = always fresh) plus the
optimistic local increment of the replicas it chose since, the staleness vLLM's DP client lives with, and the
same rule the simulator's driver applies (`slobench.engines.sim_cluster`). What it cannot see is said, not
guessed: KV use is unknown here (0), the prefix-cache hit is this router's own approximate tree (the leading
``prefix_blocks`` it has sent to each replica, as sglang's gateway keeps one), and there is no admission query
(real replicas do not expose their policy's decision before the send), so ``slo-aware`` is refused for real
replicas (`check_real_router`).

A replica that dies mid-run is taken out of the rotation (`mark_down`); requests then go to the others, and the
run fails only when none is left. The router always sees the live replicas, in index order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slobench.errors import UserError
from slobench.schedulers.routers import ReplicaLoad, Router, canonical_router, make_router
from slobench.workloads.model import Request
from slobench.workloads.prefix import block_tokens, cached_prefix_tokens

NO_ADMISSION_QUERY = ("slo-aware",)  # routers that need the replica's admission answer before the send


def check_real_router(name: str, replicas: int) -> None:
    """Refuse, in one line, a router real replicas cannot serve (before anything is launched)."""
    if replicas > 1 and canonical_router(name) in NO_ADMISSION_QUERY:
        raise UserError(f"--router {canonical_router(name)}: real replicas cannot answer the admission query this "
                        "router asks before each send (their policy decides inside vLLM); use round-robin, vllm-dp, "
                        "power-of-two or prefix-aware with real engines, or the simulator for slo-aware")


@dataclass
class ReplicaState:
    """What the driver knows of one replica."""

    waiting: int = 0  # calls sent, no token back yet
    running: int = 0  # calls streaming
    sent: int = 0  # calls routed here over the run
    blocks: dict[int, int] = field(default_factory=dict)  # prefix-block hash sent here → tokens it covers (the
    # approximate tree, in the form `workloads.prefix.cached_prefix_tokens` matches against)
    down_at_s: float | None = None  # when it was found dead (None: alive)
    down_why: str | None = None


class ClientRouter:
    """Places each request's first call on a live replica; later calls of the request follow it (affinity)."""

    def __init__(self, router: Router, replicas: int, refresh_s: float) -> None:
        self.router = router
        self.refresh_s = refresh_s
        self.state = [ReplicaState() for _ in range(replicas)]
        self._snap: list[tuple[int, int]] = [(0, 0)] * replicas  # (waiting, running) at the last refresh
        self._snap_t = -float("inf")
        self._bumps = [0] * replicas  # local increments since the last refresh

    @classmethod
    def named(cls, name: str, replicas: int, refresh_s: float, seed: int) -> ClientRouter:
        check_real_router(name, replicas)
        return cls(make_router(name, seed), replicas, refresh_s)

    def live(self) -> list[int]:
        return [i for i, s in enumerate(self.state) if s.down_at_s is None]

    def _refresh(self, now_s: float) -> None:
        if self.refresh_s <= 0 or now_s >= self._snap_t + self.refresh_s:
            self._snap = [(s.waiting, s.running) for s in self.state]
            self._bumps = [0] * len(self.state)
            # Snapshots fall on multiples of the interval, as a publisher on its own timer.
            self._snap_t = now_s if self.refresh_s <= 0 else now_s - (now_s % self.refresh_s)

    def place(self, req: Request, now_s: float) -> int:
        """The replica for ``req`` (sent now); its count goes up locally until the next refresh."""
        live = self.live()
        if not live:
            raise RuntimeError("no live replica to route to")  # callers stop the run before this
        if self.router.reads_load:
            self._refresh(now_s)
        loads = []
        for k, i in enumerate(live):
            waiting, running = self._snap[i]
            loads.append(ReplicaLoad(replica=k, num_waiting=waiting + self._bumps[i], num_running=running,
                                     prefix_hit_tokens=self._prefix_hit(req, i)))
        choice = live[self.router.route(req, loads)]
        self._bumps[choice] += 1
        self.state[choice].blocks.update(zip(req.prefix_blocks, block_tokens(req), strict=True))
        return choice

    def _prefix_hit(self, req: Request, i: int) -> int:
        """Leading prompt tokens of ``req`` this router has sent to replica ``i`` before (the simulator's match)."""
        return cached_prefix_tokens(self.state[i].blocks, req)[0] if req.prefix_blocks else 0

    # ---- the load generator reports each call's life ------------------------------------------------------
    def call_sent(self, i: int) -> None:
        self.state[i].waiting += 1
        self.state[i].sent += 1

    def call_streaming(self, i: int) -> None:
        self.state[i].waiting -= 1
        self.state[i].running += 1

    def call_ended(self, i: int, streamed: bool) -> None:
        if streamed:
            self.state[i].running -= 1
        else:
            self.state[i].waiting -= 1

    def mark_down(self, i: int, now_s: float, why: str) -> None:
        s = self.state[i]
        if s.down_at_s is None:
            s.down_at_s, s.down_why = now_s, why

    def summary(self) -> dict[str, Any]:
        """The ``client`` block's routing evidence: calls per replica and the replicas lost mid-run."""
        return {
            "router": self.router.name, "router_refresh_s": self.refresh_s,
            "calls_per_replica": [s.sent for s in self.state],
            "replicas_lost": [{"replica": i, "at_s": round(s.down_at_s, 3), "error": s.down_why}
                              for i, s in enumerate(self.state) if s.down_at_s is not None],
        }
