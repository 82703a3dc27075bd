"""Experiment plans: which capacity searches (or rate grids) to run, and how every one of them probes.

A `Plan` is what `compare`, `capacity`, `sweep`, `bench schedulers` and the paper-figure script all
turn their input into before anything runs. It is saved in manifest.json (``plan``), so
`slobench resume` replays exactly the same searches. Each `SearchSpec` is a `RunConfig` template:
its ``run_kwargs`` are the flat `slobench.cluster.run.validate_config` keys of every probe but the
rate and seed, which the search chooses (`SearchSpec.config`). `preflight` validates every distinct
setting before the first probe, so a typo costs one line, not a half-finished results folder.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from slobench.errors import UserError

if TYPE_CHECKING:
    from slobench.cluster.run import RunConfig

QUICK_REQUESTS = 200
DEFAULT_REQUESTS = 1200  # expected requests per probe and replica (measured: docs/capacity.md "Probe length")
DEFAULT_WARMUP = 0.1  # share of a probe's duration whose arrivals are run but not counted
MIN_WARMUP_S = 30.0  # … but at least this long: a replica takes ~25 s to fill at chatbot's high rates
MIN_PROBE_S = 120.0  # a probe's measured span is at least this long (not with --quick): docs/capacity.md
CONFIRM = 2  # grid rates above the first failing one probed to confirm the crossing
# The capacity is re-run this many times longer (its measured span) and stepped down until it holds: reasoning ×
# vllm passed a 1,200-request probe at 1.0 req/s and collapsed 6,000 requests later (docs/capacity.md "Hold check").
HOLD = 4.0


def check_warmup(warmup: float, flag: str = "--warmup") -> float:
    """The warm-up share of a probe's duration, in [0, 0.9); anything else is one UserError line."""
    if not (0 <= warmup < 0.9):
        raise UserError(f"{flag}: must be a share of the probe's duration in [0, 0.9), got {warmup:g}")
    return float(warmup)


def probe_size(run_kw: dict[str, Any], rate_rps: float) -> dict[str, Any]:
    """`validate_config` keys of one probe: ``probe_requests`` N and ``warmup`` w become a duration
    D = N·replicas/rate (the probe's expected request count is N per replica, whatever the rate), at least
    ``min_duration_s`` (`MIN_PROBE_S`: at high rates N requests pass faster than a replica settles), whose
    first share w is warm-up. With w > 0 the warm-up lasts at least `MIN_WARMUP_S`, but no longer than the
    measured window itself (so a short ``--quick`` probe at most doubles); the probe is then longer by the
    difference, so its measured window keeps (1 − w)·N expected requests. Plans saved before
    (``num_requests``, no ``probe_requests``) keep a fixed count. ``measured_s`` (with ``warmup_s`` and
    ``min_requests``; `slobench qualify`): the measured span is ``measured_s``, longer where the rate needs it
    to offer ``min_requests`` arrivals."""
    kw = dict(run_kw)
    if "measured_s" in kw:  # qualification probes: a fixed measured span, but at least ``min_requests`` arrivals
        measured, need = float(kw.pop("measured_s")), int(kw.pop("min_requests", 0) or 0)
        kw["duration_s"] = float(f"{float(kw.get('warmup_s', 0.0)) + max(measured, need / rate_rps):.9g}")
        return kw
    n = kw.pop("probe_requests", None)
    warm = float(kw.pop("warmup", 0.0) or 0.0)
    floor = float(kw.pop("min_duration_s", 0.0) or 0.0)
    if n is None:
        return kw
    kw.pop("num_requests", None)
    duration = max(n * kw.get("replicas", 1) / rate_rps, floor)
    warmup_s = max(warm * duration, min(MIN_WARMUP_S, (1 - warm) * duration)) if warm > 0 else 0.0
    duration += warmup_s - warm * duration
    return kw | {"duration_s": float(f"{duration:.9g}"), "warmup_s": float(f"{warmup_s:.9g}")}


def stretched(cfg: RunConfig, factor: float) -> RunConfig:
    """A probe's `RunConfig` with its measured span ``factor`` times longer (the same warm-up): how a capacity
    is checked to hold beyond the probe that found it (scripts/check_capacity_holds.py, scripts/long_run.py)."""
    if cfg.duration_s is None:
        raise UserError("a stretched probe needs a duration-sized probe (probe_requests), not a request count")
    return cfg.model_copy(update={"duration_s": cfg.warmup_s + factor * (cfg.duration_s - cfg.warmup_s)})


