"""`ReplicaGroup` on a local Ray without vLLM: N fake servers as actors, reuse by the pool, a dead replica, the
one-line refusal of a group the cluster cannot hold, and nothing left after `stop`.

The fake "vLLM" is a small HTTP server that listens where the launcher tells it (``--host``: the actor's node
address) and spawns a child, so the launcher's real start, health wait and tree kill run inside each actor.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from slobench.engines.errors import EngineError
from slobench.engines.options import EngineOptions
from slobench.engines.vllm import procs
from slobench.engines.vllm.launcher import ServerSpec
from slobench.engines.vllm.pool import EnginePool
from slobench.engines.vllm.replicas import GroupSpec, ReplicaGroup
from slobench.errors import UserError
from tests.run_helpers import fake_python
from tests.test_engines_pool import _gone

ray = pytest.importorskip("ray", reason="needs the ray extra (pip install 'slobench[ray]'; CI installs it)")

FAKE = textwrap.dedent('''
    import http.server, subprocess, sys
    host = sys.argv[sys.argv.index("--host") + 1]
    port = int(sys.argv[sys.argv.index("--port") + 1])
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # a child, as vLLM's engine core
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
        def log_message(self, *a):
            pass
    http.server.HTTPServer((host, port), H).serve_forever()
''')


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for the module (each group connects to it and leaves it running)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def fake_spec(tmp_path: Path) -> ServerSpec:
    opts = EngineOptions(python=str(fake_python(tmp_path, FAKE)), startup_timeout_s=30)
    return ServerSpec(model="/models/fake", options=opts.server_fields())


def test_group_starts_is_reused_and_stops_clean(local_ray, fake_spec: ServerSpec, tmp_path: Path) -> None:  # noqa: ANN001
    pool = EnginePool()
    spec = GroupSpec(fake_spec, 2, "local")
    group = pool.acquire_group(spec, cpu_build=True, startup_timeout_s=30, log_dir=tmp_path)
    assert len(group.replicas) == 2 and len({r.base_url for r in group.replicas}) == 2
    assert all(r.host == local_ray.util.get_node_ip_address() for r in group.replicas)
    assert group.alive()
    assert pool.acquire_group(spec, cpu_build=True, log_dir=tmp_path) is group  # reused across probes
    tree = [p for r in group.replicas for p in [r.pid, *procs.descendants(r.pid)]]
    assert len(tree) >= 4  # each fake server and its child
    assert pool.stop_all() == []
    assert _gone(tree, timeout_s=15.0)
    assert local_ray.is_initialized()  # a Ray this process joined before is left running


def test_a_dead_replica_is_named_and_the_group_is_not_reused(local_ray, fake_spec: ServerSpec,  # noqa: ANN001
                                                             tmp_path: Path) -> None:
    pool = EnginePool()
    spec = GroupSpec(fake_spec, 2, "local")
    group = pool.acquire_group(spec, cpu_build=True, startup_timeout_s=30, log_dir=tmp_path)
    group.health_check(1)  # alive: no error
    os.kill(group.replicas[1].pid, signal.SIGKILL)
    time.sleep(0.5)
    with pytest.raises(EngineError, match=r"^vLLM replica 1: vLLM server \(pid \d+\) exited with code -9"):
        group.health_check(1)
    group.health_check(0)
    assert not group.alive()
    with pytest.raises(EngineError, match="exited between runs"):
        pool.acquire_group(spec, cpu_build=True, log_dir=tmp_path)
    assert pool.servers == {}


def test_a_group_the_cluster_cannot_hold_is_one_line(local_ray, fake_spec: ServerSpec, tmp_path: Path) -> None:  # noqa: ANN001
    group = ReplicaGroup(GroupSpec(fake_spec, 3, "local"), log_dir=tmp_path, cpu_build=True)
    with pytest.raises(UserError, match=r"^--replicas 3: the Ray cluster at local has 2 CPUs and each replica "
                                        r"takes 1; use --replicas 2 or a larger cluster$"):
        group.start()
    assert group.actors == []
