"""Turn a `WorkloadSpec` into a seeded `Workload`: arrivals × app mix × lengths × SLOs.

Independent random streams (spawned from one SeedSequence) drive arrivals, the app choice, the
lengths and the tool gaps, so e.g. changing the rate re-times requests without re-drawing their
lengths — capacity probes at different rates then compare the same requests.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from slobench.errors import InputWarning, UserError
from slobench.perf.base import LatencyModel, zero_load_ttft_s
from slobench.workloads import arrivals as arr
from slobench.workloads.model import SLO, Request, Stage, Workload
from slobench.workloads.sources import (
    SHIPPED_TRACES,
    LengthTable,
    load_dataset_lengths,
    load_file,
    load_shipped,
    load_timestamps,
)
from slobench.workloads.spec import AppSpec, SLOSpec, WorkloadSpec, load_spec


def load_lengths(app: AppSpec, index: int = 0) -> LengthTable:
    """The app's length table (shipped trace or user file); ``index`` is its place in ``apps`` (for errors)."""
    ls = app.lengths
    if ls.trace is not None:
        return load_shipped(ls.trace)
    if ls.dataset is not None:
        return load_dataset_lengths(ls.dataset, split=ls.split, prompt_col=ls.prompt_tokens_column,
                                    output_col=ls.output_tokens_column, text_col=ls.text_column,
                                    tokenizer=ls.tokenizer, answer_col=ls.answer_tokens_column,
                                    output_tokens=ls.output_tokens, origin=f"apps.{index}.lengths",
                                    hash_col=ls.hash_column, block_tokens=ls.prefix_block_tokens)
    return load_file(Path(ls.path or ""), prompt_col=ls.prompt_tokens_column, output_col=ls.output_tokens_column,
                     text_col=ls.text_column, tokenizer=ls.tokenizer, answer_col=ls.answer_tokens_column,
                     output_tokens=ls.output_tokens, origin=f"apps.{index}.lengths", hash_col=ls.hash_column,
                     block_tokens=ls.prefix_block_tokens)


def warn_if_clipped(app: AppSpec, table: LengthTable, index: int = 0) -> None:
    """An `InputWarning` when the *default* ``max_context`` clips rows of the app's length source.

    A spec that sets ``max_context`` chose its limit (the shipped specs do); the default 8192 applied
    to a user's long-context file used to cut its requests silently. Counts are over the source's rows
    (what a draw can pick), so the line is the same for every probe of a search and is shown once.
    """
    if "max_context" in app.lengths.model_fields_set or app.name == "toolcalling":
        return
    cut = clip_stats(app, table)
    if not cut["rows_clipped"]:
        return
    share = cut["input_cut"] / max(cut["input_total"], 1)
    pct = f"{share:.0%}" if share >= 0.01 or share == 0 else "<1%"
    source = app.lengths.path or app.lengths.dataset or app.lengths.trace
    warnings.warn(
        f"apps.{index}.lengths: {cut['rows_clipped']:,} of {cut['rows']:,} rows of {source} are longer than "
        f"max_context {cut['max_context']} (the default) and are clipped when drawn: {cut['input_cut']:,} of "
        f"{cut['input_total']:,} input tokens ({pct}) and {cut['output_cut']:,} output tokens cut; set "
        f"apps.{index}.lengths.max_context (the longest row needs {cut['longest_row']:,}) to keep them, "
        "or to a value at or below the model's context to clip on purpose", InputWarning, stacklevel=2)


