"""Speculative probes: run the probes a search will probably ask for next on cores that would otherwise idle.

Why: a capacity search is sequential (each rate depends on the last answer), so a 2-core machine runs
`compare --workload coding` as two searches side by side, and once the faster one ends its core idles
while the slower one probes on alone (vllm's search ends in ~15 s, slos-serve's takes ~40 s). Most of
what that search asks next is predictable: after the bisection it always runs the hold probe at the
capacity found (4× a probe) and the confirmation rates above the crossing, and inside the bisection the
next midpoint is one of two, which the attainments so far usually tell apart.

So the search hints (`capacity_search`'s ``speculate``) the probes it will likely need, in priority
order; a `Speculator` forks a child per hinted probe while a spare core is free, and when the search
asks for a probe that a child computed it takes that result instead of running it again. A hint that
is dropped from the next hint list is killed; a result never asked for is thrown away. Every probe is
a deterministic function of its key (config, rate, seed, span), so the search sees exactly the
results a serial run would, in the same order, and probes.csv is the same: speculation changes when
a result is ready, never what it is.

Spare cores: a semaphore shared by the searches of one command (`slobench.capacity.parallel` releases
one each time a search ends and none is left to start; a single search gets the machine's other
cores). A child holds its core from fork to reaping. Children are plain ``os.fork`` copies of the
search's process (the workers of the local pool are daemonic, and daemonic processes may not start
`multiprocessing` children); each writes its pickled result to a file in a private temporary folder
and exits. On Linux a child dies with its parent (``PR_SET_PDEATHSIG``), so a stopped run leaves none.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol

POLL_EVERY_S = 0.02  # `Speculator.poll`: a semaphore try and a waitpid per child, ~50 times a second at most


class Slots(Protocol):
    """Spare cores: ``acquire(block=False)`` takes one if free; ``release()`` gives it back."""

    def acquire(self, block: bool = ...) -> bool:
        ...

    def release(self) -> None:
        ...


class LocalSlots:
    """`Slots` for one process (a single search): a plain counter."""

    def __init__(self, n: int) -> None:
        self.n = max(0, n)

    def acquire(self, block: bool = True) -> bool:
        if self.n <= 0:
            return False
        self.n -= 1
        return True

    def release(self) -> None:
        self.n += 1


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this child when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Speculator:
    """Runs hinted computations ahead in forked children; `take` hands their results over.

    ``compute(key)`` must be deterministic and picklable in its result; it runs in a child exactly as it
    would in this process. Not thread-safe; one search uses one `Speculator` and `close`s it at the end.
    """

    def __init__(self, compute: Callable[[Any], Any], slots: Slots) -> None:
        self._compute = compute
        self._slots = slots
        self._queue: list[Hashable] = []
        self._running: dict[Hashable, tuple[int, str]] = {}  # key → (pid, result file)
        self._done: dict[Hashable, str] = {}  # key → result file of a child that exited cleanly
        self._dir = tempfile.mkdtemp(prefix="slobench-spec-")
        self._n = 0
        self._borrowed: Hashable | None = None  # the child running on this process's core while it waits
        self.used = 0  # results taken (for tests and the curious)
        self._polled = -math.inf  # when `poll` last looked for a free core

    # -- the search's side ------------------------------------------------------------------------
    def hint(self, keys: Sequence[Hashable], now: Sequence[Hashable] = ()) -> None:
        """The computations likely needed next, most likely first, and those about to be taken (``now``: kept
        if under way, never started here). Replaces the previous hints: a running child whose key is in
        neither is killed; results already computed are kept."""
        wanted = list(dict.fromkeys(keys))
        self._reap()
        for key in [k for k in self._running if k not in wanted and k not in now]:
            self._kill(key)
        self._queue = [k for k in wanted if k not in self._running and k not in self._done and k not in now]
        self._pump()

    def take(self, key: Hashable) -> Any | None:
        """The result for ``key`` if a child computed it (waiting for a running one), else None: compute it
        yourself (a queued hint for it is dropped). A child that failed also gives None, so the error shows
        where it would without speculation."""
        if key in self._queue:
            self._queue.remove(key)
        if key in self._running:
            # This process idles while it waits: its own core runs the next hint meanwhile.
            self._pump(borrow=True)
            pid, path = self._running.pop(key)
            status = self._wait(pid)
            self._give_back(key)
            if status == 0:
                self._done[key] = path
        self._reap()
        path = self._done.pop(key, None)
        result = None
        if path is not None:
            try:
                with open(path, "rb") as f:
                    result = pickle.load(f)
            except (OSError, pickle.UnpicklingError, EOFError):
                result = None
            with contextlib.suppress(OSError):
                os.unlink(path)
        if result is not None:
            self.used += 1
        self._pump()
        return result

    def poll(self) -> None:
        """Start queued hints on cores freed since the last `hint` or `take`: called from the probe this process
        is computing (its progress callback), since a core frees up mid-probe when another search ends or a
        child finishes, and would otherwise idle until this probe is done. At most every `POLL_EVERY_S`."""
        now = time.monotonic()
        if not self._queue or now - self._polled < POLL_EVERY_S:
            return
        self._polled = now
        self._reap()
        self._pump()

    def close(self) -> None:
        """Kill every child and remove the temporary folder."""
        self._queue = []
        for key in list(self._running):
            self._kill(key)
        self._done.clear()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Speculator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- children ---------------------------------------------------------------------------------
    def _give_back(self, key: Hashable) -> None:
        """The core of a child that ended: this process's own when it was borrowed, else a spare one."""
        if key == self._borrowed:
            self._borrowed = None
        else:
            self._slots.release()

    def _pump(self, borrow: bool = False) -> None:
        """Start queued hints while a spare core is free; ``borrow``: this process is about to wait, so one more
        may run on its core (one such child at a time)."""
        while self._queue:
            if not self._slots.acquire(block=False):
                if not borrow or self._borrowed is not None:
                    return
                self._borrowed = self._queue[0]
            key = self._queue.pop(0)
            self._n += 1
            path = os.path.join(self._dir, f"{self._n}.pkl")
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: compute, write, leave without running the parent's cleanup
                code = 1
                try:
                    _die_with_parent()
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    # Fresh streams: the parent's may be a live display's proxies whose lock another thread of the
                    # parent held at the fork (held forever here). The child has nothing to say; its errors show
                    # when the parent recomputes the probe.
                    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives until os._exit
                    result = self._compute(key)
                    tmp = f"{path}.tmp"
                    with open(tmp, "wb") as f:
                        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
                    os.replace(tmp, path)
                    code = 0
                except BaseException:  # noqa: BLE001 - the parent recomputes, and then the error shows there
                    code = 1
                finally:
                    os._exit(code)
            self._running[key] = (pid, path)

    def _reap(self) -> None:
        """Collect children that have exited; their cores become spare again."""
        for key, (pid, path) in list(self._running.items()):
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
                code = os.waitstatus_to_exitcode(status) if got else None
            except ChildProcessError:  # already reaped elsewhere: treat as failed
                code = 1
            if code is None:
                continue
            del self._running[key]
            self._give_back(key)
            if code == 0:
                self._done[key] = path

    @staticmethod
    def _wait(pid: int) -> int:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 1
        return os.waitstatus_to_exitcode(status)

    def _kill(self, key: Hashable) -> None:
        pid, path = self._running.pop(key)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait(pid)
        self._give_back(key)
        with contextlib.suppress(OSError):
            os.unlink(path)
