"""Child-process hygiene for launched servers: own process group, death signal, tree kill, orphan check.

vLLM's server spawns an engine-core process, which spawns workers (and a resource tracker). A
benchmark that leaves any of them behind holds GPU memory and a port, so every launch goes
through here: the server starts in its own session (Ctrl-C in the terminal reaches slobench only,
which then shuts the server down in order), asks the kernel to SIGTERM it if slobench dies
(``PR_SET_PDEATHSIG``, Linux), and `kill_tree` kills the whole group plus any descendant that
left it, then reports survivors. Linux ``/proc`` is read directly: no psutil in the base install.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(cmd: list[str], *, env: dict[str, str], log_path: Path, cwd: str | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session with stdout+stderr appended to ``log_path``.

    Call from a long-lived thread: the death signal fires when the *spawning thread* exits.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    try:
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True, preexec_fn=_set_parent_death_signal,
        )
    finally:
        log.close()  # the child holds its own descriptor


def _proc_stat_fields() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name) for every process we can read."""
    if not os.path.isdir("/proc"):
        return
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Field 2 (comm) may contain spaces/parentheses: split after its closing ')'.
        yield int(entry), stat[stat.rfind(")") + 2:].split()


def _ppid_map() -> dict[int, int]:
    return {pid: int(rest[1]) for pid, rest in _proc_stat_fields() if len(rest) >= 2}


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children, grandchildren, …)."""
    if not os.path.isdir("/proc"):
        return []
    ppids = _ppid_map()
    children: dict[int, list[int]] = {}
    for child, parent in ppids.items():
        children.setdefault(parent, []).append(child)
    out: list[int] = []
    stack = [pid]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def pids_in_group(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (zombies excluded)."""
    return [pid for pid, rest in _proc_stat_fields() if len(rest) >= 3 and rest[0] != "Z" and int(rest[2]) == pgid]


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
            if state[state.rfind(")") + 2:].split()[0] != "Z":
                out.append(pid)
        except OSError:
            continue
    return out


def _signal_all(pgid: int, pids: list[int], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree(proc: subprocess.Popen[bytes], *, grace_s: float = 10.0) -> list[int]:
    """Stop ``proc``, its process group and every descendant; return pids still alive (should be none).

    SIGTERM first (vLLM shuts its engine core down and frees accelerator memory), SIGKILL for
    whatever is left ``grace_s`` later (a process still importing torch ignores nothing but
    cannot clean up either; vLLM's own shutdown takes 1–3 s).
    """
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    tree = descendants(proc.pid)
    deadline = time.monotonic() + grace_s
    if proc.poll() is None:
        _signal_all(pgid, tree, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    while time.monotonic() < deadline and (alive(tree) or pids_in_group(pgid)):
        time.sleep(0.1)
    left = sorted(set(alive(tree)) | set(pids_in_group(pgid)))
    if left or proc.poll() is None:
        _signal_all(pgid, left, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        end = time.monotonic() + 5
        while time.monotonic() < end and (alive(left) or pids_in_group(pgid)):
            time.sleep(0.05)
    return sorted(set(alive(tree)) | set(pids_in_group(pgid)))


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``host:port`` cannot be bound because a socket holds it (TIME_WAIT leftovers do not
    count: servers, vLLM's included, bind with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False
