"""Run a `Plan`: every search's probes through `slobench.cluster.run.run_once`, saved as they finish.

This is the one place where a run becomes a probe: `probe_result` turns a `RunResult` into the
`ProbeResult` the search judges (counts plus the validity evidence: offered and achieved rate,
client lag, tail, unfinished requests), for `compare`, `capacity`, `sweep`, `bench schedulers` and
the paper-figure script alike, so the same setup gives the same capacity whichever command ran it.

Progress goes to a `SearchObserver` (the CLI's is a rich live display; `NullObserver` ignores it);
nothing here prints. `execute` returns an `ExecuteOutcome` (exit code, interrupted flag, the
searches without a capacity, the report) for the caller to show.

Exit codes: 0 done; 1 no probe finished; 3 (`EXIT_NO_CAPACITY`) a strict plan finished but at least
one search found no capacity inside the rate range or hit the probe limit (its row shows a bound;
results and report are written); 130 interrupted (finished probes kept).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from slobench.capacity.plan import Plan, SearchSettings, SearchSpec, preflight, stretched
from slobench.capacity.search import CapacityResult, Probe, ProbeResult, ValidityLimits, capacity_search, make_probe
from slobench.capacity.speculate import LocalSlots, Slots, Speculator
from slobench.capacity.store import Collector
from slobench.errors import UserError
from slobench.report.probes import CapacityRow, ScalingRow
from slobench.report.results import probe_key

EXIT_NO_CAPACITY = 3
EXIT_INTERRUPTED = 130


class SearchObserver(Protocol):
    """What `run_search` / `execute` report while they run (all calls in the calling thread)."""

    def start_search(self, spec: SearchSpec, index: int, total: int) -> None:
        """Search ``index`` (1-based) of ``total`` begins."""

    def start_probe(self, rate_rps: float, seed: int) -> None:
        """A probe is about to run (not called for a probe replayed from a saved row)."""

    def requests(self, done: int, total: int) -> None:
        """Requests finished so far in the running probe."""

    def finished(self, probe: Probe, cached: bool) -> None:
        """A probe was judged; ``cached``: replayed from the results folder, not rerun."""

    def finished_search(self, spec: SearchSpec, result: CapacityResult | None) -> None:
        """A search ended (``result`` None for a fixed rate grid)."""


class NullObserver:
    """Ignores every progress call (library use, tests, worker processes)."""

    def start_search(self, spec: SearchSpec, index: int, total: int) -> None:
        pass

    def start_probe(self, rate_rps: float, seed: int) -> None:
        pass

    def requests(self, done: int, total: int) -> None:
        pass

    def finished(self, probe: Probe, cached: bool) -> None:
        pass

    def finished_search(self, spec: SearchSpec, result: CapacityResult | None) -> None:
        pass


def probe_result(res: Any, rate: float) -> ProbeResult:
    """THE RunResult → ProbeResult adapter: counts plus the validity evidence the search judges.

    - counts: ``num_met`` / ``num_requests`` of the run's summary: the measured window's requests (those
      arriving after the run's warm-up), not stages; ``num_arrivals``: every request of the run;
    - ``unfinished``: requests with a stage unfinished or timed out at the horizon;
    - ``backlog_*``: the in-system count's growth over the measured window (`validity.backlog_growth`);
    - ``drain_ratio``: the last measured request's lateness in units of its own e2e SLO;
    - ``offered_tok_s`` / ``ceiling_tok_s``: offered prefill + decode tokens per second vs what the latency
      model computes at full batches of that mix, times the replicas (simulated and real engines alike:
      the model is the run's; no ceiling when the policy speculates, which the model's batches do not); prompt
      tokens the simulator's cross-request prefix cache served (``engine_info.simulator.prefix_cache``) are not
      offered work: the engine never computes them;
    - ``tail_s``: how long the run kept going after the last SLO deadline of any stage (kept as evidence);
    - ``offered_rate_rps``: the rate asked for; ``achieved_rate_rps``: the load generator's
      realised rate on real engines, the generated arrivals' rate on the simulator;
    - ``client_lag_s``: how far a real engine's load generator fell behind its schedule;
    - ``burst_share``: real engines only, the share of measured tokens whose client timestamps came in bursts
      (`validity.burst_share`; the simulator's timestamps are exact, so None there);
    - ``serving``: the vLLM-style figures (`serving_row`), reported beside attainment, never judged.
    """
    from slobench.capacity import validity

    s = res.summary
    df = res.records
    cfg = getattr(res, "config", None)
    if len(df) and {"status", "request_id"} <= set(df.columns):  # count requests, not stages
        unfinished = int(df.loc[df["status"].isin(["unfinished", "timeout"]), "request_id"].nunique())
    else:
        counts = s.status_counts or {}  # per stage
        unfinished = int(counts.get("unfinished", 0)) + int(counts.get("timeout", 0))
    warmup = float(getattr(s, "warmup_s", 0.0) or 0.0)
    tail = drain = None
    backlog: validity.Backlog | None = None
    offered_tok = ceiling = kv_full = bursts = None
    if len(df):
        from slobench.metrics.attainment import measured_flags, stage_metrics

        st = stage_metrics(df)
        if st["last_token_s"].notna().any():
            # Tail = how long the run kept going after the last SLO deadline of any stage. Measured
            # from deadlines, not arrivals, so long (reasoning) outputs at light load are not "tail".
            last_due = st["stage_start_s"] + st["ttft_slo_s"] + (st["output_tokens"] - 1).clip(lower=0) * st[
                "tpot_slo_s"]
            tail = float(st["last_token_s"].max() - last_due.max())
        measured = measured_flags(df["arrival_s"], warmup)
        drain = validity.drain_ratio(df, measured)
        if str(getattr(s, "engine", "sim")) != "sim" and "token_times_s" in df.columns:
            bursts = validity.burst_share(df, measured)
        reqs = validity.request_finish_times(df)
        t0 = warmup if warmup > 0 else float(reqs["arrival_s"].min())
        backlog = validity.backlog_growth(reqs["arrival_s"].to_numpy(), reqs["finish_s"].to_numpy(), t0,
                                          float(reqs["arrival_s"].max()))
        tokens = validity.offered_tokens(df)
        hit = _prefix_hit_tokens(s)
        if tokens is not None and hit:
            tokens = replace(tokens, prefill=max(0, tokens.prefill - hit))
        if tokens is not None:
            offered_tok = tokens.per_s
            if cfg is not None and getattr(cfg.policy, "draft", None) is None:
                from slobench.cluster.run import build_latency_model

                ceiling = validity.ceiling_tokens_per_s(build_latency_model(cfg), tokens) * cfg.replicas
        kv_full = _kv_full_share(res, cfg, t0, float(reqs["arrival_s"].max()))
    achieved = s.achieved_rate_rps if s.achieved_rate_rps is not None else s.offered_rate_rps
    achieved = None if achieved is None or not math.isfinite(float(achieved)) else float(achieved)
    lag = s.client_lag_s
    arrivals = getattr(s, "num_arrivals", None)
    return ProbeResult(
        num_met=int(s.num_met), num_requests=int(s.num_requests), offered_rate_rps=rate, achieved_rate_rps=achieved,
        client_lag_s=None if lag is None else float(lag), tail_s=tail, unfinished=unfinished,
        num_arrivals=int(arrivals) if arrivals is not None else int(s.num_requests), warmup_s=warmup,
        backlog_growth=None if backlog is None else backlog.growth,
        backlog_arrivals=None if backlog is None else backlog.arrivals,
        backlog_mean=None if backlog is None else backlog.mean, drain_ratio=drain,
        offered_tok_s=offered_tok, ceiling_tok_s=ceiling, kv_full_share=kv_full,
        stopped_early=getattr(s, "stopped_early", None), burst_share=bursts, serving=serving_row(s),
    )


HOLD_MARGIN = 0.02  # a capacity holds when a longer run still attains at least the target minus 2 points (issue 10)


def long_run(cfg: Any, factor: float) -> tuple[Any, Probe]:
    """Run the probe config ``cfg`` (a `RunConfig`) with ``factor`` × its measured span (the same warm-up) and
    judge it as a probe: how a capacity is checked beyond the probe that found it (scripts/check_capacity_holds.py,
    scripts/router_scaling.py --holds). Returns the run and its probe."""
    from slobench.cluster import run as cluster_run  # the module: tests replace run_once on it

    res = cluster_run.run_once(stretched(cfg, factor))
    return res, make_probe(cfg.rate_rps, cfg.seed, probe_result(res, cfg.rate_rps), ValidityLimits())


def hold_verdict(probe: Probe, target: float) -> tuple[bool, str]:
    """Does a long run's ``probe`` hold (attainment ≥ target − `HOLD_MARGIN`), and if not, or if it is INVALID,
    why (empty when it holds and is valid)."""
    passed = probe.attainment >= target - HOLD_MARGIN - 1e-12
    why = "" if passed else f"{probe.attainment:.1%} < {target - HOLD_MARGIN:.0%}"
    if not probe.valid:
        why = (why + "; " if why else "") + f"long run INVALID: {probe.reason}"
    return passed, why


def _prefix_hit_tokens(summary: Any) -> int:
    """Prompt tokens the simulated replicas took from their cross-request prefix caches (0 when none)."""
    info = getattr(summary, "engine_info", None) or {}
    sim = info.get("simulator") if isinstance(info, dict) else None
    cache = sim.get("prefix_cache") if isinstance(sim, dict) else None
    return int(cache.get("hit_tokens", 0)) if isinstance(cache, dict) else 0


def _kv_full_share(res: Any, cfg: Any, t0: float, t1: float) -> float | None:
    """`validity.kv_full_share` of a simulated run (the simulator logs KV blocks per iteration; the block count
    is the run's latency model's KV capacity ÷ the simulator's block size); None for engines without the log."""
    from slobench.capacity import validity

    sim = (getattr(res.summary, "engine_info", None) or {}).get("simulator") or {}
    iterations = getattr(res, "iterations", None)
    if cfg is None or not sim.get("block_size") or iterations is None or not len(iterations):
        return None
    from slobench.cluster.run import build_latency_model

    total = int(build_latency_model(cfg).kv_capacity_tokens()) // int(sim["block_size"])
    return validity.kv_full_share(iterations, total, t0, t1)


def serving_row(s: Any) -> dict[str, float | None]:
    """A run summary's vLLM-style figures as probes.csv columns: tokens/s, slobench's goodput (every per-token
    deadline met), vLLM-style goodput (fixed bounds; None without --goodput) and the latency keys (ms)."""
    def num(v: Any) -> float | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return {"goodput_rps": num(s.goodput_rps), "vllm_goodput_rps": num(getattr(s, "vllm_goodput_rps", None)),
            "output_tok_s": num(getattr(s, "output_tok_s", None)), "total_tok_s": num(getattr(s, "total_tok_s", None)),
            } | {k: num(v) for k, v in (getattr(s, "latency_ms", None) or {}).items()}


def run_search(
    spec: SearchSpec,
    settings: SearchSettings,
    *,
    store: Collector | None = None,
    observer: SearchObserver | None = None,
    spare: Slots | None = None,
) -> CapacityResult | None:
    """Run one capacity search (or a fixed rate grid when ``settings.rates`` is set; returns None then).

    With a ``store`` every probe is saved as it finishes, saved probes are replayed instead of rerun,
    and the search's capacity row is added; without one nothing is written (`bench schedulers`).
    ``spare``: cores this search may use for speculative probes (`slobench.capacity.speculate`; simulator
    searches only, since a real engine's probes share its servers); None: none.
    """
    from slobench.cluster import run as cluster_run  # the module: tests replace run_once on it

    obs = observer if observer is not None else NullObserver()
    on_progress = None if isinstance(obs, NullObserver) else obs.requests
    speculator: Speculator | None = None

    def probe(rate: float, seed: int) -> ProbeResult:
        return run_probe(rate, seed, 1.0)

    def hold(rate: float, seed: int) -> ProbeResult:
        return run_probe(rate, seed, settings.hold_factor)

    def compute(key: tuple[float, int, float], progress: Any = None) -> tuple[ProbeResult, Any, Any]:
        """One probe's judged result and, for a search probe with a store, its tagged records to stash."""
        rate, seed, span = key
        cfg = spec.config(rate, seed)
        if cfg.engine != "sim":  # wall-clock probes stop once they have certainly failed (metrics.early_fail)
            cfg = cfg.model_copy(update={"early_fail_target": settings.target})
        res = cluster_run.run_once(cfg if span == 1 else stretched(cfg, span), on_progress=progress)
        recs = it = None
        if store is not None and span == 1:  # a hold probe keeps its row, not its records (`probe_key`)
            tags = {"workload": spec.label, "scheduler": spec.scheduler, "rate_rps": rate, "seed": seed} | spec.extra
            recs = res.records.assign(**tags)
            it = res.iterations.assign(**tags) if len(res.iterations) else pd.DataFrame()
        return probe_result(res, rate), recs, it

    def run_probe(rate: float, seed: int, span: float) -> ProbeResult:
        key = probe_key(spec.label, spec.scheduler, rate, seed, span)
        if store is not None:
            cached = store.cached_result(key)
            if cached is not None:
                return cached
        obs.start_probe(rate, seed)
        ahead = speculator.take((rate, seed, span)) if speculator is not None else None
        if ahead is None:
            ahead = compute((rate, seed, span), progress if on_progress is not None or speculator is not None else None)
        result, recs, it = ahead
        if recs is not None and store is not None:
            store.stash(key, recs, it)
        return result

    def progress(done: int, total: int) -> None:
        """A probe's request progress: shown, and a moment to start hinted probes on cores freed meanwhile."""
        if on_progress is not None:
            on_progress(done, total)
        if speculator is not None:
            speculator.poll()

    def speculate(keys: list[tuple[float, int, float]], now: list[tuple[float, int, float]]) -> None:
        assert speculator is not None
        if store is not None:  # replayed probes need no computing
            keys = [k for k in keys if store.cached_result(probe_key(spec.label, spec.scheduler, *k)) is None]
        speculator.hint(keys, now)

    def on_probe(p: Probe) -> None:
        cached = store.add_probe(spec, p) if store is not None else False
        obs.finished(p, cached)

    if settings.rates is not None:  # rate grid: every rate, every seed, no search
        for rate in settings.rates:
            for seed in settings.seeds:
                on_probe(make_probe(float(rate), seed, probe(float(rate), seed), ValidityLimits()))
        obs.finished_search(spec, None)
        return None
    if spare is not None and spec.run_kwargs.get("engine", "sim") == "sim":
        speculator = Speculator(compute, spare)
    try:
        result = capacity_search(
            probe, target=settings.target, rate_start=settings.rate_start, rate_lo=settings.rate_lo,
            rate_hi=settings.rate_hi, rel_tol=settings.rel_tol, seeds=tuple(settings.seeds),
            refine_interval=settings.refine_interval, confirm=settings.confirm,
            hold=hold if settings.hold_factor > 1 else None, hold_factor=max(settings.hold_factor, 1.0),
            max_probes=settings.max_probes, max_hold_probes=settings.max_hold_probes, progress=on_probe,
            speculate=speculate if speculator is not None else None)
    finally:
        if speculator is not None:
            speculator.close()
    if store is not None:
        store.add_capacity(spec, result)
    obs.finished_search(spec, result)
    return result


@dataclass
class ExecuteOutcome:
    """What `execute` did, for the caller to show (see the module docstring for ``exit_code``)."""

    exit_code: int
    out_dir: Path
    interrupted: bool = False
    capacities: list[CapacityRow] = field(default_factory=list)
    bad: list[CapacityRow] = field(default_factory=list)  # searches with no capacity inside the range
    num_probes: int = 0  # probes finished (or replayed) in this session
    num_saved: int = 0  # probes saved in the folder, earlier sessions' included
    report: Path | None = None  # report.html (None when interrupted or nothing finished)
    notices: list[str] = field(default_factory=list)  # the report's one-line notices (e.g. PNGs skipped)
    setup: list[dict[str, str]] = field(default_factory=list)  # what the numbers rest on (summary.json setup)
    wall_s: float = 0.0


def scaling_row(c: CapacityRow) -> ScalingRow:
    """A search's capacity as its summary.json ``scaling`` row; the router and base workload come from its grid
    values when the run varied them (`compare --scaling`, a sweep's ``router`` axis), else stay None."""
    return ScalingRow(scheduler=c.scheduler, replicas=c.grid["replicas"], capacity_rps=c.capacity_rps,
                      router=c.grid.get("router"), workload=c.grid.get("base_workload"))


def _finish(plan: Plan, store: Collector, interrupted: bool) -> ExecuteOutcome:
    """Save, draw the report; the outcome (exit code, what to show)."""
    from slobench.report.rebuild import rebuild_report

    store.complete = not interrupted
    if plan.scaling and store.capacities:
        store.scaling = [scaling_row(c) for c in store.capacities if "replicas" in c.grid]
    store.save(final=True)
    out = ExecuteOutcome(0, store.out_dir, interrupted=interrupted, capacities=list(store.capacities),
                         bad=[c for c in store.capacities if c.status != "ok"], num_probes=len(store.probe_rows),
                         num_saved=store.num_saved, setup=list(store.setup))
    if interrupted:
        out.exit_code = EXIT_INTERRUPTED
    elif not store.probe_rows:
        out.exit_code = 1
    else:
        out.report, out.notices = rebuild_report(store.out_dir)
        out.exit_code = EXIT_NO_CAPACITY if plan.strict and out.bad else 0
    out.wall_s = time.perf_counter() - store.started
    return out


def parallel_jobs(plan: Plan, jobs: int | None, cpus: int | None = None) -> int:
    """Searches of ``plan`` to run at once: ``jobs`` (None: ``cpus``, by default one per CPU core of this
    machine), at most one per search, and 1 unless every search is on the simulator (real engines share
    one server pool and the machine)."""
    if any(s.run_kwargs.get("engine", "sim") != "sim" for s in plan.specs):
        return 1
    return max(1, min(core_budget(jobs, cpus), len(plan.specs)))


def core_budget(jobs: int | None, cpus: int | None = None) -> int:
    """Cores a plan's searches and their speculative probes may use at once: ``jobs`` when given (``-j 1``:
    one, so no speculation), else ``cpus`` (by default this machine's)."""
    import os

    return max(1, jobs if jobs is not None else (cpus or os.cpu_count() or 1))


def _check_ray_plan(plan: Plan, address: str) -> None:
    """``--ray-address`` checked before anything runs: a Ray address, and simulator searches only, since a real
    engine's probes need the server this machine launched."""
    from slobench.cluster.ray_fanout import check_address

    check_address(address)
    if any(s.run_kwargs.get("engine", "sim") != "sim" for s in plan.specs):
        raise UserError("--ray-address fans out simulator searches only; real engines run their probes on this "
                        "machine (drop --ray-address; real vLLM replicas start on Ray with --replicas N --engine-arg "
                        "ray_address=ADDR)")


def execute(plan: Plan, store: Collector, observer: SearchObserver | None = None,
            jobs: int | None = 1, ray_address: str | None = None) -> ExecuteOutcome:
    """Run every search of ``plan``, saving as probes finish; save and draw the report; return the outcome.

    ``jobs``: simulator searches run in that many processes (None: one per core; see `parallel_jobs`);
    the results are the same as a serial run's, only probes.csv's row order follows finishing order.
    ``ray_address`` (``--ray-address``): the searches run as Ray tasks there instead, ``jobs`` at most at
    once (None: the cluster's CPUs), with the same results and the same saving as the local pool.

    Ctrl-C: what finished is saved and the outcome says ``interrupted`` (exit code 130). Any other
    error: what finished is saved (final save, parts folded in) and the error propagates.
    """
    from slobench.cluster import run as cluster_run

    obs = observer if observer is not None else NullObserver()
    interrupted = False
    if ray_address is not None:
        _check_ray_plan(plan, ray_address)
    if not store.setup:
        from slobench.capacity.setup import describe_setup

        try:
            store.setup = describe_setup(plan.specs, plan.search)
        except UserError:  # a setting the preflight let through for its own reasons: the probes will say
            store.setup = []
    try:
        with cluster_run.engine_session(store.out_dir):  # real engines: launched servers stop with the command
            if ray_address is not None:
                from slobench.capacity.parallel import execute_parallel
                from slobench.cluster.ray_fanout import connect

                ray = connect(ray_address, num_cpus=jobs)  # `local`: a Ray with -j CPUs; closed by execute_parallel
                execute_parallel(plan, store, obs, parallel_jobs(plan, jobs, ray.cpus()), ray=ray)
            elif parallel_jobs(plan, jobs) > 1:
                from slobench.capacity.parallel import execute_parallel

                execute_parallel(plan, store, obs, parallel_jobs(plan, jobs), cores=core_budget(jobs))
            else:
                from slobench.report.html import warm_png

                warm_png()  # the report's browser starts while the searches run
                spare = core_budget(jobs) - 1
                for i, spec in enumerate(plan.specs, start=1):
                    obs.start_search(spec, i, len(plan.specs))
                    run_search(spec, plan.search, store=store, observer=obs,
                               spare=LocalSlots(spare) if spare > 0 else None)
            if plan.kind == "validate":  # simulated probes at the real rates, then the comparison
                from slobench.capacity.validate_run import finish_validation

                finish_validation(plan, store, obs)
    except KeyboardInterrupt:
        interrupted = True
        if plan.kind == "validate":  # compare what finished; `slobench resume` completes it
            from slobench.capacity.validate_run import finish_validation

            finish_validation(plan, store, obs, twins=False)
    except Exception:
        store.save(final=True)  # keep finished probes; the error itself is the caller's to show
        raise
    return _finish(plan, store, interrupted)


def write_plan_manifest(out_dir: Path, plan: Plan, config: dict[str, Any],
                        metadata: dict[str, str] | None = None) -> None:
    """manifest.json of a plan's results folder: command, config, the plan (what resume replays) and the
    user's ``--metadata``."""
    from slobench.report.results import write_manifest

    seeds = plan.search.seeds
    write_manifest(out_dir, command=sys.argv, config=config, seed=seeds[0] if seeds else None,
                   extra={"plan": plan.to_dict()} | ({"metadata": metadata} if metadata else {}))


def start(plan: Plan, out: Path, name: str, config: dict[str, Any],
          metadata: dict[str, str] | None = None) -> Collector:
    """Make the results folder ``out/<stamp>-<name>``, write the manifest (with the plan), return its store."""
    from slobench.report.results import new_run_dir

    path = new_run_dir(name, root=out)
    write_plan_manifest(path, plan, {"name": name} | config, metadata)
    return Collector(path, plan.search.target, plan.title, metadata=dict(metadata or {}))


def open_resume(results_dir: Path, *, kind: str | None = None) -> tuple[Plan, Collector]:
    """The plan saved in ``results_dir`` and its store with the saved probes loaded (``len(store.previous)``
    of them can be reused); checks the plan again and records the resume in the manifest."""
    results_dir = Path(results_dir)
    manifest_path = results_dir / "manifest.json"
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: not a folder; give a results folder written by compare/capacity/sweep")
    if not manifest_path.exists():
        raise UserError(f"{manifest_path} not found: is {results_dir} a slobench results folder?")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{manifest_path}: unreadable ({exc}); cannot resume, start a new run") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{manifest_path}: not a slobench manifest (expected a JSON object); cannot resume, "
                        "start a new run")
    if "plan" not in manifest and (results_dir / "requests.jsonl").exists():
        raise UserError(f"{results_dir} holds a single `slobench run`, which cannot be resumed; summarise the "
                        f"records it kept with: slobench report {results_dir}")
    if "plan" not in manifest:
        raise UserError(f"{manifest_path}: no saved plan (written by `slobench run` or an older slobench); "
                        "cannot resume, start a new run")
    try:
        plan = Plan.from_dict(manifest["plan"])
    except (KeyError, TypeError) as exc:
        raise UserError(f"{manifest_path}: saved plan not understood ({exc}); cannot resume, start a new run") \
            from None
    if kind is not None and plan.kind != kind:
        raise UserError(f"{results_dir} holds a `{plan.kind}` run; resume it with: slobench resume {results_dir}")
    preflight(plan.specs, plan.search)
    from slobench.report.results import check_parquet_files, write_json

    check_parquet_files(results_dir)  # a torn file found now, not after every saved probe is replayed
    manifest.setdefault("resumed", []).append({"at": datetime.now().isoformat(timespec="seconds"),
                                               "command": " ".join(sys.argv)})
    write_json(manifest_path, manifest)
    meta = manifest.get("metadata")
    store = Collector(results_dir, plan.search.target, plan.title,
                      metadata={str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {})
    store.load_previous()
    return plan, store


def resume_run(results_dir: Path, *, kind: str | None = None, observer: SearchObserver | None = None,
               jobs: int | None = 1, ray_address: str | None = None) -> ExecuteOutcome:
    """Continue the plan saved in ``results_dir``; saved probes are reused, the rest run."""
    plan, store = open_resume(results_dir, kind=kind)
    return execute(plan, store, observer, jobs, ray_address)
