"""`slobench calibrate --engine vllm`: drive a designed grid of batch shapes through a vLLM server whose adapter
records every iteration, then fit a profile (`slobench.perf.calibration`).

The server must load slobench's scheduler adapter (any policy: the iterations file records whatever batches ran;
the CLI launches one with policy ``vllm``, slobench's re-expression of vLLM's own FCFS chunked-prefill scheduler).
Requests are token-id prompts of exact lengths (`slobench.engines.openai.prompts.PromptSynth`), each prompt
distinct so vLLM's prefix cache never shortens a prefill. The grid (`design_grid`) has three kinds of cell:

- ``prefill``: one request alone, ``max_tokens=1``: one pure-prefill iteration of P tokens, and a zero-load
  sample for the front-end cost (client TTFT vs the engine's own time for that iteration);
- ``decode``: B requests at once, prompt C, D output tokens: prefill batches of up to B·C tokens (chunked under
  the token budget), then decode iterations of B sequences at contexts C..C+D;
- ``mixed``: B decodes running, then one prompt of P tokens sent: chunked prefill riding with decodes.

One ``asyncio.run`` per cell, so Ctrl-C between or during cells stops cleanly and everything recorded so far
(`Measurements`) is kept; the caller fits what there is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from slobench.engines.openai.prompts import PromptSynth
from slobench.engines.openai.protocol import Endpoint, stream_generation
from slobench.engines.vllm.iterations import read_iterations
from slobench.errors import UserError
from slobench.perf.calibration import ZeroLoadSample

CellKind = Literal["prefill", "decode", "mixed"]
WAIT_LINE_S = 2.0  # how long to wait for a finished request's iteration line to appear in the file


@dataclass(frozen=True)
class Cell:
    """One grid point: what is sent (see module docstring)."""

    kind: CellKind
    prompt_tokens: int
    batch: int = 1
    output_tokens: int = 1
    inject_prompt: int = 0  # mixed: the prompt sent once the decodes are running

    @property
    def label(self) -> str:
        if self.kind == "prefill":
            return f"prefill {self.prompt_tokens}"
        if self.kind == "decode":
            return f"decode {self.batch}×ctx {self.prompt_tokens}"
        return f"mixed {self.batch} decodes + {self.inject_prompt} prefill"


def design_grid(*, points: int | None = None, quick: bool = False, max_batched_tokens: int = 2048,
                max_model_len: int = 4096) -> list[Cell]:
    """The grid: prompt lengths spread geometrically up to the token budget, decode batches of several sizes at
    a short and a long context, chunked mixes. ``points`` takes that many cells round-robin over the kinds (so
    a small grid still has every kind); ``quick`` is the small default grid."""
    top = max(16, min(max_batched_tokens, max_model_len - 64, 2048))
    lengths = sorted({p for p in (16, 64, 256, 1024, 2048) if p <= top} | {top})
    ctx_long = min(512, max_model_len - 128)
    prefill = [Cell("prefill", p) for p in lengths]
    if quick:
        prefill = [Cell("prefill", p) for p in (lengths[0], lengths[len(lengths) // 2], lengths[-1])]
        decode = [Cell("decode", 32, batch=b, output_tokens=8) for b in (4, 16)]
        mixed = [Cell("mixed", 32, batch=4, output_tokens=16, inject_prompt=min(512, top))]
    else:
        prefill = prefill + prefill  # each length twice: the zero-load samples' noise shows
        decode = [Cell("decode", c, batch=b, output_tokens=16) for c in (32, ctx_long) for b in (1, 4, 16, 32)]
        mixed = [Cell("mixed", 64, batch=b, output_tokens=32, inject_prompt=p)
                 for b in (4, 16) for p in sorted({min(512, top), top})]
    kinds = [prefill, decode, mixed]
    if points is None:
        return [c for k in kinds for c in k]
    if points < 1:
        raise UserError(f"--points {points}: give at least 1 grid point")
    out: list[Cell] = []
    i = 0
    while len(out) < points and any(i < len(k) for k in kinds):
        out += [k[i] for k in kinds if i < len(k)][: points - len(out)]
        i += 1
    return out


@dataclass
class CalibrationTarget:
    """An adapter-loaded vLLM server: where to send, and where its adapter writes."""

    base_url: str  # ends with /v1
    model: str  # the served model name
    iterations_path: Path
    events_path: Path | None = None
    vocab_size: int | None = None


@dataclass
class Measurements:
    """Everything measured; kept whole when interrupted."""

    iterations: list[dict[str, Any]] = field(default_factory=list)
    zero_load: list[ZeroLoadSample] = field(default_factory=list)
    cells_done: int = 0
    cells_total: int = 0
    interrupted: bool = False
    loaded: dict[str, Any] | None = None
    wall_s: float = 0.0


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def _one(client: Any, ep: Endpoint, synth: PromptSynth, rid: int, prompt: int, out: int,
               started: asyncio.Event | None = None) -> tuple[float, float]:
    """Send one request; return (send time, first-token time) on ``time.perf_counter``."""
    t0 = time.perf_counter()

    def first(_t: float, _n: int) -> None:
        if started is not None:
            started.set()

    gen = await stream_generation(client, ep, synth.token_ids(prompt, rid, 0), out, request_id=f"calib-{rid}",
                                  clock=time.perf_counter, on_tokens=first)
    if gen.num_tokens != out:
        raise UserError(f"calibrate: the server returned {gen.num_tokens} tokens for a request of {out} (it must "
                        "honour ignore_eos/min_tokens: a vLLM server)")
    return t0, gen.token_times[0]


async def _run_cell(cell: Cell, ep: Endpoint, synth: PromptSynth, next_id: Callable[[], int]) -> tuple[float, float]:
    import httpx

    async with httpx.AsyncClient(timeout=ep.timeout_s, limits=httpx.Limits(max_connections=256)) as client:
        if cell.kind == "prefill":
            return await _one(client, ep, synth, next_id(), cell.prompt_tokens, 1)
        events = [asyncio.Event() for _ in range(cell.batch)]
        tasks = [asyncio.create_task(_one(client, ep, synth, next_id(), cell.prompt_tokens, cell.output_tokens, ev))
                 for ev in events]
        if cell.kind == "mixed":
            await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in events)), ep.timeout_s)
            tasks.append(asyncio.create_task(_one(client, ep, synth, next_id(), cell.inject_prompt, 1)))
        await asyncio.gather(*tasks)
    return 0.0, 0.0


def _prefill_line(lines: list[dict[str, Any]], prompt: int) -> dict[str, Any] | None:
    for ln in lines:
        if ln.get("num_seqs") == 1 and ln.get("prefill_tokens") == prompt and ln.get("ctx") == [0]:
            return ln
    return None


def measure(target: CalibrationTarget, grid: list[Cell], *, seed: int = 0,
            on_cell: Callable[[int, Cell], None] | None = None) -> Measurements:
    """Run ``grid`` against ``target`` (after one unrecorded warm-up request) and collect the recorded
    iterations and zero-load samples. Ctrl-C stops after the current cell's recording is read."""
    from slobench.engines.vllm.events import EventReader

    t_start = time.perf_counter()
    ep = Endpoint(base_url=target.base_url, model=target.model, timeout_s=120.0)
    synth = PromptSynth(seed, target.vocab_size)
    counter = iter(range(1, 1 << 30))
    meas = Measurements(cells_total=len(grid))
    asyncio.run(_run_cell(Cell("decode", 32, batch=2, output_tokens=4), ep, synth, lambda: next(counter)))
    time.sleep(0.2)  # the warm-up's last line lands in the file
    offset = _size(target.iterations_path)
    try:
        for i, cell in enumerate(grid):
            before = offset
            t_send, t_first = asyncio.run(_run_cell(cell, ep, synth, lambda: next(counter)))
            lines, offset = read_iterations(target.iterations_path, before)
            if cell.kind == "prefill":
                line = _prefill_line(lines, cell.prompt_tokens)
                deadline = time.monotonic() + WAIT_LINE_S
                while line is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                    more, offset = read_iterations(target.iterations_path, offset)
                    lines += more
                    line = _prefill_line(lines, cell.prompt_tokens)
                if line is not None:
                    meas.zero_load.append(ZeroLoadSample(cell.prompt_tokens, t_first - t_send,
                                                         float(line["sched_s"]) + float(line["latency_s"])))
            meas.iterations += lines
            meas.cells_done = i + 1
            if on_cell is not None:
                on_cell(i, cell)
    except KeyboardInterrupt:
        meas.interrupted = True
        time.sleep(0.2)
        lines, offset = read_iterations(target.iterations_path, offset)
        meas.iterations += lines
    if not target.iterations_path.exists():
        raise UserError(f"calibrate: no iterations file at {target.iterations_path}: the server does not run "
                        "slobench's scheduler adapter (start it with slobench, or give its --iterations file)")
    meas.loaded = EventReader(target.events_path).last("loaded") if target.events_path else None
    meas.wall_s = time.perf_counter() - t_start
    return meas


def kv_capacity_tokens(meas: Measurements) -> int:
    """The replica's KV-cache tokens, as vLLM sized its block pool (the adapter's ``loaded`` line)."""
    loaded = meas.loaded or {}
    blocks, size = loaded.get("kv_blocks"), loaded.get("block_size")
    if not blocks or not size:
        raise UserError("calibrate: the server's events file has no KV-cache size (kv_blocks, block_size in its "
                        "`loaded` line); use a server started by this slobench version")
    return int(blocks) * int(size)
