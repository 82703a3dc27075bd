"""Qualification suites: versioned YAML files of run rules and scenarios, and the plan a suite expands to.

A suite is a file, not a set of flags, so a qualification result names exactly what it was held to: the
runner records the suite's name, version and `suite_digest` (sha256 of the file's bytes), and a changed rule
is a new version (``quick-v2.yaml``) rather than a silent edit. Shipped suites live in ``suites/``
(package data); ``load_suite("quick")`` picks the newest ``quick-vN``, ``"quick-v1"`` that exact file, and
any other argument is a path.

The rules follow the public run rules they are modelled on:
- MLPerf Inference: a minimum duration per run (LoadGen's ``min_duration``, 600 s) and a minimum number of
  queries that follows from the statistic (early stopping, `slobench.qualify.statistics`);
- MLPerf Endpoints: a Pareto curve over fixed concurrency levels, 7–32 points per submission, each held
  600 s (Ultra Low region; 1,200 s above it) after an excluded warm-up;
- InferenceX / slobench's own capacity validity: client lag, achieved vs offered rate, error share,
  token-count cross-checks, and a capacity that must hold in a ``hold_factor``× longer run.

SLO presets: a scenario names a preset (``paper``, ``tight``, ``loose``) that maps to an ``slo_scale``
multiplier; `slobench.workloads.apply_overrides` multiplies every TTFT and TPOT target of the workload by it
(absolute milliseconds and TTFT slowdowns alike), exactly as ``slobench sweep`` / ``sensitivity`` do with
``slo_scale``. ``paper`` = 1.0 is the workload file's own SLOs (the SLOs-Serve paper's presets); a suite may
add presets of its own under ``slo_presets``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from slobench.errors import UserError
from slobench.qualify.statistics import (
    ATTAINMENT_CONFIDENCE,
    PERCENTILE_CONFIDENCE,
    min_requests_for_attainment,
    min_requests_for_percentile,
)
from slobench.yaml_files import load_yaml_model

SUITES_DIR = Path(__file__).resolve().parent / "suites"
_VERSIONED = re.compile(r"^(?P<name>[a-z][a-z0-9-]*?)-v(?P<version>[0-9]+)$")

# slo_scale multiplier per preset (< 1 tightens every target). A suite's `slo_presets` adds to these.
SLO_PRESETS: dict[str, float] = {"paper": 1.0, "tight": 0.5, "loose": 2.0}

ENGINES = ("sim", "vllm", "openai")
# `SuitePlan.estimate_s` assumptions (rough on purpose; the dry run prints them):
BRACKET_DOUBLINGS = 3  # a capacity search doubles (or halves) about this many times from rate_start
ENGINE_START_S = 60.0  # a real engine's server start, once per scenario
DRAIN_SHARE = 0.1  # a probe runs ~10% past its last arrival while the queue drains


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConcurrencySweep(_Model):
    """The fixed-concurrency points of the Pareto curve (MLPerf Endpoints): start, start·factor, … ."""

    start: int = Field(default=1, ge=1, description="first concurrency level (requests in flight)")
    factor: float = Field(default=2.0, gt=1, description="each level is the previous × factor, rounded up")
    max_points: int = Field(default=8, ge=1, le=32, description="levels at most (Endpoints: 7–32 per submission)")

    def levels(self) -> list[int]:
        """``max_points`` increasing levels: each ⌈previous·factor⌉, at least the previous + 1."""
        out = [self.start]
        while len(out) < self.max_points:
            out.append(max(out[-1] + 1, math.ceil(out[-1] * self.factor - 1e-9)))
        return out


class CapacityRules(_Model):
    """The capacity search of each scenario (`slobench.capacity.search.capacity_search`)."""

    probe_s: float = Field(default=120.0, gt=0, description="arrival span of one search probe, after warm-up")
    probe_requests: int = Field(default=0, ge=0, description="a probe's measured span is longer where the rate "
                                "needs it to offer this many requests (low rates)")
    rate_start: float = Field(default=1.0, gt=0, description="first rate probed (req/s)")
    rate_min: float = Field(default=0.05, gt=0, description="lowest rate probed (req/s): below it, no capacity")
    rel_tol: float = Field(default=0.05, gt=0, lt=1, description="relative resolution of the rate grid")
    max_probes: int = Field(default=16, ge=1, description="rates probed at most (each runs every seed)")
    hold_factor: float = Field(default=10.0, ge=1, description="the capacity must hold in a run this many times "
                               "longer (1: no hold check)")
    max_hold_probes: int = Field(default=4, ge=1, description="hold probes at most while stepping down")


class Rules(_Model):
    """What every measurement point of the suite is held to (`slobench.qualify.reasons.judge_point`)."""

    target_attainment: float = Field(default=0.9, gt=0, lt=1, description="share of requests meeting every SLO")
    min_duration_s: float = Field(default=600.0, gt=0, description="measured span of a concurrency point "
                                  "(arrivals after warm-up; MLPerf's min_duration, Endpoints' 600 s)")
    min_requests: int | None = Field(default=None, ge=1, description="floor on measured requests per point; "
                                     "the statistics' minimum applies too (`required_requests`)")
    percentile_confidence: float = Field(default=PERCENTILE_CONFIDENCE, gt=0, lt=1,
                                         description="MLPerf early stopping's confidence")
    attainment_margin: float | None = Field(default=0.02, gt=0, lt=0.5, description="attainment estimated to ± "
                                            "this (Wilson half-width); null: no attainment floor")
    attainment_confidence: float = Field(default=ATTAINMENT_CONFIDENCE, gt=0, lt=1)
    warmup_s: float = Field(default=60.0, ge=0, description="arrivals before this run but are not counted")
    max_client_lag_s: float = Field(default=1.0, gt=0)
    max_rate_error: float = Field(default=0.10, gt=0, lt=1, description="achieved below offered rate (or held "
                                  "below requested concurrency) by more than this share: INVALID")
    max_error_rate: float = Field(default=0.01, ge=0, lt=1, description="failed requests' share allowed")
    max_token_mismatch_share: float = Field(default=0.0, ge=0, lt=1, description="prompt tokens the server "
                                            "reported vs sent, relative difference allowed")
    require_usage: bool = Field(default=False, description="a point whose server reported no token usage is "
                                "INVALID (else a note)")
    concurrency: ConcurrencySweep = Field(default_factory=ConcurrencySweep)
    capacity: CapacityRules = Field(default_factory=CapacityRules)

    def required_requests(self, target: float | None = None) -> int:
        """Measured requests a point needs: the largest of ``min_requests``, MLPerf early stopping's minimum
        for the target read as a percentile (no miss allowed) and the attainment's ±margin minimum."""
        t = self.target_attainment if target is None else target
        need = [self.min_requests or 1, min_requests_for_percentile(t, self.percentile_confidence)]
        if self.attainment_margin is not None:
            need.append(min_requests_for_attainment(t, self.attainment_margin, self.attainment_confidence))
        return max(need)


