"""Server lifetime without vLLM: launch, reuse, and teardown after success, an exception, Ctrl-C,
SIGTERM and a killed parent — checked on a fake "vLLM" that, like the real one, spawns a process
tree (a child with a grandchild, plus one descendant that leaves the process group).

The launcher runs ``<python> -m vllm.entrypoints.openai.api_server …``; the engine option
``python`` points it at the fake, so every line of the real launch and teardown code runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from slobench.engines.errors import EngineError
from slobench.engines.options import EngineOptions
from slobench.engines.vllm import procs
from slobench.engines.vllm.launcher import ServerSpec, VLLMServer
from slobench.engines.vllm.pool import EnginePool, engine_session, get_pool
from tests.run_helpers import fake_python as make_fake_python

FAKE = textwrap.dedent('''
    import http.server, os, signal, subprocess, sys, threading
    port = int(sys.argv[sys.argv.index("--port") + 1])
    if "--fail-fast" in sys.argv:
        print("ValueError: fake start-up failure", flush=True)
        sys.exit(3)
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    child = subprocess.Popen([sys.executable, "-c",
        "import subprocess, sys, time; subprocess.Popen(%r); time.sleep(600)" % (sleeper,)])
    escaped = subprocess.Popen(sleeper, start_new_session=True)  # leaves the process group
    def stop(*_):  # like vLLM on SIGTERM: take the whole tree down
        escaped.kill()
        os.killpg(0, signal.SIGKILL)
    signal.signal(signal.SIGTERM, stop)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if "--never-healthy" not in sys.argv else 503)
            self.end_headers()
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
''')


@pytest.fixture(autouse=True)
def _own_process_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests get an empty process-wide pool of their own: the session's real vLLM servers (tests/conftest.py
    `vllm_pool`) may be running in the real one, and must neither be evicted here nor count as "left over"."""
    import slobench.engines.vllm.pool as pool_mod

    monkeypatch.setattr(pool_mod, "_POOL", EnginePool())


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    return make_fake_python(tmp_path, FAKE)


def _spec(fake: Path, *extra: str, **opts: object) -> ServerSpec:
    o = EngineOptions(python=str(fake), extra_args=list(extra), startup_timeout_s=20, **opts)
    return ServerSpec(model="/models/fake", options=o.server_fields())


def _tree(srv: VLLMServer) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until the fake has spawned all three descendants
        tree = procs.descendants(srv.proc.pid)
        if len(tree) >= 3:
            return [srv.proc.pid, *tree]
        time.sleep(0.05)
    raise AssertionError("fake server did not spawn its children")


def _gone(pids: list[int], timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if not procs.alive(pids):
            return True
        time.sleep(0.05)
    return False


def test_launch_reuse_and_clean_stop(fake_python: Path, tmp_path: Path) -> None:
    pool = EnginePool(max_servers=1)
    spec = _spec(fake_python)
    srv = pool.acquire(spec, cpu_build=True, log_dir=tmp_path)
    assert srv.alive() and srv.startup_s is not None and srv.log_path.exists()
    assert "# slobench launched:" in srv.log_path.read_text()
    assert pool.acquire(spec, cpu_build=True, log_dir=tmp_path) is srv  # reused, not relaunched
    tree = _tree(srv)
    other = pool.acquire(_spec(fake_python, "--other"), cpu_build=True, log_dir=tmp_path)  # evicts the first
    assert _gone(tree) and list(pool.servers.values()) == [other]
    tree = _tree(other)
    assert pool.stop_all() == []
    assert _gone(tree) and not procs.port_in_use(other.port)  # nobody listens any more


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_session_stops_servers_after_exception_and_ctrl_c(fake_python: Path, tmp_path: Path,
                                                          exc: type[BaseException]) -> None:
    pool = get_pool()
    with pytest.raises(exc), engine_session(tmp_path):
        srv = pool.acquire(_spec(fake_python), cpu_build=True)
        tree = _tree(srv)
        assert srv.log_path.parent == tmp_path  # logs go to the session's results folder
        raise exc()
    assert _gone(tree) and not pool.servers


def test_session_keeps_outer_servers(fake_python: Path, tmp_path: Path) -> None:
    pool = get_pool()
    with engine_session(tmp_path):
        outer = pool.acquire(_spec(fake_python), cpu_build=True)
        with engine_session(tmp_path / "inner"):
            assert pool.acquire(_spec(fake_python), cpu_build=True) is outer
        assert outer.alive()  # an inner session leaves servers it did not start
        tree = _tree(outer)
    assert _gone(tree)


def test_startup_failure_is_one_line_and_leaves_nothing(fake_python: Path, tmp_path: Path) -> None:
    srv = VLLMServer(_spec(fake_python, "--fail-fast"), log_dir=tmp_path, cpu_build=True)
    with pytest.raises(EngineError, match="exited with code 3 during start-up: ValueError: fake start-up failure"):
        srv.start()
    srv = VLLMServer(_spec(fake_python, "--never-healthy"), log_dir=tmp_path, cpu_build=True, startup_timeout_s=3)
    with pytest.raises(EngineError, match="not healthy after 3 s"):
        srv.start()
    assert srv.proc.poll() is not None and not procs.pids_in_group(srv.proc.pid)


def test_port_in_use_is_refused_before_launch(fake_python: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        srv = VLLMServer(_spec(fake_python, port=port), log_dir=tmp_path, cpu_build=True)
        with pytest.raises(EngineError, match=f"port {port} on 127.0.0.1 is already in use"):
            srv.start()
        assert srv.proc is None


PROGRAM = textwrap.dedent('''
    import json, sys, time
    from slobench.engines.options import EngineOptions
    from slobench.engines.vllm.pool import engine_session, get_pool
    from slobench.engines.vllm.launcher import ServerSpec
    from slobench.engines.vllm import procs
    spec = ServerSpec(model="/m", options=EngineOptions(python=sys.argv[1]).server_fields())
    with engine_session(sys.argv[2]):
        srv = get_pool().acquire(spec, cpu_build=True)
        while len(procs.descendants(srv.proc.pid)) < 3:
            time.sleep(0.05)
        print(json.dumps([srv.proc.pid, *procs.descendants(srv.proc.pid)]), flush=True)
        time.sleep(120)
''')


def _default_sigint() -> None:
    """Ctrl-C as in a terminal: a shell's background job inherits SIGINT ignored, and Python then never
    raises KeyboardInterrupt (CI launched with `&` would fail these tests for that reason alone)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["sigint", "sigterm", "sigkill"])
def test_killing_slobench_leaves_no_server(fake_python: Path, tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C and kill stop the server through the session; kill -9 through the parent-death signal."""
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM, str(fake_python), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    try:
        tree = json.loads(proc.stdout.readline())
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _gone(tree, 15), f"left behind: {procs.alive(tree)}"
    if sig is signal.SIGKILL:
        for pid in procs.alive(tree):  # pragma: no cover - only on failure
            os.kill(pid, signal.SIGKILL)
