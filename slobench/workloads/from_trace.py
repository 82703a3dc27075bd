"""Write a workload YAML for a user's own trace file or Hugging Face dataset (`slobench workloads new`).

A user with a trace knows its columns, not slobench's YAML fields (``lengths.path``, ``*_column``,
``arrival.process: trace``). This module guesses the columns by the names common traces use (Azure's
``ContextTokens``/``GeneratedTokens``/``TIMESTAMP``, vLLM's and GuideLLM's ``prompt_tokens``/
``output_tokens``, BurstGPT's ``Request tokens``), refuses to guess between two candidates, takes the SLOs
from a shipped workload, and validates the result by reading it exactly as a run would, before one byte
is written. The CLI only parses flags and prints what `build_spec` returns.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from slobench.errors import UserError
from slobench.workloads import arrivals as arr
from slobench.workloads.generate import check_sources, clip_stats, generate, load_lengths, trace_timestamps
from slobench.workloads.sources import TIME_UNITS_S, _infer_format, open_dataset, read_frame
from slobench.workloads.spec import STAGE_KINDS, WorkloadSpec, list_specs, load_spec, parse_spec

# Column names seen in public traces and other benchmarks' datasets, compared after lower-casing and
# dropping everything but letters and digits (so `Request tokens` = `request_tokens` = `RequestTokens`).
TIME_NAMES = ("timestamp", "arrival_time", "arrival_timestamp", "arrived_at", "time", "ts", "created_at")
PROMPT_NAMES = ("input_length", "input_tokens", "prompt_tokens", "prompt_length", "prompt_len", "input_len",
                "ContextTokens", "num_prefill_tokens", "num_input_tokens", "request_tokens", "isl")
OUTPUT_NAMES = ("output_length", "output_tokens", "GeneratedTokens", "generated_tokens", "completion_tokens",
                "num_decode_tokens", "num_output_tokens", "response_tokens", "output_len", "osl")
TEXT_NAMES = ("prompt", "text", "input", "question", "instruction")
HASH_NAMES = ("hash_ids", "block_hashes", "prefix_hashes")  # Mooncake's per-row prompt block hashes

# Apps whose requests are one prefill-then-decode stage: the only shape a two-column trace describes.
SINGLE_STAGE_APPS = ("custom", "chatbot", "coding", "summarization")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def slo_presets() -> dict[str, tuple[str, dict[str, Any]]]:
    """SLO presets by shipped workload name → (its tier, its ``main`` SLO), from the shipped YAMLs themselves
    so a preset can never drift from the workload it is named after (bursty variants share their base's)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in list_specs():
        spec = load_spec(name)
        # Session workloads are left out: chat-sessions has chatbot's SLOs, and a preset names a one-row request.
        if len(spec.apps) == 1 and list(spec.apps[0].slo) == ["main"] and not name.endswith("-bursty") \
                and spec.apps[0].sessions is None:
            out[name] = (spec.apps[0].tier, spec.apps[0].slo["main"].model_dump(exclude_defaults=True))
    return out


def guess_column(columns: list[str], names: tuple[str, ...], given: str | None, flag: str, where: str) -> str | None:
    """The column for one role: ``given`` (checked), else the one column whose name is a known one.

    Two candidates are refused (one line listing them): picking one silently could pair, say, a
    prompt's character count with the output's token count.
    """
    if given is not None:
        if given not in columns:
            raise UserError(f"{flag} '{given}' is not a column of {where}; columns: {', '.join(map(str, columns))}")
        return given
    known = {_norm(n) for n in names}
    found = [c for c in columns if _norm(c) in known]
    if len(found) > 1:
        raise UserError(f"{where}: several columns could be the {flag.removeprefix('--').replace('-', ' ')}: "
                        f"{', '.join(found)}; pick one with {flag} NAME")
    return found[0] if found else None


def guess_time_unit(values: pd.Series) -> str:
    """s, ms or us for a numeric timestamp column: epoch times tell their unit by size (now ≈ 1.7e9 s =
    1.7e12 ms = 1.7e15 us); relative times cannot, and are taken as seconds (``--time-unit`` overrides)."""
    top = float(np.nanmax(np.abs(values.to_numpy(dtype=float)))) if len(values) else 0.0
    return "us" if top > 1e14 else "ms" if top > 1e11 else "s"


def _round_down(rate: float) -> float:
    """``rate`` to 3 significant digits, never above it: a default rate rounded up past the trace's native
    rate would be refused by ``scale: thin``."""
    step = 10.0 ** (math.floor(math.log10(rate)) - 2)
    return round(math.floor(rate / step * (1 + 1e-12)) * step, 12)


@dataclass
class NewSpec:
    """What `build_spec` made: the YAML mapping to write and the facts the CLI prints about it."""

    raw: dict[str, Any]
    spec: WorkloadSpec
    source: str
    rows: int
    columns: dict[str, str]  # role (prompt, output, text, timestamp) → column
    time_unit: str | None = None
    time_unit_guessed: bool = False
    native_rate_rps: float | None = None
    near_zero_gap_share: float | None = None
    longest_row: int = 0
    clipped: dict[str, int] = field(default_factory=dict)  # `clip_stats` at the written max_context
    notes: list[str] = field(default_factory=list)


def build_spec(name: str, out: Path, *, trace: Path | None = None, dataset: str | None = None, split: str = "train",
               timestamp_column: str | None = None, prompt_column: str | None = None,
               output_column: str | None = None, text_column: str | None = None, output_tokens: int | None = None,
               time_unit: str | None = None, app: str = "custom", tier: str | None = None,
               slo_preset: str = "chatbot", max_context: int | None = None, num_requests: int = 1000,
               hash_column: str | None = None, prefix_block_tokens: int | None = None) -> NewSpec:
    """A validated workload spec for ``trace`` (a CSV/JSON(L)/parquet file) or ``dataset`` (a Hugging Face id in
    the local cache, or a ``save_to_disk`` folder), to be written at ``out``; every problem is one `UserError`.

    Lengths come from the guessed or given columns; arrivals replay the timestamp column (time-scaled to each
    run's rate) when there is one, else Poisson; ``max_context`` defaults to the longest row so nothing is
    clipped unless the user asks; paths are written relative to ``out``'s folder so the pair can be moved.
    A column of block hashes (``hash_ids``, guessed or ``hash_column``) makes requests that share prompt
    prefixes (``prefix_block_tokens`` per hash, default 512 as Mooncake), kept row by row with the lengths.
    """
    if not NAME_RE.match(name):
        raise UserError(f"NAME '{name}': use letters, digits, '.', '_' or '-' (it names the workload and the "
                        "default file NAME.yaml)")
    if (trace is None) == (dataset is None):
        raise UserError("give exactly one of --from-trace FILE or --from-hf DATASET")
    if app not in SINGLE_STAGE_APPS:
        multi = f" ({'/'.join(STAGE_KINDS[app])} stages: copy workloads/{app}.yaml and edit it)" \
            if app in STAGE_KINDS else ""
        raise UserError(f"--app '{app}': a trace of one prompt and one output per row makes single-stage requests; "
                        f"use one of {', '.join(SINGLE_STAGE_APPS)}{multi}")
    presets = slo_presets()
    if slo_preset not in presets:
        raise UserError(f"--slo-preset '{slo_preset}': unknown; choose one of {', '.join(presets)} "
                        "(the SLOs of the shipped workload of that name)")
    if time_unit is not None and time_unit not in TIME_UNITS_S:
        raise UserError(f"--time-unit '{time_unit}': use s, ms or us")
    if max_context is not None and max_context < 2:
        raise UserError(f"--max-context must be ≥ 2 tokens (got {max_context})")
    if output_tokens is not None and output_tokens < 1:
        raise UserError(f"--output-tokens must be ≥ 1 (got {output_tokens})")
    base = out.resolve().parent

    if trace is not None:
        if not trace.is_file():
            raise UserError(f"--from-trace {trace}: file not found; give a CSV, JSON, JSONL or parquet file")
        _infer_format(trace)  # a clear line for an unknown extension before pandas guesses
        frame = read_frame(trace, "--from-trace")
        source, where = str(trace), str(trace)
        columns = [str(c) for c in frame.columns]
        lengths: dict[str, Any] = {"path": os.path.relpath(trace.resolve(), base)}
    else:
        ds = open_dataset(dataset, split, origin="--from-hf")  # type: ignore[arg-type]
        frame = None
        source = where = f"{dataset} (split {split})"
        columns = list(ds.column_names)
        ref = str(Path(dataset).resolve()) if Path(str(dataset)).is_dir() else str(dataset)
        lengths = {"dataset": os.path.relpath(ref, base) if Path(ref).is_absolute() else ref, "split": split}
    if frame is not None and frame.empty:
        raise UserError(f"--from-trace {trace}: has no rows; give a file with one row per request")

    pcol = guess_column(columns, PROMPT_NAMES, prompt_column, "--prompt-column", where)
    ocol = guess_column(columns, OUTPUT_NAMES, output_column, "--output-column", where)
    tcol = None
    if pcol is None:
        tcol = guess_column(columns, TEXT_NAMES, text_column, "--text-column", where)
        if tcol is None:
            raise UserError(f"{where}: no prompt-length column found (looked for {', '.join(PROMPT_NAMES[:5])}, …) "
                            f"and no text column; columns: {', '.join(columns)}; pass --prompt-column NAME")
    if ocol is None and output_tokens is None:
        raise UserError(f"{where}: no output-length column found (looked for {', '.join(OUTPUT_NAMES[:5])}, …); "
                        f"columns: {', '.join(columns)}; pass --output-column NAME or a fixed --output-tokens N")
    if pcol is not None:
        lengths["prompt_tokens_column"] = pcol
    else:
        lengths["text_column"] = tcol
    if ocol is not None:
        lengths["output_tokens_column"] = ocol
    else:
        lengths["output_tokens"] = output_tokens
    hcol = guess_column(columns, HASH_NAMES, hash_column, "--hash-column", where)
    if prefix_block_tokens is not None and prefix_block_tokens < 1:
        raise UserError(f"--prefix-block-tokens must be ≥ 1 (got {prefix_block_tokens})")
    if hcol is not None:
        lengths["hash_column"] = hcol
        if prefix_block_tokens is not None:
            lengths["prefix_block_tokens"] = prefix_block_tokens
    elif prefix_block_tokens is not None:
        raise UserError(f"--prefix-block-tokens: {where} has no hash column to apply it to; pass --hash-column NAME")
    roles = {k: v for k, v in (("prompt", pcol), ("text", tcol), ("output", ocol), ("prefix hashes", hcol))
             if v is not None}

    ts_col = guess_column(columns, TIME_NAMES, timestamp_column, "--timestamp-column", where)
    notes: list[str] = []
    arrival: dict[str, Any] = {"process": "poisson"}
    unit, guessed = None, False
    if ts_col is not None and frame is None:
        notes.append(f"column '{ts_col}' looks like timestamps, but a dataset's are not replayed: arrivals are "
                     "Poisson; to replay them, save the split as parquet (ds.to_parquet) and use --from-trace")
        ts_col = None
    elif ts_col is not None:
        unit, guessed = time_unit, False
        if unit is None and pd.api.types.is_numeric_dtype(frame[ts_col]):  # type: ignore[index]
            unit, guessed = guess_time_unit(frame[ts_col]), True  # type: ignore[index]
        arrival = {"process": "trace", "trace": lengths["path"], "timestamp_column": ts_col}
        if unit is not None and unit != "s":
            arrival["timestamp_unit"] = unit
        roles["timestamp"] = ts_col
    elif time_unit is not None:
        raise UserError(f"--time-unit {time_unit}: {where} has no timestamp column to apply it to; "
                        "pass --timestamp-column NAME, or drop --time-unit")
    else:
        notes.append("no timestamp column: arrivals are Poisson (pass --timestamp-column NAME to replay times)")

    preset_tier, slo = presets[slo_preset]
    raw: dict[str, Any] = {
        "name": name,
        "description": f"Built by `slobench workloads new` from {source} with the {slo_preset} SLO preset.",
        "apps": [{"name": app, "tier": tier or preset_tier, "lengths": lengths, "slo": {"main": slo}}],
        "arrival": arrival,
        "rate_rps": 2.0,
        # A trace shorter than the default size is replayed once, not wrapped around (`trace_replay`).
        "num_requests": min(num_requests, len(frame) if frame is not None else len(ds)),
    }
    # Validate by reading the sources exactly as a run will (each read is cached for the process).
    spec = parse_spec(raw, out)
    table = load_lengths(spec.apps[0], 0)
    longest = clip_stats(spec.apps[0], table)["longest_row"]
    mc = max_context if max_context is not None else max(8192, -(-longest // 1024) * 1024)
    lengths["max_context"] = mc
    native = share0 = None
    if arrival["process"] == "trace":
        ts = trace_timestamps(spec)
        native = arr.native_rate(ts)
        _, share0 = arr.iat_quantiles(ts)
        raw["rate_rps"] = _round_down(native)
        if share0 > 0.2:
            notes.append(f"{share0:.0%} of the trace's inter-arrival gaps are under 1 ms (a log in coarse ticks?): "
                         "add `jitter_s: auto` under arrival: to spread each tick's requests over it")
    spec = parse_spec(raw, out)
    check_sources(spec)
    from slobench.perf import get_latency_model  # slowdown TTFTs need a latency model to turn into seconds

    generate(spec, perf=get_latency_model(), seed=0, num_requests=min(num_requests, 50))
    return NewSpec(raw=raw, spec=spec, source=source, rows=len(table), columns=roles, time_unit=unit,
                   time_unit_guessed=guessed, native_rate_rps=native, near_zero_gap_share=share0,
                   longest_row=longest, clipped=clip_stats(spec.apps[0], table), notes=notes)


def write_spec(new: NewSpec, out: Path, *, force: bool = False) -> None:
    """Write the YAML atomically (a kill mid-write never leaves a torn spec); an existing file is kept
    unless ``force``: it may be the user's hand-edited spec."""
    from slobench.report.results import atomic_target  # a lower layer; imports pandas, so only here

    if out.exists() and not force:
        raise UserError(f"--out {out}: exists; pass --force to replace it, or choose another --out")
    if out.exists() and not out.is_file():
        raise UserError(f"--out {out}: is not a file; give a path ending in .yaml")
    header = (f"# Written by `slobench workloads new` from {new.source}.\n"
              "# Every field is described in docs/workloads.md; edit freely (slobench workloads show checks it).\n")
    try:
        with atomic_target(out) as tmp:
            tmp.write_text(header + yaml.safe_dump(new.raw, sort_keys=False, allow_unicode=True))
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write there ({exc.strerror or type(exc).__name__}); "
                        "give a writable path") from None