@dataclass
class SearchSpec:
    """One capacity search (or rate grid) to run: a label plus the run settings it varies.

    ``label`` is the ``workload`` column of every output row and, with the scheduler, identifies
    the search inside a results folder (sweeps put the grid values into it). ``run_kwargs`` are the
    `validate_config` keys shared by every probe (the workload, engine, hardware, num_requests …);
    saved as they are in manifest.json, so results folders of any slobench version resume.
    """

    label: str
    scheduler: str
    run_kwargs: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # grid values, copied to every output row

    def config(self, rate_rps: float, seed: int) -> RunConfig:
        """The validated `RunConfig` of this search's probe at ``rate_rps`` with ``seed``."""
        from slobench.cluster import run as cluster_run

        return cluster_run.validate_config(scheduler=self.scheduler, rate_rps=rate_rps, seed=seed,
                                           **probe_size(self.run_kwargs, rate_rps))


@dataclass
class SearchSettings:
    """How every search of a plan probes: the same target, seeds and rate grid for all engines."""

    target: float = 0.9
    seeds: list[int] = field(default_factory=lambda: [0])
    rel_tol: float = 0.02
    rate_start: float = 1.0
    rate_lo: float = 0.05
    rate_hi: float = 1024.0
    rates: list[float] | None = None  # a fixed rate grid instead of a search (sweep)
    refine_interval: bool = False
    confirm: int = 0  # grid rates above the first failing one probed to confirm the crossing
    hold_factor: float = 0.0  # > 1: re-run the capacity this many times longer and step down until it holds
    max_probes: int = 40  # rates probed at most (each runs every seed)
    max_hold_probes: int = 12  # hold probes at most while stepping down


@dataclass
class Plan:
    """Everything needed to run, or resume, a compare/capacity/sweep; stored in manifest.json."""

    kind: str  # compare | capacity | sweep | paper | bench
    title: str
    specs: list[SearchSpec]
    search: SearchSettings
    scaling: bool = False  # capacities per replica count → replica-scaling figure
    strict: bool = True  # exit EXIT_NO_CAPACITY when a search has no capacity in range

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(kind=d["kind"], title=d["title"], specs=[SearchSpec(**s) for s in d["specs"]],
                   search=SearchSettings(**d["search"]), scaling=d.get("scaling", False),
                   strict=d.get("strict", True))


def workload_arg(workload: str) -> str:
    """A YAML path is stored absolute, so a resume from another folder finds it; names stay names."""
    p = Path(workload)
    return str(p.resolve()) if p.suffix in (".yaml", ".yml") and p.exists() else workload


def workload_labels(workloads: Sequence[str]) -> list[str]:
    """The name each workload argument is shown and stored under (the ``workload`` column of every row):
    a shipped name as given; a YAML path as its spec's ``name`` (else the file stem), not the path, which
    tables truncate. Labels identify searches, so names that would collide keep their arguments."""
    from slobench.workloads import load_spec

    def name(wl: str) -> str:
        if Path(wl).suffix not in (".yaml", ".yml"):
            return wl
        try:
            return load_spec(wl).name or Path(wl).stem
        except UserError:  # reported by the preflight, with the file's own message
            return Path(wl).stem

    names = [name(wl) for wl in workloads]
    return [n if names.count(n) == 1 else wl for n, wl in zip(names, workloads, strict=True)]


# The simulator's ground-truth defaults (`RunConfig`): a plan stores only what differs from them.
TRUTH_DEFAULTS: dict[str, Any] = {"truth_bias": 0.0, "truth_noise_cv": 0.05, "schedule_cost": "model"}
# Routing and load defaults (`RunConfig`): likewise stored only where they differ.
ROUTING_DEFAULTS: dict[str, Any] = {"router": "round-robin", "router_refresh_ms": 100.0, "max_concurrency": None}