class Scenario(_Model):
    """One workload × model × hardware × SLO preset the suite qualifies."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="unique in the suite; a results sub-folder")
    workload: str = Field(description="a shipped workload name (slobench workloads list) or a YAML path")
    model: str = Field(default="Llama-3.1-8B", description="simulator model; real engines use the engine's own")
    hardware: str = Field(default="H100-SXM", description="simulator GPU; real engines run on theirs")
    slo: str = Field(default="paper", description="SLO preset: a name in SLO_PRESETS or the suite's slo_presets")
    target_attainment: float | None = Field(default=None, gt=0, lt=1, description="overrides rules' target")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    prefix_cache_expected: bool = Field(default=False, description="the workload shares prompt prefixes on "
                                        "purpose (chat-sessions; later rounds of tool calling on real engines); "
                                        "else cached prompt tokens make the point INVALID")

    @field_validator("workload")
    @classmethod
    def _workload(cls, v: str) -> str:
        from slobench.workloads.spec import list_specs

        if v in list_specs() or v.endswith((".yaml", ".yml")) and Path(v).expanduser().is_file():
            return v
        raise ValueError(f"unknown workload {v!r}; use one of {', '.join(list_specs())} or an existing YAML path")

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        from slobench.perf.models import get_model, list_models

        try:
            get_model(v)
        except (KeyError, ValueError, UserError):
            raise ValueError(f"unknown model {v!r}; use one of {', '.join(list_models())}") from None
        return v

    @field_validator("hardware")
    @classmethod
    def _hardware(cls, v: str) -> str:
        from slobench.perf.hardware import get_gpu, list_gpus

        try:
            get_gpu(v)
        except (KeyError, ValueError, UserError):
            raise ValueError(f"unknown hardware {v!r}; use one of {', '.join(list_gpus())}") from None
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds repeat ({v}); list each seed once")
        return v


class Suite(_Model):
    """A versioned qualification suite (one YAML file)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$", description="suite family, e.g. quick")
    version: int = Field(ge=1, description="bumped whenever a rule or scenario changes")
    description: str = ""
    slo_presets: dict[str, float] = Field(default_factory=dict, description="presets beyond SLO_PRESETS")
    rules: Rules = Field(default_factory=Rules)
    scenarios: list[Scenario] = Field(min_length=1)
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("slo_presets")
    @classmethod
    def _presets(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not (x > 0 and math.isfinite(x))}
        if bad:
            raise ValueError(f"slo_scale must be a positive number (got {bad}); e.g. tighter: 0.75")
        return v

    @model_validator(mode="after")
    def _scenarios(self) -> Suite:
        names = [s.name for s in self.scenarios]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"scenario names repeat: {', '.join(dup)}; give each scenario its own name")
        presets = self.presets()
        for s in self.scenarios:
            if s.slo not in presets:
                raise ValueError(f"scenario {s.name}: unknown SLO preset {s.slo!r}; use one of "
                                 f"{', '.join(sorted(presets))} or add it under slo_presets")
        return self

    @property
    def label(self) -> str:
        """``quick-v1``: what a result records beside the digest."""
        return f"{self.name}-v{self.version}"

    @property
    def source(self) -> Path | None:
        """The file this suite was loaded from (None when built in code)."""
        return self._source

    def presets(self) -> dict[str, float]:
        """Every SLO preset this suite knows: the built-in ones, then its own."""
        return SLO_PRESETS | self.slo_presets

    def slo_scale(self, scenario: Scenario) -> float:
        """The ``slo_scale`` multiplier of a scenario's preset (1.0: the workload's own SLOs)."""
        return self.presets()[scenario.slo]

    def target(self, scenario: Scenario) -> float:
        """A scenario's attainment target: its own, else the rules'."""
        return self.rules.target_attainment if scenario.target_attainment is None else scenario.target_attainment


