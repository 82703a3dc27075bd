"""`slobench qualify`: run a versioned qualification suite on an engine, or check a qualification folder.

Thin: options → `slobench.qualify.suite.load_suite` + a `Target` → `slobench.qualify.submission.run_qualification`
(or `plan_suite` for ``--dry-run``, `slobench.qualify.manifest.check_manifest` for ``--check``), then print.

Exit codes: 0 the suite ran and every scenario is VALID (``--check``: the folder is intact); 2 bad input (one line);
3 the suite ran but the result is INVALID (the folder and report are written; the reasons are printed);
1 ``--check`` found the folder changed; 130 interrupted (finished runs kept, no manifest written).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from slobench.cli.display import console
from slobench.cli.options import EngineArgOpt, EngineConfigOpt, OutOpt, UrlOpt, engine_options
from slobench.errors import UserError

if TYPE_CHECKING:
    from slobench.qualify.runner import Target
    from slobench.qualify.submission import Qualification
    from slobench.qualify.suite import Suite

EXIT_INVALID = 3

SuiteOpt = Annotated[str, typer.Option("--suite", help="A shipped suite (quick, standard; or quick-v1 …) or a "
                                       "suite YAML file (docs/qualify.md).")]
QEngineOpt = Annotated[str, typer.Option("--engine", help="sim (default) | vllm | openai")]
QModelOpt = Annotated[str | None, typer.Option(
    "--model", help="Real engines: the model served (vLLM: a local folder or id). Simulator: overrides the "
    "scenarios' model.")]
QHardwareOpt = Annotated[str | None, typer.Option(
    "--hardware", help="The latency model's hardware (simulator: what is simulated; real engines: turns slowdown "
    "TTFT targets into seconds). Default: each scenario's.")]
QProfileOpt = Annotated[str | None, typer.Option("--profile", help="A calibrated profile FILE.yaml or a named one.")]
GpusOpt = Annotated[int | None, typer.Option("--gpus", min=1, help="GPUs serving the model, for tokens/s per GPU "
                                             "(default: the GPUs nvidia-smi shows on a real engine; 1 simulated).")]
SloScaleOpt = Annotated[float | None, typer.Option(
    "--slo-scale", help="Scale every SLO target by this factor instead of the scenario's preset. The run is then "
    "not the published suite: its verdict is INVALID whatever it measured (recorded as an override).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the suite's plan and time estimate; run nothing.")]
CheckOpt = Annotated[Path | None, typer.Option(
    "--check", help="Recompute a qualification folder's sha256 manifest offline; name every changed, added or "
    "removed file.")]
ExpectOpt = Annotated[str | None, typer.Option(
    "--expect", help="With --check: the published root digest; a folder whose manifest was rewritten fails.")]
NoModelHashOpt = Annotated[bool, typer.Option(
    "--no-model-hash", help="Record the model files' sizes, not their sha256 (hashing a large model takes minutes).")]


def _check(folder: Path, expect: str | None) -> None:
    from slobench.qualify.manifest import check_manifest, normalize_digest

    if expect is not None:
        expect = normalize_digest(expect)  # a malformed digest first: it is the line the user must fix
    result = check_manifest(folder, expect)
    if result.ok:
        console.print(f"[green]intact[/]: {escape(str(folder))} matches its manifest "
                      f"(root digest {result.root_digest})", highlight=False, soft_wrap=True)
        raise typer.Exit(0)
    for line in result.lines():
        console.print(f"[red]{escape(line)}[/]", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def qualify_cmd(
    suite: SuiteOpt = "quick",
    engine: QEngineOpt = "sim",
    model: QModelOpt = None,
    hardware: QHardwareOpt = None,
    profile: QProfileOpt = None,
    gpus: GpusOpt = None,
    url: UrlOpt = None,
    engine_arg: EngineArgOpt = None,
    engine_config: EngineConfigOpt = None,
    slo_scale: SloScaleOpt = None,
    out: OutOpt = Path("results"),
    dry_run: DryRunOpt = False,
    check: CheckOpt = None,
    expect: ExpectOpt = None,
    no_model_hash: NoModelHashOpt = False,
) -> None:
    """Qualify hardware: a versioned suite's rate capacity and closed-loop curve, judged VALID/INVALID, sealed.

    Example: slobench qualify --suite quick --engine sim
    """
    if check is not None:
        _check(check, expect)
    if expect is not None:
        raise UserError("--expect: only with --check DIR (it is the root digest the folder must match)")
    from slobench.qualify.runner import Target
    from slobench.qualify.suite import load_suite, plan_suite

    if engine not in ("sim", "vllm", "openai"):
        raise UserError(f"--engine {engine}: unknown; choose sim, vllm or openai")
    if engine == "vllm" and not model:
        raise UserError("--model: missing; --engine vllm needs the model to serve (a local folder or id)")
    if engine == "openai" and not url:
        raise UserError("--url: missing; --engine openai needs the server's base URL, e.g. http://host:8000/v1")
    if slo_scale is not None and not slo_scale > 0:
        raise UserError(f"--slo-scale: must be > 0 (got {slo_scale:g})")
    spec = load_suite(suite)
    path = spec.source
    assert path is not None  # load_suite records the file it read
    plan = plan_suite(spec, engine)
    if dry_run:
        for line in plan.lines():
            console.print(escape(line), highlight=False, soft_wrap=True)
        raise typer.Exit(0)
    target = Target(engine=engine, model=model, hardware=hardware, profile=profile, url=url,
                    engine_options=engine_options(engine_arg, engine_config), gpus=gpus)
    _preflight(spec, target, slo_scale)
    console.print(f"qualify: suite {escape(spec.label)}, {len(spec.scenarios)} scenario(s), engine {engine}; "
                  f"estimated {plan.estimate_s / 60:.1f} min ({'simulated' if engine == 'sim' else 'wall'})",
                  highlight=False, soft_wrap=True)
    if slo_scale is not None:
        console.print(f"[yellow]warning:[/] --slo-scale {slo_scale:g} overrides the suite's SLO presets: the result "
                      "cannot be VALID", highlight=False, soft_wrap=True)
    from slobench.cli import display
    from slobench.qualify.submission import run_qualification

    model_path = Path(model) if model and Path(model).exists() else None
    with display.SearchProgress(prior_probes=8.0) as progress:
        def say(line: str) -> None:
            progress.prog.console.print(escape(line), highlight=False, soft_wrap=True)

        q = run_qualification(spec, path, target, Path(out), say=say, observer=progress, slo_scale=slo_scale,
                              model_path=model_path, hash_model_files=not no_model_hash)
    _print_outcome(q)
    raise typer.Exit(0 if q.verdict == "VALID" else EXIT_INVALID)


def _preflight(suite: Suite, target: Target, slo_scale: float | None) -> None:
    """Every scenario's first run config validated before a folder is made (one line naming the bad field)."""
    from slobench.qualify.runner import SuiteRunner

    runner = SuiteRunner(suite, target, Path("."), slo_scale=slo_scale)
    for sc in runner.suite.scenarios:
        runner.config(runner.base_kwargs(sc, sc.workload) | {"num_requests": 10})


