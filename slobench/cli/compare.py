"""`slobench compare | capacity | sweep | report | resume`: capacity searches and the reports built on them.

Thin: options are parsed and validated here; the search is `slobench.capacity.search`, each probe is
`slobench.cluster.run.run_once`, files and figures are `slobench.report`. A command is first turned
into a `Plan` (the searches to run and how), saved in manifest.json; every finished probe is
saved at once (its row in probes.csv, its records in parts/), so Ctrl-C keeps what finished,
`slobench report DIR` can draw it and `slobench resume DIR` replays the plan, reusing the saved
probes instead of rerunning them, and ends with the same files an uninterrupted run writes.

Exit codes: 0 done; 2 bad input (one line); 3 compare/capacity finished but at least one search
found no capacity inside the rate range or hit the probe limit (its row shows a bound; results
and report are written); 130 interrupted (finished probes kept, resume command printed).
"""

from __future__ import annotations

import itertools
import json
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from slobench.capacity.search import CapacityResult, Probe, ProbeResult, ValidityLimits, capacity_search, make_probe
from slobench.errors import UserError
from slobench.report.results import probe_key

console = Console()

QUICK_REQUESTS = 200
DEFAULT_REQUESTS = 600
EXIT_NO_CAPACITY = 3
# Columns a saved probe row needs to stand in for a rerun (the search's inputs, not its outputs).
EVIDENCE_COLUMNS = ("num_met", "num_requests", "offered_rate_rps", "achieved_rate_rps", "client_lag_s", "tail_s",
                    "unfinished")


@dataclass
class SearchSpec:
    """One capacity search (or rate grid) to run: a label plus the run settings it varies.

    ``label`` is the ``workload`` column of every output row and, with the scheduler, identifies
    the search inside a results folder (sweeps put the grid values into it).
    """

    label: str
    scheduler: str
    run_kwargs: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # grid values, copied to every output row


@dataclass
class SearchSettings:
    """How every search of a plan probes: the same target, seeds and rate grid for all engines."""

    target: float = 0.9
    seeds: list[int] = field(default_factory=lambda: [0])
    rel_tol: float = 0.02
    rate_start: float = 1.0
    rate_lo: float = 0.05
    rate_hi: float = 1024.0
    rates: list[float] | None = None  # a fixed rate grid instead of a search (sweep)
    refine_interval: bool = False


@dataclass
class Plan:
    """Everything needed to run, or resume, a compare/capacity/sweep; stored in manifest.json."""

    kind: str  # compare | capacity | sweep | paper
    title: str
    specs: list[SearchSpec]
    search: SearchSettings
    scaling: bool = False  # capacities per replica count → replica-scaling figure
    strict: bool = True  # exit EXIT_NO_CAPACITY when a search has no capacity in range

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(kind=d["kind"], title=d["title"], specs=[SearchSpec(**s) for s in d["specs"]],
                   search=SearchSettings(**d["search"]), scaling=d.get("scaling", False),
                   strict=d.get("strict", True))


