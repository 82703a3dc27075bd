"""`slobench compare | capacity | sweep | report`: capacity searches and the reports built on them.

Thin: options are parsed and validated here; the search is `slobench.capacity`, each probe is
`slobench.runner.run_once`, files and figures are `slobench.report`. Data are saved after every
probe, so Ctrl-C keeps what finished and `slobench report DIR` can draw it.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from slobench.capacity import CapacityResult, Probe, ProbeResult, capacity_search, wilson_interval
from slobench.errors import UserError

console = Console()

QUICK_REQUESTS = 200
DEFAULT_REQUESTS = 600


@dataclass
class SearchSpec:
    """One capacity search (or rate grid) to run: a label plus the run settings it varies."""

    label: str
    scheduler: str
    run_kwargs: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # grid values, copied to every output row


@dataclass
class Collector:
    """Everything a report needs, appended probe by probe and flushed to ``out_dir`` each time."""

    out_dir: Path
    target: float
    title: str
    probe_rows: list[dict[str, Any]] = field(default_factory=list)
    capacities: list[dict[str, Any]] = field(default_factory=list)
    stages: list[pd.DataFrame] = field(default_factory=list)
    iterations: list[pd.DataFrame] = field(default_factory=list)
    scaling: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def save(self, *, final: bool = False) -> None:
        """Write probes.csv always; the heavier parquet/summary files on the final save."""
        from slobench.report.results import write_json

        pd.DataFrame(self.probe_rows).to_csv(self.out_dir / "probes.csv", index=False)
        if not final:
            return
        if self.stages:
            pd.concat(self.stages, ignore_index=True).to_parquet(self.out_dir / "requests.parquet", index=False)
        if self.iterations:
            pd.concat(self.iterations, ignore_index=True).to_parquet(self.out_dir / "iterations.parquet",
                                                                     index=False)
        write_json(self.out_dir / "summary.json", {
            "title": self.title, "target": self.target, "capacities": self.capacities,
            "scaling": self.scaling, "wall_s": time.perf_counter() - self.started,
        })


def _parse_list(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UserError(f"expected a comma-separated list, got {value!r}")
    return items


def _probe_result(res: Any, rate: float) -> ProbeResult:
    """Turn a RunResult into what the search needs: counts plus the validity evidence."""
    s = res.summary
    counts = s.get("status_counts", {}) or {}
    unfinished = int(counts.get("unfinished", 0)) + int(counts.get("timeout", 0))
    tail = None
    df = res.records
    if len(df):
        from slobench.metrics.attainment import stage_metrics

        st = stage_metrics(df)
        if st["last_token_s"].notna().any():
            # Tail = how long the run kept going after the last SLO deadline of any stage. Measured
            # from deadlines, not arrivals, so long (reasoning) outputs at light load are not "tail".
            last_due = st["stage_start_s"] + st["ttft_slo_s"] + (st["output_tokens"] - 1).clip(lower=0) * st[
                "tpot_slo_s"]
            tail = float(st["last_token_s"].max() - last_due.max())
    achieved = s.get("achieved_rate_rps", s.get("offered_rate_rps"))
    achieved = None if achieved is None or not math.isfinite(float(achieved)) else float(achieved)
    return ProbeResult(
        num_met=int(s.get("num_met", round(s["attainment"] * s["num_requests"]))),
        num_requests=int(s["num_requests"]), offered_rate_rps=rate, achieved_rate_rps=achieved,
        client_lag_s=s.get("client_lag_s"), tail_s=tail, unfinished=unfinished, records=res,
    )


def run_search(
    spec: SearchSpec,
    collector: Collector,
    *,
    target: float,
    seeds: Sequence[int],
    rel_tol: float,
    rate_start: float,
    rates: Sequence[float] | None = None,
    progress: Callable[[Probe], None] | None = None,
) -> CapacityResult | None:
    """Run one capacity search (or a fixed rate grid when ``rates`` is given) and collect its rows."""
    from slobench.runner import run_once, validate_config

    def probe(rate: float, seed: int) -> ProbeResult:
        cfg = validate_config(scheduler=spec.scheduler, rate_rps=rate, seed=seed, **spec.run_kwargs)
        res = run_once(cfg)
        out = _probe_result(res, rate)
        tags = {"workload": spec.label, "scheduler": spec.scheduler, "rate_rps": rate, "seed": seed} | spec.extra
        recs = res.records.copy()
        for k, v in tags.items():
            recs[k] = v
        collector.stages.append(recs)
        if len(res.iterations):
            it = res.iterations.copy()
            for k, v in tags.items():
                it[k] = v
            collector.iterations.append(it)
        return out

    def on_probe(p: Probe) -> None:
        collector.probe_rows.append({"workload": spec.label, "scheduler": spec.scheduler, "rate_rps": p.rate_rps,
                                     "seed": p.seed, "attainment": p.attainment, "ci_low": p.ci_low,
                                     "ci_high": p.ci_high, "num_met": p.num_met, "num_requests": p.num_requests,
                                     "valid": p.valid, "reason": p.reason} | spec.extra)
        collector.save()
        if progress is not None:
            progress(p)

    if rates is not None:  # rate grid: every rate, every seed, no search
        from slobench.capacity import ValidityLimits, check_validity

        for rate in rates:
            for seed in seeds:
                r = probe(float(rate), seed)
                reason = check_validity(r, ValidityLimits())
                lo, hi = wilson_interval(r.num_met, r.num_requests)
                on_probe(Probe(float(rate), seed, r.attainment, lo, hi, r.num_met, r.num_requests,
                               reason is None, reason or ""))
        return None
    result = capacity_search(probe, target=target, rate_start=rate_start, rel_tol=rel_tol, seeds=tuple(seeds),
                             progress=on_probe)
    collector.capacities.append({"workload": spec.label, "scheduler": spec.scheduler,
                                 "capacity_rps": result.capacity_rps, "lower_rps": result.lower_rps,
                                 "upper_rps": result.upper_rps, "status": result.status,
                                 "message": result.message} | spec.extra)
    return result


def capacity_table(capacities: list[dict[str, Any]], title: str = "Capacity") -> Table:
    """Rich table: workload, scheduler, capacity ± interval, ratio vs the first scheduler."""
    t = Table(title=title, header_style="bold")
    for col, just in (("workload", "left"), ("scheduler", "left"), ("capacity req/s", "right"),
                      ("interval", "right"), ("ratio", "right"), ("status", "left")):
        t.add_column(col, justify=just)
    base: dict[str, float] = {}
    for row in capacities:
        base.setdefault(row["workload"], row["capacity_rps"])
    for row in capacities:
        cap, b = row["capacity_rps"], base.get(row["workload"])
        ratio = f"{cap / b:.2f}×" if cap and b else "–"
        lo, hi = row.get("lower_rps"), row.get("upper_rps")
        interval = f"[{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else "–"
        t.add_row(row["workload"], row["scheduler"], f"{cap:.3g}" if cap is not None else "–", interval, ratio,
                  row["status"] if row["status"] == "ok" else f"[yellow]{row['status']}[/]")
    return t


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                    transient=True)


def _finish(collector: Collector, interrupted: bool) -> None:
    """Save, draw the report, tell the user where it is (and how to redraw after Ctrl-C)."""
    from slobench.report.rebuild import rebuild_report

    collector.save(final=True)
    if collector.capacities:
        console.print(capacity_table(collector.capacities))
    if not collector.probe_rows:
        console.print(f"[yellow]no probe finished[/]; results folder: {collector.out_dir}")
        return
    if interrupted:
        console.print(f"[yellow]interrupted[/]: {len(collector.probe_rows)} probes saved in {collector.out_dir}; "
                      f"draw them with: slobench report {collector.out_dir}")
        return
    report, notices = rebuild_report(collector.out_dir)
    for n in notices:
        console.print(n, style="dim", markup=False, highlight=False)
    console.print(f"report: {report}")


def _execute(specs: list[SearchSpec], collector: Collector, **search_kwargs: Any) -> None:
    """Run every search with a live progress line and one printed line per probe."""
    interrupted = False
    try:
        with _progress() as prog:
            for spec in specs:
                task = prog.add_task(f"{spec.label} × {spec.scheduler}: starting", total=None)

                def show(p: Probe, spec: SearchSpec = spec, task: Any = task) -> None:
                    mark = "" if p.valid else f" [red]INVALID[/] ({p.reason})"
                    prog.console.print(f"  {spec.label} × {spec.scheduler}: {p.rate_rps:.3g} req/s seed {p.seed} → "
                                       f"{p.attainment:.1%} [{p.ci_low:.1%}, {p.ci_high:.1%}]{mark}")
                    prog.update(task, description=f"{spec.label} × {spec.scheduler}: last {p.rate_rps:.3g} req/s")

                run_search(spec, collector, progress=show, **search_kwargs)
                prog.remove_task(task)
    except KeyboardInterrupt:
        interrupted = True
    except Exception:
        collector.save(final=True)  # keep finished probes; the error itself is the caller's to show
        console.print(f"[yellow]failed[/]: finished probes kept in {collector.out_dir} "
                      f"(slobench report {collector.out_dir})")
        raise
    _finish(collector, interrupted)
    if interrupted:
        raise KeyboardInterrupt


def _check_schedulers(names: Sequence[str]) -> None:
    """Unknown scheduler names fail before any probe runs, with the list of known ones."""
    from slobench.schedulers.registry import scheduler_names

    known = scheduler_names()
    bad = [n for n in names if n not in known]
    if bad:
        raise UserError(f"unknown scheduler {bad[0]!r}; known: {', '.join(known)}")


def _out_dir(out: Path, name: str, config: dict[str, Any]) -> Path:
    from slobench.report.results import new_run_dir, write_manifest

    path = new_run_dir(name, root=out)
    seeds = config.get("seeds")
    write_manifest(path, command=sys.argv, config={"name": name} | config, seed=seeds[0] if seeds else None)
    return path


def _common_kwargs(hardware: str, model: str, replicas: int, engine: str, num_requests: int | None,
                   quick: bool) -> dict[str, Any]:
    n = num_requests or (QUICK_REQUESTS if quick else DEFAULT_REQUESTS)
    return {"hardware": hardware, "model": model, "replicas": replicas, "engine": engine, "num_requests": n}


WorkloadOpt = Annotated[list[str], typer.Option("--workload", "-w", help="Workload name or YAML path; repeatable.")]
TargetOpt = Annotated[float, typer.Option("--target", help="Attainment target in (0, 1].", min=0.01, max=1.0)]
HardwareOpt = Annotated[str, typer.Option("--hardware", help="GPU spec name, e.g. H100-SXM.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Model spec name, e.g. Llama-3.1-8B.")]
ReplicasOpt = Annotated[int, typer.Option("--replicas", min=1, help="Replicas behind the router.")]
SeedOpt = Annotated[list[int], typer.Option("--seed", help="Seed(s); the same for every scheduler. Repeatable.")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="Fewer requests, 5% tolerance: a first look in seconds.")]
EngineOpt = Annotated[str, typer.Option("--engine", help="sim (default) | vllm | openai")]
OutOpt = Annotated[Path, typer.Option("--out", help="Results root; a timestamped folder is made inside.")]
RequestsOpt = Annotated[int | None, typer.Option("--num-requests", min=10, help="Requests per probe.")]
StartOpt = Annotated[float, typer.Option("--rate-start", min=0.001, help="First rate probed (req/s).")]


def compare_cmd(
    workload: WorkloadOpt = ["coding"],  # noqa: B006 - typer needs a literal default
    schedulers: Annotated[str, typer.Option("--schedulers", help="Comma-separated; ratios are vs the first.")]
    = "vllm,slos-serve",
    target: TargetOpt = 0.9,
    hardware: HardwareOpt = "H100-SXM",
    model: ModelOpt = "Llama-3.1-8B",
    replicas: ReplicasOpt = 1,
    seed: SeedOpt = [0],  # noqa: B006
    quick: QuickOpt = False,
    engine: EngineOpt = "sim",
    out: OutOpt = Path("results"),
    num_requests: RequestsOpt = None,
    rate_start: StartOpt = 1.0,
) -> None:
    """Capacity of each scheduler on each workload, side by side, with a report.

    Example: slobench compare --workload coding --workload chatbot --quick
    """
    scheds = _parse_list(schedulers)
    _check_schedulers(scheds)
    kw = _common_kwargs(hardware, model, replicas, engine, num_requests, quick)
    specs = [SearchSpec(wl, s, kw | {"workload": wl}) for wl in workload for s in scheds]
    name = "compare-" + "-".join(Path(w).stem for w in workload)
    config = {"workloads": workload, "schedulers": scheds, "target": target, "seeds": seed, "quick": quick,
              "rate_start": rate_start} | kw
    collector = Collector(_out_dir(out, name, config), target, f"slobench compare: {', '.join(workload)}")
    _execute(specs, collector, target=target, seeds=seed, rel_tol=0.05 if quick else 0.02, rate_start=rate_start)


def capacity_cmd(
    workload: Annotated[str, typer.Option("--workload", "-w", help="Workload name or YAML path.")] = "coding",
    scheduler: Annotated[str, typer.Option("--scheduler", "-s", help="Scheduler name.")] = "slos-serve",
    target: TargetOpt = 0.9,
    hardware: HardwareOpt = "H100-SXM",
    model: ModelOpt = "Llama-3.1-8B",
    replicas: ReplicasOpt = 1,
    seed: SeedOpt = [0],  # noqa: B006
    quick: QuickOpt = False,
    engine: EngineOpt = "sim",
    out: OutOpt = Path("results"),
    num_requests: RequestsOpt = None,
    rate_start: StartOpt = 1.0,
) -> None:
    """Capacity of one scheduler on one workload.

    Example: slobench capacity --workload coding --scheduler slos-serve
    """
    _check_schedulers([scheduler])
    kw = _common_kwargs(hardware, model, replicas, engine, num_requests, quick)
    config = {"workload": workload, "scheduler": scheduler, "target": target, "seeds": seed, "quick": quick,
              "rate_start": rate_start} | kw
    collector = Collector(_out_dir(out, f"capacity-{Path(workload).stem}-{scheduler}", config), target,
                          f"slobench capacity: {workload} × {scheduler}")
    _execute([SearchSpec(workload, scheduler, kw | {"workload": workload})], collector, target=target,
             seeds=seed, rel_tol=0.05 if quick else 0.02, rate_start=rate_start)


class SweepGrid(BaseModel):
    """A sweep file: fixed settings plus lists to take the Cartesian product of.

    ``rates`` given → every rate is probed (attainment curves); omitted → a capacity search per point.
    """

    model_config = ConfigDict(extra="forbid")

    workload: list[str] = Field(min_length=1)
    schedulers: list[str] = Field(default_factory=lambda: ["vllm", "slos-serve"], min_length=1)
    rates: list[float] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    target: float = Field(default=0.9, gt=0, le=1)
    num_requests: int = Field(default=DEFAULT_REQUESTS, ge=10)
    rel_tol: float = Field(default=0.02, gt=0, lt=1)
    engine: str = "sim"
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("workload", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("rates")
    @classmethod
    def _positive_rates(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not (r > 0) for r in v)):
            raise ValueError("rates must be a non-empty list of positive numbers")
        return v

    @field_validator("grid")
    @classmethod
    def _known_axes(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        unknown = set(v) - set(GRID_AXES)
        if unknown:
            raise ValueError(f"unknown grid axis {sorted(unknown)}; known: {sorted(GRID_AXES)}")
        for k, vals in v.items():
            if not isinstance(vals, list) or not vals:
                raise ValueError(f"grid.{k} must be a non-empty list")
        return v


# Grid axis → RunConfig field it sets. slo_scale / burstiness_cv go through the workload overrides.
GRID_AXES = {"model": "model", "hardware": "hardware", "replicas": "replicas", "tp": "tp", "profile": "profile",
             "slo_scale": None, "burstiness_cv": None}


def load_grid(path: Path) -> SweepGrid:
    """Read and validate a sweep YAML; any problem becomes one UserError line."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return SweepGrid.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "file"
        raise UserError(f"{path}: {loc}: {err['msg']}") from None