def clip_stats(app: AppSpec, table: LengthTable) -> dict[str, int]:
    """What ``max_context`` cuts from the app's length source, over its rows (what a draw can pick):
    rows clipped, input and output tokens cut, and the longest row (single- and think+answer apps;
    tool-calling episodes are clipped per round and are not counted here)."""
    mc = app.lengths.max_context
    prompt = table.prompt.astype(np.int64)
    out = table.output.astype(np.int64) + (table.answer.astype(np.int64) if table.answer is not None else 0)
    kept_prompt = np.clip(prompt, 1, mc - 1)  # as clip_stages: prompts are cut only when nothing else fits
    lost_in = np.maximum(0, prompt - kept_prompt)
    lost_out = np.maximum(0, out - np.maximum(1, mc - kept_prompt))
    return {"max_context": mc, "rows": len(table), "rows_clipped": int(((lost_in > 0) | (lost_out > 0)).sum()),
            "input_total": int(prompt.sum()), "input_cut": int(lost_in.sum()), "output_cut": int(lost_out.sum()),
            "longest_row": int((prompt + out).max()) if len(table) else 0}


def check_sources(spec: WorkloadSpec, rate_rps: float | None = None) -> None:
    """Read every length source and arrival trace the spec names (each read is cached), so a bad file fails
    and its warnings are shown before a run starts, not inside its first probe.

    ``rate_rps``: a rate the caller will ask for (a capacity search passes its highest): checked against
    the trace options now (``rate: native`` takes none, ``scale: thin`` none above the native rate).
    """
    for k, app in enumerate(spec.apps):
        warn_if_clipped(app, load_lengths(app, k), k)
    if spec.arrival.process == "trace":
        ts = trace_timestamps(spec)
        if rate_rps is not None:
            _replay_rate(spec, rate_rps, ts)


def trace_timestamps(spec: WorkloadSpec) -> np.ndarray:
    """The arrival trace's timestamps in seconds (a shipped trace's, or a user file's column in its unit)."""
    a = spec.arrival
    trace = str(a.trace)
    if trace in SHIPPED_TRACES:
        ts = load_shipped(trace).timestamps_s
        assert ts is not None
        return ts
    return load_timestamps(Path(trace), a.timestamp_column, unit=a.timestamp_unit)


def _replay_rate(spec: WorkloadSpec, rate_rps: float | None, ts: np.ndarray) -> float:
    """The rate a trace replay runs at, or one line when the trace options and the rate disagree.

    ``rate: native`` refuses a rate given from outside (a flag, a capacity search's probe): silently
    ignoring it would report a probe at a rate it never offered.
    """
    a = spec.arrival
    native = arr.native_rate(ts)
    if a.rate == "native":
        if rate_rps is not None:
            raise UserError(f"arrival.rate: native replays {a.trace} at its recorded rate ({native:.3g} req/s), so "
                            f"it cannot run at {rate_rps:g} req/s; drop --rate for one run at the recorded rate, or "
                            "set arrival.rate: scaled (or scale: thin) for other rates and capacity searches")
        return native
    rate = spec.rate_rps if rate_rps is None else float(rate_rps)
    if a.scale == "thin" and rate > native * (1 + 1e-9):
        raise UserError(f"arrival.scale: thin keeps each request of {a.trace} with probability target/native, so it "
                        f"cannot reach {rate:g} req/s above the trace's native {native:.3g} req/s; use a rate ≤ "
                        f"{native:.3g} (capacity: --rate-max) or scale: time")
    return rate


def clip_stages(pairs: list[tuple[int, int]], max_context: int) -> list[tuple[int, int]]:
    """Clip (new prompt, output) pairs so the growing context never exceeds ``max_context``.

    Outputs are cut before prompts are (a truncated prompt changes the request more than a
    shorter answer); stages with no room left are dropped, the first stage always stays.
    Continuation stages (prompt 0) stay continuations; other stages keep ≥ 1 prompt token.
    """
    out: list[tuple[int, int]] = []
    ctx = 0
    for i, (p, o) in enumerate(pairs):
        room = max_context - ctx
        min_p = 0 if (p == 0 and i > 0) else 1
        if room < min_p + 1:
            break
        p = max(min_p, min(int(p), room - 1))
        o = max(1, min(int(o), room - p))
        out.append((p, o))
        ctx += p + o
    return out


