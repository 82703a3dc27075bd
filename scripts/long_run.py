"""One long run at a fixed rate, sized like a capacity probe: does this rate hold beyond the probe's length?

The probe is built exactly as `slobench compare` builds one (`capacity.plan.run_kwargs` defaults), then its
measured span is stretched ``--factor`` times; any `RunConfig` key can be overridden with ``--set KEY=VALUE``
(e.g. ``schedule_cost=off`` to see what the charged `schedule()` time does). Prints the measured window's
attainment, unfinished requests and the charged schedule time, and the probe's validity verdict.

    python scripts/long_run.py mixed slos-serve 16.6281 --factor 5 --set schedule_cost=off

Uses the library (capacity, cluster), never the CLI.
"""

from __future__ import annotations

import argparse
import sys

import yaml


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload")
    ap.add_argument("policy")
    ap.add_argument("rate", type=float)
    ap.add_argument("--factor", type=float, default=10.0, help="measured span = factor × the probe's (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="RunConfig override")
    args = ap.parse_args(argv)
    from slobench.capacity.execute import probe_result
    from slobench.capacity.plan import SearchSpec, run_kwargs, stretched
    from slobench.capacity.search import ValidityLimits, make_probe
    from slobench.cluster.run import run_once
    from slobench.errors import UserError

    try:
        extra = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise UserError(f"--set: expected KEY=VALUE, got {item!r}")
            extra[key.strip()] = yaml.safe_load(value)
        kw = run_kwargs(hardware="H100-SXM", model="Llama-3.1-8B", tp=1, profile=None, replicas=1, engine="sim",
                        num_requests=None, quick=False)
        cfg = SearchSpec(args.workload, args.policy, kw | {"workload": args.workload} | extra).config(args.rate,
                                                                                                     args.seed)
        cfg = stretched(cfg, args.factor)
        res = run_once(cfg)
    except UserError as exc:
        print(f"error: {exc}")
        return 2
    p = make_probe(args.rate, args.seed, probe_result(res, args.rate), ValidityLimits())
    it = res.iterations
    sched = it["schedule_s"] if "schedule_s" in it else None
    print(f"{args.workload} × {args.policy} at {args.rate:g} req/s, {args.factor:g}× a probe "
          f"({cfg.duration_s:.0f} s simulated): attainment {p.attainment:.1%} of {p.num_requests} measured requests, "
          f"{p.unfinished} unfinished" + (f", schedule() {sched.mean() * 1e3:.2f} ms mean / {sched.max() * 1e3:.1f} ms "
                                          "max per iteration" if sched is not None else ""))
    print("valid" if p.valid else f"INVALID: {p.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