# --- loading ---------------------------------------------------------------------------------------------

def shipped_suites() -> list[str]:
    """Every shipped suite file's stem (``quick-v1``, ``standard-v1`` …), sorted."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def resolve_suite(name_or_path: str | Path) -> Path:
    """The file of ``name_or_path``: ``quick`` → the newest shipped ``quick-vN``, ``quick-v1`` → that file,
    anything ending in .yaml/.yml or naming a file → that path; else one UserError line listing the suites."""
    text = str(name_or_path)
    p = Path(text).expanduser()
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise UserError(f"{p}: suite file not found; give an existing YAML path or a shipped suite "
                            f"({', '.join(shipped_suites())})")
        return p
    shipped = shipped_suites()
    if text in shipped:
        return SUITES_DIR / f"{text}.yaml"
    versions = [(int(m["version"]), s) for s in shipped if (m := _VERSIONED.match(s)) and m["name"] == text]
    if versions:
        return SUITES_DIR / f"{max(versions)[1]}.yaml"
    families = sorted({m["name"] for s in shipped if (m := _VERSIONED.match(s))})
    raise UserError(f"--suite {text}: unknown suite; use one of {', '.join(families + shipped)} or a YAML path")


def load_suite(name_or_path: str | Path) -> Suite:
    """A suite by name (newest version), exact ``name-vN`` or path; any problem is one UserError line naming
    the file, the field and the fix. A shipped file must be named after its own ``name`` and ``version``."""
    path = resolve_suite(name_or_path)
    suite = load_yaml_model(path, Suite, hint=_hint)
    if path.parent.resolve() == SUITES_DIR and path.stem != suite.label:
        raise UserError(f"{path}: name/version say {suite.label!r} but the file is {path.name}; a shipped suite's "
                        "file is named <name>-v<version>.yaml (bump both together)")
    suite._source = path
    return suite


def suite_digest(suite_path: str | Path) -> str:
    """sha256 of the suite file's bytes (hex): a result records exactly which file it was held to."""
    try:
        return hashlib.sha256(Path(suite_path).read_bytes()).hexdigest()
    except OSError as exc:
        raise UserError(f"{suite_path}: cannot read the suite file ({exc.strerror or exc})") from None


