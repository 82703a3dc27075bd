"""Run a plan's capacity searches in worker processes; the parent saves every probe as it finishes.

A search is sequential (each probe's rate depends on the last), but the searches of a plan are
independent and seeded, so they can run side by side: `compare --workload coding` is two searches,
and on a 2-core machine two processes halve its wall time. The results are the same as a serial
run's, probe for probe; only the order of rows in probes.csv follows finishing order.

Each worker runs `slobench.capacity.execute.run_search` with a relay store: saved probes of an
earlier session are handed to it up front (so a resume replays them), and every fresh probe's
records, its judged `Probe` and the search's outcome travel back over one queue to the parent,
which writes them through the real `Collector` (one writer, so probes.csv and summary.json stay
whole) and drives the observer. Workers ignore Ctrl-C: the parent catches it, stops them, saves
what already arrived and reports the run as interrupted.

With ``--ray-address`` the same `search_worker` runs as a Ray task (`slobench.cluster.ray_fanout`) and
its messages come over a Ray queue instead: the loop, the saving and the error lines are this module's
either way, which is what keeps the two backends' results and failures the same (docs/cluster.md).
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slobench.capacity.plan import Plan, SearchSettings, SearchSpec
from slobench.capacity.search import CapacityResult, Probe, ProbeResult
from slobench.capacity.store import Collector, ProbeKey
from slobench.errors import UserError

if TYPE_CHECKING:
    from slobench.cluster.ray_fanout import RaySession

_PROGRESS_EVERY_S = 0.25  # request-progress messages per worker are throttled to this


@dataclass
class _RelayStore:
    """The `Collector` methods `run_search` calls, forwarded to the parent over ``q``."""

    index: int
    cached: dict[ProbeKey, ProbeResult]
    q: Any

    def cached_result(self, key: ProbeKey) -> ProbeResult | None:
        return self.cached.get(key)

    def stash(self, key: ProbeKey, stages: Any, iterations: Any) -> None:
        self.q.put(("stash", self.index, key, stages, iterations))

    def add_probe(self, spec: SearchSpec, p: Probe) -> bool:
        self.q.put(("probe", self.index, p))
        return False  # the parent's store decides and shows it

    def add_capacity(self, spec: SearchSpec, result: CapacityResult) -> None:
        self.q.put(("capacity", self.index, result))


class _RelayObserver:
    """A `SearchObserver` in the worker: probe starts and (throttled) request progress go to the parent."""

    def __init__(self, index: int, q: Any) -> None:
        self.index, self.q, self.last = index, q, 0.0

    def start_search(self, spec: SearchSpec, index: int, total: int) -> None:
        pass

    def start_probe(self, rate_rps: float, seed: int) -> None:
        self.q.put(("start_probe", self.index, rate_rps, seed))

    def requests(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= _PROGRESS_EVERY_S or done == total:
            self.last = now
            self.q.put(("requests", self.index, done, total))

    def finished(self, probe: Probe, cached: bool) -> None:
        pass  # shown by the parent when it saves the probe

    def finished_search(self, spec: SearchSpec, result: CapacityResult | None) -> None:
        pass


def search_worker(index: int, spec: SearchSpec, settings: SearchSettings, cached: dict[ProbeKey, ProbeResult],
                  q: Any, spare: Any = None) -> None:
    """One search, anywhere (a child process, a Ray task); ends with ("done", i) or ("error", i, message,
    is_user_error). Every failure crosses as a message, so the parent reports it the same way on both."""
    from slobench.capacity.execute import run_search

    try:
        run_search(spec, settings, store=_RelayStore(index, cached, q),  # type: ignore[arg-type]
                   observer=_RelayObserver(index, q), spare=spare)
    except KeyboardInterrupt:  # raised by the probe itself (tests, a policy): the run stops as on Ctrl-C
        q.put(("interrupted", index))
    except UserError as exc:
        q.put(("error", index, str(exc), True))
    except Exception:  # noqa: BLE001 - crosses the process boundary as text
        q.put(("error", index, traceback.format_exc(), False))
    else:
        q.put(("done", index))


def _worker(index: int, spec: SearchSpec, settings: SearchSettings, cached: dict[ProbeKey, ProbeResult],
            q: Any, spare: Any = None) -> None:
    """`search_worker` in a child process of the local pool, which leaves Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C
    # The parent stops a worker with SIGTERM: exit through the search's `finally`, so its speculative children are
    # killed and their temporary folder removed (`slobench.capacity.speculate`).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    search_worker(index, spec, settings, cached, q, spare)