def _opt_float(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


@dataclass
class Collector:
    """Everything a report needs, saved probe by probe into ``out_dir``.

    On resume, ``previous`` holds the rows of probes.csv from the earlier session; a probe found
    there is not rerun (`cached_result`) and its records stay where they were saved.
    """

    out_dir: Path
    target: float
    title: str
    probe_rows: list[dict[str, Any]] = field(default_factory=list)
    capacities: list[dict[str, Any]] = field(default_factory=list)
    scaling: list[dict[str, Any]] = field(default_factory=list)
    previous: dict[tuple[str, str, float, int], dict[str, Any]] = field(default_factory=dict)
    replayed: set[tuple[str, str, float, int]] = field(default_factory=set)
    complete: bool = False
    started: float = field(default_factory=time.perf_counter)
    _pending: dict[tuple[str, str, float, int], tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)

    def load_previous(self) -> int:
        """Read an earlier session's probes.csv; return how many probes can be reused."""
        path = self.out_dir / "probes.csv"
        if not path.exists() or path.stat().st_size == 0:
            return 0
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
        missing = [c for c in ("workload", "scheduler", "rate_rps", "seed", *EVIDENCE_COLUMNS) if c not in df]
        if missing:
            raise UserError(f"{path}: cannot resume, columns {', '.join(missing)} missing (written by an older "
                            "slobench); start a new run")
        for row in df.to_dict("records"):
            row["reason"] = "" if pd.isna(row.get("reason")) else str(row["reason"])
            self.previous[probe_key(row["workload"], row["scheduler"], row["rate_rps"], row["seed"])] = row
        return len(self.previous)

    def cached_result(self, key: tuple[str, str, float, int]) -> ProbeResult | None:
        """The saved probe as the `ProbeResult` the engine returned then (None if not saved)."""
        row = self.previous.get(key)
        if row is None:
            return None
        self.replayed.add(key)
        return ProbeResult(
            num_met=int(row["num_met"]), num_requests=int(row["num_requests"]),
            offered_rate_rps=_opt_float(row["offered_rate_rps"]),
            achieved_rate_rps=_opt_float(row["achieved_rate_rps"]),
            client_lag_s=_opt_float(row["client_lag_s"]), tail_s=_opt_float(row["tail_s"]),
            unfinished=int(row["unfinished"] or 0),
        )

    def stash(self, key: tuple[str, str, float, int], stages: pd.DataFrame, iterations: pd.DataFrame) -> None:
        """Hold a fresh probe's frames until its row is written (so records and rows stay in step)."""
        self._pending[key] = (stages, iterations)

    def add_probe(self, spec: SearchSpec, p: Probe) -> bool:
        """Save one finished probe (frames first, then its row); return whether it was reused."""
        from slobench.report.results import write_probe_part

        key = probe_key(spec.label, spec.scheduler, p.rate_rps, p.seed)
        frames = self._pending.pop(key, None)
        if frames is not None:
            write_probe_part(self.out_dir, "requests", key, frames[0])
            write_probe_part(self.out_dir, "iterations", key, frames[1])
        self.probe_rows.append({"workload": spec.label, "scheduler": spec.scheduler} | p.row() | spec.extra)
        self.save()
        return frames is None and key in self.replayed

    def save(self, *, final: bool = False) -> None:
        """Write probes.csv and summary.json; on the final save fold the per-probe parts in."""
        from slobench.report.results import consolidate_parts, write_json

        done = {probe_key(r["workload"], r["scheduler"], r["rate_rps"], r["seed"]) for r in self.probe_rows}
        # Saved probes not replayed yet stay in the file, so a second interruption loses nothing.
        rows = self.probe_rows + [r for k, r in self.previous.items() if k not in done]
        pd.DataFrame(rows).to_csv(self.out_dir / "probes.csv", index=False)
        write_json(self.out_dir / "summary.json", {
            "title": self.title, "target": self.target, "complete": self.complete, "capacities": self.capacities,
            "scaling": self.scaling, "wall_s": time.perf_counter() - self.started,
        })
        if final:
            if rows:  # the same tidy table, typed, for pandas users (probes.csv stays the resume source)
                pd.DataFrame(rows).to_parquet(self.out_dir / "probes.parquet", index=False)
            order = [probe_key(r["workload"], r["scheduler"], r["rate_rps"], r["seed"]) for r in rows]
            for kind in ("requests", "iterations"):
                consolidate_parts(self.out_dir, kind, order)


def _parse_list(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UserError(f"expected a comma-separated list, got {value!r}")
    return items


def _probe_result(res: Any, rate: float) -> ProbeResult:
    """Turn a RunResult into what the search needs: counts plus the validity evidence."""
    s = res.summary
    counts = s.get("status_counts", {}) or {}  # per stage
    df = res.records
    if len(df) and {"status", "request_id"} <= set(df.columns):  # count requests, not stages
        unfinished = int(df.loc[df["status"].isin(["unfinished", "timeout"]), "request_id"].nunique())
    else:
        unfinished = int(counts.get("unfinished", 0)) + int(counts.get("timeout", 0))
    tail = None
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
    lag = s.get("client_lag_s")
    return ProbeResult(
        num_met=int(s.get("num_met", round(s["attainment"] * s["num_requests"]))),
        num_requests=int(s["num_requests"]), offered_rate_rps=rate, achieved_rate_rps=achieved,
        client_lag_s=None if lag is None else float(lag), tail_s=tail, unfinished=unfinished,
    )


class SearchProgress:
    """Live rich display: a line per finished probe, a bar (requests done) for the one running."""

    def __init__(self, n_searches: int) -> None:
        self.n = n_searches
        self.i = 0
        self.label = ""
        self.prog = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=True)
        self.task = self.prog.add_task("starting", total=None)
        self.probes = 0

    def __enter__(self) -> SearchProgress:
        self.prog.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.prog.__exit__(*exc)  # type: ignore[arg-type]

    def start_search(self, spec: SearchSpec) -> None:
        self.i += 1
        self.probes = 0
        self.label = f"[{self.i}/{self.n}] {spec.label} × {spec.scheduler}"
        self.prog.update(self.task, description=f"{self.label}: starting", total=None, completed=0)

    def start_probe(self, rate: float, seed: int) -> None:
        self.prog.update(self.task, description=f"{self.label}: probe {self.probes + 1} at {rate:.3g} req/s "
                         f"seed {seed}", total=None, completed=0)

    def requests(self, done: int, total: int) -> None:
        self.prog.update(self.task, completed=done, total=total)

    def finished(self, p: Probe, cached: bool) -> None:
        self.probes += 1
        mark = "" if p.valid else f" [red]INVALID[/] ({p.reason})"
        note = " [dim](saved, not rerun)[/]" if cached else ""
        self.prog.console.print(f"  {self.label}: {p.rate_rps:.3g} req/s seed {p.seed} → {p.attainment:.1%} "
                                f"[{p.ci_low:.1%}, {p.ci_high:.1%}]{mark}{note}", highlight=False, soft_wrap=True)


def run_search(
    spec: SearchSpec,
    collector: Collector,
    settings: SearchSettings,
    *,
    progress: SearchProgress | None = None,
) -> CapacityResult | None:
    """Run one capacity search (or a fixed rate grid when ``settings.rates`` is set), collecting its rows."""
    from slobench.cluster import run as runner

    def probe(rate: float, seed: int) -> ProbeResult:
        key = probe_key(spec.label, spec.scheduler, rate, seed)
        cached = collector.cached_result(key)
        if cached is not None:
            return cached
        if progress is not None:
            progress.start_probe(rate, seed)
        cfg = runner.validate_config(scheduler=spec.scheduler, rate_rps=rate, seed=seed, **spec.run_kwargs)
        res = runner.run_once(cfg, on_progress=progress.requests if progress is not None else None)
        tags = {"workload": spec.label, "scheduler": spec.scheduler, "rate_rps": rate, "seed": seed} | spec.extra
        recs = res.records.assign(**tags)
        it = res.iterations.assign(**tags) if len(res.iterations) else pd.DataFrame()
        collector.stash(key, recs, it)
        return _probe_result(res, rate)

    def on_probe(p: Probe) -> None:
        cached = collector.add_probe(spec, p)
        if progress is not None:
            progress.finished(p, cached)

    if progress is not None:
        progress.start_search(spec)
    if settings.rates is not None:  # rate grid: every rate, every seed, no search
        for rate in settings.rates:
            for seed in settings.seeds:
                on_probe(make_probe(float(rate), seed, probe(float(rate), seed), ValidityLimits()))
        return None
    result = capacity_search(
        probe, target=settings.target, rate_start=settings.rate_start, rate_lo=settings.rate_lo,
        rate_hi=settings.rate_hi, rel_tol=settings.rel_tol, seeds=tuple(settings.seeds),
        refine_interval=settings.refine_interval, progress=on_probe)
    collector.capacities.append({
        "workload": spec.label, "scheduler": spec.scheduler, "capacity_rps": result.capacity_rps,
        "lower_rps": result.lower_rps, "upper_rps": result.upper_rps, "status": result.status,
        "message": result.message, "min_rate_rps": result.points[0].rate_rps if result.points else None,
        "num_rates": len(result.points), "num_probes": len(result.probes),
    } | spec.extra)
    collector.save()
    return result


def _fmt_capacity(row: dict[str, Any]) -> str:
    cap, status = row.get("capacity_rps"), row.get("status")
    if status == "below_range":
        lo = row.get("min_rate_rps")
        return f"< {lo:.3g}" if lo is not None else "–"
    if cap is None:
        return "–"
    return f"≥ {cap:.3g}" if status in ("above_range", "max_probes") and row.get("upper_rps") is None \
        else f"{cap:.3g}"


def capacity_table(capacities: list[dict[str, Any]], title: str = "Capacity") -> Table:
    """Rich table: workload, scheduler, capacity, its interval, ratio vs the first scheduler, status."""
    first = capacities[0]["scheduler"] if capacities else ""
    t = Table(title=title, header_style="bold", caption=f"req/s at the target attainment; interval = [highest "
              f"confident pass, lowest confident fail); ratio vs {first}")
    for col, just in (("workload", "left"), ("scheduler", "left"), ("capacity", "right"), ("interval", "right"),
                      ("ratio", "right"), ("status", "left")):
        t.add_column(col, justify=just)
    base: dict[str, dict[str, Any]] = {}
    for row in capacities:
        base.setdefault(row["workload"], row)
    for row in capacities:
        b = base[row["workload"]]
        ok = row["status"] == "ok" and b["status"] == "ok" and b["capacity_rps"]
        ratio = f"{row['capacity_rps'] / b['capacity_rps']:.2f}×" if ok else "–"
        lo, hi = row.get("lower_rps"), row.get("upper_rps")
        interval = f"[{'–' if lo is None else f'{lo:.3g}'}, {'–' if hi is None else f'{hi:.3g}'})"
        t.add_row(row["workload"], row["scheduler"], _fmt_capacity(row), interval, ratio,
                  row["status"] if row["status"] == "ok" else f"[yellow]{row['status']}[/]")
    return t


def _hint(status: str) -> str:
    return {"below_range": " (try --rate-min lower, a looser --target, or looser SLOs)",
            "above_range": " (try a higher --rate-max)",
            "max_probes": " (probe limit reached; narrow --rate-min/--rate-max)"}.get(status, "")


def _commands(out_dir: Path) -> str:
    d = shlex.quote(str(out_dir))
    return f"  resume:    slobench resume {d}\n  re-report: slobench report {d}"


def _finish(plan: Plan, collector: Collector, interrupted: bool) -> int:
    """Save, draw the report, print the table; return the exit code (see the module docstring)."""
    from slobench.report.rebuild import rebuild_report

    collector.complete = not interrupted
    if plan.scaling and collector.capacities:
        collector.scaling = [{"scheduler": c["scheduler"], "replicas": c["replicas"],
                              "capacity_rps": c["capacity_rps"]} for c in collector.capacities if "replicas" in c]
    collector.save(final=True)
    if collector.capacities:
        console.print(capacity_table(collector.capacities, title=plan.title))
    if interrupted:
        n = len(collector.probe_rows) + len(set(collector.previous) - collector.replayed)
        console.print(f"[yellow]interrupted[/]: {n} finished probes (with their records) saved in "
                      f"{collector.out_dir}\n{_commands(collector.out_dir)}", highlight=False, soft_wrap=True)
        return 130
    if not collector.probe_rows:
        console.print(f"[yellow]no probe finished[/]; results folder: {collector.out_dir}")
        return 1
    bad = [c for c in collector.capacities if c["status"] != "ok"]
    for c in bad:
        console.print(f"[yellow]{c['workload']} × {c['scheduler']}[/]: {c['message']}{_hint(c['status'])}",
                      highlight=False, soft_wrap=True)
    report, notices = rebuild_report(collector.out_dir)
    for n in notices:
        console.print(n, style="dim", markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report}", highlight=False, soft_wrap=True)
    console.print(f"[dim]{len(collector.probe_rows)} probes in {time.perf_counter() - collector.started:.1f} s; "
                  f"results: {collector.out_dir}[/]", highlight=False, soft_wrap=True)
    return EXIT_NO_CAPACITY if plan.strict and bad else 0


def execute(plan: Plan, collector: Collector) -> int:
    """Run every search of ``plan`` with live progress; save and report; return the exit code.

    Ctrl-C saves what finished, prints the resume and re-report commands, and re-raises.
    """
    from slobench.engines.vllm.pool import engine_session  # real engines: launched servers stop with the command

    interrupted = False
    try:
        with engine_session(collector.out_dir), SearchProgress(len(plan.specs)) as prog:
            for spec in plan.specs:
                run_search(spec, collector, plan.search, progress=prog)
    except KeyboardInterrupt:
        interrupted = True
    except Exception:
        collector.save(final=True)  # keep finished probes; the error itself is the caller's to show
        console.print(f"[yellow]failed[/]: finished probes kept in {collector.out_dir}\n{_commands(collector.out_dir)}",
                      highlight=False, soft_wrap=True)
        raise
    code = _finish(plan, collector, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return code


def _check_schedulers(names: Sequence[str]) -> None:
    """Unknown or not-yet-available scheduler names fail before any probe runs, in one line."""
    from slobench.schedulers.registry import make_scheduler, scheduler_names

    known = scheduler_names()
    for name in names:
        if name not in known:
            raise UserError(f"unknown scheduler {name!r}; known: {', '.join(known)}")
        try:
            make_scheduler(name)
        except ImportError as exc:
            raise UserError(f"scheduler {name!r} is not available in this build ({exc}); choose from "
                            f"{', '.join(known)}") from None


def _preflight(specs: Sequence[SearchSpec]) -> None:
    """Validate every distinct run setting (flags, workload, hardware/model/profile) before probing."""
    from slobench.cluster import run as runner
    from slobench.workloads import load_spec

    _check_schedulers(list(dict.fromkeys(s.scheduler for s in specs)))
    seen: set[str] = set()
    for spec in specs:
        sig = json.dumps(spec.run_kwargs, sort_keys=True, default=str)
        if sig in seen:
            continue
        seen.add(sig)
        cfg = runner.validate_config(scheduler=spec.scheduler, rate_rps=1.0, seed=0, **spec.run_kwargs)
        load_spec(cfg.workload)
        if cfg.engine == "sim":
            runner.build_latency_model(cfg)


def _start(plan: Plan, out: Path, name: str, config: dict[str, Any]) -> Collector:
    """Make the results folder, write the manifest (with the plan, for resume), return its collector."""
    from slobench.report.results import new_run_dir, write_manifest

    path = new_run_dir(name, root=out)
    seeds = plan.search.seeds
    write_manifest(path, command=sys.argv, config={"name": name} | config, seed=seeds[0] if seeds else None,
                   extra={"plan": plan.to_dict()})
    return Collector(path, plan.search.target, plan.title)


def resume_run(results_dir: Path, *, kind: str | None = None) -> int:
    """Continue the plan saved in ``results_dir``; saved probes are reused, the rest run."""
    manifest_path = Path(results_dir) / "manifest.json"
    if not Path(results_dir).is_dir():
        raise UserError(f"{results_dir}: not a folder; give a results folder written by compare/capacity/sweep")
    if not manifest_path.exists():
        raise UserError(f"{manifest_path} not found: is {results_dir} a slobench results folder?")
    manifest = json.loads(manifest_path.read_text())
    if "plan" not in manifest:
        raise UserError(f"{manifest_path}: no saved plan (written by `slobench run` or an older slobench); "
                        "cannot resume, start a new run")
    plan = Plan.from_dict(manifest["plan"])
    if kind is not None and plan.kind != kind:
        raise UserError(f"{results_dir} holds a `{plan.kind}` run; resume it with: slobench resume {results_dir}")
    _preflight(plan.specs)
    manifest.setdefault("resumed", []).append({"at": datetime.now().isoformat(timespec="seconds"),
                                               "command": " ".join(sys.argv)})
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
    collector = Collector(Path(results_dir), plan.search.target, plan.title)
    n = collector.load_previous()
    console.print(f"resuming {plan.kind} in {results_dir}: {n} saved probes reused", highlight=False, soft_wrap=True)
    return execute(plan, collector)


def _refuse_with_resume(ctx: typer.Context, resume: Path | None, kind: str) -> None:
    """``--resume`` replays the saved settings; other flags on the same line would be silently ignored."""
    if resume is None:
        return
    # Typer vendors click, so compare the source by name rather than against click's enum.
    given = [p.opts[0] for p in ctx.command.params if p.name != "resume" and p.name is not None
             and getattr(ctx.get_parameter_source(p.name), "name", "") == "COMMANDLINE"]
    if given:
        raise UserError(f"--resume continues the saved run with its saved settings; drop {', '.join(given)} "
                        "(or start a new run without --resume)")
    raise typer.Exit(resume_run(resume, kind=kind))


def _workload_arg(workload: str) -> str:
    """A YAML path is stored absolute, so a resume from another folder finds it; names stay names."""
    p = Path(workload)
    return str(p.resolve()) if p.suffix in (".yaml", ".yml") and p.exists() else workload


def _run_kwargs(*, hardware: str, model: str, tp: int, profile: str | None, replicas: int, engine: str,
                num_requests: int | None, quick: bool, url: str | None = None,
                engine_options: dict[str, Any] | None = None) -> dict[str, Any]:
    n = num_requests or (QUICK_REQUESTS if quick else DEFAULT_REQUESTS)
    kw: dict[str, Any] = {"hardware": hardware, "model": model, "tp": tp, "replicas": replicas, "engine": engine,
                          "num_requests": n}
    if profile:
        kw["profile"] = profile
    if url:  # real engines only (sim plans stay as they were)
        kw["url"] = url
    if engine_options:
        kw["engine_options"] = engine_options
    return kw


def _engine_options(pairs: list[str] | None, config: Path | None) -> dict[str, Any]:
    from slobench.engines.options import parse_engine_args

    return parse_engine_args(pairs, config)


def _setup_text(kw: dict[str, Any]) -> str:
    if kw.get("profile"):
        return f"profile {kw['profile']}"
    tp = f" TP{kw['tp']}" if kw.get("tp", 1) > 1 else ""
    reps = f" ×{kw['replicas']} replicas" if kw.get("replicas", 1) > 1 else ""
    return f"{kw['hardware']}, {kw['model']}{tp}{reps}, {kw['engine']}"


def _settings(target: float, seeds: list[int], quick: bool, rate_start: float, rate_min: float, rate_max: float,
              refine_interval: bool | None) -> SearchSettings:
    if not rate_min < rate_max:
        raise UserError(f"--rate-min {rate_min:g} must be below --rate-max {rate_max:g}")
    refine = not quick if refine_interval is None else refine_interval
    return SearchSettings(target=target, seeds=list(seeds), rel_tol=0.05 if quick else 0.02, rate_start=rate_start,
                          rate_lo=rate_min, rate_hi=rate_max, refine_interval=refine)


WorkloadOpt = Annotated[list[str], typer.Option(
    "--workload", "-w", help="Workload name or YAML path; repeat it or give a comma-separated list.")]
TargetOpt = Annotated[float, typer.Option("--target", help="Attainment target in (0, 1].", min=0.01, max=1.0)]
HardwareOpt = Annotated[str, typer.Option("--hardware", help="GPU spec name, e.g. H100-SXM.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Model spec name, e.g. Llama-3.1-8B; real engines: the local "
                                      "model folder (or hub id) to serve.")]
TpOpt = Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree (roofline model).")]
ProfileOpt = Annotated[str | None, typer.Option(
    "--profile", help="Named latency profile, e.g. paper:opt-13b-a100-tp2 (overrides --hardware/--model/--tp).")]
ReplicasOpt = Annotated[int, typer.Option("--replicas", min=1, help="Replicas behind the router.")]
SeedOpt = Annotated[list[int], typer.Option("--seed", help="Seed(s); the same for every scheduler. Repeatable.")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="200 requests per probe, 5% grid: a first look in seconds.")]
EngineOpt = Annotated[str, typer.Option("--engine", help="sim (default) | vllm | openai")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="--engine openai: server base URL, e.g. http://host:8000/v1.")]
EngineArgOpt = Annotated[list[str] | None, typer.Option(
    "--engine-arg", help="Real-engine option KEY=VALUE (repeatable), e.g. max_num_seqs=64; see docs/real-engines.md.")]
