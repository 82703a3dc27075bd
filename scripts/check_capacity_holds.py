"""Does a capacity `compare` reports hold in a 10× longer run? (issue 10, "Done means")

For every policy and workload: search capacity exactly as `slobench compare` does with its defaults
(`capacity.plan.run_kwargs` / `search_settings`, the same `run_search`, hold check included), then run once at
that rate with ``--factor`` × the probe's measured span (so ≈ factor × its requests; the same warm-up excluded)
and check that the long run still attains at least the target minus 2 points. Prints a table and exits 1 when
any capacity does not hold (2 on bad options). The long run uses the search's seed unless ``--long-seed`` is
given; with the same seed its first 40% are the search's 4× hold probe, so ``--long-seed 1`` is the stricter
check.

    python scripts/check_capacity_holds.py --workloads coding,chatbot -j 2
    python scripts/check_capacity_holds.py --policies vllm,slos-serve --num-requests 1200
    python scripts/check_capacity_holds.py --profile paper:toolllama-7b-a100 --workloads toolcalling

Uses the library (capacity, cluster), never the CLI.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

ALL_WORKLOADS = "chatbot,coding,reasoning,toolcalling,summarization,mixed"
ALL_POLICIES = "vllm,vllm-v0,sarathi,slos-serve"


def check(task: tuple[str, str, int | None, float, float, int, int | None, int | None, float | None, str | None],
          ) -> dict[str, Any]:
    """Search capacity as compare does, then run ``factor`` × longer at it; one table row."""
    from slobench.capacity.execute import hold_verdict, long_run, run_search
    from slobench.capacity.plan import SearchSpec, run_kwargs, search_settings

    wl, pol, n, target, factor, seed, confirm, long_seed, hold, profile = task
    t0 = time.perf_counter()
    kw = run_kwargs(hardware="H100-SXM", model="Llama-3.1-8B", tp=1, profile=profile, replicas=1, engine="sim",
                    num_requests=n, quick=False)
    spec = SearchSpec(wl, pol, kw | {"workload": wl})
    settings = search_settings(target, [seed], False, 1.0, 0.05, 1024.0, False, confirm, hold)
    res = run_search(spec, settings)
    assert res is not None
    row: dict[str, Any] = {"workload": wl, "policy": pol, "capacity_rps": res.capacity_rps, "status": res.status,
                           "probes": len(res.probes), "notes": "; ".join(res.notes)}
    if res.capacity_rps is None or res.status != "ok":
        return row | {"pass": False, "why": f"no capacity ({res.status})", "wall_s": time.perf_counter() - t0}
    at = [p for p in res.probes if p.rate_rps == res.capacity_rps and p.span_factor == 1] or \
        [p for p in res.probes if p.rate_rps == res.capacity_rps]
    row |= {"probe_attainment": at[0].attainment, "probe_requests": at[0].num_requests}
    # the long run: the same warm-up, a measured span factor× longer; with --long-seed another arrival sequence,
    # so the check does not share its first requests with the search's hold probe
    _, p = long_run(spec.config(res.capacity_rps, seed if long_seed is None else long_seed), factor)
    holds, why = hold_verdict(p, target)
    return row | {"long_attainment": p.attainment, "long_requests": p.num_requests, "long_valid": p.valid,
                  "pass": holds, "why": why, "wall_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=ALL_WORKLOADS, help="comma-separated (default: all shipped)")
    ap.add_argument("--policies", default=ALL_POLICIES, help="comma-separated (default: all four)")
    ap.add_argument("--num-requests", type=int, default=None, help="probe size (default: compare's)")
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--factor", type=float, default=10.0, help="long run = factor × the probe's duration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--confirm", type=int, default=None, help="as compare's --confirm (default: compare's)")
    ap.add_argument("--hold", type=float, default=None, help="as compare's --hold (default: compare's, 4)")
    ap.add_argument("--long-seed", type=int, default=None,
                    help="seed of the long run (default: --seed, whose first requests the hold probe shares)")
    ap.add_argument("--profile", default=None,
                    help="latency profile, as compare's --profile (e.g. paper:opt-13b-a100-tp2; default: H100)")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="(workload, policy) checks run in parallel")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    a = ap.parse_args(argv)
    from slobench.schedulers.registry import scheduler_names
    from slobench.workloads import load_spec

    def fail(msg: str) -> int:
        print(f"error: {msg}", file=sys.stderr)
        return 2

    wls = [w.strip() for w in a.workloads.split(",") if w.strip()]
    pols = [p.strip() for p in a.policies.split(",") if p.strip()]
    if not wls or not pols:
        return fail("--workloads and --policies need at least one name each")
    bad = [p for p in pols if p not in scheduler_names()]
    if bad:
        return fail(f"--policies: unknown {bad[0]!r}; known: {', '.join(scheduler_names())}")
    for w in wls:
        try:
            load_spec(w)
        except Exception as exc:  # noqa: BLE001 - one line, whatever the loader raised
            return fail(f"--workloads: {exc}")
    if a.jobs < 1 or a.factor < 1 or not 0 < a.target <= 1 or (a.num_requests is not None and a.num_requests < 10):
        return fail("need -j ≥ 1, --factor ≥ 1, --target in (0, 1], --num-requests ≥ 10")
    if a.profile is not None:
        from slobench.perf import get_latency_model

        try:
            get_latency_model(profile=a.profile)
        except Exception as exc:  # noqa: BLE001 - one line, whatever the loader raised
            return fail(f"--profile: {exc}")
    tasks = [(w, p, a.num_requests, a.target, a.factor, a.seed, a.confirm, a.long_seed, a.hold, a.profile)
             for w in wls for p in pols]
    rows: list[dict[str, Any]] = []
    if a.jobs == 1:
        for t in tasks:
            rows.append(check(t))
            _line(rows[-1], a.factor)
    else:
        with ProcessPoolExecutor(min(a.jobs, len(tasks))) as pool:
            for r in pool.map(check, tasks):
                rows.append(r)
                _line(r, a.factor)
    df = pd.DataFrame(rows)
    print()
    print(f"{'workload':<14}{'policy':<12}{'capacity':>9}{'probe att.':>12}{f'{a.factor:g}× att.':>10}  result")
    for r in rows:
        cap = "–" if r.get("capacity_rps") is None else f"{r['capacity_rps']:.3g}"
        pa = f"{r['probe_attainment']:.1%}" if "probe_attainment" in r else "–"
        la = f"{r['long_attainment']:.1%}" if "long_attainment" in r else "–"
        verdict = "pass" if r["pass"] else f"FAIL ({r['why']})"
        if r["pass"] and r.get("why"):
            verdict += f" ({r['why']})"
        print(f"{r['workload']:<14}{r['policy']:<12}{cap:>9}{pa:>12}{la:>10}  {verdict}")
    if a.out is not None:
        from slobench.report.results import atomic_target

        a.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_target(a.out) as tmp:
            df.to_csv(tmp, index=False)
        print(f"written: {a.out}")
    failed = int((~df["pass"]).sum())
    print(f"{len(rows) - failed} of {len(rows)} capacities hold ({a.factor:g}× attainment ≥ target − 2 points)")
    return 1 if failed else 0


def _line(r: dict[str, Any], factor: float) -> None:
    la = f"{r['long_attainment']:.1%}" if "long_attainment" in r else "–"
    print(f"{r['workload']} × {r['policy']}: capacity {r.get('capacity_rps')} req/s, {la} over "
          f"{r.get('long_requests', '–')} requests at {factor:g}× ({'pass' if r['pass'] else 'FAIL'}) "
          f"[{r.get('wall_s', 0):.0f} s]", flush=True)


if __name__ == "__main__":
    sys.exit(main())
