"""Where a validate run's simulator and real engine part, measured from what the run kept.

    python scripts/validate_breakdown.py RESULTS_DIR PROFILE.yaml

Prints (1) the profile's median bias per iteration kind on the iterations vLLM recorded during the run (the
adapter's ``iterations-*.jsonl``: the engine model itself), and (2) per search and rate: TTFT median against the
profile's zero-load client TTFT (the front-end cost), and the inter-token gaps (median, p99, share above the TPOT
target, share < 1 ms: tokens that reached the client in a burst). docs/calibration.md "Validate" reads it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from slobench.perf.base import zero_load_ttft_s
from slobench.perf.calibration import bias_by_kind, iteration_rows
from slobench.perf.profile_file import model_from_file


def iteration_bias(run_dir: Path, model: object) -> None:
    for path in sorted(run_dir.glob("iterations-*.jsonl")):
        rows = iteration_rows([json.loads(line) for line in path.open()])
        y = np.array([r["latency_s"] for r in rows])
        kinds = pd.Series([r["kind"] for r in rows])
        medians = {k: round(float(np.median(y[kinds == k])) * 1e3, 1) for k in kinds.unique()}
        print(f"{path.name}: {len(rows)} iterations; median bias (predicted/measured − 1, %) "
              f"{bias_by_kind(model, rows)}; counts {kinds.value_counts().to_dict()}; median measured ms {medians}")


def client_view(run_dir: Path, model: object) -> None:
    req = pd.read_parquet(run_dir / "requests.parquet")
    for (wl, sched, rate), g in req.groupby(["workload", "scheduler", "rate_rps"]):
        ttft = g["token_times_s"].apply(lambda t: t[0] if len(t) else np.nan) - g["stage_start_s"]
        zero = g["prompt_tokens"].apply(lambda p: zero_load_ttft_s(model, int(p)))
        gaps = np.concatenate([np.diff(np.asarray(t)) for t in g["token_times_s"] if len(t) > 1])
        print(f"{wl:13s} {sched:10s} {rate:7.3g} rps: TTFT median {np.nanmedian(ttft) * 1e3:7.1f} ms (zero-load "
              f"model {np.median(zero) * 1e3:6.1f}); gaps median {np.median(gaps) * 1e3:5.1f} ms, p99 "
              f"{np.percentile(gaps, 99) * 1e3:6.1f} ms, > TPOT target {np.mean(gaps > g['tpot_slo_s'].iloc[0]):.1%}, "
              f"< 1 ms {np.mean(gaps < 1e-3):.1%}")


def main() -> None:
    run_dir, profile = Path(sys.argv[1]), sys.argv[2]
    model = model_from_file(profile)
    iteration_bias(run_dir, model)
    client_view(run_dir, model)


if __name__ == "__main__":
    main()
