"""Capacity per replica for replicas × routers × policies × workloads: does routing make replicas scale?

For each point, a capacity search exactly as `slobench capacity` runs one (`capacity.plan.run_kwargs`,
`capacity.execute.run_search`: same grid, seeds, probe sizing, validity checks), with ``--replicas R
--router NAME --router-refresh-ms MS``. One replica needs no router, so R = 1 is searched once per policy and
workload and shown in every router's row. Writes, into ``--out``:

- ``router_scaling.csv``: one row per search (capacity, its interval, capacity per replica, status, wall time);
  rows are appended as searches finish and a rerun skips every point already in the file (resumable,
  incremental: widen ``--replicas`` or ``--routers`` and only the new points run);
- ``router_scaling.md``: per workload × policy, capacity per replica (req/s) for each router and replica count,
  with the share of ideal linear scaling (capacity(R) / (R · capacity(1))).

The full grid (4 replica counts × 5 routers × 2 policies × 3 workloads) is hours of CPU; ``--quick`` is the
smoke-sized version (1 and 2 replicas, chatbot only, 200-request probes, a 5% grid):

    python scripts/router_scaling.py --quick --out results/router-scaling-quick
    python scripts/router_scaling.py --refresh-ms 0,100 --out results/router-scaling   # the benchmark

``--holds FACTOR`` checks the measured capacities instead of searching: for each point already in the CSV
(within the filters), one run at its capacity with FACTOR × the probe's measured span (the same warm-up) and
another arrival seed (1; the search used 0), as ``scripts/check_capacity_holds.py`` does for one replica. It
passes when the long run attains at least the target minus 2 points. Rows go to ``router_holds.csv`` (resumable
like the search rows) and a table to ``router_holds.md``:

    python scripts/router_scaling.py --num-requests 400 --out results/router-scaling --holds 10 \
        --policies slos-serve --routers slo-aware,round-robin --replicas 2,4

Uses the library (capacity, cluster), never the CLI.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path
from typing import Any

FIELDS = ["workload", "policy", "router", "replicas", "refresh_ms", "capacity_rps", "capacity_per_replica_rps",
          "lower_rps", "upper_rps", "status", "probes", "wall_s"]
KEY = ("workload", "policy", "router", "replicas", "refresh_ms")
HOLD_FIELDS = [*KEY, "capacity_rps", "factor", "long_seed", "long_requests", "long_attainment", "long_valid",
               "passed", "why", "wall_s"]
LONG_SEED = 1  # the hold run's arrivals: not the search's seed 0, so it shares no request with its probes
SINGLE = "(one replica)"  # the router column of R = 1 rows: no routing happens


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in KEY)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows already measured (none when the file does not exist yet)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, row: dict[str, Any], fields: list[str] = FIELDS) -> None:
    """Add one finished search (or hold check) to the CSV at once, so an interrupted run keeps it."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow(row)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, so a run stopped mid-write leaves the old table whole."""
    from slobench.report.results import atomic_target

    with atomic_target(path) as tmp:
        tmp.write_text(text)


def _spec(workload: str, policy: str, router: str, replicas: int, refresh_ms: float, args: argparse.Namespace
          ) -> Any:
    """The `SearchSpec` of one point, as `slobench capacity --replicas R --router NAME` builds it."""
    from slobench.capacity.plan import SearchSpec, run_kwargs

    kw = run_kwargs(hardware=args.hardware, model=args.model, tp=1, profile=args.profile, replicas=replicas,
                    engine="sim", num_requests=args.num_requests, quick=args.quick,
                    routing={"router": router if replicas > 1 else "round-robin", "router_refresh_ms": refresh_ms,
                             "max_concurrency": None})
    return SearchSpec(workload, policy, kw | {"workload": workload})


def search(workload: str, policy: str, router: str, replicas: int, refresh_ms: float, args: argparse.Namespace
           ) -> dict[str, Any]:
    """One capacity search, as `slobench capacity --replicas R --router NAME` would run it."""
    from slobench.capacity.execute import run_search
    from slobench.capacity.plan import search_settings

    settings = search_settings(args.target, [0], args.quick, args.rate_start * replicas, 0.05, 1024.0, None)
    t0 = time.perf_counter()
    res = run_search(_spec(workload, policy, router, replicas, refresh_ms, args), settings)
    assert res is not None
    cap = res.capacity_rps
    return {"workload": workload, "policy": policy, "router": router if replicas > 1 else SINGLE,
            "replicas": replicas, "refresh_ms": f"{refresh_ms:g}", "capacity_rps": cap,
            "capacity_per_replica_rps": cap / replicas if cap is not None else None,
            "lower_rps": res.lower_rps, "upper_rps": res.upper_rps, "status": res.status,
            "probes": len(res.probes), "wall_s": round(time.perf_counter() - t0, 1)}


