"""Fan independent jobs out as Ray tasks, on this machine or a Ray cluster (``--ray-address``).

The only module of the simulator's side of slobench that imports ray, and only when a command asks for
it: `connect` imports ray inside the call, so the base install (no ray) never loads it. It knows nothing
of capacity searches: the capacity layer hands it a module-level function and its arguments, which Ray
pickles by reference, so every worker (a local core or a cluster node) must import the same slobench
(Ray puts the driver's working directory on a local worker's path; a cluster needs slobench installed
on every node).

Two shapes, one per caller:

* `RayWorkers`: a task per job, each given a `ray.util.queue.Queue` to stream messages back while it
  runs (a capacity search saves each probe as it finishes, so Ctrl-C keeps what arrived);
* `map_unordered`: a task per job, results returned as each finishes (`bench schedulers`).

Why these rules (docs/cluster.md): on a 2-CPU machine an actor that reserves a CPU can starve the tasks
it serves into a hang, so the queue actor asks for none; tasks are never retried (a retried search would
report its probes twice); and every wait on Ray has a timeout, so a dead node or worker is reported as
one line instead of hanging the command.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from slobench.engines.ray_session import (  # noqa: F401 - re-exported: the fan-out's callers import them here
    ADDRESS_FORMS,
    RAY_EXTRA,
    RaySession,
    check_address,
    connect,
    import_ray,
)
from slobench.errors import UserError

WAIT_S = 0.5  # how long one poll of the running tasks waits
GET_TIMEOUT_S = 60.0  # a finished task's value must arrive within this


def _import(module: str, hold_s: float) -> int:
    """Import ``module`` in a worker and hold it ``hold_s`` seconds (so the next task lands on another worker)."""
    import importlib
    import time

    importlib.import_module(module)
    time.sleep(hold_s)
    return os.getpid()


def warm_up(session: RaySession, module: str, workers: int) -> int:
    """Have ``workers`` Ray workers import ``module`` now: a fresh worker pays slobench's imports (seconds)
    on its first task, which a forked local process never does; a benchmark counts that as start-up.
    Returns how many distinct worker processes did it."""
    remote = session.ray.remote(_import).options(num_cpus=1, max_retries=0)
    refs = [remote.remote(module, 1.0) for _ in range(workers)]
    return len(set(session.ray.get(refs, timeout=GET_TIMEOUT_S * 2)))


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """The body of every task: ``fn(*args)`` (``fn`` travels by reference, so it is slobench's own code)."""
    return fn(*args)


def task_failure(exc: BaseException, what: str) -> Exception:
    """A failed task as the error the local runner gives: the worker's `UserError` as the same one line,
    anything else (a crash, a killed worker, a lost node) as a RuntimeError naming ``what`` failed."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, UserError):
        return UserError(str(cause))
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return RuntimeError(f"{what} failed in a Ray task:\n{detail}")


@dataclass
class RayWorkers:
    """Jobs run as Ray tasks ``fn(key, *args, queue)``, messages back over one queue actor; the process-pool
    interface of `slobench.capacity.parallel` (start, get, finished, died, stop)."""

    session: RaySession
    fn: Callable[..., Any]
    num_cpus: float = 1.0
    refs: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ray.util.queue import Queue

        ray = self.session.ray
        self.queue = Queue(actor_options={"num_cpus": 0})
        self._remote = ray.remote(_call).options(num_cpus=self.num_cpus, max_retries=0)

    def start(self, key: Any, *args: Any) -> None:
        """Submit job ``key``: ``fn(key, *args, queue)`` as a task."""
        self.refs[key] = self._remote.remote(self.fn, key, *args, self.queue)

    def get(self, timeout: float) -> Any:
        """The next message; `queue.Empty` after ``timeout`` seconds (Ray's Empty is one)."""
        return self.queue.get(timeout=timeout)

    def finished(self, key: Any) -> None:
        """Job ``key`` said it is done: collect its task (it returns nothing)."""
        ref = self.refs.pop(key)
        self.session.ray.get(ref, timeout=GET_TIMEOUT_S)

    def died(self) -> tuple[Any, str] | None:
        """A job whose task ended in an error without saying so (a crashed worker, a lost node):
        (key, the error in one paragraph); None while every task runs or ended cleanly."""
        ray = self.session.ray
        if not self.refs:
            return None
        ready, _ = ray.wait(list(self.refs.values()), num_returns=len(self.refs), timeout=0)
        for key, ref in self.refs.items():
            if ref in ready:
                try:
                    ray.get(ref, timeout=GET_TIMEOUT_S)
                except Exception as exc:  # noqa: BLE001 - reported, not raised here
                    return key, "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return None

    def stop(self) -> None:
        """Cancel every running task (its worker process is killed)."""
        for ref in self.refs.values():
            try:
                self.session.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass

    def close(self) -> None:
        """Stop the queue actor and disconnect (if this command connected)."""
        try:
            self.queue.shutdown(force=True)
        except Exception:  # noqa: BLE001 - best effort while stopping
            pass
        self.session.close()


def map_unordered(session: RaySession, fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], jobs: int,
                  what: Callable[[int], str]) -> Iterator[tuple[int, Any]]:
    """``fn(*tasks[i])`` as Ray tasks, at most ``jobs`` at once; yields (i, value) as each finishes.

    A failing task raises `task_failure` (``what(i)`` names it); Ctrl-C or any error cancels the rest.
    """
    ray = session.ray
    remote = ray.remote(_call).options(num_cpus=1, max_retries=0)
    todo = list(range(len(tasks)))
    running: dict[Any, int] = {}
    try:
        while todo or running:
            while todo and len(running) < jobs:
                i = todo.pop(0)
                running[remote.remote(fn, *tasks[i])] = i
            ready, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
            for ref in ready:
                i = running.pop(ref)
                try:
                    value = ray.get(ref, timeout=GET_TIMEOUT_S)
                except ray.exceptions.GetTimeoutError:
                    raise RuntimeError(f"{what(i)}: its result did not arrive within {GET_TIMEOUT_S:.0f} s") \
                        from None
                except ray.exceptions.RayError as exc:
                    raise task_failure(exc, what(i)) from None
                yield i, value
    finally:
        for ref in running:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass

