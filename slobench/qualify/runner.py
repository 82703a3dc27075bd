"""Run a qualification suite: per scenario the rate capacity and the closed-loop curve, each judged.

For every scenario of a suite (`slobench.qualify.suite`):

(a) **Rate capacity at the target attainment.** Today's capacity search (`slobench.capacity.execute.run_search`,
    the same probes, validity checks and hold check as ``slobench capacity``) finds the highest passing rate;
    then one *official* run at that rate, sized by the suite's rules (at least ``min_duration_s`` measured and
    enough requests for the attainment's binomial bound), is judged point by point (`slobench.qualify.reasons`).
    This is MLPerf's split between finding a QPS and the performance run that must be VALID at it.
(b) **Closed-loop concurrency sweep** (MLPerf Endpoints' Pareto curve): concurrency ``start·factor^k``; each
    point is a ``--max-concurrency`` run with every request arriving at once, long enough for the duration and
    the percentile's early-stopping bound (a point that came out short is re-run once, longer). A point gives
    P90 TTFT, tokens/s/user (1000 / P90 TPOT ms) and output tokens/s per GPU.

A scenario is VALID when its official capacity run is VALID and meets the target, and enough concurrency points
are VALID (`MIN_VALID_POINTS`). Energy per output token comes from sampled GPU power where a GPU allows
it, marked not available with its reason otherwise; it never makes a scenario INVALID (it is a figure, not a
rule). Everything the runner writes lies under one folder whose sha256 manifest is written last
(`slobench.qualify.manifest`); `slobench qualify --check` recomputes it.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slobench.capacity.execute import NullObserver, SearchObserver, run_search
from slobench.capacity.plan import SearchSettings, SearchSpec, workload_variant
from slobench.capacity.store import Collector
from slobench.qualify.power import PowerSampler, energy_result
from slobench.qualify.reasons import Reason, evidence_from_summary, judge_point, point_notes
from slobench.qualify.statistics import attainment_point_bound, percentile_point_bound
from slobench.qualify.suite import Scenario, Suite

QUALIFICATION_FILE = "qualification.json"
SCHEMA_VERSION = 1
ALL_AT_ONCE_RPS = 1e6  # closed-loop points: every request arrives at (about) t = 0, the cap decides the sends
SCHEDULER = "vllm"  # the engine's own scheduler (vLLM's default policy on the simulator)
RATE_HI = 4096.0  # the capacity search's highest rate (req/s)
MIN_VALID_POINTS = 2  # a curve needs at least two VALID points to say anything
MAX_GROWTH = 8.0  # a short concurrency point is re-run at most this many times longer
WARMUP_MARGIN = 1.3  # a point's first size: the requests it needs, plus this share for the warm-up's sends
Say = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """What is qualified: the engine and how to reach it (the suite says what to run on it)."""

    engine: str  # sim | vllm | openai
    model: str | None = None  # real engines: the served model (vLLM: a path or HF id); sim: the scenario's
    hardware: str | None = None  # the latency model's hardware (sim ground truth; real engines: SLO conversion)
    profile: str | None = None  # a named or calibrated latency profile (--profile)
    url: str | None = None  # --engine openai
    engine_options: dict[str, Any] = field(default_factory=dict)
    gpus: int | None = None  # GPUs serving the model (tokens/s per GPU); None: the tensor-parallel size


@dataclass
class Point:
    """One judged run: the official capacity run, or one concurrency point of the curve."""

    kind: str  # "capacity" | "concurrency"
    run_dir: str  # relative to the qualification folder
    rate_rps: float | None = None
    concurrency: int | None = None
    num_requests: int = 0  # measured requests
    duration_s: float | None = None  # measured span
    attainment: float | None = None
    p90_ttft_ms: float | None = None
    p90_tpot_ms: float | None = None
    tokens_per_s_user: float | None = None
    tokens_per_s_gpu: float | None = None
    output_tok_s: float | None = None
    required: dict[str, Any] = field(default_factory=dict)  # the statistic's bound: needed, met, the line
    reasons: list[dict[str, str]] = field(default_factory=list)  # empty: VALID
    notes: list[dict[str, str]] = field(default_factory=list)  # findings that do not invalidate (e.g. no usage)
    energy: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"status": "VALID" if self.valid else "INVALID"}


@dataclass
class ScenarioResult:
    name: str
    workload: str
    slo_preset: str
    slo_scale: float
    target: float
    capacity_rps: float | None = None
    lower_rps: float | None = None
    upper_rps: float | None = None
    capacity_status: str = ""
    capacity_point: Point | None = None
    curve: list[Point] = field(default_factory=list)
    pareto: list[int] = field(default_factory=list)  # concurrencies on the Pareto front (valid points)
    reasons: list[dict[str, str]] = field(default_factory=list)  # why the scenario is INVALID (empty: VALID)

    @property
    def valid(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["capacity_point"] = self.capacity_point.to_dict() if self.capacity_point else None
        d["curve"] = [p.to_dict() for p in self.curve]
        return d | {"status": "VALID" if self.valid else "INVALID"}


def _reason_dicts(reasons: list[Reason]) -> list[dict[str, str]]:
    return [{"code": str(r.code), "detail": r.detail} for r in reasons]


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


class SuiteRunner:
    """Runs one suite against one target into one folder (``out_dir``); see the module docstring."""

    def __init__(self, suite: Suite, target: Target, out_dir: Path, *, say: Say | None = None,
                 observer: SearchObserver | None = None, slo_scale: float | None = None) -> None:
        self.suite = suite
        self.rules = suite.rules
        self.target = target
        self.out_dir = out_dir
        self.say = say or (lambda _: None)
        self.observer = observer or NullObserver()
        self.slo_scale_override = slo_scale  # a non-conforming run (recorded, and the verdict says so)

    # ---- run settings ----------------------------------------------------------------------------
    def gpus(self) -> int:
        return self.target.gpus or 1

    def base_kwargs(self, sc: Scenario, workload: str) -> dict[str, Any]:
        """`validate_config` keys every run of the scenario shares (the engine's stock scheduler: qualification
        measures the serving stack as shipped)."""
        t = self.target
        kw: dict[str, Any] = {"workload": workload, "engine": t.engine,
                              "hardware": t.hardware or sc.hardware, "model": t.model or sc.model,
                              "percentile_metrics": ["ttft", "tpot", "itl", "e2el"],
                              "metric_percentiles": [50.0, 90.0, 99.0]}
        if t.profile:
            kw["profile"] = t.profile
        if t.url:
            kw["url"] = t.url
        if t.engine_options:
            kw["engine_options"] = dict(t.engine_options)
        return kw

    def slo_scale(self, sc: Scenario) -> float:
        return self.slo_scale_override if self.slo_scale_override is not None else self.suite.slo_scale(sc)

    def workload_for(self, sc: Scenario, folder: Path) -> str:
        scale = self.slo_scale(sc)
        return workload_variant(sc.workload, {"slo_scale": scale} if scale != 1.0 else {}, folder)

    def config(self, kw: dict[str, Any]) -> Any:
        from slobench.cluster.run import validate_config

        return validate_config(**kw)

    # ---- (a) capacity --------------------------------------------------------------------------
    def capacity(self, sc: Scenario, res: ScenarioResult, workload: str, folder: Path) -> None:
        """The capacity search (probes of ``capacity.probe_s`` after the warm-up, held ``hold_factor``× longer),
        then the official run at the capacity, judged."""
        r, c = self.rules, self.rules.capacity
        kw = self.base_kwargs(sc, workload) | {"measured_s": c.probe_s, "min_requests": c.probe_requests,
                                               "warmup_s": r.warmup_s}
        spec = SearchSpec(sc.name, SCHEDULER, kw)
        settings = SearchSettings(target=res.target, seeds=list(sc.seeds), rel_tol=c.rel_tol, rate_start=c.rate_start,
                                  rate_lo=c.rate_min, rate_hi=RATE_HI, refine_interval=False, confirm=0,
                                  hold_factor=c.hold_factor if c.hold_factor > 1 else 0.0, max_probes=c.max_probes,
                                  max_hold_probes=c.max_hold_probes)
        (folder / "search").mkdir(parents=True, exist_ok=True)
        store = Collector(folder / "search", res.target, f"qualify {self.suite.label}: {sc.name}")
        self.say(f"{sc.name}: capacity search at {res.target:.0%} attainment")
        self.observer.start_search(spec, 1, 1)
        result = run_search(spec, settings, store=store, observer=self.observer)
        store.complete = True
        store.save(final=True)
        assert result is not None
        res.capacity_rps, res.lower_rps, res.upper_rps = result.capacity_rps, result.lower_rps, result.upper_rps
        res.capacity_status = result.status
        if result.capacity_rps is None or result.status != "ok":
            res.reasons.append({"code": "no_capacity", "detail": f"capacity search ended {result.status}: "
                                f"{result.message}"})
            return
        rate = result.capacity_rps
        # The official run: as long as the hold check's probe (the capacity held that long), the duration rule and
        # the attainment's bound at this rate, whichever is longest.
        need = r.required_requests(res.target)
        measured_s = max(c.probe_s * max(c.hold_factor, 1.0), r.min_duration_s, need / rate * 1.1)
        cfg = self.config(self.base_kwargs(sc, workload) | {"duration_s": r.warmup_s + measured_s, "rate_rps": rate,
                                                            "warmup_s": r.warmup_s, "seed": sc.seeds[0]})
        self.say(f"{sc.name}: official run at the capacity, {rate:.4g} req/s for {measured_s:.0f} s")
        point = self.judged_run(cfg, folder / "official", sc=sc, kind="capacity", rate=rate, target=res.target)
        res.capacity_point = point
        if point.attainment is not None and point.attainment < res.target:
            point.reasons.append({"code": "below_target", "detail": f"the official run at {rate:.4g} req/s met "
                                  f"{point.attainment:.1%} < the target {res.target:.0%}"})
        if not point.valid:
            res.reasons.append({"code": "capacity_invalid", "detail": "the official run at the capacity is "
                                "INVALID: " + ", ".join(x["code"] for x in point.reasons)})

    # ---- (b) concurrency curve -----------------------------------------------------------------
    def curve(self, sc: Scenario, res: ScenarioResult, workload: str, folder: Path) -> None:
        """One closed-loop point per concurrency level; a point that came out short is re-run once, longer."""
        r = self.rules
        need = r.required_requests(res.target)
        for c in r.concurrency.levels():
            self.say(f"{sc.name}: concurrency {c}")
            run_dir = folder / f"c{c:05d}"
            n = math.ceil(max(need + c, 4 * c) * WARMUP_MARGIN)  # sends during the warm-up are not counted
            point = self.concurrency_point(sc, workload, run_dir, c, n, res.target)
            if point.duration_s is not None and point.num_requests and (
                    point.duration_s < r.min_duration_s or point.num_requests < need):
                # MLPerf's loadgen issues until both minima hold; here: once more, longer in proportion.
                grow = max(r.min_duration_s / max(point.duration_s, 1e-3), need / point.num_requests) * 1.15
                n = math.ceil(n * min(grow, MAX_GROWTH))
                shutil.rmtree(run_dir, ignore_errors=True)
                point = self.concurrency_point(sc, workload, run_dir, c, n, res.target)
            res.curve.append(point)
        res.pareto = pareto_front(res.curve)
        valid = sum(p.valid for p in res.curve)
        if valid < MIN_VALID_POINTS:
            codes = sorted({x["code"] for p in res.curve for x in p.reasons})
            res.reasons.append({"code": "curve_invalid", "detail": f"{valid} VALID concurrency points < "
                                f"{MIN_VALID_POINTS} required (reasons: {', '.join(codes) or 'none'})"})

    def concurrency_point(self, sc: Scenario, workload: str, run_dir: Path, c: int, n: int, target: float) -> Point:
        """``n`` requests all arriving at once, at most ``c`` in flight; sends in the first ``warmup_s`` are run
        but not counted (the first wave fills every slot at once)."""
        kw = self.base_kwargs(sc, workload) | {"num_requests": n, "rate_rps": ALL_AT_ONCE_RPS, "max_concurrency": c,
                                               "warmup_s": self.rules.warmup_s, "seed": sc.seeds[0]}
        return self.judged_run(self.config(kw), run_dir, sc=sc, kind="concurrency", concurrency=c, target=target)

    def judged_run(self, cfg: Any, run_dir: Path, *, sc: Scenario, kind: str, target: float,
                   rate: float | None = None, concurrency: int | None = None) -> Point:
        """Run ``cfg`` into ``run_dir``, sample GPU power meanwhile, and judge the point by the suite's rules."""
        from slobench.capacity.execute import probe_result
        from slobench.cluster import run as cluster_run

        run_dir.mkdir(parents=True, exist_ok=True)
        sampler = PowerSampler() if self.target.engine != "sim" else None
        with sampler or nullcontext():
            res = cluster_run.run_once(cfg, run_dir=run_dir)
        summary = res.summary.as_dict()  # what run_once just wrote to run_dir/summary.json (NaN where it has null)
        ev = evidence_from_summary(summary)
        r = self.rules
        met = int(summary.get("num_met") or 0)
        if kind == "capacity":
            bound = attainment_point_bound(met, ev.num_requests, target, r.attainment_margin or 0.02,
                                           r.attainment_confidence)
            reasons = judge_point(ev, r, bounds=[bound], prefix_cache_expected=sc.prefix_cache_expected,
                                  capacity=probe_result(res, rate or 0.0))
        else:  # P90 latency: MLPerf early stopping, "over" = requests missing their SLOs
            bound = percentile_point_bound(ev.num_requests, max(ev.num_requests - met, 0), 0.9,
                                           r.percentile_confidence)
            reasons = judge_point(ev, r, bounds=[bound], prefix_cache_expected=sc.prefix_cache_expected)
        lat = summary.get("latency_ms") or {}
        p90_tpot = _num(lat.get("p90_tpot_ms"))
        out_tok_s = _num(summary.get("output_tok_s"))
        tokens = _output_tokens(res)
        energy = (sampler.result(tokens) if sampler is not None
                  else energy_result([], tokens, unavailable_reason="the simulator draws no power"))
        return Point(
            kind=kind, run_dir=str(run_dir.relative_to(self.out_dir)), rate_rps=rate, concurrency=concurrency,
            num_requests=ev.num_requests, duration_s=ev.duration_s, attainment=_num(summary.get("attainment")),
            p90_ttft_ms=_num(lat.get("p90_ttft_ms")), p90_tpot_ms=p90_tpot,
            tokens_per_s_user=1000.0 / p90_tpot if p90_tpot else None,
            tokens_per_s_gpu=out_tok_s / self.gpus() if out_tok_s is not None else None, output_tok_s=out_tok_s,
            required={"statistic": bound.what(), "needed": bound.required_n, "met": ev.num_requests,
                      "line": bound.line()},
            reasons=_reason_dicts(reasons), notes=_reason_dicts(point_notes(ev, r)), energy=energy.to_dict(),
        )

    # ---- the whole suite -----------------------------------------------------------------------
    def run(self) -> list[ScenarioResult]:
        results: list[ScenarioResult] = []
        for i, sc in enumerate(self.suite.scenarios, start=1):
            folder = self.out_dir / "scenarios" / sc.name
            folder.mkdir(parents=True, exist_ok=True)
            self.say(f"[{i}/{len(self.suite.scenarios)}] scenario {sc.name}: {sc.workload}, SLO preset {sc.slo} "
                     f"(×{self.slo_scale(sc):g})")
            workload = self.workload_for(sc, folder)
            res = ScenarioResult(sc.name, sc.workload, sc.slo, self.slo_scale(sc), self.suite.target(sc))
            self.capacity(sc, res, workload, folder / "capacity")
            self.curve(sc, res, workload, folder / "concurrency")
            results.append(res)
        return results


def _output_tokens(res: Any) -> int:
    df = getattr(res, "records", None)
    if df is None or not len(df) or "output_tokens" not in df:
        return 0
    done = df[df["status"] == "finished"] if "status" in df else df
    return int(done["output_tokens"].sum())


def pareto_front(points: list[Point]) -> list[int]:
    """Concurrencies of the VALID points no other VALID point beats on both tokens/s/GPU and tokens/s/user."""
    ok = [p for p in points if p.valid and p.tokens_per_s_gpu is not None and p.tokens_per_s_user is not None]
    front = []
    for p in ok:
        beaten = any(q is not p and q.tokens_per_s_gpu >= p.tokens_per_s_gpu  # type: ignore[operator]
                     and q.tokens_per_s_user >= p.tokens_per_s_user  # type: ignore[operator]
                     and (q.tokens_per_s_gpu, q.tokens_per_s_user) != (p.tokens_per_s_gpu, p.tokens_per_s_user)
                     for q in ok)
        if not beaten and p.concurrency is not None:
            front.append(p.concurrency)
    return sorted(front)


