"""What the capacity commands show: rich tables, the live search progress, the closing lines.

`SearchProgress` implements `slobench.capacity.execute.SearchObserver` (a line per finished probe,
a bar of requests done for the running one); `print_outcome` turns an `ExecuteOutcome` into the
table and lines `compare` / `capacity` / `sweep` / `resume` print. `bench schedulers` has its own
wide table (`bench_table`).
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from slobench.capacity.bench import BenchRow, ratios
from slobench.capacity.execute import ExecuteOutcome
from slobench.capacity.plan import Plan, SearchSpec
from slobench.capacity.search import CapacityResult, Probe
from slobench.report.probes import CapacityRow, ScalingRow

console = Console()
# The bench table is wide (a column per policy and per ratio): when the output is not a terminal
# (a log file, CI), rich would assume 80 columns and truncate the headers.
wide_console = Console() if sys.stdout.isatty() else Console(width=160)

BASELINES = ("vllm", "vllm-v0", "sarathi")


def time_left_s(elapsed_s: float, total_searches: int, done: Sequence[int], running: Sequence[int],
                prior_probes: float = 10.0) -> float | None:
    """Estimated seconds left of a multi-search command (None until a probe has finished).

    A search's probe count is not known in advance (bracketing and bisection stop when they stop), so each
    search is taken to need as many probes as the finished ones did on average (``prior_probes`` before any
    finished); seconds per probe is what the command has taken so far (with parallel searches that is the
    effective rate). ``done``: probe counts of the finished searches; ``running``: of those under way."""
    per = sum(done) / len(done) if done else prior_probes
    work_done = sum(done) + sum(min(n, max(per - 1, 0)) for n in running)
    if work_done <= 0 or elapsed_s <= 0:
        return None
    total = max(total_searches * per, work_done)
    return (total - work_done) * elapsed_s / work_done


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class SearchProgress:
    """Live rich display: a line per finished probe, a bar (requests done) for the one running, and, when
    the command runs several searches, an overall line with the searches done and an estimate of the time
    left (`time_left_s`)."""

    def __init__(self, out: Console | None = None, *, prior_probes: float = 10.0) -> None:
        self.label = ""
        self.prog = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=out or console, transient=True)
        self.task = self.prog.add_task("starting", total=None)
        self.overall: TaskID | None = None
        self.probes = 0
        self.prior_probes = prior_probes
        self.total_searches = 0
        self.key: tuple[str, str] = ("", "")
        self.running: dict[tuple[str, str], int] = {}  # probes so far of each search under way
        self.done: list[int] = []  # probe counts of the finished searches
        self.started = time.perf_counter()

    def __enter__(self) -> SearchProgress:
        self.prog.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.prog.__exit__(*exc)  # type: ignore[arg-type]

    def overall_text(self) -> str:
        """"overall: 1/4 searches done, 12 probes, 0:40 elapsed, ≈ 2:00 left" (the estimate once a probe is in)."""
        elapsed = time.perf_counter() - self.started
        probes = sum(self.done) + sum(self.running.values())
        left = time_left_s(elapsed, self.total_searches, self.done, list(self.running.values()), self.prior_probes)
        eta = "estimating time left" if left is None else f"≈ {_clock(left)} left"
        return (f"overall: {len(self.done)}/{self.total_searches} searches done, {probes} probes, "
                f"{_clock(elapsed)} elapsed, {eta}")

    def _update_overall(self) -> None:
        if self.total_searches < 2:
            return  # one search: its own line says it all
        if self.overall is None:
            self.overall = self.prog.add_task("", total=self.total_searches)
        self.prog.update(self.overall, description=self.overall_text(), completed=len(self.done))

    def start_search(self, spec: SearchSpec, index: int, total: int) -> None:
        self.total_searches = total
        self.key = (spec.label, spec.scheduler)
        self.probes = self.running.setdefault(self.key, 0)
        self.label = f"[{index}/{total}] {spec.label} × {spec.scheduler}"
        self.prog.update(self.task, description=f"{self.label}: starting", total=None, completed=0)
        self._update_overall()

    def start_probe(self, rate_rps: float, seed: int) -> None:
        self.prog.update(self.task, description=f"{self.label}: probe {self.probes + 1} at {rate_rps:.3g} req/s "
                         f"seed {seed}", total=None, completed=0)

    def requests(self, done: int, total: int) -> None:
        self.prog.update(self.task, completed=done, total=total)

    def finished(self, probe: Probe, cached: bool) -> None:
        self.probes += 1
        self.running[self.key] = self.running.get(self.key, 0) + 1
        p = probe
        mark = "" if p.valid else f" [red]INVALID[/] ({p.reason})"
        note = " [dim](saved, not rerun)[/]" if cached else ""
        hold = f" [dim]({p.span_factor:g}× longer: hold check)[/]" if p.span_factor != 1 else ""
        self.prog.console.print(f"  {self.label}: {p.rate_rps:.3g} req/s seed {p.seed}{hold} → {p.attainment:.1%} "
                                f"[{p.ci_low:.1%}, {p.ci_high:.1%}]{mark}{note}", highlight=False, soft_wrap=True)
        self._update_overall()

    def finished_search(self, spec: SearchSpec, result: CapacityResult | None) -> None:
        self.done.append(self.running.pop((spec.label, spec.scheduler), 0))
        self._update_overall()


def _fmt_capacity(row: CapacityRow) -> str:
    cap, status = row.capacity_rps, row.status
    if status == "below_range":
        lo = row.min_rate_rps
        return f"< {lo:.3g}" if lo is not None else "–"
    if cap is None:
        return "–"
    return f"≥ {cap:.3g}" if status in ("above_range", "max_probes") and row.upper_rps is None else f"{cap:.3g}"


def capacity_table(capacities: Sequence[CapacityRow], title: str = "Capacity") -> Table:
    """Rich table: workload, scheduler, capacity, its interval, ratio vs the first scheduler (when there are
    several), status."""
    first = capacities[0].scheduler if capacities else ""
    compared = len({row.scheduler for row in capacities}) > 1  # one scheduler: a ratio would be 1.00× throughout
    caption = "req/s at the target attainment; interval = [highest confident pass, lowest confident fail)"
    t = Table(title=title, header_style="bold", caption=caption + (f"; ratio vs {first}" if compared else ""))
    for col, just in (("workload", "left"), ("scheduler", "left"), ("capacity", "right"), ("interval", "right"),
                      *((("ratio", "right"),) if compared else ()), ("status", "left")):
        t.add_column(col, justify=just)
    base: dict[str, CapacityRow] = {}
    for row in capacities:
        base.setdefault(row.workload, row)
    for row in capacities:
        b = base[row.workload]
        ok = row.status == "ok" and b.status == "ok" and b.capacity_rps
        ratio = f"{row.capacity_rps / b.capacity_rps:.2f}×" if ok else "–"  # type: ignore[operator]
        lo, hi = row.lower_rps, row.upper_rps
        interval = f"[{'–' if lo is None else f'{lo:.3g}'}, {'–' if hi is None else f'{hi:.3g}'})"
        t.add_row(row.workload, row.scheduler, _fmt_capacity(row), interval, *([ratio] if compared else []),
                  row.status if row.status == "ok" else f"[yellow]{row.status}[/]")
    return t


def _hint(status: str) -> str:
    return {"below_range": " (try --rate-min lower, a looser --target, or looser SLOs)",
            "above_range": " (try a higher --rate-max)",
            "max_probes": " (probe limit reached; narrow --rate-min/--rate-max)"}.get(status, "")


def commands(out_dir: Path) -> str:
    """The resume and re-report command lines of a results folder."""
    d = shlex.quote(str(out_dir))
    return f"  resume:    slobench resume {d}\n  re-report: slobench report {d}"


def print_failed(out_dir: Path) -> None:
    console.print(f"[yellow]failed[/]: finished probes kept in {out_dir}\n{commands(out_dir)}",
                  highlight=False, soft_wrap=True)


def print_resuming(kind: str, results_dir: Path, reused: int) -> None:
    console.print(f"resuming {kind} in {results_dir}: {reused} saved probes reused", highlight=False, soft_wrap=True)


def print_search_notes(notes: Iterable[tuple[str, str, str]]) -> None:
    """One line per search whose crossing was checked: confirmed, or a non-monotone curve (in yellow)."""
    for workload, scheduler, note in notes:
        if note:
            style = "yellow" if "not monotone" in note else "dim"
            console.print(f"[{style}]{workload} × {scheduler}: {note}[/]", highlight=False, soft_wrap=True)


def print_notices(notices: Sequence[str]) -> None:
    for n in notices:
        console.print(n, style="dim", markup=False, highlight=False, soft_wrap=True)


def print_outcome(plan: Plan, out: ExecuteOutcome) -> None:
    """The capacity table, then: the interrupted lines, or each search without a capacity, the report."""
    if out.capacities:
        console.print(capacity_table(out.capacities, title=plan.title))
    if out.interrupted:
        console.print(f"[yellow]interrupted[/]: {out.num_saved} finished probes (with their records) saved in "
                      f"{out.out_dir}\n{commands(out.out_dir)}", highlight=False, soft_wrap=True)
        if plan.kind == "validate":  # what finished, compared (summary.json holds it too)
            print_validation(out.out_dir)
        return
    if out.num_probes == 0:
        console.print(f"[yellow]no probe finished[/]; results folder: {out.out_dir}")
        return
    for c in out.bad:
        console.print(f"[yellow]{c.workload} × {c.scheduler}[/]: {c.message}{_hint(c.status)}",
                      highlight=False, soft_wrap=True)
    if plan.scaling:
        print_scaling(out.out_dir)
    if plan.kind == "sensitivity":
        print_sensitivity(out.out_dir)
    if plan.kind == "validate":
        print_validation(out.out_dir)
    print_setup(out.setup)
    print_search_notes((c.workload, c.scheduler, c.notes) for c in out.capacities if c.status == "ok")
    print_notices(out.notices)
    console.print(f"report: {out.report}", highlight=False, soft_wrap=True)
    console.print(f"[dim]{out.num_probes} probes in {out.wall_s:.1f} s; results: {out.out_dir}[/]",
                  highlight=False, soft_wrap=True)


def print_setup(setup: Sequence[dict[str, str]]) -> None:
    """What the capacities rest on (information, ground truth, SLOs, probes), dimmed, one line per item."""
    if len(setup) > 2:  # a sweep or sensitivity: what all searches share once, what varies by name
        keys = [k for k in setup[0] if k != "searches"]
        same = [k for k in keys if all(rec.get(k) == setup[0][k] for rec in setup)]
        lines = [f"{k}: {setup[0][k]}" for k in same]
        varies = [k for k in keys if k not in same]
        if varies:
            lines.append(f"{', '.join(varies)}: vary between the {len(setup)} settings (summary.json setup, report)")
        console.print("every search\n  " + "\n  ".join(lines), style="dim", markup=False, highlight=False,
                      soft_wrap=True)
        return
    for rec in setup:
        lines = [f"{k}: {v}" for k, v in rec.items() if k != "searches"]
        text = f"{rec.get('searches', '')}\n  " + "\n  ".join(lines)
        console.print(text, style="dim", markup=False, highlight=False, soft_wrap=True)


def print_sensitivity(out_dir: Path) -> None:
    """The sensitivity table (sensitivity.csv, written with the report): capacities and ratios per point."""
    import pandas as pd

    path = Path(out_dir) / "sensitivity.csv"
    if not path.exists():
        return
    df = pd.read_csv(path)
    table = Table(title="Sensitivity: capacity (req/s) and ratio to the first policy", box=box.SIMPLE_HEAD)
    for col in df.columns:
        table.add_column(col, justify="left" if col in ("workload", "axis") else "right")
    for row in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, row, strict=True):
            if col in ("workload", "axis"):
                cells.append(str(v))
            elif col == "value":
                cells.append(f"{v:g}")
            elif "÷" in col:
                cells.append("–" if pd.isna(v) else f"{v:.2f}×")
            else:
                cells.append(fmt_rate(None if pd.isna(v) else float(v)))
        table.add_row(*cells)
    console.print(table)
    console.print(f"[dim]table: {path}[/]", highlight=False, soft_wrap=True)


def scaling_table(scaling: Sequence[ScalingRow]) -> Table | None:
    """Capacity per replica for every scheduler × router (a column per replica count), with the share of linear
    scaling, capacity(R) / (R · capacity(1)), in brackets; None without scaling rows."""
    import pandas as pd

    from slobench.report.scaling import per_replica_table, pivot_rows

    if not scaling:
        return None
    counts, rows = pivot_rows(per_replica_table(pd.DataFrame([r.model_dump() for r in scaling])))
    table = Table(title="Capacity per replica (req/s)", header_style="bold",
                  caption="(share of linear scaling: capacity(R) / (R · capacity(1))); one replica has no router")
    for col in ("workload", "scheduler", "router"):
        table.add_column(col)
    for n in counts:
        table.add_column(f"{n} replica{'s' if n > 1 else ''}", justify="right")
    for wl, sched, router, cells in rows:
        table.add_row(wl, sched, router, *cells)
    return table


def print_scaling(out_dir: Path) -> None:
    """The capacity-per-replica table of a scaling run (summary.json's ``scaling`` rows)."""
    from slobench.report.probes import ExperimentSummary

    table = scaling_table(ExperimentSummary.read(Path(out_dir) / "summary.json").scaling)
    if table is not None:
        console.print(table)


# --- bench schedulers ------------------------------------------------------------------------------

def fmt_rate(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.3g}"


def bench_progress(total: int) -> tuple[Progress, int]:
    """The bench's progress bar (one step per finished search) and its task id."""
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=wide_console, transient=True)
    return progress, progress.add_task("capacity searches", total=total)


