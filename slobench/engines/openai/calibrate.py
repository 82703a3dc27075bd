"""Measure what a client of an OpenAI endpoint can see, for `slobench calibrate --engine openai --url URL`.

An endpoint we did not start hides its iterations (no adapter inside it records batches), so the vLLM path of
`slobench.engines.vllm.calibrate` is impossible. Two things a client can measure cleanly are kept instead:

- **zero-load TTFT against prompt length**: one request at a time (the load generator's closed loop at
  concurrency 1), ``max_tokens=1``, each prompt length twice (interleaved, so a slow spell of the machine hits
  different lengths), after one warm-up request that is not counted. Every prompt is new token ids, so a
  prefix cache cannot serve a repeat;
- **inter-token latency against concurrency**: for each N of the grid, ``rounds × N`` requests through the
  closed loop at ``max_concurrency=N`` (N in flight all the time but for the last round's tail); each request's
  ITL is its mean gap ((last − first token) ÷ (tokens − 1)), the point is the median over requests.

The fits (`slobench.perf.calibration.fit_client_visible`) and the file (`slobench.perf.profile_file`) live
below; this module only sends and times. Same load generator, same timestamps as every real-engine run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from slobench.engines.openai.client import run_load
from slobench.engines.openai.protocol import Endpoint
from slobench.metrics.records import StageRecord, Status
from slobench.workloads.model import SLO, Request, Stage, Workload

PROMPT_GRID = (16, 64, 256, 1024)
QUICK_PROMPT_GRID = (16, 256, 1024)
CONCURRENCY_GRID = (1, 2, 4, 8, 16)
QUICK_CONCURRENCY_GRID = (1, 2, 4, 8)
ITL_PROMPT_TOKENS = 64  # short prompts: the ITL points should be about decoding, not prefill interference
ITL_OUTPUT_TOKENS = 32
ROUNDS = 3  # requests per slot at each concurrency
_LOOSE = SLO(ttft_s=3600.0, tpot_s=3600.0)  # calibration requests are timed, never judged

# (step index, steps in all, what is being measured) — a progress bar's hook
OnStep = Callable[[int, int, str], None]


@dataclass
class ClientMeasurements:
    """The points a client-visible fit is made from, and what happened while measuring them."""

    ttft_points: list[tuple[int, float]] = field(default_factory=list)  # (prompt tokens, TTFT s)
    itl_points: list[tuple[int, float]] = field(default_factory=list)  # (requests in flight, median ITL s)
    itl_records: list[StageRecord] = field(default_factory=list)  # the ITL requests (their token timestamps)
    failed: int = 0  # requests that did not come back whole (not measured)
    steps_done: int = 0
    steps_total: int = 0
    wall_s: float = 0.0
    interrupted: bool = False


def _workload(name: str, prompts: Sequence[int], output_tokens: int, first_id: int) -> Workload:
    """Requests all "arriving" at 0: the closed loop sends each as a slot frees (send time = their arrival)."""
    reqs = [Request(first_id + i, 0.0, "calibrate", "calibrate", (Stage(int(p), output_tokens, _LOOSE),))
            for i, p in enumerate(prompts)]
    return Workload(name, reqs)


def _finished(records: Sequence[StageRecord]) -> tuple[list[StageRecord], int]:
    ok = [r for r in records if r.status == Status.FINISHED and r.token_times_s]
    return ok, len(records) - len(ok)


def request_itl_s(rec: StageRecord) -> float | None:
    """A request's mean inter-token gap, (last − first token) ÷ (tokens − 1); None with fewer than 2 tokens."""
    t = rec.token_times_s
    return (t[-1] - t[0]) / (len(t) - 1) if len(t) >= 2 else None


def measure_endpoint(endpoint: Endpoint, *, vocab_size: int | None = None,
                     prompts: Sequence[int] = PROMPT_GRID, concurrencies: Sequence[int] = CONCURRENCY_GRID,
                     repeats: int = 2, rounds: int = ROUNDS, output_tokens: int = ITL_OUTPUT_TOKENS,
                     itl_prompt_tokens: int = ITL_PROMPT_TOKENS, seed: int = 0,
                     on_step: OnStep | None = None) -> ClientMeasurements:
    """Measure zero-load TTFT per prompt length and ITL per concurrency (see the module docstring).

    Ctrl-C keeps the points measured so far (``interrupted``); an endpoint refusing requests (HTTP 4xx) stops
    it with the server's words (`EngineError`, one line).
    """
    meas = ClientMeasurements(steps_total=1 + len(concurrencies))
    t0 = time.perf_counter()
    next_id = 0

    def run(name: str, wl: Workload, concurrency: int) -> list[StageRecord]:
        return run_load(wl, endpoint, seed=seed, vocab_size=vocab_size, max_concurrency=concurrency,
                        run_id=f"cal{seed}-{name}").records

    try:
        if on_step is not None:
            on_step(0, meas.steps_total, "zero-load TTFT")
        order = [int(p) for _ in range(repeats) for p in prompts]
        recs = run("ttft", _workload("calibrate-ttft", [prompts[0], *order], 1, next_id), 1)
        next_id += len(order) + 1
        recs = sorted(recs, key=lambda r: r.request_id)[1:]  # the warm-up request is not counted
        ok, bad = _finished(recs)
        meas.failed += bad
        meas.ttft_points = [(r.prompt_tokens, r.token_times_s[0] - r.stage_start_s) for r in ok]
        meas.steps_done = 1
        for i, c in enumerate(concurrencies, start=1):
            if on_step is not None:
                on_step(i, meas.steps_total, f"ITL at concurrency {c}")
            n = rounds * int(c)
            recs = run(f"itl{c}", _workload(f"calibrate-itl{c}", [itl_prompt_tokens] * n, output_tokens, next_id),
                       int(c))
            next_id += n
            ok, bad = _finished(recs)
            meas.failed += bad
            meas.itl_records += ok
            itls = [x for x in (request_itl_s(r) for r in ok) if x is not None]
            if itls:
                meas.itl_points.append((int(c), float(np.median(itls))))
            meas.steps_done = i + 1
    except KeyboardInterrupt:
        meas.interrupted = True
    meas.wall_s = time.perf_counter() - t0
    return meas
