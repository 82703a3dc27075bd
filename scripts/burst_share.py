"""Burst share of finished runs: how many measured tokens arrived in bursts (docs/capacity.md "Token bursts").

    python scripts/burst_share.py RESULTS_RUN_DIR [...]

Per run folder (one `slobench run`): the output tokens of the measured stages, the streamed chunks, the share
of gaps between chunks of one stage under 1 ms, the largest clump, and `validity.burst_share` with the verdict
of `validity.check_bursts`. It reads the records only, so it works on any engine's folder (the simulator's
timestamps are exact: its share is the control).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from slobench.capacity import validity
from slobench.metrics.attainment import measured_flags
from slobench.report.results import load_records


def main(folders: list[str]) -> None:
    print(f"{'run':<48} {'tokens':>8} {'chunks':>8} {'gaps<1ms':>9} {'largest':>8} {'burst':>7}  verdict")
    for folder in folders:
        run = Path(folder)
        df = load_records(run)
        summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
        measured = measured_flags(df["arrival_s"], float(summary.get("warmup_s") or 0.0))
        share = validity.burst_share(df, measured)
        stamps = [np.unique(np.asarray(t, dtype=float)) for t in df["token_times_s"] if t is not None and len(t)]
        gaps = np.concatenate([np.diff(s) for s in stamps]) if stamps else np.array([])
        largest = max((c[0] for t in df["token_times_s"] for c in validity.clumps(t)), default=0)
        verdict = validity.check_bursts(share) or "ok"
        print(f"{run.name:<48} {int(df['token_times_s'].map(len).sum()):>8} {sum(s.size for s in stamps):>8} "
              f"{(gaps < validity.BURST_GAP_S).mean() if gaps.size else 0:>9.2%} {largest:>8} "
              f"{share if share is not None else float('nan'):>7.2%}  {verdict}")


if __name__ == "__main__":
    main(sys.argv[1:])