class _SLOMaker:
    """Turns an `SLOSpec` + the tokens a stage prefills into an `SLO`, caching perf calls."""

    def __init__(self, perf: LatencyModel | None) -> None:
        self.perf = perf
        self._cache: dict[int, float] = {}

    def prefill_s(self, tokens: int) -> float:
        if tokens not in self._cache:
            assert self.perf is not None
            # The client's zero-load TTFT: a calibrated profile adds its front-end cost (perf.base).
            self._cache[tokens] = zero_load_ttft_s(self.perf, tokens)
        return self._cache[tokens]

    def __call__(self, spec: SLOSpec, prefill_tokens: int) -> SLO:
        if spec.ttft_ms is not None:
            ttft_s = spec.ttft_ms / 1000.0
        else:
            # With prefix caching a later stage only prefills its new tokens, so that is the
            # zero-load time the slowdown multiplies (SLOs-Serve: slowdown × prefill of the prompt).
            ttft_s = max(spec.ttft_min_ms / 1000.0, float(spec.ttft_slowdown) * self.prefill_s(max(1, prefill_tokens)))
        return SLO(ttft_s=ttft_s, tpot_s=spec.tpot_ms / 1000.0)


def _arrival_times(spec: WorkloadSpec, rng: np.random.Generator, rate: float, n: int
                   ) -> tuple[np.ndarray, np.ndarray | None, str | None, int]:
    """(times, trace rows or None, trace name or None, number of rows in the trace or 0)."""
    a = spec.arrival
    if a.process == "poisson":
        return arr.poisson(rng, rate, n), None, None, 0
    if a.process == "gamma":
        return arr.gamma(rng, rate, float(a.cv), n), None, None, 0
    if a.process == "bursts":
        return arr.bursts(rng, rate, a.mean_burst_size, n, a.burst_spread_s), None, None, 0
    trace = str(a.trace)
    ts = trace_timestamps(spec)
    if ts.size < 2:
        raise UserError(f"arrival.trace: {trace} has fewer than 2 timestamps; it cannot set a rate")
    jitter = arr.quantisation_tick_s(ts) if a.jitter_s == "auto" else float(a.jitter_s or 0.0)
    mode = "native" if a.rate == "native" else a.scale
    times, rows = arr.trace_replay(rng, ts, rate, n, a.random_start, jitter_s=jitter, mode=mode)
    if times.size > 1 and times[-1] == 0:
        raise UserError(f"arrival.trace: the {times.size} rows of {trace} replayed from row {int(rows[0]) + 1} all "
                        "share one timestamp, so every request would arrive at t = 0; ask for more requests "
                        "than the tie, or set random_start: false")
    return times, rows, trace, int(ts.size)


def _same_source(app: AppSpec, trace: str | None) -> bool:
    """Do the app's lengths come from the file whose timestamps drive the arrivals?

    Then each arrival takes its own row's lengths (an Azure trace replays "as is"), whether the
    trace is shipped (by name) or a user's file (by path, e.g. a downloaded Azure CSV).
    """
    if trace is None:
        return False
    if app.lengths.trace is not None:
        return app.lengths.trace == trace
    if trace in SHIPPED_TRACES or app.lengths.path is None:
        return False
    return Path(app.lengths.path).resolve() == Path(trace).resolve()


def _stages(app: AppSpec, table: LengthTable, row: int, make_slo: _SLOMaker) -> tuple[Stage, ...]:
    mc = app.lengths.max_context
    if app.name == "reasoning":
        assert table.answer is not None
        (p, think), *rest = clip_stages([(table.prompt[row], table.output[row]), (0, table.answer[row])], mc)
        stages = [Stage(p, think, make_slo(app.slo["think"], p), 0.0, "think")]
        if rest:
            # The answer continues right after thinking: no new prompt, no gap, its own (tight) pace.
            stages.append(Stage(0, rest[0][1], make_slo(app.slo["answer"], 0), 0.0, "answer"))
        return tuple(stages)
    p, o = clip_stages([(table.prompt[row], table.output[row])], mc)[0]
    return (Stage(p, o, make_slo(app.slo["main"], p), 0.0, "main"),)


