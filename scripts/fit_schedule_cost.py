"""Fit each registry policy's ``schedule()`` cost model and write ``slobench/perf/data/schedule_cost.json``.

The simulator charges ``cost_s = a + b·len(waiting) + c·len(running)`` per call with work waiting and
``idle.a + idle.c·len(running)`` per call with nothing waiting (``--schedule-cost model``, see
``slobench/perf/schedule_cost.py``). This script measures real ``schedule()`` CPU times on this machine:
it simulates a few workloads (a nominal and an overloaded rate, so queues are short and long) with every
registry policy wrapped in a timer that hides the steady-decode shortcut (every iteration is a real call),
then fits, by least squares on the calls' (waiting, running, seconds) after dropping each regime's slowest
1% (garbage-collector pauses, other processes), (a, b, c) on the calls with work waiting and (a, c) on those with
nothing waiting (``idle``). It stores the coefficients with R², the number of calls, and per policy the machine,
date, load average and timer it was measured with (``fitted``); ``default`` (for policies not in the file) is the
element-wise maximum over the fitted policies, per regime.

    python scripts/fit_schedule_cost.py                         # measure, fit, write the file
    python scripts/fit_schedule_cost.py --policies slos-serve   # refit one; the others keep their entries
    python scripts/fit_schedule_cost.py --dry-run               # print only
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

# (workload, rate req/s or None for the spec's, requests): short and long queues, light and heavy prefill, and every
# shipped workload near the rates where capacities are decided (slos-serve's capacities, docs/slos-serve.md; above
# the baselines'). Without those the fit saw busy calls only with long queues and few running sequences, and priced
# slos-serve's near-capacity calls with work waiting at half their cost (chatbot at 17.6 req/s: 279 µs charged, 615
# measured; 98 running).
RUNS = (("chatbot", None, 300), ("chatbot", 40.0, 300), ("coding", None, 200), ("coding", 20.0, 200),
        ("chatbot", 17.6, 800), ("coding", 13.5, 600), ("toolcalling", 6.7, 300), ("summarization", 7.5, 300),
        ("mixed", 16.0, 600), ("reasoning", 0.93, 200))


class _Timed:
    """Times every ``schedule`` call of ``inner``; no ``steady_decode``, so the simulator never skips a call.

    CPU time of this thread, not wall time: on a machine running other work the process is descheduled for
    tens of ms at a time, and wall time books those pauses on whichever call was running. Measured (2026-12-02,
    load average 2, slos-serve, the four runs below): 106 of 13,336 calls took ~40 ms of wall time each, whatever
    their queues (one had 0 waiting and 3 running), and made 3.9 s of the 4.4 s total; the first fit (R² 0.05,
    load average 4.5) had averaged such pauses into its intercept."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.samples: list[tuple[int, int, float]] = []

    def schedule(self, view: SchedulerView) -> BatchPlan:
        t0 = time.thread_time()
        plan = self.inner.schedule(view)
        self.samples.append((len(view.waiting), len(view.running), time.thread_time() - t0))
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