EngineConfigOpt = Annotated[Path | None, typer.Option("--engine-config", help="YAML file of real-engine options.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Results root; a timestamped folder is made inside.")]
RequestsOpt = Annotated[int | None, typer.Option("--num-requests", min=10, help="Requests per probe.")]
StartOpt = Annotated[float, typer.Option("--rate-start", min=0.001, help="First rate probed (req/s).")]
RateMinOpt = Annotated[float, typer.Option("--rate-min", min=0.0001, help="Lowest rate the search may probe.")]
RateMaxOpt = Annotated[float, typer.Option("--rate-max", min=0.001, help="Highest rate the search may probe.")]
RefineOpt = Annotated[bool | None, typer.Option(
    "--refine-interval/--no-refine-interval",
    help="Extra probes (≈ +50%) tightening the capacity's interval to grid neighbours. Default: on; off with --quick.")]
ResumeOpt = Annotated[Path | None, typer.Option(
    "--resume", help="Continue an interrupted run in this results folder with its saved settings.")]


def compare_cmd(
    ctx: typer.Context,
    workload: WorkloadOpt = ["coding"],  # noqa: B006 - typer needs a literal default
    schedulers: Annotated[str, typer.Option("--schedulers", help="Comma-separated; ratios are vs the first.")]
    = "vllm,slos-serve",
    target: TargetOpt = 0.9,
    hardware: HardwareOpt = "H100-SXM",
    model: ModelOpt = "Llama-3.1-8B",
    tp: TpOpt = 1,
    profile: ProfileOpt = None,
    replicas: ReplicasOpt = 1,
    seed: SeedOpt = [0],  # noqa: B006
    quick: QuickOpt = False,
    engine: EngineOpt = "sim",
    out: OutOpt = Path("results"),
    num_requests: RequestsOpt = None,
    rate_start: StartOpt = 1.0,
    rate_min: RateMinOpt = 0.05,
    rate_max: RateMaxOpt = 1024.0,
    refine_interval: RefineOpt = None,
    resume: ResumeOpt = None,
    url: UrlOpt = None,
    engine_arg: EngineArgOpt = None,
    engine_config: EngineConfigOpt = None,
) -> None:
    """Capacity of each scheduler on each workload, side by side, with a report.

    Example: slobench compare --workload coding --workload chatbot --quick
    """
    _refuse_with_resume(ctx, resume, "compare")
    workloads = [w for item in workload for w in _parse_list(item)]
    scheds = _parse_list(schedulers)
    kw = _run_kwargs(hardware=hardware, model=model, tp=tp, profile=profile, replicas=replicas, engine=engine,
                     num_requests=num_requests, quick=quick, url=url,
                     engine_options=_engine_options(engine_arg, engine_config))
    specs = [SearchSpec(wl, s, kw | {"workload": _workload_arg(wl)}) for wl in workloads for s in scheds]
    settings = _settings(target, seed, quick, rate_start, rate_min, rate_max, refine_interval)
    _preflight(specs)
    title = f"slobench compare: {', '.join(workloads)} ({_setup_text(kw)})"
    plan = Plan("compare", title, specs, settings)
    name = "compare-" + "-".join(Path(w).stem for w in workloads)
    config = {"workloads": workloads, "schedulers": scheds, "target": target, "seeds": seed, "quick": quick} | kw
    raise typer.Exit(execute(plan, _start(plan, out, name, config)))


