"""`slobench workloads list|show|new`: see what a workload spec will throw at the server before running it,
and write one for your own trace."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from slobench.errors import UserError
from slobench.workloads import generate, list_specs, load_spec
from slobench.workloads.arrivals import iat_cv, iat_quantiles, native_rate, quantisation_tick_s
from slobench.workloads.generate import clip_stats, load_lengths, trace_timestamps
from slobench.workloads.prefix import prefix_stats
from slobench.workloads.spec import SPEC_DIR, WorkloadSpec

console = Console()

workloads_app = typer.Typer(
    help="List, inspect and create workload specs.\n\nExample: slobench workloads show coding --rate 4\n\n"
    "Your own trace: slobench workloads new mytrace --from-trace trace.csv (docs/workloads.md)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _slo_text(spec: WorkloadSpec) -> str:
    return "; ".join(f"{a.tier}/{k}: {s.describe()}" for a in spec.apps for k, s in a.slo.items())


@workloads_app.command("list")
def list_cmd() -> None:
    """List the shipped workload specs.

    Example: slobench workloads list
    """
    # The folder, not just "workloads/": in a wheel install the specs are a packaged copy, and this
    # is where a user finds one to copy and edit (then pass the copy's path as --workload).
    table = Table(title=f"Shipped workloads ({SPEC_DIR})")
    for col in ("name", "apps (tier, weight)", "arrivals", "lengths", "rate / size", "SLOs"):
        table.add_column(col, overflow="fold")
    for name in list_specs():
        spec = load_spec(name)
        apps = ", ".join(f"{a.name} ({a.tier}, {a.weight:g})" for a in spec.apps)
        size = f"{spec.num_requests} req" if spec.num_requests else f"{spec.duration_s:g} s"
        table.add_row(name, apps, spec.arrival.describe(), ", ".join(a.lengths.describe() for a in spec.apps),
                      f"{spec.rate_rps:g} req/s, {size}", _slo_text(spec))
    console.print(table)


def _dur(seconds: float) -> str:
    """A gap in the unit a reader compares at a glance (ms below a second)."""
    if not np.isfinite(seconds):
        return "-"
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _gaps(times: np.ndarray) -> str:
    """Inter-arrival p50/p90/p99 and the share of near-zero gaps: ties of a quantised log, which the CV hides."""
    q, zero = iat_quantiles(times)
    return f"IAT p50 {_dur(q[0])}, p90 {_dur(q[1])}, p99 {_dur(q[2])}; gaps < 1 ms: {zero:.1%}"


def _q(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.0f} / {np.percentile(a, 50):.0f} / {np.percentile(a, 90):.0f} / {np.percentile(a, 99):.0f}"


@workloads_app.command("show")
def show_cmd(
    name_or_path: Annotated[str, typer.Argument(help="Shipped workload name or a YAML path.")],
    rate: Annotated[float | None, typer.Option("--rate", help="Request rate (req/s); default: the spec's.")] = None,
    num_requests: Annotated[int | None, typer.Option("--num-requests", "-n", help="Requests to sample.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    hardware: Annotated[str, typer.Option("--hardware", help="GPU for slowdown TTFTs.")] = "H100-SXM",
    model: Annotated[str, typer.Option("--model", help="Model for slowdown TTFTs.")] = "Llama-3.1-8B",
) -> None:
    """Generate a sample of a workload and print its statistics (lengths, arrivals, SLOs).

    Example: slobench workloads show mixed --rate 6 -n 2000 --seed 1
    """
    spec = load_spec(name_or_path)
    if rate is not None and rate <= 0:
        raise UserError(f"--rate must be > 0 (got {rate})")
    if num_requests is not None and num_requests <= 0:
        raise UserError(f"--num-requests must be > 0 (got {num_requests})")
    perf = None
    if any(s.ttft_slowdown is not None for a in spec.apps for s in a.slo.values()):
        from slobench.perf import get_latency_model  # only when a slowdown SLO needs prefill times

        perf = get_latency_model(hardware=hardware, model=model)
    wl = generate(spec, perf=perf, seed=seed, rate_rps=rate, num_requests=num_requests)
    times = np.array([r.arrival_s for r in wl.requests])
    span = float(times[-1] - times[0]) if times.size > 1 else 0.0
    achieved = (times.size - 1) / span if span > 0 else float("nan")

    head = Table(title=f"{spec.name}: {spec.description[:100]}", show_header=False)
    head.add_row("requests", str(len(wl.requests)))
    head.add_row("rate achieved", f"{achieved:.3g} req/s (target {wl.spec['rate_rps']:g})")
    head.add_row("arrivals", f"{spec.arrival.describe()}, IAT CV {iat_cv(times):.2f}, span {span:.0f} s")
    head.add_row("inter-arrival", _gaps(times))
    if spec.arrival.process == "trace":
        ts = trace_timestamps(spec)
        rec_span = float(ts.max() - ts.min())
        head.add_row("trace as recorded", f"{ts.size:,} rows over {rec_span:.4g} s, {native_rate(ts):.3g} req/s, "
                     f"IAT CV {iat_cv(ts):.2f}")
        head.add_row("recorded gaps", _gaps(ts))
        if iat_quantiles(ts)[1] > 0.2 and spec.arrival.jitter_s is None:
            head.add_row("hint", f"many simultaneous arrivals (a log in {_dur(quantisation_tick_s(ts))} ticks?): "
                         "arrival.jitter_s: auto spreads each tick's requests over it (docs/workloads.md)")
    head.add_row("seed", str(seed))
    ps = prefix_stats(wl.requests)
    if ps:  # requests carry prefix block hashes (a trace's hash_ids, or sessions)
        head.add_row("shared prefixes", f"{ps['shared_token_share']:.1%} of {ps['prompt_tokens']:,} prompt tokens "
                     f"are a prefix of an earlier request ({ps['requests_sharing']:.1%} of {ps['requests']:,} "
                     "requests share one; an infinite cache's hit rate)")
        head.add_row("block reuse", f"requests per block p50 {ps['reuse_p50']:g}, p90 {ps['reuse_p90']:g}, max "
                     f"{ps['reuse_max']:,} ({ps['distinct_blocks']:,} blocks); time since last use p50 "
                     f"{_dur(ps['reuse_gap_p50_s'])}, p90 {_dur(ps['reuse_gap_p90_s'])}")
    console.print(head)

    clip = Table(title="What max_context cuts (over the length source's rows)")
    for col in ("app", "source", "max_context", "rows clipped", "input tokens cut", "output tokens cut"):
        clip.add_column(col)
    for k, app in enumerate(spec.apps):
        if app.name == "toolcalling":  # clipped per round of an episode; not a per-row count
            continue
        c = clip_stats(app, load_lengths(app, k))
        clip.add_row(app.name, escape(app.lengths.describe()), f"{c['max_context']:,}",
                     f"{c['rows_clipped']:,} of {c['rows']:,} ({c['rows_clipped'] / max(c['rows'], 1):.1%})",
                     f"{c['input_cut']:,} of {c['input_total']:,} ({c['input_cut'] / max(c['input_total'], 1):.1%})",
                     f"{c['output_cut']:,}")
    if clip.row_count:
        console.print(clip)

    table = Table(title="Per app — mean / p50 / p90 / p99")
    for col in ("app", "tier", "count", "prompt tokens", "output tokens", "stages"):
        table.add_column(col)
    for app in spec.apps:
        reqs = [r for r in wl.requests if r.app == app.name and r.tier == app.tier]
        if not reqs:
            continue
        table.add_row(app.name, app.tier, str(len(reqs)), _q([r.total_prompt_tokens for r in reqs]),
                      _q([r.total_output_tokens for r in reqs]), _q([len(r.stages) for r in reqs]))
    console.print(table)

    slos = Table(title="SLOs per tier (spec → generated TTFT mean / p50 / p90 / p99 ms)")
    for col in ("tier", "stage", "spec", "TTFT ms", "TPOT ms"):
        slos.add_column(col)
    for app in spec.apps:
        for kind, s in app.slo.items():
            stages = [st for r in wl.requests if r.tier == app.tier for st in r.stages if st.name == kind]
            ttft = _q([st.slo.ttft_s * 1000 for st in stages]) if stages else "-"
            slos.add_row(app.tier, kind, s.describe(), ttft, f"{s.tpot_ms:g}")
    console.print(slos)


# Printed as given: a column or file name with [brackets] is text, not rich markup.
_PLAIN = {"highlight": False, "markup": False}


@workloads_app.command("new")
def new_cmd(
    name: Annotated[str, typer.Argument(help="Workload name (also the default file NAME.yaml).")],
    from_trace: Annotated[Path | None, typer.Option(
        "--from-trace", help="Your trace: CSV, JSON, JSONL or parquet, one row per request.")] = None,
    from_hf: Annotated[str | None, typer.Option(
        "--from-hf", help="A Hugging Face dataset id from the local cache, or a save_to_disk folder.")] = None,
    split: Annotated[str, typer.Option("--split", help="Dataset split (with --from-hf).")] = "train",
    timestamp_column: Annotated[str | None, typer.Option(
        "--timestamp-column", help="Arrival-time column (default: guessed, e.g. timestamp, arrival_time).")] = None,
    prompt_column: Annotated[str | None, typer.Option(
        "--prompt-column", help="Prompt-token column (default: guessed, e.g. input_length, ContextTokens).")] = None,
    output_column: Annotated[str | None, typer.Option(
        "--output-column", help="Output-token column (default: guessed, e.g. output_length).")] = None,
    text_column: Annotated[str | None, typer.Option(
        "--text-column", help="Prompt-text column, counted with a built-in estimate (when no token column).")] = None,
    output_tokens: Annotated[int | None, typer.Option(
        "--output-tokens", help="A fixed output length when the data has no output column.")] = None,
    time_unit: Annotated[str | None, typer.Option(
        "--time-unit", help="s, ms or us for numeric timestamps (default: guessed from epoch size, else s).")] = None,
    app_name: Annotated[str, typer.Option("--app", help="custom, chatbot, coding or summarization.")] = "custom",
    tier: Annotated[str | None, typer.Option("--tier", help="SLO tier name (default: the preset's).")] = None,
    slo_preset: Annotated[str, typer.Option(
        "--slo-preset", help="SLOs of a shipped workload: chatbot, coding or summarization.")] = "chatbot",
    max_context: Annotated[int | None, typer.Option(
        "--max-context", help="Clip requests to this many tokens (default: the longest row, ≥ 8192).")] = None,
    hash_column: Annotated[str | None, typer.Option(
        "--hash-column", help="Column of prompt block hashes, Mooncake's hash_ids (default: guessed).")] = None,
    prefix_block_tokens: Annotated[int | None, typer.Option(
        "--prefix-block-tokens", help="Prompt tokens per hash (default 512, as Mooncake).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the YAML (default: NAME.yaml).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """Write a validated workload YAML for your own trace or dataset, then say how to run it.

    Columns are guessed by common names (pass --prompt-column etc. to choose). Every YAML field, and the trace
    replay options (arrival.jitter_s, rate: native, scale: thin) with when to use each: docs/workloads.md.

    Example: slobench workloads new mytrace --from-trace trace.csv && slobench compare --workload mytrace.yaml
    """
    from slobench.workloads.from_trace import build_spec, write_spec

    target = out if out is not None else Path(f"{name}.yaml")
    new = build_spec(name, target, trace=from_trace, dataset=from_hf, split=split,
                     timestamp_column=timestamp_column, prompt_column=prompt_column, output_column=output_column,
                     text_column=text_column, output_tokens=output_tokens, time_unit=time_unit, app=app_name,
                     tier=tier, slo_preset=slo_preset, max_context=max_context, hash_column=hash_column,
                     prefix_block_tokens=prefix_block_tokens)
    write_spec(new, target, force=force)
    cols = ", ".join(f"{role} ← {col}" for role, col in new.columns.items())
    console.print(f"[bold green]wrote[/] {escape(str(target))} (validated: read as a run reads it)", highlight=False)
    console.print(f"  lengths      {new.source}: {cols} ({new.rows:,} rows)", **_PLAIN)
    if new.native_rate_rps is not None:
        unit = f"{new.time_unit or 'datetime'}{' (guessed; --time-unit to change)' if new.time_unit_guessed else ''}"
        console.print(f"  arrivals     replay of '{new.columns['timestamp']}' in {unit}: recorded rate "
                      f"{new.native_rate_rps:.3g} req/s, time-scaled to each run's rate", **_PLAIN)
    else:
        console.print("  arrivals     Poisson", **_PLAIN)
    app = new.spec.apps[0]
    console.print(f"  SLOs         {slo_preset} preset, tier {app.tier}: {app.slo['main'].describe()}", **_PLAIN)
    c = new.clipped
    cut = "nothing clipped" if not c["rows_clipped"] else \
        f"clips {c['rows_clipped']:,} rows, {c['input_cut'] / max(c['input_total'], 1):.1%} of input tokens"
    console.print(f"  max_context  {c['max_context']:,} ({cut}; longest row {new.longest_row:,})", **_PLAIN)
    for note in new.notes:
        console.print(f"  note         {note}", **_PLAIN)
    console.print(f"next: slobench compare --workload {shlex.quote(str(target))}", **_PLAIN)