def _lstsq(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares coefficients (a cost never falls with queue length: a tiny negative slope is noise, clipped
    to 0) and R²."""
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    coef = np.maximum(coef, 0.0)
    ss_res = float(((y - x @ coef) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return coef, 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0


def fit(samples: np.ndarray) -> dict[str, Any]:
    """Two regimes: calls with work waiting (``a + b·w + c·r``) and calls with nothing waiting (``idle``: ``a + c·r``),
    each without its slowest 1% of calls. One line through both priced slos-serve's decode-only calls at 10–19× what
    they cost (docs/simulator.md "schedule() time is charged")."""
    busy_all, idle_all = samples[samples[:, 0] > 0], samples[samples[:, 0] == 0]
    if len(busy_all) < 10 or len(idle_all) < 10:
        raise SystemExit(f"too few calls to fit both regimes ({len(busy_all)} with work waiting, {len(idle_all)} "
                         "with nothing waiting): add runs to RUNS")
    busy = busy_all[busy_all[:, 2] <= np.quantile(busy_all[:, 2], 0.99)]
    idle = idle_all[idle_all[:, 2] <= np.quantile(idle_all[:, 2], 0.99)]
    w, r, y = busy[:, 0], busy[:, 1], busy[:, 2]
    coef, r2 = _lstsq(np.column_stack([np.ones_like(w), w, r]), y)
    icoef, ir2 = _lstsq(np.column_stack([np.ones(len(idle)), idle[:, 1]]), idle[:, 2])
    return {"a": float(coef[0]), "b": float(coef[1]), "c": float(coef[2]), "r2": r2, "calls": len(busy),
            "mean_s": float(y.mean()), "p99_s": float(np.quantile(busy_all[:, 2], 0.99)),
            "max_waiting": int(samples[:, 0].max()), "max_running": int(samples[:, 1].max()),
            "idle": {"a": float(icoef[0]), "c": float(icoef[1]), "r2": ir2, "calls": len(idle),
                     "mean_s": float(idle[:, 2].mean()), "p99_s": float(np.quantile(idle_all[:, 2], 0.99))}}


def _machine() -> dict[str, Any]:
    return {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
                       f"{platform.release()}, Python {platform.python_version()}",
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def _default(policies: dict[str, Any]) -> dict[str, Any]:
    """Element-wise maximum over the fitted policies, per regime (a policy without an idle fit counts with its
    one formula at w = 0)."""
    out: dict[str, Any] = {k: max(p[k] for p in policies.values()) for k in ("a", "b", "c", "max_waiting",
                                                                              "max_running")}
    idle = [p.get("idle") or {"a": p["a"], "c": p["c"]} for p in policies.values()]
    out["idle"] = {k: max(i[k] for i in idle) for k in ("a", "c")}
    return out | {"note": "element-wise maximum of the fitted policies (coefficients of each regime and fitted queue "
                          "lengths): a policy not in this file"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="print the fit, do not write the file")
    ap.add_argument("--policies", default="", help="comma-separated registry policies to refit; the others keep "
                                                    "their entries (and the machine and date they were fitted on)")
    args = ap.parse_args()
    names = [n.strip() for n in args.policies.split(",") if n.strip()] or list(SCHEDULERS)
    unknown = [n for n in names if n not in SCHEDULERS]
    if unknown:
        ap.error(f"--policies: unknown {', '.join(unknown)}; choose from {', '.join(SCHEDULERS)}")
    old = json.loads(SCHEDULE_COST_FILE.read_text()) if SCHEDULE_COST_FILE.exists() else {}
    policies: dict[str, Any] = {}
    for name, entry in (old.get("policies") or {}).items():  # kept entries carry where they were fitted
        if name in SCHEDULERS and name not in names:
            fitted = entry.get("fitted") or {k: old.get(k) for k in ("machine", "date", "load_average")} | {
                "timer": "wall (time.perf_counter)"}  # how the first fits (2026-12-01) timed their calls
            policies[name] = {"fitted": fitted} | {k: v for k, v in entry.items() if k != "fitted"}
    for name in names:
        t0 = time.perf_counter()
        here = _machine() | {"timer": "thread CPU (time.thread_time)"}
        p = policies[name] = fit(measure(name)) | {"fitted": here}
        i = p["idle"]
        print(f"{name:11s} waiting: a={p['a'] * 1e6:8.2f} µs  b={p['b'] * 1e6:7.3f} µs/waiting  c={p['c'] * 1e6:7.3f} "
              f"µs/running  R²={p['r2']:.3f}  calls={p['calls']} (mean {p['mean_s'] * 1e6:.1f} µs) | nothing waiting: "
              f"a={i['a'] * 1e6:8.2f} µs  c={i['c'] * 1e6:7.3f} µs/running  R²={i['r2']:.3f}  calls={i['calls']} "
              f"(mean {i['mean_s'] * 1e6:.1f} µs)  ({time.perf_counter() - t0:.0f} s, load {here['load_average']:.1f})",
              flush=True)
    policies = {n: policies[n] for n in SCHEDULERS if n in policies}
    out = {
        "model": "cost_s = a + b * len(waiting) + c * len(running) with work waiting; idle.a + idle.c * len(running) "
                 "with nothing waiting (an entry without idle: the first formula for both)",
        "script": "scripts/fit_schedule_cost.py",
        **_machine(),  # this write; each policy's "fitted" says where its own coefficients were measured
        "runs": [{"workload": wl, "rate_rps": rate, "num_requests": n} for wl, rate, n in RUNS],
        "policies": policies,
        "default": _default(policies),
    }
    if args.dry_run:
        print(json.dumps(out, indent=1))
        return 0
    tmp = SCHEDULE_COST_FILE.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(SCHEDULE_COST_FILE)
    print(f"wrote {SCHEDULE_COST_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
