"""Keep launched vLLM servers alive across the probes of a capacity search, and always stop them.

A capacity search runs `run_once` once per (rate, seed); starting vLLM for each probe would cost
30 s (CPU) to minutes (GPU) every time. `EnginePool.acquire(spec)` returns the running server
for an equal `ServerSpec`, else stops the others (``max_servers``, default 1: one model per GPU)
and launches a new one. Servers stop when the `engine_session` that started them ends (the CLI
opens one per command: normal exit, error or Ctrl-C), on SIGTERM (turned into Ctrl-C), and at
interpreter exit. If slobench is killed outright, the kernel's parent-death signal stops them.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from slobench.engines.errors import EngineError
from slobench.engines.vllm.launcher import ServerSpec, VLLMServer
from slobench.engines.vllm.replicas import GroupSpec, ReplicaGroup


class EnginePool:
    """Running servers by spec key (insertion order = least recently started first); a group of replicas
    (`ReplicaGroup`) is one entry."""

    def __init__(self, max_servers: int = 1) -> None:
        self.max_servers = max_servers
        self.servers: dict[str, VLLMServer | ReplicaGroup] = {}
        self.log_dir: Path | None = None
        self._lock = threading.Lock()

    def default_log_dir(self) -> Path:
        """The session's log folder; outside any `engine_session`, a temporary folder made on first use."""
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="slobench-engines-"))
        return self.log_dir

    def acquire(self, spec: ServerSpec, *, cpu_build: bool, startup_timeout_s: float = 600.0,
                log_dir: Path | None = None) -> VLLMServer:
        """The healthy server for ``spec``, launching it (and stopping others beyond the limit) if needed."""
        return self._acquire(spec.key(), spec.label, lambda d: VLLMServer(
            spec, log_dir=d, cpu_build=cpu_build, startup_timeout_s=startup_timeout_s), log_dir)

    def acquire_group(self, spec: GroupSpec, *, cpu_build: bool, startup_timeout_s: float = 600.0,
                      log_dir: Path | None = None) -> ReplicaGroup:
        """The running replica group for ``spec`` (N servers on Ray), starting it if needed; one pool entry."""
        return self._acquire(spec.key(), spec.label, lambda d: ReplicaGroup(
            spec, log_dir=d, cpu_build=cpu_build, startup_timeout_s=startup_timeout_s), log_dir)

    def _acquire(self, key: str, label: str, make: Callable[[Path], Any], log_dir: Path | None) -> Any:
        with self._lock:
            srv = self.servers.get(key)
            if srv is not None:
                if srv.alive():
                    return srv
                self.servers.pop(key)
                srv.stop()
                raise EngineError(f"vLLM server ({label}) exited between runs; log: {srv.log_path}")
            while len(self.servers) >= self.max_servers:
                _, old = next(iter(self.servers.items()))
                self.stop(old)
            srv = make(log_dir or self.default_log_dir())
            srv.start()
            self.servers[key] = srv
            return srv

    def stop(self, srv: VLLMServer | ReplicaGroup) -> list[int]:
        """Stop one server and forget it; return surviving pids (empty = clean)."""
        self.servers.pop(srv.spec.key(), None)
        return srv.stop()

    def stop_all(self, keep: set[str] | None = None) -> list[int]:
        """Stop every server (except keys in ``keep``); return surviving pids."""
        left: list[int] = []
        for key, srv in list(self.servers.items()):
            if keep and key in keep:
                continue
            left += self.stop(srv)
        return left


_POOL = EnginePool()
atexit.register(_POOL.stop_all)


def get_pool() -> EnginePool:
    """The process-wide pool: launched servers are process-wide resources (ports, GPU memory)."""
    return _POOL


@contextlib.contextmanager
def engine_session(log_dir: Path | None = None) -> Iterator[EnginePool]:
    """Scope for one CLI command: servers go to ``log_dir`` and the ones started inside are stopped
    on exit, however it exits. Servers that existed before (an outer session) are left running.
    SIGTERM is turned into KeyboardInterrupt meanwhile, so ``kill`` cleans up like Ctrl-C."""
    pool = get_pool()
    before = set(pool.servers)
    old_dir = pool.log_dir
    if log_dir is not None:
        pool.log_dir = Path(log_dir)
    old_handler = None
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        old_handler = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield pool
    finally:
        try:
            pool.stop_all(keep=before)
        finally:
            pool.log_dir = old_dir
            if main_thread and old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
