"""Sensitivity: capacity and the policies' ratio against SLO scale and planning-model error.

One capacity number rests on one SLO preset and on a simulator whose GPU behaves exactly as the
policy's planning model says. A reviewer's first question is how the answer moves when either
changes, so `slobench sensitivity` runs one capacity search per (workload, policy, point) along two
axes, one at a time through the preset point:

- ``slo_scale``: every TTFT/TPOT target × s (< 1 tighter), with the planning model exact (or at the
  ``base_error`` given);
- ``truth_bias`` ("model error"): the simulated GPU's iterations take (1 + e)× what the planning
  model predicts (`RunConfig.truth_bias`), at the preset SLOs.

The preset point (scale 1, the base error) is shared by both axes and run once. Every search is a
normal `SearchSpec`, so the plan is saved, resumable and reported like any compare; the grid values
ride in ``extra`` (``base_workload``, ``slo_scale``, ``truth_bias``) onto every probe and capacity row.
`slobench.report.sensitivity` turns the capacity rows into the table the CLI prints and
``sensitivity.csv`` holds, and into the figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slobench.capacity.plan import SearchSpec, workload_variant
from slobench.errors import UserError


def check_axis(name: str, values: Sequence[float]) -> list[float]:
    """Sorted distinct values of one axis; a value outside its range is one UserError line."""
    flag = {"slo_scale": "--slo-scale", "truth_bias": "--model-error"}[name]
    if not values:
        raise UserError(f"{flag}: give at least one value")
    for v in values:
        if not math.isfinite(v) or (name == "slo_scale" and v <= 0) or (name == "truth_bias" and v <= -1):
            need = "a positive factor, e.g. 0.5,1,2,4" if name == "slo_scale" else \
                "a fraction > -1, e.g. 0,0.1,0.2 (0.1 = the GPU is 10% slower than the planning model)"
            raise UserError(f"{flag}: {v:g} is not {need}")
    return sorted(set(values))


def points(slo_scales: Sequence[float], errors: Sequence[float], base_error: float = 0.0) -> list[dict[str, float]]:
    """The (slo_scale, truth_bias) points: the SLO axis at ``base_error``, the error axis at scale 1."""
    pts = [{"slo_scale": s, "truth_bias": base_error} for s in slo_scales]
    pts += [{"slo_scale": 1.0, "truth_bias": e} for e in errors]
    pts.append({"slo_scale": 1.0, "truth_bias": base_error})
    seen: dict[tuple[float, float], dict[str, float]] = {}
    for p in pts:
        seen.setdefault((p["slo_scale"], p["truth_bias"]), p)
    return sorted(seen.values(), key=lambda p: (p["truth_bias"], p["slo_scale"]))


def sensitivity_specs(workloads: Sequence[str], schedulers: Sequence[str], pts: Sequence[dict[str, float]],
                      base_kwargs: dict[str, Any], out_dir: Path) -> list[SearchSpec]:
    """One search per (workload, point, policy). SLO-scaled workload variants are written under
    ``out_dir/workloads`` (so a resume from anywhere finds them); the preset scale uses the workload as is."""
    specs: list[SearchSpec] = []
    for wl in workloads:
        base = Path(wl).stem if Path(wl).suffix in (".yaml", ".yml") else wl
        for p in pts:
            scale, err = p["slo_scale"], p["truth_bias"]
            variant = workload_variant(wl, {"slo_scale": scale} if scale != 1.0 else {}, out_dir)
            kw = base_kwargs | {"workload": variant, "truth_bias": err}
            label = f"{base} slo_scale={scale:g} model_error={err:g}"
            specs += [SearchSpec(label, s, kw, extra={"base_workload": base, "slo_scale": scale, "truth_bias": err})
                      for s in schedulers]
    return specs