def bench_row_line(r: BenchRow) -> str:
    return f"{r.workload} × {r.scheduler}: {fmt_rate(r.capacity_rps)} req/s ({r.status}, {r.probes} probes, " \
           f"{r.wall_s:.0f} s)"


def bench_table(rows: Sequence[BenchRow], workloads: Sequence[str], schedulers: Sequence[str], *, target: float,
                setup: str, num_requests: int, seeds: Sequence[int], warmup: float | None = None) -> Table:
    """Capacity per workload (a column per policy) and the subject's ratio to every baseline, with geomeans."""
    seeds_txt = ", ".join(str(x) for x in seeds)
    subject = "slos-serve" if "slos-serve" in schedulers else schedulers[-1]
    warm = f", warm-up {warmup:.0%}" if warmup is not None else ""
    t = Table(title=f"Capacity (req/s) at {target:.0%} attainment — {setup}, ≈{num_requests} requests/probe{warm}, "
                    f"seed {seeds_txt}",
              caption=f"÷ X: capacity of {subject} divided by X's", header_style="bold")
    t.add_column("workload")
    for s in schedulers:
        t.add_column(s, justify="right")
    base = [b for b in BASELINES if b in schedulers]
    per = {b: ratios(rows, subject, b) for b in base if b != subject}
    for b in per:
        t.add_column(f"÷ {b}", justify="right")
    cap = {(r.workload, r.scheduler): r for r in rows}
    for w in workloads:
        cells = []
        for s in schedulers:
            r = cap[(w, s)]
            cells.append(fmt_rate(r.capacity_rps) + ("" if r.status == "ok" else f" ({r.status})"))
        t.add_row(w, *cells, *[f"{per[b][0][w]:.2f}×" for b in per])
    t.add_row("[bold]geomean[/]", *[""] * len(schedulers), *[f"[bold]{per[b][1]:.2f}×[/]" for b in per])
    return t