def hold_check(row: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """Run one measured point's capacity ``args.holds`` × longer (seed `LONG_SEED`): does it still attain the
    target minus 2 points?"""
    from slobench.capacity.execute import hold_verdict, long_run

    n = int(row["replicas"])
    cap = float(row["capacity_rps"])
    router = row["router"] if n > 1 else "round-robin"
    spec = _spec(row["workload"], row["policy"], router, n, float(row["refresh_ms"]), args)
    t0 = time.perf_counter()
    _, p = long_run(spec.config(cap, LONG_SEED), args.holds)
    passed, why = hold_verdict(p, args.target)
    return {**{k: row[k] for k in KEY}, "capacity_rps": cap, "factor": f"{args.holds:g}", "long_seed": LONG_SEED,
            "long_requests": p.num_requests, "long_attainment": round(p.attainment, 4), "long_valid": p.valid,
            "passed": passed, "why": why, "wall_s": round(time.perf_counter() - t0, 1)}


def holds_markdown(rows: list[dict[str, str]]) -> str:
    """The hold checks as one table."""
    out = ["# Do the capacities hold? (a run FACTOR × the probe's span at each capacity, another seed)", "",
           "| workload | policy | router | R | refresh (ms) | capacity (req/s) | factor | requests | attainment "
           "| holds |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["workload"], r["policy"], int(r["replicas"]), r["router"],
                                         float(r["refresh_ms"]))):
        verdict = "yes" if r["passed"] == "True" else f"**no** ({r['why']})"
        if r["passed"] == "True" and r.get("why"):
            verdict += f" ({r['why']})"  # it attained the target, and a validity check says what else it saw
        out.append(f"| {r['workload']} | {r['policy']} | {r['router']} | {r['replicas']} | "
                   f"{float(r['refresh_ms']):g} | {float(r['capacity_rps']):.2f} | {r['factor']}× | "
                   f"{r['long_requests']} | {float(r['long_attainment']):.1%} | {verdict} |")
    held = sum(r["passed"] == "True" for r in rows)
    return "\n".join([*out, "", f"{held} of {len(rows)} capacities hold.", ""])


def run_holds(args: argparse.Namespace, points: list[tuple[str, str, str, int, float]]) -> int:
    """``--holds``: check every point of ``points`` that the CSV has a capacity for (resumable)."""
    rows = {_key(r): r for r in read_rows(args.out / "router_scaling.csv")}
    path, md = args.out / "router_holds.csv", args.out / "router_holds.md"
    done = {_key(r) for r in read_rows(path)}
    for wl, pol, router, n, ms in points:
        key = _key({"workload": wl, "policy": pol, "router": router, "replicas": n, "refresh_ms": f"{ms:g}"})
        row = rows.get(key)
        if key in done or row is None or _number(row["capacity_rps"]) is None or row["status"] != "ok":
            continue
        hold = hold_check(row, args)
        append_row(path, hold, HOLD_FIELDS)
        done.add(key)
        print(f"{wl} × {pol} × {router} × {n} replicas at {hold['capacity_rps']:.2f} req/s, {args.holds:g}× "
              f"longer: {hold['long_attainment']:.1%} of {hold['long_requests']} requests "
              f"({'holds' if hold['passed'] else 'FAILS: ' + hold['why']}, {hold['wall_s']} s)", flush=True)
        write_text_atomic(md, holds_markdown(read_rows(path)))
    if path.exists():
        write_text_atomic(md, holds_markdown(read_rows(path)))
        print(f"wrote {path} and {md}")
    else:
        print("no measured point matched the filters: nothing to check")
    return 0


def _number(v: str) -> float | None:
    """A CSV cell as a number; None where the search found no bound (written empty, None or nan)."""
    return float(v) if v not in ("", "None", "nan") else None


def _interval(row: dict[str, str]) -> str:
    """The search's interval of the total capacity, [highest confident pass, lowest confident fail), req/s."""
    def fmt(v: str) -> str:
        x = _number(v)
        return f"{x:.1f}" if x is not None else "–"
    return f" [{fmt(row['lower_rps'])}, {fmt(row['upper_rps'])})"


