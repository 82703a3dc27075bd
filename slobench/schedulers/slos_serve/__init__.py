"""SLOs-Serve (arXiv 2504.08784) as the `slos-serve` policy.

`policy.py` is the online loop; `admission.py` the dynamic-programming admission control;
`rate_model.py` the prefill rate left beside a decode load; `speculation.py` the per-tier draft
lengths. The same `SLOsServeScheduler` object runs in the simulator and inside vLLM.
"""

from slobench.schedulers.slos_serve.policy import SLOsServeScheduler

__all__ = ["SLOsServeScheduler"]
