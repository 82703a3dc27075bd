"""Regenerate a SLOs-Serve-style figure set on the simulator into results/figures/.

Sections (scripts/paper_experiment.yaml): capacity of every scheduler across the six scenarios,
attainment vs rate per scenario, SLO-tightness sweep, burstiness sweep, replica scaling (capacity per
replica for every router × policy pair against linear scaling, as `slobench compare --scaling`), and the
sensitivity of capacity and ratio to SLO scale and planning-model error. Each
section is one results folder under results/paper-<stamp>/<section>/ (probes.csv, requests.parquet,
summary.json, report.html), so `slobench report` redraws it and `slobench resume` continues it;
the figures of all sections are also written to results/figures/ (one report.html embedding them
all, <section>-<figure>.html each, and PNGs when kaleido + Chromium are installed).
A section that cannot run in this build (e.g. a scheduler not available yet) is skipped with one line.

Usage: python scripts/paper_figures.py [--quick] [--config scripts/paper_experiment.yaml] [--out results]
                                       [--resume results/paper-<stamp>]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slobench.capacity.execute import execute, write_plan_manifest
from slobench.capacity.plan import (
    QUICK_REQUESTS,
    Plan,
    SearchSettings,
    SearchSpec,
    check_routers,
    parse_replica_counts,
    preflight,
    scaling_specs,
    workload_variant,
)
from slobench.capacity.search import CapacityResult, Probe
from slobench.capacity.store import Collector
from slobench.errors import UserError
from slobench.report.html import write_report
from slobench.report.rebuild import build_figures, caption_for, load_results
from slobench.report.results import new_run_dir


class Axis(BaseModel):
    """One swept parameter on one workload."""

    model_config = ConfigDict(extra="forbid")
    workload: str
    values: list[float] = Field(min_length=1)


class ReplicaAxis(BaseModel):
    """Replica scaling on one workload: every scheduler × router at each replica count (one replica once)."""

    model_config = ConfigDict(extra="forbid")
    workload: str
    values: list[int] = Field(default_factory=lambda: [1, 2, 4], min_length=2)
    routers: list[str] = Field(default_factory=lambda: ["round-robin", "vllm-dp", "power-of-two", "slo-aware"],
                               min_length=1)


class Sensitivity(BaseModel):
    """Capacity and ratio against SLO scale and planning-model error (see `slobench sensitivity`)."""

    model_config = ConfigDict(extra="forbid")
    workloads: list[str] = Field(min_length=1)
    slo_scale: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0], min_length=1)
    model_error: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.2], min_length=1)


class PaperExperiment(BaseModel):
    """The experiment file; validated so a typo fails in one line before hours of probing."""

    model_config = ConfigDict(extra="forbid")
    schedulers: list[str] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    num_requests: int = Field(default=600, ge=10)
    target: float = Field(default=0.9, gt=0, le=1)
    hardware: str = "H100-SXM"
    model: str = "Llama-3.1-8B"
    tp: int = Field(default=1, ge=1)
    profile: str | None = None
    scenarios: list[str] = Field(min_length=1)
    slo_scale: Axis | None = None
    burstiness_cv: Axis | None = None
    replicas: ReplicaAxis | None = None
    sensitivity: Sensitivity | None = None


def load_experiment(path: Path) -> PaperExperiment:
    """Read and validate the experiment file; every problem is one UserError line naming the field."""
    from slobench.yaml_files import load_yaml_model

    exp = load_yaml_model(path, PaperExperiment)
    if exp.replicas is not None:  # counts and router names checked now, not after hours of other sections
        axis = exp.replicas
        axis.values = parse_replica_counts(",".join(map(str, axis.values)), flag=f"{path}: replicas.values")
        axis.routers = check_routers(axis.routers, flag=f"{path}: replicas.routers")
    return exp


def sections(exp: PaperExperiment, root: Path, quick: bool) -> list[tuple[str, list[SearchSpec], bool]]:
    """(name, searches, replica-scaling?) per section; a sweep that cannot be built is skipped with a line."""
    base: dict[str, Any] = {"hardware": exp.hardware, "model": exp.model, "tp": exp.tp,
                            "num_requests": QUICK_REQUESTS if quick else exp.num_requests}
    if exp.profile:
        base["profile"] = exp.profile
    out = [("scenarios", [SearchSpec(w, s, base | {"workload": w}) for w in exp.scenarios for s in exp.schedulers],
            False)]
    for axis_name in ("slo_scale", "burstiness_cv"):
        axis: Axis | None = getattr(exp, axis_name)
        if axis is None:
            continue
        specs: list[SearchSpec] = []
        try:
            for value in axis.values:
                kw = base | {"workload": workload_variant(axis.workload, {axis_name: value}, root / axis_name)}
                specs += [SearchSpec(f"{axis.workload} {axis_name}={value:g}", s, kw,
                                     extra={"base_workload": axis.workload, axis_name: value})
                          for s in exp.schedulers]
        except UserError as exc:
            print(f"skipped {axis_name} sweep: {exc}")
            continue
        out.append((axis_name, specs, False))
    if exp.replicas is not None:  # as `slobench compare --scaling`: capacity per replica by router × policy
        reps = exp.replicas
        out.append(("replicas", scaling_specs({reps.workload: reps.workload}, exp.schedulers, reps.values,
                                              reps.routers, base), True))
    if exp.sensitivity is not None:
        from slobench.capacity.sensitivity import check_axis, points, sensitivity_specs

        sens = exp.sensitivity
        try:
            pts = points(check_axis("slo_scale", sens.slo_scale), check_axis("truth_bias", sens.model_error))
            out.append(("sensitivity", sensitivity_specs(sens.workloads, exp.schedulers, pts, base,
                                                         root / "sensitivity"), False))
        except UserError as exc:
            print(f"skipped sensitivity: {exc}")
    return out


class PrintProgress:
    """Plain progress lines (a `slobench.capacity.execute.SearchObserver`): one per probe and per search."""

    def __init__(self) -> None:
        self.label = ""

    def start_search(self, spec: SearchSpec, index: int, total: int) -> None:
        self.label = f"[{index}/{total}] {spec.label} × {spec.scheduler}"

    def start_probe(self, rate_rps: float, seed: int) -> None:
        pass

    def requests(self, done: int, total: int) -> None:
        pass

    def finished(self, probe: Probe, cached: bool) -> None:
        mark = "" if probe.valid else f" INVALID ({probe.reason})"
        note = " (saved, not rerun)" if cached else ""
        print(f"  {self.label}: {probe.rate_rps:.3g} req/s seed {probe.seed} → {probe.attainment:.1%} "
              f"[{probe.ci_low:.1%}, {probe.ci_high:.1%}]{mark}{note}", flush=True)

    def finished_search(self, spec: SearchSpec, result: CapacityResult | None) -> None:
        if result is not None:
            print(f"{self.label}: {result.message}", flush=True)


def run_section(name: str, specs: list[SearchSpec], settings: SearchSettings, root: Path, scaling: bool) -> Path:
    """Run (or resume) one section in ``root/name``; return its results folder (Ctrl-C: saved, re-raised)."""
    out = root / name
    plan = Plan("paper", f"paper figures: {name}", specs, settings, scaling=scaling, strict=False)
    resuming = (out / "manifest.json").exists()
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        write_plan_manifest(out, plan, {"section": name})
    collector = Collector(out, settings.target, plan.title)
    if resuming:
        print(f"{name}: resuming, {collector.load_previous()} saved probes reused")
    t0 = time.perf_counter()
    outcome = execute(plan, collector, PrintProgress())
    if outcome.interrupted:
        raise KeyboardInterrupt
    for n in outcome.notices:
        print(n)
    print(f"{name}: {out / 'report.html'} ({time.perf_counter() - t0:.1f} s)")
    return out


# The paper's figures, per section (figure-name prefixes); each section's own report.html keeps the rest
# (per-point attainment curves, latency CDFs, batch timelines).
HEADLINE = {"scenarios": ("capacity", "attainment-"), "slo_scale": ("capacity-vs-",),
            "burstiness_cv": ("capacity-vs-",), "sensitivity": ("sensitivity-",),
            "replicas": ("replica-scaling", "scaling-per-replica", "scaling-per-replica-")}


def write_figure_set(figures: Path, sections_done: list[Path], config: Path) -> tuple[Path, int]:
    """Write the headline figures of every section into ``figures`` (+ one report.html embedding them)."""
    figures.mkdir(parents=True, exist_ok=True)
    figs = {}
    for section in sections_done:
        keep = HEADLINE.get(section.name, ())
        for fig_name, fig in build_figures(load_results(section)).items():
            if fig_name in keep or any(p.endswith("-") and fig_name.startswith(p) for p in keep):
                figs[f"{section.name}-{fig_name}"] = fig
    links = " · ".join(f'<a href="{os.path.relpath(s / "report.html", figures)}">{s.name}</a>'
                       for s in sections_done)
    intro = f"<p>Full section reports (every probe, latency CDFs, batch timelines): {links}</p>"
    report, notices = write_report(figures, figs, title=f"SLOs-Serve-style figures ({config.name})", intro_html=intro,
                                   captions={n: caption_for(n.split("-", 1)[1]) for n in figs}, fig_subdir=".")
    for n in notices:
        print(n)
    shutil.copy2(config, figures / "experiment.yaml")
    return report, len(figs)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path(__file__).with_name("paper_experiment.yaml"))
    ap.add_argument("--out", type=Path, default=Path("results"))
    ap.add_argument("--quick", action="store_true", help="200 requests per probe, 5%% rate grid")
    ap.add_argument("--resume", type=Path, default=None, help="continue an interrupted results/paper-<stamp>")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    try:
        exp = load_experiment(args.config)
        root = args.resume if args.resume is not None else new_run_dir("paper", root=args.out)
        if args.resume is not None and not args.resume.is_dir():
            raise UserError(f"--resume {args.resume}: not a folder")
        settings = SearchSettings(target=exp.target, seeds=exp.seeds, rel_tol=0.05 if args.quick else 0.02,
                                  refine_interval=not args.quick)
        todo = sections(exp, root, args.quick)
        done: list[Path] = []
        for name, specs, scaling in todo:
            try:
                preflight(specs)
            except UserError as exc:
                print(f"skipped {name}: {exc}")
                continue
            done.append(run_section(name, specs, settings, root, scaling))
    except UserError as exc:
        print(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; finished probes are kept. Continue with:\n"
              f"  python scripts/paper_figures.py {'--quick ' if args.quick else ''}--config {args.config} "
              f"--resume {root}")
        return 130
    report, n = write_figure_set(args.out / "figures", done, args.config)
    print(f"figures: {report.parent} ({n} figures, all in {report}); full section reports in {root}; "
          f"{time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