def run_kwargs(*, hardware: str, model: str, tp: int, profile: str | None, replicas: int, engine: str,
               num_requests: int | None, quick: bool, url: str | None = None,
               engine_options: dict[str, Any] | None = None, warmup: float | None = None,
               oracle_lengths: bool = False, truth: dict[str, Any] | None = None,
               routing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `SearchSpec.run_kwargs` of a compare/capacity/sensitivity command (without the workload).

    ``num_requests`` (``--num-requests``) is the expected request count of a probe per replica: a probe at
    rate r lasts ``num_requests·replicas/r`` seconds, the first ``warmup`` share of it not counted.
    ``oracle_lengths`` and the simulator's ground truth (``truth``: ``truth_bias``, ``truth_noise_cv``,
    ``schedule_cost``) and the routing (``routing``: ``router``, ``router_refresh_ms``, ``max_concurrency`` — a
    capacity search at a fixed max concurrency) are kept only where they differ from the defaults, so plans and
    manifests without them stay as they were; `RunConfig` validates them in the preflight.
    """
    n = num_requests or (QUICK_REQUESTS if quick else DEFAULT_REQUESTS)
    w = check_warmup(DEFAULT_WARMUP if warmup is None else warmup)
    kw: dict[str, Any] = {"hardware": hardware, "model": model, "tp": tp, "replicas": replicas, "engine": engine,
                          "probe_requests": n, "warmup": w, "min_duration_s": 0.0 if quick else MIN_PROBE_S}
    if profile:
        kw["profile"] = profile
    if url:  # real engines only (sim plans stay as they were)
        kw["url"] = url
    if engine_options:
        kw["engine_options"] = engine_options
    if oracle_lengths:
        kw["oracle_lengths"] = True
    kw |= {k: v for k, v in (truth or {}).items() if v != TRUTH_DEFAULTS[k]}
    kw |= {k: v for k, v in (routing or {}).items() if v != ROUTING_DEFAULTS[k]}
    return kw


def setup_text(kw: dict[str, Any]) -> str:
    """The setup in a title: "H100-SXM, Llama-3.1-8B, sim" or "profile paper:…"."""
    if kw.get("profile"):
        from slobench.perf.profile_file import is_profile_path

        prof = str(kw["profile"])
        return f"profile {Path(prof).name}" if is_profile_path(prof) else f"profile {prof}"
    tp = f" TP{kw['tp']}" if kw.get("tp", 1) > 1 else ""
    reps = f" ×{kw['replicas']} replicas" if kw.get("replicas", 1) > 1 else ""
    if kw.get("replicas", 1) > 1 and kw.get("router"):
        reps += f" ({kw['router']})"
    if kw.get("max_concurrency"):
        reps += f", ≤{kw['max_concurrency']} in flight"
    return f"{kw['hardware']}, {kw['model']}{tp}{reps}, {kw['engine']}"


def check_hold(hold: float | None, quick: bool, flag: str = "--hold") -> float:
    """The hold factor to use: 0 (off) or a factor in (1, 20]; by default `HOLD`, off with ``quick``."""
    if hold is None:
        return 0.0 if quick else HOLD
    if hold != 0 and not 1 < hold <= 20:
        raise UserError(f"{flag}: must be 0 (no hold check) or a factor in (1, 20], got {hold:g}")
    return float(hold)


def search_settings(target: float, seeds: Sequence[int], quick: bool, rate_start: float, rate_min: float,
                    rate_max: float, refine_interval: bool | None, confirm: int | None = None,
                    hold: float | None = None) -> SearchSettings:
    """Settings of a compare/capacity command: ``quick`` = 5% grid, no interval refinement, no confirmation,
    no hold check."""
    if not rate_min < rate_max:
        raise UserError(f"--rate-min {rate_min:g} must be below --rate-max {rate_max:g}")
    if confirm is not None and not 0 <= confirm <= 10:
        raise UserError(f"--confirm: must be a number of grid rates in 0..10, got {confirm}")
    refine = not quick if refine_interval is None else refine_interval
    return SearchSettings(target=target, seeds=list(seeds), rel_tol=0.05 if quick else 0.02, rate_start=rate_start,
                          rate_lo=rate_min, rate_hi=rate_max, refine_interval=refine,
                          confirm=(0 if quick else CONFIRM) if confirm is None else confirm,
                          hold_factor=check_hold(hold, quick))


def check_schedulers(names: Sequence[str]) -> None:
    """Unknown, unimportable or not-yet-available policies (registry names or ``module:Class``) fail
    before any probe runs, in one line."""
    from slobench.schedulers.registry import make_policy, scheduler_names

    for name in names:
        try:
            make_policy(name)
        except ImportError as exc:
            raise UserError(f"scheduler {name!r} is not available in this build ({exc}); choose from "
                            f"{', '.join(scheduler_names())}") from None


def preflight(specs: Sequence[SearchSpec], settings: SearchSettings | None = None) -> None:
    """Validate every distinct run setting (flags, workload, hardware/model/profile) before probing.

    With ``settings``, a trace replayed natively or thinned is also checked against the highest rate the
    searches may ask for (``rate: native`` takes none; ``scale: thin`` none above the trace's own rate)."""
    from slobench.cluster import run as cluster_run
    from slobench.workloads.generate import check_sources

    check_schedulers(list(dict.fromkeys(s.scheduler for s in specs)))
    seen: set[str] = set()
    for spec in specs:
        sig = json.dumps(spec.run_kwargs, sort_keys=True, default=str)
        if sig in seen:
            continue
        seen.add(sig)
        cfg = spec.config(1.0, 0)
        top = None if settings is None else max(settings.rates) if settings.rates else settings.rate_hi
        check_sources(cluster_run.workload_spec(cfg), rate_rps=top)  # reads (and caches) traces: bad ones fail now
        if cfg.engine == "sim":
            cluster_run.build_latency_model(cfg)


# --- replica scaling ------------------------------------------------------------------------------


def parse_replica_counts(text: str, flag: str = "--scaling") -> list[int]:
    """Replica counts of a scaling run, e.g. ``"1,2,4,8"`` → ``[1, 2, 4, 8]`` (sorted, repeats dropped).

    They must include 1, since linear scaling is measured from the one-replica capacity, and at least one count
    above it; anything else is one UserError line naming ``flag``."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        counts = sorted({int(t) for t in items})
    except ValueError:
        raise UserError(f"{flag}: expected comma-separated replica counts such as 1,2,4,8, got {text!r}") from None
    if not counts or any(n < 1 for n in counts):
        raise UserError(f"{flag}: replica counts must be whole numbers ≥ 1, such as 1,2,4,8, got {text!r}")
    if 1 not in counts:
        raise UserError(f"{flag}: must include 1, the capacity linear scaling is measured from (e.g. 1,"
                        f"{','.join(map(str, counts))}), got {text!r}")
    if len(counts) < 2:
        raise UserError(f"{flag}: give at least one replica count above 1 (e.g. 1,2,4,8), got {text!r}")
    return counts


def check_routers(names: Sequence[str], flag: str = "--routers") -> list[str]:
    """Router names as the registry spells them (case and _/- insensitive), repeats dropped; an unknown or
    missing name is one UserError line naming ``flag`` and the choices."""
    from slobench.schedulers.routers import canonical_router, router_names

    known = router_names()
    routers = list(dict.fromkeys(canonical_router(n) for n in names if n.strip()))
    if not routers:
        raise UserError(f"{flag}: give at least one router, e.g. round-robin,slo-aware; choose from "
                        f"{', '.join(known)}")
    bad = [n for n in routers if n not in known]
    if bad:
        raise UserError(f"{flag}: unknown router {bad[0]!r}; choose from {', '.join(known)}")
    return routers


def scaling_specs(workloads: dict[str, str], schedulers: Sequence[str], counts: Sequence[int],
                  routers: Sequence[str], run_kw: dict[str, Any]) -> list[SearchSpec]:
    """The searches of a replica-scaling run: every scheduler at every replica count behind every router.

    ``workloads`` maps each label to its workload argument; ``run_kw`` holds the settings every search shares
    (its ``replicas`` and ``router`` are replaced). One replica needs no router, so it is searched once per
    scheduler, without a ``router`` value in its rows; every other point carries ``replicas`` and ``router``
    (and ``base_workload``) as grid values, which become summary.json's ``scaling`` rows."""
    shared = {k: v for k, v in run_kw.items() if k != "router"}
    specs: list[SearchSpec] = []
    for label, workload in workloads.items():
        for n in counts:
            for router in routers if n > 1 else [None]:
                kw = shared | {"replicas": n, "workload": workload} | ({"router": router} if router else {})
                point: dict[str, Any] = {"replicas": n} | ({"router": router} if router else {})
                name = " ".join([label, *(f"{k}={v}" for k, v in point.items())])
                specs += [SearchSpec(name, s, kw, extra={"base_workload": label} | point) for s in schedulers]
    return specs


# --- sweeps ---------------------------------------------------------------------------------------

# Grid axis → RunConfig field it sets. slo_scale / burstiness_cv go through the workload overrides.
GRID_AXES = {"model": "model", "hardware": "hardware", "replicas": "replicas", "tp": "tp", "profile": "profile",
             "router": "router", "router_refresh_ms": "router_refresh_ms", "max_concurrency": "max_concurrency",
             "slo_scale": None, "burstiness_cv": None}


class SweepGrid(BaseModel):
    """A sweep file: fixed settings plus lists to take the Cartesian product of.

    ``rates`` given → every rate is probed (attainment curves); omitted → a capacity search per point.
    """

    model_config = ConfigDict(extra="forbid")

    workload: list[str] = Field(min_length=1)
    schedulers: list[str] = Field(default_factory=lambda: ["vllm", "slos-serve"], min_length=1)
    rates: list[float] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    target: float = Field(default=0.9, gt=0, le=1)
    num_requests: int = Field(default=DEFAULT_REQUESTS, ge=10)  # expected per probe and replica
    warmup: float = Field(default=DEFAULT_WARMUP, ge=0, lt=0.9)  # share of a probe's duration not counted
    rel_tol: float = Field(default=0.02, gt=0, lt=1)
    rate_start: float = Field(default=1.0, gt=0)
    rate_min: float = Field(default=0.05, gt=0)
    rate_max: float = Field(default=1024.0, gt=0)
    hold: float | None = Field(default=None, description="capacity hold factor (`HOLD` by default; 0: off)")
    engine: str = "sim"
    hardware: str = "H100-SXM"
    model: str = "Llama-3.1-8B"
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("workload", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("rates")
    @classmethod
    def _positive_rates(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not (r > 0) for r in v)):
            raise ValueError("rates must be a non-empty list of positive numbers")
        return v

    @field_validator("grid")
    @classmethod
    def _known_axes(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        unknown = set(v) - set(GRID_AXES)
        if unknown:
            raise ValueError(f"unknown grid axis {sorted(unknown)}; known: {sorted(GRID_AXES)}")
        for k, vals in v.items():
            if not isinstance(vals, list) or not vals:
                raise ValueError(f"grid.{k} must be a non-empty list")
        return v

    def settings(self, *, quick: bool) -> SearchSettings:
        """How the sweep probes (``quick``: a 5% grid)."""
        return SearchSettings(target=self.target, seeds=self.seeds, rel_tol=0.05 if quick else self.rel_tol,
                              rate_start=self.rate_start, rate_lo=self.rate_min, rate_hi=self.rate_max,
                              rates=self.rates, hold_factor=check_hold(self.hold, quick, "hold"))


def load_grid(path: Path) -> SweepGrid:
    """Read and validate a sweep YAML; any problem becomes one UserError line."""
    from slobench.yaml_files import load_yaml_model

    grid = load_yaml_model(path, SweepGrid)
    if not grid.rate_min < grid.rate_max:
        raise UserError(f"{path}: rate_min {grid.rate_min:g} must be below rate_max {grid.rate_max:g}")
    return grid


def workload_variant(workload: str, overrides: dict[str, Any], out_dir: Path) -> str:
    """A workload variant with SLOs scaled / burstiness changed, written under ``out_dir/workloads``."""
    if not overrides:
        return workload_arg(workload)
    try:
        from slobench.workloads import apply_overrides, load_spec
    except ImportError:
        raise UserError(f"grid axes {sorted(overrides)} need workload overrides, not available in this build") \
            from None
    spec = apply_overrides(load_spec(workload), **overrides)
    tag = "-".join(f"{k}{v}" for k, v in overrides.items())
    path = out_dir / "workloads" / f"{Path(workload).stem}-{tag}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    spec.to_yaml(path)
    return str(path.resolve())


def sweep_specs(g: SweepGrid, out_dir: Path, *, quick: bool) -> list[SearchSpec]:
    """One search per (workload, grid point, scheduler); grid values go into the label and the rows."""
    axes = list(g.grid)
    specs: list[SearchSpec] = []
    for wl in g.workload:
        for values in itertools.product(*(g.grid[a] for a in axes)) if axes else [()]:
            point = dict(zip(axes, values, strict=True))
            run_kw: dict[str, Any] = {"engine": g.engine, "hardware": g.hardware, "model": g.model,
                                      "probe_requests": QUICK_REQUESTS if quick else g.num_requests,
                                      "warmup": g.warmup}
            run_kw |= {GRID_AXES[a]: v for a, v in point.items() if GRID_AXES[a]}
            overrides = {a: v for a, v in point.items() if GRID_AXES[a] is None}
            run_kw["workload"] = workload_variant(wl, overrides, out_dir)
            label = " ".join([Path(wl).stem, *(f"{a}={v}" for a, v in point.items())])
            specs += [SearchSpec(label, s, run_kw, extra={"base_workload": Path(wl).stem} | point)
                      for s in g.schedulers]
    return specs
