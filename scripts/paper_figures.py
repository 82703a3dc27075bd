"""Regenerate a SLOs-Serve-style figure set on the simulator into results/figures/.

Sections (scripts/paper_experiment.yaml): capacity across the six scenarios, attainment vs rate per
scenario, SLO-tightness sweep, burstiness sweep, replica scaling. Each section is one results folder
(probes.csv, summary.json, report.html) under results/paper-<stamp>/ so it can be redrawn with
``slobench report``; the headline figures are also copied to results/figures/<section>-<name>.html.
A section that cannot run in this build (e.g. no workload overrides yet) is skipped with one line.

Usage: python scripts/paper_figures.py [--quick] [--config scripts/paper_experiment.yaml] [--out results]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from slobench.cli.compare import QUICK_REQUESTS, Collector, SearchSpec, _check_schedulers, _workload_with, run_search
from slobench.errors import UserError
from slobench.report.rebuild import rebuild_report
from slobench.report.results import new_run_dir


class Axis(BaseModel):
    """One swept parameter on one workload."""

    model_config = ConfigDict(extra="forbid")
    workload: str
    values: list[float] = Field(min_length=1)


class PaperExperiment(BaseModel):
    """The experiment file; validated so a typo fails in one line before hours of probing."""

    model_config = ConfigDict(extra="forbid")
    schedulers: list[str] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    num_requests: int = Field(default=600, ge=10)
    target: float = Field(default=0.9, gt=0, le=1)
    hardware: str = "H100-SXM"
    model: str = "Llama-3.1-8B"
    scenarios: list[str] = Field(min_length=1)
    slo_scale: Axis | None = None
    burstiness_cv: Axis | None = None
    replicas: Axis | None = None


def _section(name: str, specs: list[SearchSpec], exp: PaperExperiment, root: Path, rel_tol: float,
             scaling: bool = False) -> Path:
    out = new_run_dir(name, root=root)
    col = Collector(out, exp.target, f"paper: {name}")
    t0 = time.perf_counter()
    for spec in specs:
        res = run_search(spec, col, target=exp.target, seeds=exp.seeds, rel_tol=rel_tol, rate_start=1.0)
        cap = f"{res.capacity_rps:.3g}" if res and res.capacity_rps is not None else "–"
        print(f"  {spec.label} × {spec.scheduler}: capacity {cap} req/s ({res.status if res else 'grid'})")
    if scaling:
        col.scaling = [{"scheduler": c["scheduler"], "replicas": c["replicas"], "capacity_rps": c["capacity_rps"]}
                       for c in col.capacities]
    col.save(final=True)
    report, notices = rebuild_report(out)
    for n in notices:
        print(f"  {n}")
    print(f"{name}: {report} ({time.perf_counter() - t0:.1f} s)")
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path(__file__).with_name("paper_experiment.yaml"))
    ap.add_argument("--out", type=Path, default=Path("results"))
    ap.add_argument("--quick", action="store_true", help="fewer requests, 5%% tolerance")
    args = ap.parse_args(argv)
    try:
        exp = PaperExperiment.model_validate(yaml.safe_load(args.config.read_text()))
        _check_schedulers(exp.schedulers)
    except (UserError, ValueError) as exc:
        print(f"error: {args.config}: {str(exc).splitlines()[0]}")
        return 2
    root = new_run_dir("paper", root=args.out)
    figures = args.out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    n = QUICK_REQUESTS if args.quick else exp.num_requests
    rel_tol = 0.05 if args.quick else 0.02
    base: dict[str, Any] = {"hardware": exp.hardware, "model": exp.model, "num_requests": n}
    sections: list[tuple[str, list[SearchSpec], bool]] = [
        ("scenarios", [SearchSpec(w, s, base | {"workload": w}) for w in exp.scenarios for s in exp.schedulers],
         False)]
    for axis_name in ("slo_scale", "burstiness_cv", "replicas"):
        axis: Axis | None = getattr(exp, axis_name)
        if axis is None:
            continue
        specs = []
        try:
            for v in axis.values:
                v = int(v) if axis_name == "replicas" else v
                kw = base | ({"replicas": v, "workload": axis.workload} if axis_name == "replicas" else
                             {"workload": _workload_with(axis.workload, {axis_name: v}, root)})
                specs += [SearchSpec(f"{axis.workload} {axis_name}={v}", s, kw, extra={axis_name: v})
                          for s in exp.schedulers]
        except UserError as exc:
            print(f"skipped {axis_name} sweep: {exc}")
            continue
        sections.append((axis_name, specs, axis_name == "replicas"))
    for name, specs, scaling in sections:
        try:
            out = _section(name, specs, exp, root, rel_tol, scaling)
        except (UserError, ImportError) as exc:
            print(f"skipped {name}: {exc}")
            continue
        for fig in (out / "figures").glob("*.html"):
            shutil.copy2(fig, figures / f"{name}-{fig.name}")
        shutil.copy2(out / "figures" / "plotly.min.js", figures / "plotly.min.js")
    print(f"figures: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