def _pct(v: float | None, signed: bool = True) -> str:
    return "–" if v is None else f"{v:+.1%}" if signed else f"{v:.1%}"


def _rps(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}"


def validation_table(validation: dict) -> Table:
    """Rich table of summary.json's ``validation``: per policy simulated vs real capacity, the error and why."""
    t = Table(title=f"Simulator vs real engine: {validation.get('workload', '')}", header_style="bold",
              caption="capacity error = sim / real − 1; latency error = sim / real − 1 of each probe's median, p90 "
                      "and p99 at the rates probed on both engines: signed mean, then |error| mean / p90 / p99; "
                      "Δattainment = mean |sim − real| at those rates")
    for col in ("policy", "sim req/s", "real req/s", "real interval", "capacity error", "TTFT error",
                "TPOT error", "Δattainment", "common rates"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for name, p in (validation.get("policies") or {}).items():
        def lat(e: dict) -> str:
            if not e.get("n"):
                return "–"
            return (f"{_pct(e['mean'])} ({_pct(e['mean_abs'], False)} / {_pct(e['p90_abs'], False)} / "
                    f"{_pct(e['p99_abs'], False)})")

        interval = f"[{_rps(p.get('real_lower_rps'))}, {_rps(p.get('real_upper_rps'))})"
        gap = p.get("attainment_gap")
        t.add_row(name, _rps(p.get("sim_capacity_rps")), _rps(p.get("real_capacity_rps")), interval,
                  _pct(p.get("capacity_error")), lat(p.get("ttft_error") or {}), lat(p.get("tpot_error") or {}),
                  "–" if gap is None else f"{gap:.3f}", str(p.get("common_rates", 0)))
    return t


def print_validation(out_dir: Path) -> None:
    """The validation table and, per policy beyond the baseline, whether the simulated gain matches the real."""
    import json

    try:
        validation = json.loads((Path(out_dir) / "summary.json").read_text()).get("validation")
    except (OSError, ValueError):
        validation = None
    if not validation:
        console.print("[yellow]no validation figures[/] (no probe finished on both engines)")
        return
    console.print(validation_table(validation))
    for g in validation.get("gains") or []:
        if g.get("ratio_of_ratios") is None:
            console.print(f"gain of {g['policy']} over {g['baseline']}: – (a capacity is missing)")
            continue
        verdict = "[green]matches[/]" if g["matches"] else "[yellow]does not match[/]"
        console.print(f"gain of {g['policy']} over {g['baseline']}: simulated {g['sim_gain']:.2f}×, real "
                      f"{g['real_gain']:.2f}×, ratio of ratios {g['ratio_of_ratios']:.2f} → {verdict} "
                      f"(within ±{g['tolerance']:.0%})", highlight=False, soft_wrap=True)