def _tool_stages(app: AppSpec, table: LengthTable, rows: np.ndarray, make_slo: _SLOMaker,
                 gap_rng: np.random.Generator) -> tuple[Stage, ...]:
    """One agent episode: round 1 = full prompt; later rounds append tool result + framing."""
    tools = app.tools or _default_tools()
    if tools.max_rounds is not None:
        rows = rows[: tools.max_rounds]
    assert table.increment is not None
    pairs = clip_stages([(max(1, table.increment[r]), table.output[r]) for r in rows], app.lengths.max_context)
    stages = []
    for i, (p, o) in enumerate(pairs):
        final = i == len(pairs) - 1
        gap = 0.0
        if i > 0:
            gap = tools.gap_mean_s if tools.gap_dist == "constant" else float(gap_rng.exponential(tools.gap_mean_s))
        stages.append(Stage(p, o, make_slo(app.slo["final" if final else "round"], p), gap,
                            "final" if final else "round"))
    return tuple(stages)


def _default_tools():  # noqa: ANN202
    from slobench.workloads.spec import ToolSpec

    return ToolSpec()


def _size(spec: WorkloadSpec, num_requests: int | None, duration_s: float | None) -> tuple[int | None, float | None]:
    """Explicit arguments replace the spec's size entirely (so --duration isn't capped by its num_requests)."""
    if num_requests is not None or duration_s is not None:
        n, d = num_requests, duration_s
    else:
        n, d = spec.num_requests, spec.duration_s
    if n is None and d is None:
        raise UserError(f"workload '{spec.name}': set num_requests or duration_s (in the spec or as an argument)")
    if n is not None and n <= 0:
        raise UserError(f"num_requests must be > 0 (got {n})")
    if d is not None and d <= 0:
        raise UserError(f"duration_s must be > 0 (got {d})")
    return n, d