def _cell(rows: list[dict[str, str]], wl: str, pol: str, router: str, n: int, refresh: str = "100"
          ) -> dict[str, str] | None:
    """The row of one point (R = 1: the router-less row, whatever router and refresh are asked), or None when
    it was not measured. Its ``capacity_rps`` is empty when the search found none."""
    for r in rows:
        if (r["workload"], r["policy"], int(r["replicas"])) == (wl, pol, n) and (
                n == 1 or (r["router"], r["refresh_ms"]) == (router, refresh)):
            return r
    return None


def markdown(rows: list[dict[str, str]]) -> str:
    """Capacity per replica per router and replica count, with the share of ideal linear scaling."""
    out = ["# Capacity per replica (req/s) by router", "",
           "Share of ideal linear scaling in round brackets: capacity(R) / (R · capacity(1)); in square brackets the "
           "search's interval of the total capacity (req/s). R = 1 has no router: its value repeats in every row.",
           ""]
    groups = sorted({(r["workload"], r["policy"]) for r in rows})
    for wl, pol in groups:
        mine = [r for r in rows if r["workload"] == wl and r["policy"] == pol]
        reps = sorted({int(r["replicas"]) for r in mine})
        single = {r["refresh_ms"]: float(r["capacity_rps"]) for r in mine
                  if int(r["replicas"]) == 1 and r["capacity_rps"]}
        routers = sorted({(r["router"], r["refresh_ms"]) for r in mine if r["router"] != SINGLE})
        out += [f"## {wl} × {pol}", "", "| router | refresh ms | " + " | ".join(f"R={n}" for n in reps) + " |",
                "|---|---|" + "---|" * len(reps)]
        for router, refresh in routers or [(SINGLE, next(iter(single), "100"))]:
            cells = []
            for n in reps:
                hit = _cell(mine, wl, pol, router, n, refresh)
                if hit is None or not hit["capacity_rps"]:
                    cells.append("—" if hit is None else f"none ({hit['status']})")
                    continue
                per = float(hit["capacity_per_replica_rps"])
                base = single.get(refresh) or next(iter(single.values()), None)
                cells.append(f"{per:.2f}" + (f" ({per / base:.0%})" if base and n > 1 else "")
                             + _interval(hit))
            out.append(f"| {router} | {refresh} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _with_capacity(row: dict[str, str] | None) -> dict[str, str] | None:
    """``row`` when its search found a capacity, else None."""
    return row if row is not None and row["capacity_rps"] else None


def _overlap(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether two searches' intervals [lower, upper) overlap: their capacities are not told apart. A missing
    lower bound is 0, a missing upper bound ∞."""
    def lo(r: dict[str, str]) -> float:
        x = _number(r["lower_rps"])
        return 0.0 if x is None else x

    def hi(r: dict[str, str]) -> float:
        x = _number(r["upper_rps"])
        return math.inf if x is None else x
    return lo(a) < hi(b) and lo(b) < hi(a)


def verdicts(rows: list[dict[str, str]], routed: str = "slo-aware", others: tuple[str, ...] = (
        "round-robin", "power-of-two"), policy: str = "slos-serve", baseline: tuple[str, str] = ("vllm", "vllm-dp")
             ) -> str:
    """Issue 13's questions, answered from the measured rows.

    1. Over ``policy`` replicas, is ``routed`` ever worse than each of ``others``? "worse" = a lower capacity
       whose interval does not overlap the other's; a lower capacity within overlapping intervals is a tie.
    2. Does the gain of ``policy`` (behind ``routed``) over the baseline (policy, router) grow with R?
    """
    out = [f"## {routed} vs {', '.join(others)} over {policy} replicas", "",
           "Total capacity (req/s) with the search's interval; verdict: *worse* only when lower and the intervals "
           "do not overlap.", "", "| workload | R | " + " | ".join([routed, *others]) + " | verdict |",
           "|---|---|" + "---|" * (len(others) + 2)]
    workloads = sorted({r["workload"] for r in rows if r["policy"] == policy})
    reps = sorted({int(r["replicas"]) for r in rows if r["policy"] == policy and int(r["replicas"]) > 1})
    for wl in workloads:
        for n in reps:
            mine = _with_capacity(_cell(rows, wl, policy, routed, n))
            theirs = [_with_capacity(_cell(rows, wl, policy, o, n)) for o in others]
            if mine is None or all(t is None for t in theirs):
                continue
            cells = [f"{float(c['capacity_rps']):.1f}{_interval(c)}" if c else "—" for c in [mine, *theirs]]
            worse = [o for o, t in zip(others, theirs, strict=True) if t is not None
                     and float(mine["capacity_rps"]) < float(t["capacity_rps"]) and not _overlap(mine, t)]
            better = [o for o, t in zip(others, theirs, strict=True) if t is not None
                      and float(mine["capacity_rps"]) > float(t["capacity_rps"]) and not _overlap(mine, t)]
            verdict = (f"worse than {', '.join(worse)}" if worse else
                       f"better than {', '.join(better)}" if better else "tie (intervals overlap)")
            out.append(f"| {wl} | {n} | " + " | ".join(cells) + f" | {verdict} |")
    base_pol, base_router = baseline
    out += ["", f"## Gain of {policy} ({routed}) over {base_pol} ({base_router}) by replica count", "",
            "| workload | " + " | ".join(f"R={n}" for n in [1, *reps]) + " |", "|---|" + "---|" * (len(reps) + 1)]
    for wl in workloads:
        cells = []
        for n in [1, *reps]:
            a = _with_capacity(_cell(rows, wl, policy, routed, n))
            b = _with_capacity(_cell(rows, wl, base_pol, base_router, n))
            cells.append(f"{float(a['capacity_rps']) / float(b['capacity_rps']):.2f}×" if a and b else "—")
        out.append(f"| {wl} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_markdown(path: Path, rows: list[dict[str, str]]) -> None:
    """The table and the verdicts, rewritten after every search so an interrupted run leaves a whole file."""
    write_text_atomic(path, markdown(rows) + "\n" + verdicts(rows))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", default="1,2,4,8")
    ap.add_argument("--routers", default="round-robin,vllm-dp,power-of-two,prefix-aware,slo-aware")
    ap.add_argument("--policies", default="vllm,slos-serve")
    ap.add_argument("--workloads", default="chatbot,coding,mixed")
    ap.add_argument("--refresh-ms", default="100", help="router stats refresh intervals, e.g. 0,100")
    ap.add_argument("--quick", action="store_true", help="1 and 2 replicas, chatbot, 200-request probes, 5%% grid")
    ap.add_argument("--num-requests", type=int, default=None, help="expected requests per probe and replica")
    ap.add_argument("--rate-start", type=float, default=4.0, help="first rate probed, per replica (req/s)")
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--hardware", default="H100-SXM")
    ap.add_argument("--model", default="Llama-3.1-8B")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--out", type=Path, default=Path("results/router-scaling"))
    ap.add_argument("--holds", type=float, default=None, metavar="FACTOR",
                    help="check the measured capacities with FACTOR × longer runs instead of searching")
    args = ap.parse_args(argv)
    if args.quick:
        args.replicas = "1,2" if args.replicas == "1,2,4,8" else args.replicas
        args.workloads = "chatbot" if args.workloads == "chatbot,coding,mixed" else args.workloads
    from slobench.capacity.plan import check_routers
    from slobench.errors import UserError

    try:
        replicas = [int(n) for n in _split(args.replicas)]
        routers = check_routers(_split(args.routers))  # the same names and message as `compare --routers`
        refreshes = [float(ms) for ms in _split(args.refresh_ms)]
        if any(n < 1 for n in replicas) or any(ms < 0 for ms in refreshes):
            raise UserError("--replicas must be ≥ 1 and --refresh-ms ≥ 0")
        if args.holds is not None and args.holds < 1:
            raise UserError("--holds: the factor must be ≥ 1 (how many probe spans the check runs)")
    except (UserError, ValueError) as exc:
        print(f"error: {exc}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = args.out / "router_scaling.csv", args.out / "router_scaling.md"
    done = {_key(r) for r in read_rows(csv_path)}
    points = [(wl, pol, router, n, ms) for wl in _split(args.workloads) for pol in _split(args.policies)
              for ms in refreshes for n in replicas for router in (routers if n > 1 else [SINGLE])]
    if args.holds is not None:
        return run_holds(args, points)
    for wl, pol, router, n, ms in points:
        key = _key({"workload": wl, "policy": pol, "router": router, "replicas": n, "refresh_ms": f"{ms:g}"})
        if key in done:
            continue
        try:
            row = search(wl, pol, router, n, ms, args)
        except UserError as exc:
            print(f"error: {exc}")
            return 2
        append_row(csv_path, row)
        done.add(key)
        cap = row["capacity_rps"]
        print(f"{wl} × {pol} × {router} × {n} replicas (refresh {ms:g} ms): "
              f"{'none' if cap is None else f'{cap:.2f} req/s'} ({row['status']}, {row['probes']} probes, "
              f"{row['wall_s']} s)", flush=True)
        write_markdown(md_path, read_rows(csv_path))
    write_markdown(md_path, read_rows(csv_path))
    print(f"wrote {csv_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