def capacity_cmd(
    ctx: typer.Context,
    workload: Annotated[str, typer.Option("--workload", "-w", help="Workload name or YAML path.")] = "coding",
    scheduler: Annotated[str, typer.Option("--scheduler", "-s", help="Scheduler name.")] = "slos-serve",
    target: TargetOpt = 0.9,
    hardware: HardwareOpt = "H100-SXM",
    model: ModelOpt = "Llama-3.1-8B",
    tp: TpOpt = 1,
    profile: ProfileOpt = None,
    replicas: ReplicasOpt = 1,
    seed: SeedOpt = [0],  # noqa: B006
    quick: QuickOpt = False,
    engine: EngineOpt = "sim",
    out: OutOpt = Path("results"),
    num_requests: RequestsOpt = None,
    rate_start: StartOpt = 1.0,
    rate_min: RateMinOpt = 0.05,
    rate_max: RateMaxOpt = 1024.0,
    refine_interval: RefineOpt = None,
    resume: ResumeOpt = None,
    url: UrlOpt = None,
    engine_arg: EngineArgOpt = None,
    engine_config: EngineConfigOpt = None,
) -> None:
    """Capacity of one scheduler on one workload.

    Example: slobench capacity --workload coding --scheduler slos-serve
    """
    _refuse_with_resume(ctx, resume, "capacity")
    kw = _run_kwargs(hardware=hardware, model=model, tp=tp, profile=profile, replicas=replicas, engine=engine,
                     num_requests=num_requests, quick=quick, url=url,
                     engine_options=_engine_options(engine_arg, engine_config))
    specs = [SearchSpec(workload, scheduler, kw | {"workload": _workload_arg(workload)})]
    settings = _settings(target, seed, quick, rate_start, rate_min, rate_max, refine_interval)
    _preflight(specs)
    plan = Plan("capacity", f"slobench capacity: {workload} × {scheduler} ({_setup_text(kw)})", specs, settings)
    config = {"workload": workload, "scheduler": scheduler, "target": target, "seeds": seed, "quick": quick} | kw
    raise typer.Exit(execute(plan, _start(plan, out, f"capacity-{Path(workload).stem}-{scheduler}", config)))


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
    rate_start: float = Field(default=1.0, gt=0)
    rate_min: float = Field(default=0.05, gt=0)
    rate_max: float = Field(default=1024.0, gt=0)
    engine: str = "sim"
    hardware: str = "H100-SXM"
    model: str = "Llama-3.1-8B"
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

    from slobench.yaml_files import load_yaml_model

    return load_yaml_model(path, SweepGrid)