def _workload_with(workload: str, overrides: dict[str, Any], out_dir: Path) -> str:
    """A workload variant with SLOs scaled / burstiness changed, written next to the results."""
    if not overrides:
        return workload
    try:
        from slobench.workloads import apply_overrides, load_spec
    except ImportError:
        raise UserError(f"grid axes {sorted(overrides)} need workload overrides, not available in this build") \
            from None
    spec = apply_overrides(load_spec(workload), **overrides)
    tag = "-".join(f"{k}{v}" for k, v in overrides.items())
    path = out_dir / "workloads" / f"{Path(workload).stem}-{tag}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    spec.to_yaml(path)
    return str(path)


def sweep_cmd(
    grid: Annotated[Path, typer.Option("--grid", help="Sweep YAML (workload, schedulers, rates?, grid: {...}).")],
    out: OutOpt = Path("results"),
    quick: QuickOpt = False,
) -> None:
    """Probe a rate grid, or search capacity, over a parameter grid; tidy probes.csv + report.

    Example: slobench sweep --grid scripts/paper_experiment.yaml
    """
    g = load_grid(grid)
    _check_schedulers(g.schedulers)
    out_dir = _out_dir(out, f"sweep-{grid.stem}", g.model_dump() | {"grid_file": str(grid), "quick": quick})
    axes = list(g.grid)
    specs: list[SearchSpec] = []
    for wl in g.workload:
        for values in itertools.product(*(g.grid[a] for a in axes)) if axes else [()]:
            point = dict(zip(axes, values, strict=True))
            run_kw = {"engine": g.engine, "num_requests": QUICK_REQUESTS if quick else g.num_requests}
            run_kw |= {GRID_AXES[a]: v for a, v in point.items() if GRID_AXES[a]}
            overrides = {a: v for a, v in point.items() if GRID_AXES[a] is None}
            run_kw["workload"] = _workload_with(wl, overrides, out_dir)
            label = " ".join([Path(wl).stem, *(f"{a}={v}" for a, v in point.items())])
            for s in g.schedulers:
                specs.append(SearchSpec(label, s, run_kw, extra={"base_workload": Path(wl).stem} | point))
    collector = Collector(out_dir, g.target, f"slobench sweep: {grid.name}")
    _execute(specs, collector, target=g.target, seeds=g.seeds, rel_tol=0.05 if quick else g.rel_tol,
             rate_start=1.0, rates=g.rates)
    if "replicas" in axes and collector.capacities:  # capacities per replica count → scaling figure
        collector.scaling = [{"scheduler": c["scheduler"], "replicas": c["replicas"],
                              "capacity_rps": c["capacity_rps"]} for c in collector.capacities]
        collector.save(final=True)
        from slobench.report.rebuild import rebuild_report

        rebuild_report(collector.out_dir, png=False)


def report_cmd(
    results_dir: Annotated[Path, typer.Argument(help="A results folder written by compare/capacity/sweep.")],
) -> None:
    """Redraw figures and report.html from a results folder, without rerunning.

    Example: slobench report results/20260101-120000-compare-coding
    """
    from slobench.report.rebuild import rebuild_report

    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: not a folder")
    try:
        report, notices = rebuild_report(results_dir)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    for n in notices:
        console.print(n, style="dim", markup=False, highlight=False)
    console.print(f"report: {report}")


def register(app: typer.Typer) -> None:
    """Attach `compare`, `capacity`, `sweep` and `report` to the root app."""
    app.command("compare")(compare_cmd)
    app.command("capacity")(capacity_cmd)
    app.command("sweep")(sweep_cmd)
    app.command("report")(report_cmd)
