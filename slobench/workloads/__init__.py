"""Workloads: YAML specs → seeded request streams (`Workload`) of multi-stage requests with SLOs.

    from slobench.workloads import load_spec, generate
    wl = generate(load_spec("coding"), perf=latency_model, seed=0, rate_rps=4.0)
"""

from slobench.workloads.generate import generate
from slobench.workloads.model import SLO, Request, Stage, Workload
from slobench.workloads.spec import WorkloadSpec, apply_overrides, list_specs, load_spec

__all__ = ["SLO", "Request", "Stage", "Workload", "WorkloadSpec", "apply_overrides", "generate", "list_specs",
           "load_spec"]
