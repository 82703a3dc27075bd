"""Fingerprints of simulated runs, to prove a simulator speed-up changed no result.

Every setup (each scheduler × chatbot/coding/reasoning/toolcalling, speculation, replicas, an
overloaded replica that preempts) is run with `run_once`; its records frame, iteration log and
summary (less the wall-clock fields) are hashed with every float written by ``repr`` (exact), so a
change in the last bit of any token timestamp changes the hash. ``tests/test_sim_identity.py``
compares against ``tests/data/sim_fingerprints.json``; this script rewrites that file (``--write``,
only on purpose: the stored file is the reference the simulator must keep matching) or prints
which setups differ.

    python scripts/sim_identity_check.py            # compare with the stored fingerprints
    python scripts/sim_identity_check.py --write    # store the current code's fingerprints
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

STORE = Path(__file__).resolve().parent.parent / "tests" / "data" / "sim_fingerprints.json"

SCHEDULERS = ("vllm", "vllm-v0", "sarathi", "slos-serve")
WORKLOADS = ("chatbot", "coding", "reasoning", "toolcalling")


def setups() -> dict[str, dict[str, Any]]:
    """Name → `validate_config` keyword arguments."""
    out: dict[str, dict[str, Any]] = {}
    for sched in SCHEDULERS:
        for wl in WORKLOADS:
            n = 60 if wl == "reasoning" else 200  # reasoning: ~200 iterations per request
            out[f"{sched}/{wl}"] = {"workload": wl, "scheduler": sched, "num_requests": n, "seed": 1}
        out[f"{sched}/chatbot/spec"] = {"workload": "chatbot", "scheduler": sched, "num_requests": 200, "seed": 2,
                                        "spec_alpha": 0.7}
    out["vllm/coding/replicas2"] = {"workload": "coding", "scheduler": "vllm", "num_requests": 300, "seed": 3,
                                    "replicas": 2}
    out["slos-serve/chatbot/replicas2"] = {"workload": "chatbot", "scheduler": "slos-serve", "num_requests": 300,
                                           "seed": 3, "replicas": 2}
    # Overload on a 70B model (little KV): long queues, KV-bound batches and recompute preemptions.
    for sched in ("vllm", "vllm-v0", "sarathi"):
        out[f"{sched}/coding/overload-70b"] = {"workload": "coding", "scheduler": sched, "num_requests": 200,
                                               "seed": 4, "rate_rps": 40.0, "model": "Llama-3.1-70B", "tp": 2}
    out["vllm/chatbot/overload-70b-spec"] = {"workload": "chatbot", "scheduler": "vllm", "num_requests": 200,
                                             "seed": 5, "rate_rps": 40.0, "model": "Llama-3.1-70B", "tp": 2,
                                             "spec_alpha": 0.7}
    # KV runs out while every running sequence decodes (long reasoning outputs on a 70B): preemptions with an
    # empty queue, and stage ends and tool gaps under memory pressure.
    for sched in ("vllm", "vllm-v0", "sarathi"):
        out[f"{sched}/reasoning/kv-bound-70b"] = {"workload": "reasoning", "scheduler": sched, "num_requests": 40,
                                                  "seed": 6, "rate_rps": 5.0, "model": "Llama-3.1-70B", "tp": 2}
    out["vllm/toolcalling/kv-bound-70b"] = {"workload": "toolcalling", "scheduler": "vllm", "num_requests": 100,
                                            "seed": 6, "rate_rps": 20.0, "model": "Llama-3.1-70B", "tp": 2}
    # slos-serve's decode-only windows (`steady_replay`): light load (long windows), a model the ground truth
    # runs 10% slower with 20% noise (latency feedback scales the plans), and two replicas behind SLOs-Serve's
    # router.
    out["slos-serve/coding/light"] = {"workload": "coding", "scheduler": "slos-serve", "num_requests": 300,
                                      "seed": 7, "rate_rps": 2.0}
    out["slos-serve/chatbot/biased"] = {"workload": "chatbot", "scheduler": "slos-serve", "num_requests": 300,
                                        "seed": 8, "truth_bias": 0.1, "truth_noise_cv": 0.2}
    out["slos-serve/mixed/slo-aware2"] = {"workload": "mixed", "scheduler": "slos-serve", "num_requests": 300,
                                          "seed": 9, "replicas": 2, "router": "slo-aware"}
    return out


def _canon(value: Any) -> Any:
    """Floats as exact repr strings (NaN included), containers recursively, enums as their words."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _canon(value.tolist())
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(_canon(obj), sort_keys=True).encode()).hexdigest()


def fingerprint(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Hashes of one run's records, iterations and summary, plus a few readable counts."""
    from slobench.cluster.run import run_once, validate_config

    res = run_once(validate_config(**kwargs))
    records = {col: res.records[col].tolist() for col in res.records.columns}
    iterations = {col: res.iterations[col].tolist() for col in res.iterations.columns}
    summary = res.summary.model_dump()
    summary.pop("wall_s", None)
    stats = summary.get("scheduler_stats")
    if isinstance(stats, dict):
        stats.pop("overhead_ms", None)  # wall-clock; the call count stays
        # How many iterations the simulator ran on a steady-decode decision: a diagnostic of the shortcut
        # itself (absent from the reference commit), not a result of the run.
        stats.pop("steady_iterations", None)
    preemptions = int(res.records["num_preemptions"].sum()) if "num_preemptions" in res.records else 0
    return {
        "records": _digest(records), "iterations": _digest(iterations), "summary": _digest(summary),
        "num_iterations": len(res.iterations), "preemptions": preemptions,
        "attainment": None if math.isnan(res.summary.attainment) else round(res.summary.attainment, 6),
    }


def compute(names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    all_setups = setups()
    return {name: fingerprint(all_setups[name]) for name in (names or list(all_setups))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="store the current fingerprints as the reference")
    ap.add_argument("names", nargs="*", help="setups to check (default: all)")
    args = ap.parse_args()
    got = compute(args.names or None)
    if args.write:
        STORE.parent.mkdir(parents=True, exist_ok=True)
        STORE.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(got)} fingerprints to {STORE}")
        return 0
    want = json.loads(STORE.read_text())
    bad = [name for name, fp in got.items() if want.get(name) != fp]
    for name in got:
        print(f"{'DIFF' if name in bad else 'ok  '} {name}: {got[name]['num_iterations']} iterations, "
              f"{got[name]['preemptions']} preemptions")
    print(f"{len(got) - len(bad)}/{len(got)} identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