def _workload_with(workload: str, overrides: dict[str, Any], out_dir: Path) -> str:
    """A workload variant with SLOs scaled / burstiness changed, written next to the results."""
    if not overrides:
        return _workload_arg(workload)
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
    return str(path.resolve())


def sweep_specs(g: SweepGrid, out_dir: Path, *, quick: bool) -> list[SearchSpec]:
    """One search per (workload, grid point, scheduler); grid values go into the label and the rows."""
    axes = list(g.grid)
    specs: list[SearchSpec] = []
    for wl in g.workload:
        for values in itertools.product(*(g.grid[a] for a in axes)) if axes else [()]:
            point = dict(zip(axes, values, strict=True))
            run_kw: dict[str, Any] = {"engine": g.engine, "hardware": g.hardware, "model": g.model,
                                      "num_requests": QUICK_REQUESTS if quick else g.num_requests}
            run_kw |= {GRID_AXES[a]: v for a, v in point.items() if GRID_AXES[a]}
            overrides = {a: v for a, v in point.items() if GRID_AXES[a] is None}
            run_kw["workload"] = _workload_with(wl, overrides, out_dir)
            label = " ".join([Path(wl).stem, *(f"{a}={v}" for a, v in point.items())])
            specs += [SearchSpec(label, s, run_kw, extra={"base_workload": Path(wl).stem} | point)
                      for s in g.schedulers]
    return specs


