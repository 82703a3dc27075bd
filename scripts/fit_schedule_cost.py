"""Fit each registry policy's ``schedule()`` cost model and write ``slobench/perf/data/schedule_cost.json``.

The simulator charges ``cost_s = a + b·len(waiting) + c·len(running)`` per call (``--schedule-cost model``,
see ``slobench/perf/schedule_cost.py``). This script measures real ``schedule()`` wall times on this machine:
it simulates a few workloads (a nominal and an overloaded rate, so queues are short and long) with every
registry policy wrapped in a timer that hides the steady-decode shortcut (every iteration is a real call),
then fits (a, b, c) by least squares on the calls' (waiting, running, seconds), after dropping the slowest
1% of calls (garbage-collector pauses, other processes). It stores the coefficients with R², the number
of calls, the machine and the date; ``default`` (for policies not in the file) is the element-wise maximum
over the fitted policies.

    python scripts/fit_schedule_cost.py            # measure, fit, write the file
    python scripts/fit_schedule_cost.py --dry-run  # print only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from slobench.cluster.run import build_latency_model, build_workload, validate_config
from slobench.engines.sim import SimConfig, engine_limits, simulate
from slobench.perf.schedule_cost import SCHEDULE_COST_FILE
from slobench.schedulers.base import BatchPlan, SchedulerView
from slobench.schedulers.registry import SCHEDULERS, make_policy

# (workload, rate req/s or None for the spec's, requests): short and long queues, light and heavy prefill.
RUNS = (("chatbot", None, 300), ("chatbot", 40.0, 300), ("coding", None, 200), ("coding", 20.0, 200))


class _Timed:
    """Times every ``schedule`` call of ``inner``; no ``steady_decode``, so the simulator never skips a call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.samples: list[tuple[int, int, float]] = []

    def schedule(self, view: SchedulerView) -> BatchPlan:
        t0 = time.perf_counter()
        plan = self.inner.schedule(view)
        self.samples.append((len(view.waiting), len(view.running), time.perf_counter() - t0))
        return plan


def measure(policy_name: str) -> np.ndarray:
    rows: list[tuple[int, int, float]] = []
    for i, (wl, rate, n) in enumerate(RUNS):
        cfg = validate_config(workload=wl, scheduler=policy_name, rate_rps=rate, num_requests=n, seed=100 + i)
        perf = build_latency_model(cfg)
        gpu = getattr(perf, "gpu", None)
        mem, name = getattr(gpu, "memory_bytes", None), getattr(gpu, "name", "")
        policy = make_policy(cfg.policy, gpu_memory_bytes=mem, gpu_name=name)
        timed = _Timed(policy)
        sim_cfg = SimConfig(seed=cfg.seed, **engine_limits(SimConfig(), policy, mem, name))
        simulate(build_workload(cfg, perf), timed, perf, sim_cfg)
        rows.extend(timed.samples)
    return np.array(rows, dtype=float)


def fit(samples: np.ndarray) -> dict[str, Any]:
    keep = samples[:, 2] <= np.quantile(samples[:, 2], 0.99)
    w, r, y = samples[keep, 0], samples[keep, 1], samples[keep, 2]
    x = np.column_stack([np.ones_like(w), w, r])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    coef = np.maximum(coef, 0.0)  # a cost never falls with queue length; a tiny negative slope is noise
    pred = x @ coef
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {"a": float(coef[0]), "b": float(coef[1]), "c": float(coef[2]),
            "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0, "calls": int(keep.sum()),
            "mean_s": float(y.mean()), "p99_s": float(np.quantile(samples[:, 2], 0.99)),
            "max_waiting": int(w.max()), "max_running": int(r.max())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="print the fit, do not write the file")
    args = ap.parse_args()
    policies: dict[str, Any] = {}
    for name in SCHEDULERS:
        t0 = time.perf_counter()
        policies[name] = fit(measure(name))
        p = policies[name]
        print(f"{name:11s} a={p['a'] * 1e6:8.2f} µs  b={p['b'] * 1e6:7.3f} µs/waiting  c={p['c'] * 1e6:7.3f} "
              f"µs/running  R²={p['r2']:.3f}  calls={p['calls']}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    default = {k: max(p[k] for p in policies.values()) for k in ("a", "b", "c", "max_waiting", "max_running")}
    out = {
        "model": "cost_s = a + b * len(waiting) + c * len(running)",
        "script": "scripts/fit_schedule_cost.py",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
                   f"{platform.release()}, Python {platform.python_version()}",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "runs": [{"workload": wl, "rate_rps": rate, "num_requests": n} for wl, rate, n in RUNS],
        "policies": policies,
        "default": default | {"note": "element-wise maximum of the fitted policies (coefficients and fitted "
                                      "queue lengths): a policy not in this file"},
    }
    if args.dry_run:
        print(json.dumps(out, indent=1))
        return 0
    SCHEDULE_COST_FILE.parent.mkdir(parents=True, exist_ok=True)
    SCHEDULE_COST_FILE.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {SCHEDULE_COST_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
