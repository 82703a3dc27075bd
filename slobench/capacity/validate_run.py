"""A `validate` plan: the same capacity search on the real engine and in the simulator, then the comparison.

`validate_specs` turns one workload and a list of policies into two searches per policy that differ only in
the engine: ``<workload>/sim`` (the simulator on the calibrated profile) and ``<workload>/real`` (the real
engine, whose in-engine policy plans with the same profile). Everything else — workload, seeds, target, rate
grid, probe sizing, SLO targets (derived from the same profile) — is one `run_kwargs` dict, so the two cannot
drift. The plan is an ordinary `Plan` of kind ``validate``: `execute` runs, saves and resumes it like a compare,
and calls `finish_validation` at the end (also on `slobench resume`), which

1. probes the simulator at every (rate, seed) the real search probed and the simulated one did not (the
   searches adapt to their own results, so they rarely probe the same rates; a simulated probe costs seconds),
   saved under the ``/sim`` label like the search's own probes; and
2. computes `slobench.capacity.validate.validation_summary` into summary.json's ``validation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from slobench.capacity.plan import Plan, SearchSettings, SearchSpec
from slobench.capacity.validate import REAL_SUFFIX, SIM_SUFFIX, validation_summary

if TYPE_CHECKING:
    from slobench.capacity.execute import SearchObserver
    from slobench.capacity.store import Collector

REAL_ONLY_KEYS = ("url", "engine_options")  # how to reach / start the real engine; the simulator takes neither
VALIDATE_PERCENTILES = (50.0, 90.0, 99.0)  # per-probe latency percentiles compared (`validate.LATENCY_STATS`)


def sim_kwargs(real_kw: dict[str, Any]) -> dict[str, Any]:
    """The simulator's run settings for a real search's: the same but the engine (and the real-only keys)."""
    return {k: v for k, v in real_kw.items() if k not in REAL_ONLY_KEYS} | {"engine": "sim"}


def validate_specs(label: str, real_kw: dict[str, Any], schedulers: Sequence[str]) -> list[SearchSpec]:
    """Per policy: the simulated search first (seconds: its capacity is on screen before the real one starts),
    then the real one."""
    specs: list[SearchSpec] = []
    for s in schedulers:
        specs += [SearchSpec(label + SIM_SUFFIX, s, sim_kwargs(real_kw)), SearchSpec(label + REAL_SUFFIX, s, real_kw)]
    return specs


def plan_policies(plan: Plan) -> tuple[str, list[str]]:
    """(workload label, policies in order) of a validate plan, read back from its specs (so a resume needs no
    more than the saved plan)."""
    label = next(s.label[: -len(REAL_SUFFIX)] for s in plan.specs if s.label.endswith(REAL_SUFFIX))
    return label, list(dict.fromkeys(s.scheduler for s in plan.specs))


def _rates(store: Collector, label: str, scheduler: str) -> set[tuple[float, int]]:
    return {(r.rate_rps, r.seed) for r in store.rows()
            if r.workload == label and r.scheduler == scheduler and r.span_factor == 1.0}


def finish_validation(plan: Plan, store: Collector, observer: SearchObserver, *, twins: bool = True) -> None:
    """Simulated probes at the real search's remaining rates (``twins``), then summary.json's ``validation`` (see
    module). An interrupted validate calls it with ``twins=False``: what finished is compared as it stands."""
    from slobench.capacity.execute import run_search
    from slobench.report.probes import probes_frame

    label, schedulers = plan_policies(plan)
    sims = [s for s in plan.specs if s.label == label + SIM_SUFFIX] if twins else []
    for i, spec in enumerate(sims, start=1):
        missing = _rates(store, label + REAL_SUFFIX, spec.scheduler) - _rates(store, spec.label, spec.scheduler)
        rates = sorted({r for r, _ in missing})
        if not rates:
            continue
        observer.start_search(spec, i, len(sims))
        settings = SearchSettings(target=plan.search.target, seeds=list(plan.search.seeds), rates=rates)
        run_search(spec, settings, store=store, observer=observer)
    store.extra["validation"] = validation_summary(
        probes_frame(store.rows()), [c.model_dump() for c in store.capacities], label, schedulers)
