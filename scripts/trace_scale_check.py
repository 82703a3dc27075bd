"""Does a `compare` on a user's 100k-row trace run within 2× of a shipped workload's compare? (issue 12)

Usage: python scripts/trace_scale_check.py [--rows 100000] [--full] [--jobs 1] [--seed 0] [--repeat 1]

Writes a seeded trace CSV (timestamp, input_length, output_length: the coding workload's lengths, Poisson arrivals)
into a temporary folder, turns it into a workload with ``slobench workloads new --from-trace --app coding --slo-preset
coding`` (the coding SLOs) and times, each in a fresh
interpreter as a user runs them, ``slobench compare --workload trace.yaml`` and ``slobench compare --workload
coding`` with the same flags (``--quick`` unless ``--full``; ``-j`` as given, 1 by default so the two timings do not
depend on how many cores are free), alternating ``--repeat`` times (on a shared machine the fastest of each is the
least disturbed). Prints every wall time, the probes each ran, seconds per probe and the ratios of the fastest.

The two searches may still take a different number of probes (their samples differ): the per-probe ratio says
whether the trace itself costs time (reading, parsing, sampling 100k rows per probe); the total ratio is the
done-means' number.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

_BESIDE = Path(sys.executable).with_name("slobench")
CLI = [str(_BESIDE)] if _BESIDE.exists() else [shutil.which("slobench") or "slobench"]
REPO = Path(__file__).resolve().parents[1]


def make_trace(path: Path, rows: int, seed: int) -> None:
    """A seeded trace with the shipped coding workload's lengths (drawn by slobench's own generator from the
    Azure code trace it ships) and Poisson arrivals at 5 req/s, so that with the coding SLOs (``--app coding``)
    the two compares differ only in where the requests come from: the user's file or the shipped sample."""
    from slobench.perf import get_latency_model
    from slobench.workloads import generate, load_spec

    perf = get_latency_model(hardware="H100-SXM", model="Llama-3.1-8B", tp=1, profile=None)
    wl = generate(load_spec("coding"), perf=perf, seed=seed, num_requests=rows, rate_rps=5.0)
    t = np.array([r.arrival_s for r in wl.requests])
    prompt = np.array([r.stages[0].prompt_tokens for r in wl.requests])
    output = np.array([r.stages[0].output_tokens for r in wl.requests])
    pd.DataFrame({"timestamp": t.round(4), "input_length": prompt, "output_length": output}).to_csv(path, index=False)


def timed(args: list[str], cwd: Path) -> tuple[float, str, int]:
    """(wall seconds, combined output, exit code) of one slobench command line in a fresh process."""
    env = {"PYTHONPATH": str(REPO), "COLUMNS": "200", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
    t0 = time.perf_counter()
    proc = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=3600)
    return time.perf_counter() - t0, proc.stdout + proc.stderr, proc.returncode


def probes_of(results: Path) -> int:
    """Probes saved in the newest results folder under ``results``."""
    newest = max(results.iterdir(), key=lambda p: p.stat().st_mtime)
    return len(pd.read_csv(newest / "probes.csv"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--full", action="store_true", help="full compare instead of --quick")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two compares this many times")
    a = ap.parse_args()
    mode = [] if a.full else ["--quick"]
    with tempfile.TemporaryDirectory(prefix="slobench-scale-") as name:
        tmp = Path(name)
        t0 = time.perf_counter()
        make_trace(tmp / "trace.csv", a.rows, a.seed)
        print(f"trace: {a.rows} rows written in {time.perf_counter() - t0:.1f} s "
              f"({(tmp / 'trace.csv').stat().st_size / 1e6:.1f} MB)")
        wall, out, code = timed(["workloads", "new", "scale", "--from-trace", "trace.csv", "--app", "coding",
                                 "--slo-preset", "coding"], tmp)
        if code != 0:
            sys.exit(f"workloads new failed ({code}):\n{out}")
        print(f"workloads new: {wall:.1f} s")
        best: dict[str, tuple[float, int]] = {}
        for _ in range(a.repeat):
            for label, workload in (("trace (100k rows)", "scale.yaml"), ("shipped coding", "coding")):
                out_dir = tmp / f"results-{workload.split('.')[0]}"
                args = ["compare", "--workload", workload, *mode, "-j", str(a.jobs), "--out", str(out_dir)]
                wall, out, code = timed(args, tmp)
                if code not in (0, 3):
                    sys.exit(f"{' '.join(args)} failed ({code}):\n{out}")
                n = probes_of(out_dir)
                if label not in best or wall < best[label][0]:
                    best[label] = (wall, n)
                print(f"{label:>18}: slobench {' '.join(args[:-2])}: {wall:6.1f} s, {n} probes, "
                      f"{wall / n:.2f} s/probe", flush=True)
        (tw, tn), (cw, cn) = best["trace (100k rows)"], best["shipped coding"]
        print(f"fastest of {a.repeat}: trace {tw:.1f} s, coding {cw:.1f} s; ratio trace/coding: total {tw / cw:.2f}×, "
              f"per probe {(tw / tn) / (cw / cn):.2f}× (done-means: total within 2×)")


if __name__ == "__main__":
    main()
