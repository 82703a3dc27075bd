"""Per-iteration timing and batch shape, recorded inside vLLM by the scheduler adapter (one JSONL line each).

Where the clock is read (vLLM V1's engine-core ``step()``: ``schedule()`` → ``execute_model`` → wait for the
model's output and sample → ``update_from_output()``):

- ``sched_s``: the adapter's whole ``schedule()`` call (view + policy + vLLM's own batch building);
- ``exec_s``: from ``schedule()`` returning to ``update_from_output()`` being called with that batch's output
  = the forward pass, sampling and the engine's small glue in between (grammar bitmask, abort queue);
- ``update_s``: ``update_from_output()`` itself (per-request bookkeeping, stop checks, output objects);
- ``t`` (``time.time()`` at the start of ``schedule()``), so the gap to the next line's ``t`` shows the
  engine-core loop's own overhead and idle time.

``latency_s = exec_s + update_s`` is what `slobench calibrate` fits: the engine's time per iteration *besides*
the policy's schedule() cost, which the simulator charges separately (``--schedule-cost``). With vLLM's
``AsyncScheduler`` (GPU builds) the next ``schedule()`` overlaps the model run, so ``exec_s`` there is the
time from this batch's scheduling to its output being processed, an upper bound on the model's time.

Batch shape per scheduled request, in scheduling order: ``q`` tokens processed (prompt chunk, or 1 + drafts),
``ctx`` tokens already in the KV cache before this step, ``spec`` draft tokens; and the sums
``prefill_tokens`` (q of requests still prefilling or recomputing), ``decode_seqs``, ``sum_ctx``, ``num_seqs``,
``spec_tokens``, with ``planned`` = the tokens the policy's plan asked for and ``scheduled`` = what vLLM
scheduled (they differ when vLLM's limits cut a plan short). Cost: one ``json.dumps`` and one write per
iteration (tens of µs against ≥ 2 ms CPU iterations); no file, no cost, when the variable is unset.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ITERATIONS_ENV = "SLOBENCH_ITERATIONS"  # path of the iterations file; set by the launcher next to the events file


class IterationRecorder:
    """Pairs each ``schedule()`` output with its ``update_from_output()`` and writes one line per executed batch."""

    def __init__(self, path: str | Path | None) -> None:
        self._fh = Path(path).open("a", buffering=1) if path else None
        self._pending: dict[int, dict[str, Any]] = {}  # id(SchedulerOutput) -> the line being built
        self.step = 0

    def scheduled(self, out: Any, requests: Mapping[str, Any], t_start: float, t_end: float, planned: int) -> None:
        """After ``schedule()``: the batch's shape (vLLM has already advanced ``num_computed_tokens`` by ``q``)."""
        if self._fh is None or not out.num_scheduled_tokens:
            return
        spec_map = out.scheduled_spec_decode_tokens or {}
        qs: list[int] = []
        ctxs: list[int] = []
        specs: list[int] = []
        prefill = decode = 0
        for rid, q in out.num_scheduled_tokens.items():
            r = requests.get(rid)
            k = len(spec_map.get(rid, ()))
            ctx = max(int(r.num_computed_tokens) - int(q), 0) if r is not None else 0
            qs.append(int(q))
            ctxs.append(ctx)
            specs.append(k)
            if r is not None and ctx >= r.num_prompt_tokens and q - k == 1:
                decode += 1
            else:
                prefill += int(q)
        if len(self._pending) > 64:  # outputs never given back (an engine error mid-step): do not grow forever
            self._pending.clear()
        self._pending[id(out)] = {
            "step": self.step, "t": time.time() - (t_end - t_start), "sched_s": t_end - t_start, "_t_end": t_end,
            "num_seqs": len(qs), "prefill_tokens": prefill, "decode_seqs": decode, "sum_ctx": sum(ctxs),
            "spec_tokens": sum(specs), "planned": planned, "scheduled": sum(qs), "q": qs, "ctx": ctxs,
            "spec": specs,
        }
        self.step += 1

    def updated(self, out: Any, t_update: float, t_done: float) -> None:
        """After ``update_from_output()``: the batch's times, written as one line."""
        line = self._pending.pop(id(out), None)
        if line is None or self._fh is None:
            return
        line["exec_s"] = t_update - line.pop("_t_end")
        line["update_s"] = t_done - t_update
        line["latency_s"] = line["exec_s"] + line["update_s"]
        self._fh.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()


def read_iterations(path: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete lines appended after byte ``offset``, and the offset to continue from (a half-written last
    line waits for the next call)."""
    p = Path(path)
    if not p.exists():
        return [], offset
    with p.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    return list(_parse(data[: end + 1])), offset + end + 1


def _parse(data: bytes) -> Iterator[dict[str, Any]]:
    for raw in data.splitlines():
        if raw.strip():
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                continue
