"""Benchmark: `bench schedulers --quick` with the local process pool vs Ray fan-out, same -j, one run.

The issue's goal: on a 2-core machine, Ray fan-out within 10% of the local `-j 2` pool's wall time, with an
identical table. Ray is started once (`ray.init(num_cpus=JOBS)`) and its workers import slobench before the
clock starts; that start-up is timed and printed separately, since a long-lived cluster pays it once and a
one-off command every time (why the local pool stays the default; docs/cluster.md).

    python scripts/bench_ray_fanout.py [--workloads coding,chatbot] [--schedulers vllm,slos-serve] [--jobs 2]

Prints both wall times and their ratio; exits 1 if the tables differ. Timings on a shared machine move
with whatever else runs there: quote the load average beside them (printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's slobench, also in Ray workers

from slobench.capacity.bench import BenchRow, capacity_table  # noqa: E402
from slobench.cluster.ray_fanout import connect, warm_up  # noqa: E402


def table(rows: list[BenchRow]) -> list[tuple[str, str, float | None, str, int]]:
    """What must be identical: capacity, status and probe count per (workload, policy); not wall times."""
    return [(r.workload, r.scheduler, r.capacity_rps, r.status, r.probes) for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="coding,chatbot")
    ap.add_argument("--schedulers", default="vllm,slos-serve")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--num-requests", type=int, default=200, help="per probe (bench schedulers --quick: 200)")
    a = ap.parse_args()
    wls, scheds = a.workloads.split(","), a.schedulers.split(",")
    # `bench schedulers --quick`'s settings (slobench/cli/bench_cmd.py)
    kw = dict(num_requests=a.num_requests, target=0.9, rel_tol=0.05, confirm=0, hold=0.0, seeds=(0,),
              run_kwargs={"hardware": "H100-SXM", "model": "Llama-3.1-8B", "min_duration_s": 0.0})
    print(f"bench schedulers --quick: {wls} × {scheds}, -j {a.jobs}; load average {os.getloadavg()}", flush=True)

    t = time.perf_counter()
    local = capacity_table(wls, scheds, jobs=a.jobs, **kw)
    local_s = time.perf_counter() - t
    print(f"local pool -j {a.jobs}: {local_s:.1f} s", flush=True)

    t = time.perf_counter()
    session = connect("local", num_cpus=a.jobs)
    init_s = time.perf_counter() - t
    warmed = warm_up(session, "slobench.capacity.bench", a.jobs)
    start_s = time.perf_counter() - t
    print(f"Ray start-up: {start_s:.1f} s (ray.init {init_s:.1f} s, then {warmed} workers importing slobench)",
          flush=True)
    try:
        t = time.perf_counter()
        on_ray = capacity_table(wls, scheds, jobs=a.jobs, ray_address="local", **kw)  # reuses the session
        ray_s = time.perf_counter() - t
    finally:
        session.ray.shutdown()
    print(f"Ray fan-out -j {a.jobs}: {ray_s:.1f} s", flush=True)

    same = table(local) == table(on_ray)
    for row in table(local):
        print("  ", row)
    print(f"tables identical: {same}")
    print(f"ratio Ray / local: {ray_s / local_s:.3f} (goal ≤ 1.10); with start-up: {(ray_s + start_s) / local_s:.3f}; "
          f"load average after {os.getloadavg()}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