def _print_outcome(q: Qualification) -> None:
    from rich.table import Table

    t = Table(title="Qualification")
    for col in ("scenario", "capacity (req/s)", "VALID points", "result", "reasons"):
        t.add_column(col)
    for r in q.scenarios:
        cap = "–" if r.capacity_rps is None else f"{r.capacity_rps:.4g}"
        pts = f"{sum(p.valid for p in r.curve)}/{len(r.curve)}"
        codes = ", ".join(x["code"] for x in r.reasons) or "–"
        t.add_row(r.name, cap, pts, "[green]VALID[/]" if r.valid else "[red]INVALID[/]", escape(codes))
    console.print(t)
    colour = "green" if q.verdict == "VALID" else "red"
    console.print(f"verdict: [{colour}]{q.verdict}[/] — {escape(q.detail)}", highlight=False,
                  soft_wrap=True)
    console.print(f"results: {escape(str(q.out_dir))} (report.html, qualification.json)",
                  highlight=False, soft_wrap=True)
    console.print(f"root digest (publish this): [bold]{q.root_digest}[/]", highlight=False, soft_wrap=True)
    console.print(f"check: slobench qualify --check {escape(str(q.out_dir))} --expect {q.root_digest}",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Attach `qualify` to the root app."""
    app.command("qualify")(qualify_cmd)