class _Processes:
    """The local pool: one forked process per search, messages over one multiprocessing queue."""

    def __init__(self) -> None:
        self.ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        self.q = self.ctx.Queue()
        self.procs: dict[int, Any] = {}
        self.spare: Any = None  # the cores no search holds (a semaphore shared with the workers)

    def start(self, i: int, *args: Any) -> None:
        proc = self.ctx.Process(target=_worker, args=(i, *args, self.q, self.spare), daemon=True)
        proc.start()
        self.procs[i] = proc

    def get(self, timeout: float) -> tuple:
        return self.q.get(timeout=timeout)

    def finished(self, i: int) -> None:
        self.procs.pop(i).join()

    def died(self) -> tuple[int, str] | None:
        dead = [i for i, p in self.procs.items() if not p.is_alive() and p.exitcode not in (0, None)]
        if not dead:
            return None
        return dead[0], f"its worker process died (exit code {self.procs[dead[0]].exitcode}; out of memory?)"

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()

    def close(self) -> None:
        for proc in self.procs.values():
            proc.join(timeout=5)


def _saved_results(store: Collector, spec: SearchSpec) -> dict[ProbeKey, ProbeResult]:
    """The earlier session's probes of ``spec``, as the worker's cache (not yet marked as replayed:
    a saved probe the search does not ask for again stays in probes.csv)."""
    keys = [k for k in store.previous if k[0] == spec.label and k[1] == spec.scheduler]
    return {k: r for k in keys if (r := store.saved_result(k)) is not None}


def execute_parallel(plan: Plan, store: Collector, observer: Any, jobs: int, ray: RaySession | None = None,
                     cores: int | None = None) -> None:
    """Run every search of ``plan``, up to ``jobs`` at once, saving as probes arrive.

    ``cores`` (local pool only; default ``jobs``): the cores the command may use. Those no search holds are
    spare, for the searches' speculative probes (`slobench.capacity.speculate`): each search that ends
    with none left to start gives its core to the others.

    ``ray``: None runs them in this machine's processes; a `slobench.cluster.ray_fanout.RaySession` runs
    them as Ray tasks (the session is closed at the end). Either way the parent saves and shows every
    message the same way. Raises KeyboardInterrupt after saving what arrived (workers stopped); a worker's
    `UserError` is re-raised as one; any other worker failure as a RuntimeError carrying its traceback.
    """
    if ray is None:
        workers: Any = _Processes()
        where = "a worker process"
        spare = workers.spare = workers.ctx.Semaphore(max(0, (cores or jobs) - min(jobs, len(plan.specs))))
    else:
        from slobench.cluster.ray_fanout import RayWorkers

        try:
            workers = RayWorkers(ray, search_worker)
        except BaseException:
            ray.close()
            raise
        where = "a Ray task"
        spare = None
    todo = list(enumerate(plan.specs))
    total = len(plan.specs)
    running: set[int] = set()
    current: int | None = None

    def focus(i: int) -> None:
        nonlocal current
        if current != i:  # the display follows whichever search just spoke
            current = i
            observer.start_search(plan.specs[i], i + 1, total)

    def handle(msg: tuple) -> None:
        kind, i = msg[0], msg[1]
        spec = plan.specs[i]
        if kind == "stash":
            store.stash(msg[2], msg[3], msg[4])
        elif kind == "probe":
            p: Probe = msg[2]
            from slobench.report.results import probe_key

            store.replays(probe_key(spec.label, spec.scheduler, p.rate_rps, p.seed, p.span_factor))  # as serial runs do
            focus(i)
            observer.finished(p, store.add_probe(spec, p))
        elif kind == "capacity":
            store.add_capacity(spec, msg[2])
            focus(i)
            observer.finished_search(spec, msg[2])
        elif kind == "start_probe":
            focus(i)
            observer.start_probe(msg[2], msg[3])
        elif kind == "requests":
            if current == i:
                observer.requests(msg[2], msg[3])
        elif kind == "done":
            running.discard(i)
            workers.finished(i)
            if spare is not None and not todo:  # its core is free, and no search is waiting for it
                spare.release()
        elif kind == "interrupted":
            raise KeyboardInterrupt
        elif kind == "error":
            raise UserError(msg[2]) if msg[3] else RuntimeError(f"search {spec.label} × {spec.scheduler} failed "
                                                                 f"in {where}:\n{msg[2]}")

    try:
        while todo or running:
            while todo and len(running) < jobs:
                i, spec = todo.pop(0)
                workers.start(i, spec, plan.search, _saved_results(store, spec))
                running.add(i)
                focus(i)
                if not todo:  # every worker is forked: start the report's browser now, off the critical path
                    from slobench.report.html import warm_png

                    warm_png()
            try:
                handle(workers.get(timeout=0.5))
            except queue_mod.Empty:
                dead = workers.died()
                if dead is not None:
                    spec = plan.specs[dead[0]]
                    raise RuntimeError(f"search {spec.label} × {spec.scheduler}: {dead[1]}") from None
    except BaseException:
        workers.stop()
        _drain(workers, handle)  # what finished before the stop is saved
        raise
    finally:
        workers.close()


def _drain(workers: Any, handle: Any) -> None:
    """Handle the messages already queued (saves finished probes), ignoring errors and late 'done's."""
    while True:
        try:
            msg = workers.get(timeout=0.2)
        except Exception:  # noqa: BLE001 - empty, closed, or (Ray) the queue actor is gone
            return
        if msg[0] in ("stash", "probe", "capacity"):
            try:
                handle(msg)
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass
