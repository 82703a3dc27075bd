"""`slobench calibrate`: measure a real engine's iterations, fit a latency profile, write it as a YAML file.

Thin: options → a server (launched through the engine pool, or one already running with ``--url`` and its
``--iterations`` file) → `slobench.engines.vllm.calibrate.measure` under a progress bar → `slobench.perf.calibration`
fits → `slobench.perf.profile_file.write_profile_file`. Ctrl-C keeps the grid points measured so far: they are
fitted and written, then the command exits 130.

``--engine openai --url URL``: an endpoint slobench did not start hides its iterations, so
`slobench.engines.openai.calibrate.measure_endpoint` measures what its client sees (zero-load TTFT per prompt
length, inter-token latency per concurrency), `fit_client_visible` fits two lines, and the file says it is
client-visible (`--profile` refuses it for the simulator; docs/calibration.md "OpenAI endpoints").
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from slobench.cli.display import console
from slobench.cli.options import EngineArgOpt, EngineConfigOpt, engine_options
from slobench.errors import UserError


def _hardware_label(given: str | None, build: str | None) -> str:
    """What the profile says it was measured on: --hardware, else "cpu" on vLLM's CPU build; otherwise asked for
    (a GPU's name cannot be guessed reliably, and a profile must not claim the wrong hardware)."""
    if given:
        return given
    if build == "cpu":
        return "cpu"
    where = "calibrate --url: the server's hardware is unknown here" if build is None else \
        "calibrate: this vLLM build is not the CPU one"
    raise UserError(f"{where}; give --hardware NAME (e.g. cpu, H100-SXM): the profile must say what it was "
                    "measured on")


def _planning_hardware(label: str) -> str:
    """The GPU table entry the in-server policy's (unused for calibration) latency model is built from: the label
    when the table knows it, else the ``cpu`` entry, so a free-form label never stops vLLM from starting."""
    from slobench.perf.hardware import get_gpu

    try:
        return get_gpu(label).name
    except UserError:
        return "cpu"


def calibrate_cmd(
    engine: Annotated[str, typer.Option("--engine", help="vllm (iterations, inside a server slobench starts) | "
                                        "openai (what a client of --url sees)")] = "vllm",
    model: Annotated[str | None, typer.Option("--model", help="Local model folder to serve (and its vocabulary).")]
    = None,
    out: Annotated[Path | None, typer.Option("--out", help="Profile file to write (default: "
                                             "results/profiles/<name>.yaml).")] = None,
    points: Annotated[int | None, typer.Option("--points", min=1, help="Grid points to measure (default: the "
                                               "whole grid, 22 cells; --quick: 6).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A small grid: a first profile in about a minute.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="Profile name (default: model folder + hardware).")]
    = None,
    hardware: Annotated[str | None, typer.Option("--hardware", help="What the engine runs on, for the profile "
                                                 "and reports (default: cpu on vLLM's CPU build).")] = None,
    url: Annotated[str | None, typer.Option("--url", help="An already-running server started by slobench with a "
                                            "policy (its adapter records iterations), e.g. http://127.0.0.1:8000")]
    = None,
    iterations: Annotated[Path | None, typer.Option("--iterations", help="With --url: that server's iterations "
                                                    "file (iterations-*.jsonl next to its log).")] = None,
    events: Annotated[Path | None, typer.Option("--events", help="With --url: its scheduler-events-*.jsonl (KV "
                                                "size; default: next to --iterations).")] = None,
    engine_arg: EngineArgOpt = None,
    engine_config: EngineConfigOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Prompt ids and the held-back split.")] = 0,
    prompt_lengths: Annotated[str | None, typer.Option("--prompt-lengths", help="--engine openai: prompt tokens "
                                                       "of the zero-load TTFT grid, e.g. 16,64,256,1024 (the "
                                                       "default; --quick: 16,256,1024).")] = None,
    concurrency: Annotated[str | None, typer.Option("--concurrency", help="--engine openai: requests in flight "
                                                    "of the ITL grid, e.g. 1,2,4,8,16 (the default; --quick: "
                                                    "1,2,4,8).")] = None,
) -> None:
    """Measure a vLLM server's iteration latency over a grid of batch shapes and write a latency profile.

    Example: slobench calibrate --engine vllm --model ./tiny-llama --quick --out cpu-tiny.yaml
    then:    slobench run --profile cpu-tiny.yaml --workload chatbot
    Against any OpenAI endpoint (client-visible: TTFT and ITL, not iterations):
             slobench calibrate --engine openai --url http://host:8000/v1 --quick --out endpoint.yaml
    """
    if engine not in ("vllm", "openai"):
        raise UserError(f"calibrate --engine {engine}: unknown engine; use vllm or openai")
    from slobench.engines.options import validate_engine_options

    opts = validate_engine_options(engine_options(engine_arg, engine_config))
    if engine == "openai":
        _calibrate_openai(url, model, opts, out, quick, name, hardware, seed, prompt_lengths, concurrency)
        return
    if prompt_lengths or concurrency:
        raise UserError("--prompt-lengths/--concurrency: only with --engine openai (--engine vllm measures a grid "
                        "of batch shapes; see --points)")
    from slobench.engines.vllm.calibrate import CalibrationTarget

    if url:
        if iterations is None:
            raise UserError("calibrate --url: give --iterations FILE, the server's iterations-*.jsonl (a server "
                            "started by slobench with a policy writes one next to its log)")
        ev = events or _sibling_events(iterations)
        served = opts.served_model or model or _served_model(url)
        target = CalibrationTarget(base_url=url.rstrip("/").removesuffix("/v1") + "/v1", model=served,
                                   iterations_path=iterations, events_path=ev,
                                   vocab_size=opts.vocab_size or _vocab(model))
        _calibrate(target, model or served, out, points, quick, name, _hardware_label(hardware, None), {},
                   seed, version=None)
        return
    if not model:
        raise UserError("calibrate --engine vllm: give --model, the local model folder to serve")
    from slobench.cluster.run import engine_session
    from slobench.engines.vllm.launcher import ServerSpec, check_model_arg
    from slobench.engines.vllm.support import require_vllm
    from slobench.schedulers.spec import PolicySpec

    check_model_arg(model)
    info = require_vllm()
    label = _hardware_label(hardware, info.build)
    # Policy "vllm" inside the adapter: vLLM-like FCFS chunked-prefill batches, and the adapter records them.
    spec = ServerSpec(model=model, policy=PolicySpec(name="vllm"), options=opts.server_fields(),
                      hardware=_planning_hardware(label), perf_model=model)
    with engine_session() as pool:
        with console.status("starting vLLM (≈30 s on a CPU)…"):
            srv = pool.acquire(spec, cpu_build=info.build == "cpu", startup_timeout_s=opts.startup_timeout_s)
        assert srv.iterations_path is not None
        target = CalibrationTarget(base_url=srv.base_url, model=opts.served_model or srv.served_model,
                                   iterations_path=srv.iterations_path, events_path=srv.events_path,
                                   vocab_size=opts.vocab_size or _vocab(model))
        _calibrate(target, model, out, points, quick, name, label, opts.server_fields(), seed, version=info.version)


def _int_list(text: str | None, default: tuple[int, ...], flag: str) -> tuple[int, ...]:
    """``"1,2,4"`` → (1, 2, 4); every value a whole number ≥ 1, else one line naming the flag."""
    if text is None:
        return default
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        vals = ()
    if not vals or min(vals) < 1:
        raise UserError(f"{flag} {text!r}: give whole numbers ≥ 1 separated by commas, e.g. "
                        f"{','.join(map(str, default))}")
    return vals


def _calibrate_openai(url: str | None, model: str | None, opts, out: Path | None, quick: bool,  # noqa: ANN001
                      name: str | None, hardware: str | None, seed: int, prompt_lengths: str | None,
                      concurrency: str | None) -> None:
    """Measure what a client of ``url`` sees, fit it, write a client-visible profile (module docstring)."""
    import re

    from slobench.engines.openai import calibrate as oc
    from slobench.engines.openai.engine import OpenAIEngine
    from slobench.perf.calibration import fit_client_visible
    from slobench.perf.profile_file import CLIENT_VISIBLE_SOURCE, EnvironmentSection, ProfileFile, write_profile_file

    if not url:
        raise UserError("calibrate --engine openai: give --url, the endpoint's API base (e.g. --url "
                        "http://127.0.0.1:8000/v1)")
    prompts = _int_list(prompt_lengths, oc.QUICK_PROMPT_GRID if quick else oc.PROMPT_GRID, "--prompt-lengths")
    levels = _int_list(concurrency, oc.QUICK_CONCURRENCY_GRID if quick else oc.CONCURRENCY_GRID, "--concurrency")
    target = OpenAIEngine(url, opts).target()  # unreachable, unauthorised, no model: its one line
    ep = target.endpoint
    vocab = opts.vocab_size or (_vocab(model) if model and Path(model).is_dir() else None)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as prog:
        task = prog.add_task("calibrating", total=1 + len(levels))

        def on_step(i: int, total: int, what: str) -> None:
            prog.update(task, completed=i, description=f"calibrating: {what}")

        meas = oc.measure_endpoint(ep, vocab_size=vocab, prompts=prompts, concurrencies=levels, seed=seed,
                                   on_step=on_step)
    if not meas.ttft_points or not meas.itl_points:
        what = "no request came back whole" if meas.failed else "nothing was measured"
        raise UserError(f"calibrate --engine openai --url {url}: {what} ({meas.failed} requests failed); "
                        "no profile written")
    client = fit_client_visible(meas.ttft_points, meas.itl_points)
    from slobench.capacity.validity import burst_share
    from slobench.metrics.records import records_frame

    # The ITL points are only the server's pace if the client read the tokens as they came (the same statistic
    # that marks a real-engine probe INVALID).
    bursts = burst_share(records_frame(meas.itl_records), [True] * len(meas.itl_records))
    prof_name = name or re.sub(r"[^a-z0-9._-]+", "-", f"{ep.model}-openai".lower()).strip("-")
    path = out or Path("results") / "profiles" / f"{prof_name}.yaml"
    notes = [CLIENT_VISIBLE_SOURCE,
             f"zero-load TTFT: {len(meas.ttft_points)} requests, one at a time, max_tokens=1, prompt lengths "
             f"{', '.join(map(str, prompts))} (each twice, after one uncounted warm-up)",
             f"ITL: {oc.ROUNDS} requests per slot of {oc.ITL_PROMPT_TOKENS} prompt + {oc.ITL_OUTPUT_TOKENS} output "
             f"tokens at concurrency {', '.join(map(str, levels))} (closed loop); per request (last − first token) ÷ "
             "(tokens − 1), median over requests",
             f"{meas.steps_done} of {meas.steps_total} steps measured" + (" (interrupted)" if meas.interrupted else "")]
    if meas.failed:
        notes.append(f"{meas.failed} requests did not come back whole and are not in the fit")
    if bursts is not None and bursts > 0.05:
        notes.append(f"{bursts:.0%} of the ITL requests' tokens arrived in bursts (docs/capacity.md \"Token "
                     "bursts\"): the client stalled, the ITL points are not the server's pace")
    prof = ProfileFile(
        name=prof_name, client=client,
        environment=EnvironmentSection(
            hardware=hardware or "unknown (openai endpoint)", engine="openai", model=ep.model,
            options={"url": ep.base_url, "api": ep.api},
            date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), measured="client", notes=notes),
    )
    written = write_profile_file(prof, path)
    _print_client(prof, meas, bursts, written)
    if meas.interrupted:
        console.print(f"[yellow]interrupted[/]: the profile holds the {meas.steps_done} steps measured so far")
        raise typer.Exit(130)


def _print_client(prof, meas, bursts: float | None, path: Path) -> None:  # noqa: ANN001
    c = prof.client
    t = Table(title=f"client-visible profile {prof.name} ({prof.environment.model} at "
              f"{prof.environment.options.get('url')})", show_header=False)
    t.add_column("what")
    t.add_column("value")

    def r2(f) -> str:  # noqa: ANN001 - a LinearFit
        if f.slope_s == 0:  # R² of a flat line says nothing
            return f" (flat: no dependence measured, {f.n} points)"
        return f" (R² {f.r2:.2f}, {f.n} points)" if f.r2 is not None else f" ({f.n} points)"

    t.add_row("zero-load TTFT", f"{c.ttft.intercept_s * 1e3:.1f} ms + {c.ttft.slope_s * 1e6:.2f} µs/prompt token"
              + r2(c.ttft))
    t.add_row("inter-token latency", f"{c.itl.intercept_s * 1e3:.2f} ms + {c.itl.slope_s * 1e3:.3f} ms/request in "
              "flight" + r2(c.itl))
    t.add_row("ITL measured", ", ".join(f"{n}: {s * 1e3:.1f} ms" for n, s in c.itl_points))
    if bursts is not None:
        t.add_row("tokens in bursts", f"{bursts:.1%}" + (" (> 5%: the ITL points are suspect)" if bursts > 0.05
                                                            else ""))
    if meas.failed:
        t.add_row("failed requests", str(meas.failed))
    t.add_row("wall time", f"{meas.wall_s:.0f} s")
    console.print(t)
    console.print(f"profile written: {path}\n{c.source}: it records what clients see and cannot drive the "
                  "simulator (--profile refuses it); see docs/calibration.md \"OpenAI endpoints\"")


def _sibling_events(iterations: Path) -> Path | None:
    guess = iterations.with_name(iterations.name.replace("iterations-", "scheduler-events-", 1))
    return guess if guess.exists() else None


def _vocab(model: str | None) -> int | None:
    if not model:
        return None
    from slobench.engines.vllm.engine import _vocab_size

    return _vocab_size(model)


def _served_model(url: str) -> str:
    import httpx

    base = url.rstrip("/").removesuffix("/v1")
    try:
        data = httpx.get(base + "/v1/models", timeout=10).json()
        return str(data["data"][0]["id"])
    except Exception as exc:  # noqa: BLE001 - any failure: the server cannot be asked, one line
        raise UserError(f"calibrate --url {url}: cannot list the served model ({type(exc).__name__}); is the server "
                        "up? give --model too") from None


def _calibrate(target, model: str, out: Path | None, points: int | None, quick: bool,  # noqa: ANN001
               name: str | None, hardware: str, options: dict, seed: int, *, version: str | None) -> None:
    from slobench.engines.vllm.calibrate import design_grid, kv_capacity_tokens, measure
    from slobench.engines.vllm.events import EventReader
    from slobench.perf.calibration import fit_frontend, fit_iterations, iteration_rows
    from slobench.perf.profile_file import EnvironmentSection, LatencySection, ProfileFile, write_profile_file

    loaded = EventReader(target.events_path).last("loaded") if target.events_path else None
    loaded = loaded or {}
    grid = design_grid(points=points, quick=quick, max_batched_tokens=int(loaded.get("max_num_batched_tokens") or 2048),
                       max_model_len=int(loaded.get("max_model_len") or 4096))
    prof_name = name or f"{Path(model).name}-{hardware}".lower()
    path = out or Path("results") / "profiles" / f"{prof_name}.yaml"
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as prog:
        task = prog.add_task("calibrating", total=len(grid))

        def on_cell(i: int, cell) -> None:  # noqa: ANN001
            prog.update(task, completed=i + 1, description=f"calibrating: {cell.label}")

        meas = measure(target, grid, seed=seed, on_cell=on_cell)
    rows = iteration_rows(meas.iterations)
    fit = fit_iterations(rows, name=prof_name, kv_tokens=kv_capacity_tokens(meas), seed=seed)
    frontend, fe_r2 = fit_frontend(meas.zero_load)
    fit.fit.frontend_r2 = fe_r2
    notes = [f"{meas.cells_done} of {meas.cells_total} grid points measured"
             + (" (interrupted)" if meas.interrupted else ""),
             f"{len(meas.zero_load)} zero-load requests for the front-end cost; per_output_token_s not measured (0)",
             "latency_s = engine time per iteration besides schedule() (docs/calibration.md)"]
    prof = ProfileFile(
        name=prof_name,
        latency=LatencySection(pieces=[list(p) for p in fit.model.pieces], per_seq_s=fit.model.per_seq_s,
                               per_context_token_s=fit.model.per_ctx_token_s),
        kv_capacity_tokens=kv_capacity_tokens(meas),
        frontend=frontend,
        fit=fit.fit,
        environment=EnvironmentSection(
            hardware=hardware, engine="vllm", engine_version=version or str((meas.loaded or {}).get("vllm", "")),
            model=str(model), options={k: v for k, v in options.items() if v is not None} | {
                k: (meas.loaded or {}).get(k) for k in ("max_num_batched_tokens", "max_num_seqs", "max_model_len")},
            date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), measured="iterations", notes=notes),
    )
    written = write_profile_file(prof, path)
    raw = _write_raw(meas, written)
    console.print(f"measurements kept: {raw}")
    _print(prof, meas, len(rows), written)
    if meas.interrupted:
        console.print(f"[yellow]interrupted[/]: the profile holds the {meas.cells_done} grid points measured so far")
        raise typer.Exit(130)


def _write_raw(meas, profile_path: Path) -> Path:  # noqa: ANN001
    """The measurements beside the profile (``NAME.measurements.jsonl``: one line per iteration, then one per
    zero-load request), so a profile can be re-fitted or checked without measuring again."""
    import json

    raw = profile_path.with_name(profile_path.stem + ".measurements.jsonl")
    with raw.open("w") as fh:
        for line in meas.iterations:
            fh.write(json.dumps({"kind": "iteration", **line}, separators=(",", ":")) + "\n")
        for z in meas.zero_load:
            fh.write(json.dumps({"kind": "zero_load", "prompt_tokens": z.prompt_tokens,
                                 "client_ttft_s": z.client_ttft_s, "engine_prefill_s": z.engine_prefill_s}) + "\n")
    return raw


def _print(prof, meas, n_rows: int, path: Path) -> None:  # noqa: ANN001
    f, fe = prof.fit, prof.frontend
    t = Table(title=f"calibrated profile {prof.name} ({prof.environment.hardware}, vllm "
              f"{prof.environment.engine_version})", show_header=False)
    t.add_column("what")
    t.add_column("value")
    pieces = "; ".join(f"{k1 * 1e6:.2f} µs/token + {k2 * 1e3:.2f} ms/spec-step + {b * 1e3:.2f} ms"
                       for k1, k2, b in prof.latency.pieces)
    t.add_row("iterations measured", f"{n_rows} ({f.n_train} fitted, {f.n_holdout} held back) over "
              f"{meas.cells_done}/{meas.cells_total} grid points")
    lat = prof.latency
    extra = (f" + {lat.per_seq_s * 1e3:.2f} ms/sequence + {lat.per_context_token_s * 1e6:.3f} µs/context token"
             if lat.per_seq_s or lat.per_context_token_s else "")
    t.add_row("iteration latency", (f"max({pieces})" if len(lat.pieces) > 1 else pieces) + extra)
    t.add_row("R² held back (fitted)", f"{f.r2:.3f} ({f.r2_train:.3f})")
    t.add_row("|error| held back p50 / p90 / max", f"{f.abs_error_pct.p50:.1f}% / {f.abs_error_pct.p90:.1f}% / "
              f"{f.abs_error_pct.max:.1f}%")
    if f.bias_pct:
        t.add_row("median bias by kind", ", ".join(f"{k} {v:+.0f}%" for k, v in f.bias_pct.items()))
    if f.repeat_noise_pct is not None:
        t.add_row("noise of repeated identical batches", f"{f.repeat_noise_pct:.1f}% (median)")
    t.add_row("front-end cost", f"{fe.constant_s * 1e3:.1f} ms + {fe.per_prompt_token_s * 1e6:.2f} µs/prompt token"
              + (f" (R² {f.frontend_r2:.2f}, {len(meas.zero_load)} requests)" if f.frontend_r2 is not None else ""))
    t.add_row("KV cache", f"{prof.kv_capacity_tokens:,} tokens")
    t.add_row("wall time", f"{meas.wall_s:.0f} s")
    console.print(t)
    if f.r2 < 0.9:
        console.print(f"[yellow]note:[/] held-back R² {f.r2:.2f} is below 0.9: the piecewise-linear model explains "
                      "this engine's iterations poorly; see docs/calibration.md")
    console.print(f"profile written: {path}\nuse it: slobench run --profile {path} --workload chatbot")


def register(app: typer.Typer) -> None:
    """Attach `calibrate` to the root app."""
    app.command("calibrate")(calibrate_cmd)