def generate(spec: WorkloadSpec | str | Path, *, perf: LatencyModel | None, seed: int,
             rate_rps: float | None = None, num_requests: int | None = None,
             duration_s: float | None = None) -> Workload:
    """A reproducible request stream: same spec + seed (+ overrides) → identical `Workload`.

    ``rate_rps``/``num_requests``/``duration_s`` override the spec's defaults; with a duration the
    stream is cut at that time (and at ``num_requests`` when both are given). ``perf`` turns
    slowdown TTFTs into seconds and may be None only when every SLO is absolute.
    """
    if not isinstance(spec, WorkloadSpec):
        spec = load_spec(spec)
    rate = spec.rate_rps if rate_rps is None else float(rate_rps)
    if not rate > 0:
        raise UserError(f"rate_rps must be > 0 (got {rate})")
    if spec.arrival.process == "trace" and (spec.arrival.rate == "native" or spec.arrival.scale == "thin"):
        rate = _replay_rate(spec, rate_rps, trace_timestamps(spec))
    n, dur = _size(spec, num_requests, duration_s)
    if perf is None:
        for i, app in enumerate(spec.apps):
            for kind, s in app.slo.items():
                if s.ttft_slowdown is not None:
                    raise UserError(f"workload '{spec.name}': apps.{i}.slo.{kind}.ttft_slowdown needs a latency "
                                    "model to turn the slowdown into seconds; pass perf=... or use ttft_ms")

    rng_arrival, rng_app, rng_len, rng_gap = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    n_gen = n if dur is None else int(math.ceil(rate * dur * 1.2 + 10 * math.sqrt(rate * dur) + 10))
    if n is not None:
        n_gen = min(n_gen, n)
    if spec.apps[0].sessions is not None:
        requests_s = _sessions(spec, rate, n_gen, dur, rng_arrival, rng_len, rng_gap, _SLOMaker(perf))
        return Workload(name=spec.name, requests=requests_s, spec=_dumped(spec, rate, n, dur), seed=seed)
    times, trace_rows, trace_name, n_trace_rows = _arrival_times(spec, rng_arrival, rate, n_gen)
    if dur is not None:
        times = times[times < dur] if (times < dur).any() else times[:1]
        if trace_rows is not None:
            trace_rows = trace_rows[: times.size]
    m = times.size

    weights = np.array([a.weight for a in spec.apps], dtype=float)
    app_idx = rng_app.choice(len(spec.apps), size=m, p=weights / weights.sum()) if len(spec.apps) > 1 \
        else np.zeros(m, dtype=np.int64)
    make_slo = _SLOMaker(perf)
    requests: list[Request | None] = [None] * m
    for k, app in enumerate(spec.apps):
        who = np.flatnonzero(app_idx == k)
        if who.size == 0:
            continue
        table = load_lengths(app, k)
        warn_if_clipped(app, table, k)
        build: Callable[[int], tuple[tuple[Stage, ...], str | None]]
        if app.name == "toolcalling":
            groups = table.groups()
            picks = rng_len.integers(0, len(groups), size=who.size)

            def build(j: int, _g=groups, _p=picks, _t=table, _a=app) -> tuple[tuple[Stage, ...], str | None]:
                return _tool_stages(_a, _t, _g[_p[j]], make_slo, rng_gap), None
        else:
            # Replaying a trace's timestamps with the same trace's lengths pairs them row by row
            # (the Azure traces "as is"); otherwise rows are drawn at random.
            paired = trace_rows is not None and len(spec.apps) == 1 and _same_source(app, trace_name)
            if paired and len(table) != n_trace_rows:
                raise UserError(f"apps.{k}.lengths.path and arrival.trace are the same file but gave "
                                f"{len(table)} length rows vs {n_trace_rows} timestamps; remove empty rows")
            rows = trace_rows[who] if paired else table.sample(rng_len, who.size)

            def build(j: int, _r=rows, _t=table, _a=app) -> tuple[tuple[Stage, ...], str | None]:
                text = _t.text[_r[j]] if _t.text is not None else None
                return _stages(_a, _t, int(_r[j]), make_slo), text
        block = app.lengths.prefix_block_tokens
        for j, i in enumerate(who):
            stages, text = build(j)
            prefix: tuple[int, ...] = ()
            if table.prefix is not None and app.name != "toolcalling":
                # The row's hashes stay with its lengths (sampled or replayed alike); a clipped prompt keeps
                # only the blocks it still has.
                prefix = table.prefix[int(rows[j])][: -(-stages[0].prompt_tokens // block)]
            requests[i] = Request(id=int(i), arrival_s=float(times[i]), app=app.name, tier=app.tier,
                                  stages=stages, text=text, prefix_blocks=prefix, prefix_block_tokens=block)

    return Workload(name=spec.name, requests=[r for r in requests if r is not None],
                    spec=_dumped(spec, rate, n, dur), seed=seed)


def _dumped(spec: WorkloadSpec, rate: float, n: int | None, dur: float | None) -> dict:
    """The spec as the workload records it: the rate and size it was generated at."""
    dumped = spec.model_dump(mode="json", exclude_none=True) | {"rate_rps": rate}
    dumped.pop("num_requests", None)
    dumped.pop("duration_s", None)
    if n is not None:
        dumped["num_requests"] = n
    if dur is not None:
        dumped["duration_s"] = dur
    return dumped


def _sessions(spec: WorkloadSpec, rate: float, n_gen: int, dur: float | None, rng_arrival: np.random.Generator,
              rng_len: np.random.Generator, rng_gap: np.random.Generator, make_slo: _SLOMaker) -> list[Request]:
    """Requests of multi-turn sessions (`SessionSpec`), the first ``n_gen`` by send time (and before ``dur``).

    Sessions start at ``rate / turns_mean`` (so turns arrive at ``rate``) by the spec's arrival process. Turn k's
    prompt = system prompt + every earlier user message and answer + its own message, clipped: a session ends
    at the first turn that would pass ``max_context``. Prefix hashes name the prompt's full blocks of
    ``prefix_block_tokens``: a block inside the system prompt by (system prompt, block), any later block by
    (session, block) — the conversation only grows, so block b is the same content in every later turn. The
    prompt's trailing partial block carries no hash (it changes with the next message). Each turn's TTFT SLO is
    the slowdown × prefill time of its whole prompt: a client does not know what the server has cached.
    """
    app = spec.apps[0]
    ss = app.sessions
    assert ss is not None
    table = load_lengths(app, 0)
    warn_if_clipped(app, table, 0)
    block = app.lengths.prefix_block_tokens
    mc = app.lengths.max_context
    ids: dict[tuple[int, int, int], int] = {}  # (kind, owner, block) → hash id, in order of first use

    def hash_of(kind: int, owner: int, b: int) -> int:
        return ids.setdefault((kind, owner, b), len(ids))

    # First the sessions' turns (offsets from their start), then their start times, at the rate that gives
    # ``rate`` turns per second with the mean number of turns that max_turns and max_context left. Sessions
    # start a warm-up before t = 0 (the longest session but 1%) and turns sent before 0 are dropped, so the
    # stream is in steady state from its first request instead of ramping up while the first sessions grow.
    sessions: list[list[tuple[float, tuple[Stage, ...], tuple[int, ...]]]] = []
    total = 0
    need = 1.3 * n_gen + 10
    warm = 0.0
    while total < need:
        s_idx = len(sessions)
        n_turns = min(ss.max_turns, int(rng_len.geometric(1.0 / ss.turns_mean)))  # 1, 2, …; mean turns_mean
        sys_id = int(rng_len.integers(ss.system_prompts)) if ss.system_prompts and ss.system_prompt_tokens else -1
        sys_tok = ss.system_prompt_tokens if sys_id >= 0 else 0
        context, offset = sys_tok, 0.0
        rows = table.sample(rng_len, n_turns)
        turns: list[tuple[float, tuple[Stage, ...], tuple[int, ...]]] = []
        for k in range(n_turns):
            user = int(table.prompt[rows[0]]) if k == 0 else int(round(rng_gap.exponential(ss.user_tokens_mean)))
            prompt = context + max(1, user)
            if prompt + 1 > mc:
                break
            out = min(max(1, int(table.output[rows[k]])), mc - prompt)
            hashes = tuple(hash_of(0, sys_id, b) if (b + 1) * block <= sys_tok else hash_of(1, s_idx, b)
                           for b in range(prompt // block))
            turns.append((offset, (Stage(prompt, out, make_slo(app.slo["main"], prompt), 0.0, "main"),), hashes))
            context = prompt + out
            offset += float(rng_gap.exponential(ss.think_mean_s)) if ss.think_mean_s > 0 else 0.0
        sessions.append(turns)
        total += len(turns)
        if not total and len(sessions) >= 1000:
            raise UserError(f"workload '{spec.name}': no session's first turn fits apps.0.lengths.max_context {mc} "
                            f"(system prompt {sys_tok} tokens + a first message); raise max_context")
        if total >= need and not warm:  # now the warm-up is known: add the turns it swallows
            warm = float(np.percentile([t[-1][0] for t in sessions if t], 99))
            need += 1.3 * rate * warm
    mean_turns = max(1.0, total / len(sessions))
    starts, _, _, _ = _arrival_times(spec, rng_arrival, rate / mean_turns, len(sessions))
    sent = sorted(((float(t0) + off - warm, s_idx, stages, hashes)
                   for s_idx, (t0, turns) in enumerate(zip(starts, sessions, strict=True))
                   for off, stages, hashes in turns if t0 + off >= warm), key=lambda x: (x[0], x[1]))
    if dur is not None:
        sent = [x for x in sent if x[0] < dur] or sent[:1]
    sent = sent[:n_gen]
    return [Request(id=i, arrival_s=t, app=app.name, tier=app.tier, stages=stages, prefix_blocks=hashes,
                    prefix_block_tokens=block) for i, (t, _, stages, hashes) in enumerate(sent)]
