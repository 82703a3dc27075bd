"""How long must a capacity probe be? Attainment vs probe length at each policy's capacity (issue 10).

For every (workload, policy) at a fixed rate (by default the capacity `compare` reported with 600-request
probes before the steady-state changes), run probes of 600 … 9600 expected requests (sized by duration:
``duration = N / rate``), with the first ``--warmup`` share of the duration excluded, and print the
measured-window attainment, the all-requests attainment, and the validity verdict of each. The default
probe length is where the answer stops moving (within ~1 point).

    python scripts/probe_length_study.py --workloads coding,chatbot --policies vllm,slos-serve -j 2
    python scripts/probe_length_study.py --rate chatbot:vllm=10.28 --lengths 600,2400

Uses the library (`cluster.run.run_once`, `capacity.execute.probe_result`), never the CLI.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

# Capacities (req/s) `slobench compare` reported with 600-request probes, no warm-up (issue 10).
BEFORE = {
    ("chatbot", "vllm"): 10.3, ("chatbot", "slos-serve"): 26.9,
    ("coding", "vllm"): 4.4, ("coding", "slos-serve"): 14.0,
    ("reasoning", "vllm"): 1.0, ("reasoning", "slos-serve"): 1.12,
    ("toolcalling", "vllm"): 1.65, ("toolcalling", "slos-serve"): 8.31,
    ("summarization", "vllm"): 4.67, ("summarization", "slos-serve"): 8.31,
    ("mixed", "vllm"): 5.99, ("mixed", "slos-serve"): 15.7,
}


def one(task: tuple[str, str, float, int, int, float]) -> dict[str, object]:
    """One probe: (workload, policy, rate, expected requests, seed, warm-up share) → its row."""
    from slobench.capacity.execute import probe_result
    from slobench.capacity.search import ValidityLimits, make_probe
    from slobench.cluster.run import run_once, validate_config
    from slobench.metrics.attainment import summarize

    wl, pol, rate, n, seed, warm = task
    duration = n / rate
    cfg = validate_config(workload=wl, scheduler=pol, rate_rps=rate, seed=seed, duration_s=duration,
                          warmup_s=warm * duration)
    t0 = time.perf_counter()
    res = run_once(cfg)
    wall = time.perf_counter() - t0
    p = make_probe(rate, seed, probe_result(res, rate), ValidityLimits())
    everyone = summarize(res.records.drop(columns=["measured"], errors="ignore"))
    ev = p.evidence
    return {"workload": wl, "policy": pol, "rate_rps": rate, "requests": n, "seed": seed,
            "arrivals": ev.get("num_arrivals"), "measured": p.num_requests, "attainment": p.attainment,
            "attainment_all": everyone["attainment"], "valid": p.valid, "reason": p.reason,
            "backlog_growth": ev.get("backlog_growth"), "backlog_arrivals": ev.get("backlog_arrivals"),
            "drain_ratio": ev.get("drain_ratio"), "offered_tok_s": ev.get("offered_tok_s"),
            "ceiling_tok_s": ev.get("ceiling_tok_s"), "wall_s": wall}


def _rates(items: list[str]) -> dict[tuple[str, str], float]:
    out = dict(BEFORE)
    for item in items:
        key, sep, value = item.partition("=")
        wl, sep2, pol = key.partition(":")
        if not sep or not sep2:
            sys.exit(f"--rate: expected WORKLOAD:POLICY=RATE, got {item!r}")
        try:
            out[(wl, pol)] = float(value)
        except ValueError:
            sys.exit(f"--rate: {value!r} is not a number (in {item!r})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="chatbot,coding,reasoning,toolcalling,summarization,mixed")
    ap.add_argument("--policies", default="vllm,slos-serve")
    ap.add_argument("--lengths", default="600,1200,2400,4800,9600", help="expected requests per probe")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--warmup", type=float, default=0.1, help="share of the probe's duration excluded")
    ap.add_argument("--rate", action="append", default=[], help="WORKLOAD:POLICY=RATE (repeatable)")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("results/probe_length_study.csv"))
    a = ap.parse_args(argv)
    if not 0 <= a.warmup < 0.9:
        sys.exit(f"--warmup: must be in [0, 0.9), got {a.warmup}")
    if a.jobs < 1:
        sys.exit(f"--jobs: must be ≥ 1, got {a.jobs}")
    try:
        lengths = [int(x) for x in a.lengths.split(",")]
        seeds = [int(x) for x in a.seeds.split(",")]
    except ValueError:
        sys.exit("--lengths/--seeds: comma-separated integers")
    rates = _rates(a.rate)
    tasks = []
    for wl in a.workloads.split(","):
        for pol in a.policies.split(","):
            if (wl, pol) not in rates:
                sys.exit(f"no rate for {wl} × {pol}; give --rate {wl}:{pol}=R")
            tasks += [(wl, pol, rates[(wl, pol)], n, s, a.warmup) for n in lengths for s in seeds]
    rows = []
    if a.jobs == 1:
        for t in tasks:
            rows.append(one(t))
            _line(rows[-1])
    else:
        with ProcessPoolExecutor(a.jobs) as pool:
            for r in pool.map(one, tasks):
                rows.append(r)
                _line(r)
    df = pd.DataFrame(rows)
    from slobench.report.results import atomic_target

    a.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(a.out) as tmp:
        df.to_csv(tmp, index=False)
    piv = df.groupby(["workload", "policy", "rate_rps", "requests"])["attainment"].mean().unstack("requests")
    print("\nmeasured-window attainment (%), mean over seeds; * = some seed INVALID")
    bad = df[~df["valid"]].groupby(["workload", "policy", "rate_rps", "requests"]).size()
    text = (piv * 100).round(1).astype(str)
    for idx in bad.index:
        text.loc[idx[:3], idx[3]] += "*"
    print(text.to_string())
    print(f"written: {a.out}")
    return 0


def _line(r: dict[str, object]) -> None:
    mark = "" if r["valid"] else f"  INVALID: {r['reason']}"
    print(f"{r['workload']:>13} {r['policy']:>10} {r['rate_rps']:>6g} n={r['requests']:>5} seed {r['seed']}: "
          f"{r['attainment']:.1%} (all {r['attainment_all']:.1%}, {r['measured']} measured) "
          f"growth {r['backlog_growth']:.0f}/{r['backlog_arrivals']} drain {r['drain_ratio'] or 0:.2f} "
          f"tok/s {r['offered_tok_s'] or 0:,.0f}/{r['ceiling_tok_s'] or 0:,.0f} [{r['wall_s']:.1f} s]{mark}",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