def sweep_cmd(
    ctx: typer.Context,
    grid: Annotated[Path | None, typer.Option(
        "--grid", help="Sweep YAML (workload, schedulers, rates?, grid: {...}).")] = None,
    out: OutOpt = Path("results"),
    quick: QuickOpt = False,
    resume: ResumeOpt = None,
) -> None:
    """Probe a rate grid, or search capacity, over a parameter grid; tidy probes.csv + report.

    Example: slobench sweep --grid sweep.yaml   (sweep.yaml: workload: coding, grid: {slo_scale: [0.5, 1, 2]})
    """
    _refuse_with_resume(ctx, resume, "sweep")
    if grid is None:
        raise UserError("--grid: missing; give a sweep YAML file (or --resume RESULTS_DIR)")
    g = load_grid(grid)
    if not g.rate_min < g.rate_max:
        raise UserError(f"{grid}: rate_min {g.rate_min:g} must be below rate_max {g.rate_max:g}")
    from slobench.report.results import new_run_dir, write_manifest

    out_dir = new_run_dir(f"sweep-{grid.stem}", root=out)
    specs = sweep_specs(g, out_dir, quick=quick)
    _preflight(specs)
    settings = SearchSettings(target=g.target, seeds=g.seeds, rel_tol=0.05 if quick else g.rel_tol,
                              rate_start=g.rate_start, rate_lo=g.rate_min, rate_hi=g.rate_max, rates=g.rates)
    plan = Plan("sweep", f"slobench sweep: {grid.name}", specs, settings, scaling="replicas" in g.grid,
                strict=False)
    write_manifest(out_dir, command=sys.argv, config=g.model_dump() | {"grid_file": str(grid), "quick": quick},
                   seed=g.seeds[0], extra={"plan": plan.to_dict()})
    raise typer.Exit(execute(plan, Collector(out_dir, g.target, plan.title)))


def resume_cmd(
    results_dir: Annotated[Path, typer.Argument(help="The results folder of an interrupted compare/capacity/sweep.")],
) -> None:
    """Continue an interrupted compare, capacity or sweep: saved probes are reused, the rest run.

    Example: slobench resume results/20260101-120000-compare-coding
    """
    raise typer.Exit(resume_run(results_dir))


def report_cmd(
    results_dir: Annotated[Path, typer.Argument(help="A results folder written by compare/capacity/sweep.")],
    png: Annotated[bool, typer.Option("--png/--no-png", help="Also write figures/*.png (needs kaleido + Chromium).")]
    = True,
) -> None:
    """Redraw figures and report.html from a results folder, without rerunning.

    Example: slobench report results/20260101-120000-compare-coding
    """
    from slobench.report.rebuild import rebuild_report

    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: not a folder")
    try:
        report, notices = rebuild_report(results_dir, png=png)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    for n in notices:
        console.print(n, style="dim", markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Attach `compare`, `capacity`, `sweep`, `report` and `resume` to the root app."""
    app.command("compare")(compare_cmd)
    app.command("capacity")(capacity_cmd)
    app.command("sweep")(sweep_cmd)
    app.command("report")(report_cmd)
    app.command("resume")(resume_cmd)