def _hint(err: dict[str, Any]) -> str | None:
    """The fix for pydantic's first error: an unknown or missing key lists the known fields at that place."""
    if err.get("type") not in ("extra_forbidden", "missing"):
        return None
    model: Any = Suite
    for part in err["loc"][:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        ann = getattr(info, "annotation", None)
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    known = ", ".join(model.model_fields)
    return f"known fields here: {known}" if err["type"] == "extra_forbidden" else f"add it (fields here: {known})"


# --- the plan ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScenarioPlan:
    """What one scenario will run: a capacity search, then the concurrency points."""

    scenario: str
    workload: str
    model: str  # the simulator's model, or "(engine's model)" on a real engine
    hardware: str
    slo: str
    slo_scale: float
    target: float
    seeds: tuple[int, ...]
    capacity: CapacityRules
    capacity_rates: int  # estimated rates the search probes (each runs every seed)
    concurrency: tuple[int, ...]  # fixed-concurrency points, one run each (first seed)
    point_s: float  # measured span of a concurrency point
    warmup_s: float
    required_requests: int  # per point (`Rules.required_requests`)
    prefix_cache_expected: bool
    estimate_s: float


@dataclass(frozen=True)
class SuitePlan:
    """A suite expanded for one engine; `lines` is the dry run's printout.

    ``estimate_s`` is rough by design: per scenario, (estimated search rates × seeds) probes of ``warmup +
    probe_s·(1 + DRAIN_SHARE)`` seconds, one hold probe ``hold_factor`` times as long per seed, the concurrency
    points of ``warmup + min_duration_s·(1 + DRAIN_SHARE)`` each, plus ``ENGINE_START_S`` on a real engine.
    The search's rates: ``BRACKET_DOUBLINGS + 1`` to bracket the capacity and ⌈log2 m⌉ to bisect the grid
    (m = grid points per doubling from ``rel_tol``), capped at ``max_probes``. On the simulator these are
    *simulated* seconds: the wall time is a small fraction of them.
    """

    suite: str  # quick-v1
    engine: str
    scenarios: tuple[ScenarioPlan, ...]
    assumptions: tuple[str, ...] = field(default=())

    @property
    def estimate_s(self) -> float:
        return sum(s.estimate_s for s in self.scenarios)

    def lines(self) -> list[str]:
        """Human-readable dry run: one header, a few lines per scenario, the total."""
        unit = "simulated s" if self.engine == "sim" else "s"
        out = [f"suite {self.suite} on engine {self.engine}: {len(self.scenarios)} scenario(s), "
               f"~{_duration(self.estimate_s)} ({self.estimate_s:,.0f} {unit})"]
        for s in self.scenarios:
            c = s.capacity
            hold = f", hold {c.hold_factor:g}× longer" if c.hold_factor > 1 else ""
            out += [
                f"  {s.scenario}: {s.workload} · {s.model} · {s.hardware} · SLO {s.slo} (×{s.slo_scale:g}) · "
                f"target {s.target:.0%} · seeds {', '.join(map(str, s.seeds))}"
                + (" · prefix cache expected" if s.prefix_cache_expected else ""),
                f"    capacity search: ~{s.capacity_rates} rates × {len(s.seeds)} seed(s) of {c.probe_s:g} s "
                f"(+{s.warmup_s:g} s warm-up) from {c.rate_start:g} req/s, grid {c.rel_tol:.0%}{hold}",
                f"    concurrency points: {', '.join(map(str, s.concurrency))} × {s.point_s:g} s "
                f"(+{s.warmup_s:g} s warm-up), ≥ {s.required_requests} measured requests each",
                f"    estimate ~{_duration(s.estimate_s)}",
            ]
        out += [f"  ({a})" for a in self.assumptions]
        return out


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def search_rates_estimate(c: CapacityRules) -> int:
    """Rates a capacity search probes, roughly (see `SuitePlan`)."""
    m = max(1, math.ceil(math.log(2) / math.log1p(c.rel_tol)))
    return min(c.max_probes, BRACKET_DOUBLINGS + 1 + math.ceil(math.log2(m)))


def plan_suite(suite: Suite, engine: str) -> SuitePlan:
    """Expand ``suite`` for ``engine`` (sim, vllm, openai): per scenario the capacity search and the
    concurrency points, with the rough time `SuitePlan.estimate_s` documents."""
    if engine not in ENGINES:
        raise UserError(f"--engine {engine}: unknown engine; use one of {', '.join(ENGINES)}")
    r = suite.rules
    real = engine != "sim"
    plans = []
    for s in suite.scenarios:
        c = r.capacity
        rates = search_rates_estimate(c)
        probe = r.warmup_s + c.probe_s * (1 + DRAIN_SHARE)
        hold = (r.warmup_s + c.probe_s * c.hold_factor * (1 + DRAIN_SHARE)) if c.hold_factor > 1 else 0.0
        levels = tuple(r.concurrency.levels())
        points = len(levels) * (r.warmup_s + r.min_duration_s * (1 + DRAIN_SHARE))
        est = len(s.seeds) * (rates * probe + hold) + points + (ENGINE_START_S if real else 0.0)
        target = suite.target(s)
        plans.append(ScenarioPlan(
            scenario=s.name, workload=s.workload, model="(engine's model)" if real else s.model,
            hardware="(the engine's)" if real else s.hardware, slo=s.slo, slo_scale=suite.slo_scale(s),
            target=target, seeds=tuple(s.seeds), capacity=c, capacity_rates=rates, concurrency=levels,
            point_s=r.min_duration_s, warmup_s=r.warmup_s, required_requests=r.required_requests(target),
            prefix_cache_expected=s.prefix_cache_expected, estimate_s=est))
    notes = (f"estimate: search ~{BRACKET_DOUBLINGS} doublings + bisection, one hold probe, "
             f"{DRAIN_SHARE:.0%} drain per probe" + (f", {ENGINE_START_S:g} s server start per scenario" if real
                                                      else "; simulated seconds, the wall time is far less"),
             "a point runs past its duration until it has its measured requests: low concurrency × long outputs "
             "take longer than estimated")
    return SuitePlan(suite.label, engine, tuple(plans), notes)
