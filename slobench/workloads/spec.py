"""Workload YAML specs: pydantic models, loading by name or path, friendly errors.

A spec is *what* to generate (apps mixed by weight, their length sources and SLO tiers, one
arrival process, a default rate and size); `generate.py` turns it into a seeded `Workload`.
Every problem in a spec becomes one `UserError` line naming the file, the field and the fix.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slobench.errors import UserError
from slobench.workloads.sources import SHIPPED_TRACES

# The shipped specs live in the repository's top-level `workloads/` folder (the one users edit).
# A checkout (editable install) reads that folder; a wheel carries a copy made at build time by
# setup.py in `slobench/workloads/specs/`. The checkout is recognised by its pyproject.toml so a
# stray `site-packages/workloads/` from another distribution can never be mistaken for ours.
REPO_SPEC_DIR = Path(__file__).resolve().parents[2] / "workloads"
PACKAGED_SPEC_DIR = Path(__file__).resolve().parent / "specs"


def _spec_dir() -> Path:
    """Where the shipped specs are: the checkout's `workloads/`, else the packaged copy."""
    if REPO_SPEC_DIR.is_dir() and (REPO_SPEC_DIR.parent / "pyproject.toml").is_file():
        return REPO_SPEC_DIR
    return PACKAGED_SPEC_DIR


SPEC_DIR = _spec_dir()

AppName = Literal["chatbot", "coding", "reasoning", "toolcalling", "summarization", "custom"]

# Stage kinds each app needs an SLO for (the key in `slo:`). Reasoning = think then answer;
# tool calling = intermediate rounds then the final answer round; the rest are single-stage.
STAGE_KINDS: dict[str, tuple[str, ...]] = {
    "reasoning": ("think", "answer"),
    "toolcalling": ("round", "final"),
}
DEFAULT_KINDS: tuple[str, ...] = ("main",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SLOSpec(_Strict):
    """One stage kind's SLO. TTFT is absolute (`ttft_ms`) or a slowdown of zero-load prefill.

    ttft_min_ms: floor on a slowdown TTFT. A 20-token prompt prefills in ~a few ms at zero load, so
    5× that is below one decode iteration (~10–30 ms) and no scheduler could meet it while other
    requests run; 50 ms ≈ two iterations keeps tiny-prompt deadlines meaningful, not absurd.
    """

    ttft_ms: float | None = Field(default=None, gt=0)
    ttft_slowdown: float | None = Field(default=None, gt=0)
    ttft_min_ms: float = Field(default=50.0, ge=0)
    tpot_ms: float = Field(gt=0)

    @model_validator(mode="after")
    def _one_ttft(self) -> SLOSpec:
        if (self.ttft_ms is None) == (self.ttft_slowdown is None):
            raise ValueError("give exactly one of ttft_ms (absolute) or ttft_slowdown (× zero-load prefill time)")
        return self

    def describe(self) -> str:
        ttft = f"{self.ttft_ms:g} ms" if self.ttft_ms is not None else \
            f"{self.ttft_slowdown:g}× prefill (≥{self.ttft_min_ms:g} ms)"
        return f"TTFT {ttft}, TPOT {self.tpot_ms:g} ms"


class LengthSpec(_Strict):
    """Where lengths come from: a shipped trace by short name, a local file, or a Hugging Face dataset
    (``dataset``: a hub id read from the local cache, or a folder written by ``Dataset.save_to_disk``),
    with a column map. Field reference: docs/workloads.md."""

    trace: str | None = None
    path: str | None = None
    dataset: str | None = None
    split: str = Field(default="train", min_length=1)
    prompt_tokens_column: str | None = None
    output_tokens_column: str | None = None
    answer_tokens_column: str | None = None
    text_column: str | None = None
    tokenizer: str | None = None
    output_tokens: int | None = Field(default=None, gt=0)
    max_context: int = Field(default=8192, gt=1)
    # A column of per-row block hashes (Mooncake's ``hash_ids``): requests share the leading blocks whose
    # hashes are equal, each block standing for ``prefix_block_tokens`` prompt tokens (Mooncake: 512).
    hash_column: str | None = None
    prefix_block_tokens: int = Field(default=512, gt=0)

    @field_validator("trace")
    @classmethod
    def _known_trace(cls, v: str | None) -> str | None:
        # A field validator (not the model one below) so the error names `lengths.trace`.
        if v is not None and v not in SHIPPED_TRACES:
            raise ValueError(f"unknown trace '{v}'; known: {', '.join(sorted(SHIPPED_TRACES))} "
                             "(or use path: for a local file)")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> LengthSpec:
        if sum(v is not None for v in (self.trace, self.path, self.dataset)) != 1:
            raise ValueError("give exactly one of trace (a shipped name), path (a local file) or dataset "
                             "(a Hugging Face dataset id or save_to_disk folder)")
        if self.hash_column is not None and self.trace is not None:
            raise ValueError("hash_column needs a file (path:) or dataset (dataset:); shipped traces have no hashes")
        return self

    def describe(self) -> str:
        if self.dataset is not None:  # a hub id as given; a save_to_disk folder (made absolute) by its name
            return Path(self.dataset).name if Path(self.dataset).is_absolute() else self.dataset
        return self.trace or Path(self.path or "").name


class ToolSpec(_Strict):
    """Tool execution between agent rounds (client-side gap). An assumption, not measured data:
    ToolBench logs no latencies; RapidAPI calls typically take ~0.3–2 s, so exponential mean 1 s."""

    gap_dist: Literal["exponential", "constant"] = "exponential"
    gap_mean_s: float = Field(default=1.0, ge=0)
    max_rounds: int | None = Field(default=None, gt=0)


class SessionSpec(_Strict):
    """Multi-turn conversations (`generate`): turn k's prompt is the whole conversation so far (system prompt,
    earlier user messages and answers) plus a new user message, sent as its own request, so consecutive turns
    share a growing prefix and sessions share their system prompt. The first user message and every answer
    take the app's length rows; later user messages and the think times are ASSUMPTIONS (exponential with the
    given means): no public trace pairs chat turns with their lengths and times."""

    turns_mean: float = Field(default=4.0, ge=1)  # turns per session: Geometric on 1, 2, …, this mean
    max_turns: int = Field(default=12, gt=0)
    think_mean_s: float = Field(default=20.0, ge=0)  # between one turn's send and the next's (reading + typing;
    # open loop: a turn is sent on schedule whether or not the previous answer is complete)
    user_tokens_mean: float = Field(default=150.0, gt=0)  # later turns' new user message
    system_prompts: int = Field(default=4, ge=0)  # distinct system prompts shared across sessions (0: none)
    system_prompt_tokens: int = Field(default=1024, ge=0)


class AppSpec(_Strict):
    """One application in the mix: its lengths, SLO tier and (tool calling) round structure."""

    name: AppName
    tier: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    lengths: LengthSpec
    slo: dict[str, SLOSpec]
    tools: ToolSpec | None = None
    sessions: SessionSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> AppSpec:
        need = STAGE_KINDS.get(self.name, DEFAULT_KINDS)
        missing = [k for k in need if k not in self.slo]
        extra = [k for k in self.slo if k not in need]
        if missing or extra:
            raise ValueError(f"app '{self.name}' needs slo keys {list(need)} (missing {missing}, unexpected {extra})")
        if self.name == "toolcalling" and self.lengths.trace not in (None, "toolbench_rounds"):
            raise ValueError("toolcalling needs multi-round lengths: use lengths.trace: toolbench_rounds")
        if self.name == "reasoning" and self.lengths.trace not in (None, "s1k_reasoning") \
                and self.lengths.answer_tokens_column is None:
            raise ValueError("reasoning needs think+answer lengths: use trace s1k_reasoning or answer_tokens_column")
        if self.sessions is not None and self.name in STAGE_KINDS:
            raise ValueError(f"sessions make single-stage turns; app '{self.name}' has stages {STAGE_KINDS[self.name]}")
        if self.sessions is not None and self.lengths.hash_column is not None:
            raise ValueError("sessions derive their own prefix hashes: drop lengths.hash_column")
        return self


class ArrivalSpec(_Strict):
    """Arrival process. poisson; gamma (cv); bursts (Poisson bursts of Geometric size, as
    SLOs-Serve); trace (replay a trace's timestamps, by default time-scaled to the target rate).

    Trace-only options (docs/workloads.md says when to use each):
    timestamp_unit: unit of a numeric timestamp column (datetimes carry their own).
    jitter_s: de-quantisation. A trace logged in ticks (3 s, 1 s) stamps every request of a tick with
    the same time, and replaying those ties sends each tick's requests as one burst at any rate. Each
    arrival gets a seeded uniform offset in [0, jitter_s) before scaling, i.e. spread over its tick;
    ``auto`` takes the tick as the smallest positive gap between the trace's distinct times.
    rate: ``scaled`` (default) time-scales the replayed window to the run's rate; ``native`` replays at
    the recorded rate (the run's rate is then the trace's; a rate given as well is refused).
    scale: how a scaled replay reaches the target rate: ``time`` compresses or stretches time (bursts
    keep their shape in requests, not in seconds); ``thin`` keeps real time and drops each request
    with probability 1 − target/native (only for targets at or below the trace's native rate).
    """

    process: Literal["poisson", "gamma", "bursts", "trace"] = "poisson"
    cv: float | None = Field(default=None, gt=0)
    mean_burst_size: float = Field(default=8.0, ge=1)
    burst_spread_s: float = Field(default=0.0, ge=0)
    trace: str | None = None
    timestamp_column: str = "TIMESTAMP"
    timestamp_unit: Literal["s", "ms", "us"] = "s"
    random_start: bool = True
    jitter_s: float | Literal["auto"] | None = None
    rate: Literal["scaled", "native"] = "scaled"
    scale: Literal["time", "thin"] = "time"

    @field_validator("jitter_s")
    @classmethod
    def _jitter(cls, v: float | str | None) -> float | str | None:
        # A field validator so the error names `arrival.jitter_s`.
        if isinstance(v, float | int) and not (v >= 0 and v < float("inf")):
            raise ValueError("jitter_s must be a finite number of seconds ≥ 0 (the trace's tick), or auto")
        return v

    @model_validator(mode="after")
    def _check(self) -> ArrivalSpec:
        # Non-default values only: a spec written back by `to_yaml` carries every default explicitly.
        defaults = {"jitter_s": None, "rate": "scaled", "scale": "time", "timestamp_unit": "s"}
        trace_only = [f for f, d in defaults.items() if getattr(self, f) != d]
        if self.process != "trace" and trace_only:
            raise ValueError(f"{', '.join(trace_only)} only apply to process: trace (replaying a trace's "
                             "timestamps); remove them or set process: trace")
        if self.rate == "native" and self.scale == "thin":
            raise ValueError("scale: thin thins the trace down to a target rate, but rate: native has none "
                             "(every request is kept); use one of them")
        if self.process == "gamma" and self.cv is None:
            raise ValueError("process gamma needs cv (e.g. cv: 4 for bursty, 1 = Poisson)")
        if self.process == "trace" and self.trace is None:
            raise ValueError("process trace needs trace: a shipped name (azure_code, azure_conv) or a file path")
        if self.process == "trace" and self.trace in SHIPPED_TRACES and SHIPPED_TRACES[self.trace][3] is None:
            raise ValueError(f"trace '{self.trace}' has no timestamps; use azure_code or azure_conv")
        return self

    def describe(self) -> str:
        if self.process == "gamma":
            return f"gamma cv={self.cv:g}"
        if self.process == "bursts":
            return f"bursts (mean size {self.mean_burst_size:g})"
        if self.process == "trace":
            opts = [o for o, on in (("native rate", self.rate == "native"), ("thinned", self.scale == "thin"),
                                    (f"jitter {self.jitter_s}", self.jitter_s is not None)) if on]
            return f"trace {Path(self.trace or '').name}" + (f" ({', '.join(opts)})" if opts else "")
        return "poisson"


class WorkloadSpec(_Strict):
    """A whole workload YAML."""

    name: str = Field(min_length=1)
    description: str = ""
    apps: list[AppSpec] = Field(min_length=1)
    arrival: ArrivalSpec = Field(default_factory=ArrivalSpec)
    rate_rps: float = Field(default=2.0, gt=0)
    num_requests: int | None = Field(default=1000, gt=0)
    duration_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _sessions_alone(self) -> WorkloadSpec:
        if any(a.sessions is not None for a in self.apps):
            if len(self.apps) > 1:
                raise ValueError("an app with sessions must be the only app of its workload")
            if self.arrival.process == "trace":
                raise ValueError("sessions start by a poisson, gamma or bursts process, not a trace replay")
        return self

    def to_yaml(self, path: Path) -> None:
        """Write the spec atomically (user paths are absolute already, so it loads from anywhere)."""
        from slobench.report.results import atomic_target  # a lower layer; heavy (pandas), so only here

        with atomic_target(path) as tmp:
            tmp.write_text(yaml.safe_dump(self.model_dump(exclude_none=True), sort_keys=False))


def list_specs() -> list[str]:
    """Names of the shipped specs (the top-level ``workloads/`` folder, or its packaged copy)."""
    names = sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))
    if not names:  # a broken install; without this every name would be "unknown workload"
        raise UserError(f"no shipped workload specs in {SPEC_DIR}; reinstall slobench (pip install slobench)")
    return names


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise UserError(f"{p}: workload file not found; give a shipped name ({', '.join(list_specs())}) "
                            "or an existing YAML path")
        return p
    shipped = SPEC_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    raise UserError(f"unknown workload '{name_or_path}'; known: {', '.join(list_specs())} (or a path to a YAML file)")


_FIXES = {
    "extra_forbidden": "unknown field: remove it or fix its spelling",
    "missing": "required field: add it",
    "greater_than": "value too small: use a positive number",
    "greater_than_equal": "value too small",
    "literal_error": "not an allowed value",
}


def _did_you_mean(key: object) -> str | None:
    """The spec field closest to a misspelt key (``rate_rsp`` → ``rate_rps``), if any is close."""
    fields = {f for m in (WorkloadSpec, AppSpec, LengthSpec, SLOSpec, ToolSpec, ArrivalSpec) for f in m.model_fields}
    fields.discard(str(key))  # a field of another section (`rate` is arrival's) is no spelling fix for itself
    close = difflib.get_close_matches(str(key), sorted(fields), n=1, cutoff=0.75)
    return close[0] if close else None


def _format_error(path: Path, exc: ValidationError) -> str:
    # A misspelt key shows up twice (the unknown key and the missing real one): name the typo,
    # which carries the "did you mean" fix, before the consequence.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    fix = _FIXES.get(err["type"], "fix the value")
    if err["type"] == "extra_forbidden" and err["loc"] and (near := _did_you_mean(err["loc"][-1])):
        fix = f"unknown field: did you mean `{near}`?"
    got = f" (got {err['input']!r})" if err["type"] not in ("missing",) and not isinstance(err["input"], dict) else ""
    more = f" [+{len(errors) - 1} more]" if len(errors) > 1 else ""
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: field `{loc}`: {msg}{got} — {fix}{more}"


def parse_spec(raw: Any, path: Path) -> WorkloadSpec:
    """Validate a parsed YAML mapping; resolve relative file paths against the YAML's folder."""
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the file must be a YAML mapping with name, apps, arrival, rate_rps")
    try:
        spec = WorkloadSpec.model_validate(raw)
    except ValidationError as exc:
        raise UserError(_format_error(path, exc)) from None
    base = path.resolve().parent
    for i, app in enumerate(spec.apps):
        ds = app.lengths.dataset
        if ds is not None and (ds.startswith((".", "/", "~")) or (base / ds).is_dir()):
            # A save_to_disk folder (relative to the YAML, like path:); anything else is a hub id.
            p = (base / Path(ds).expanduser()).resolve()
            if not p.is_dir():
                raise UserError(f"{path}: field `apps.{i}.lengths.dataset`: folder {p} not found — give a folder "
                                "written by Dataset.save_to_disk, or a Hugging Face dataset id (org/name)")
            app.lengths.dataset = str(p)
        if app.lengths.path is not None:
            p = (base / app.lengths.path).resolve()
            if not p.exists():
                raise UserError(f"{path}: field `apps.{i}.lengths.path`: file {p} not found — "
                                "give an existing CSV/JSON/JSONL/parquet path (relative to the YAML)")
            app.lengths.path = str(p)
    arr = spec.arrival
    if arr.process == "trace" and arr.trace not in SHIPPED_TRACES:
        p = (base / str(arr.trace)).resolve()
        if not p.exists():
            raise UserError(f"{path}: field `arrival.trace`: file {p} not found — give a shipped trace "
                            "(azure_code, azure_conv) or an existing file with a timestamp column")
        arr.trace = str(p)
    return spec


def load_spec(name_or_path: str | Path) -> WorkloadSpec:
    """A shipped spec by name (``coding``) or any YAML path; raises `UserError` on any problem."""
    if isinstance(name_or_path, WorkloadSpec):
        return name_or_path
    path = _resolve(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}:{where}: YAML syntax error: {problem} — fix the indentation/quoting there") from None
    return parse_spec(raw, path)


def apply_overrides(spec: WorkloadSpec, *, slo_scale: float | None = None,
                    burstiness_cv: float | None = None, time_scale: float | None = None) -> WorkloadSpec:
    """A copy with every SLO target scaled by ``slo_scale`` and/or Gamma arrivals of CV ``burstiness_cv``.

    Used by sweeps ("how does capacity change as SLOs tighten / traffic gets burstier?"). ``time_scale``
    scales only the absolute targets (``tpot_ms``, ``ttft_ms``, ``ttft_min_ms``) and leaves slowdowns alone:
    slowdowns already follow the engine's own speed, absolute milliseconds do not (`--slo-from-profile`).
    """
    new = spec.model_copy(deep=True)
    if time_scale is not None:
        if not time_scale > 0:
            raise UserError(f"time_scale must be > 0 (got {time_scale})")
        _scale_absolute_targets(new, time_scale)
        new.name = f"{new.name}-t{time_scale:.3g}"
    if slo_scale is not None:
        if slo_scale <= 0:
            raise UserError(f"slo_scale must be > 0 (got {slo_scale})")
        _scale_absolute_targets(new, slo_scale)
        for app in new.apps:
            for s in app.slo.values():
                if s.ttft_slowdown is not None:
                    s.ttft_slowdown *= slo_scale
        new.name = f"{new.name}-slo{slo_scale:g}"
    if burstiness_cv is not None:
        if burstiness_cv <= 0:
            raise UserError(f"burstiness_cv must be > 0 (got {burstiness_cv})")
        new.arrival = ArrivalSpec(process="gamma", cv=burstiness_cv)
        new.name = f"{new.name}-cv{burstiness_cv:g}"
    return new


def _scale_absolute_targets(spec: WorkloadSpec, factor: float) -> None:
    """Multiply every app's absolute SLO targets (TPOT, absolute TTFT, the TTFT floor) by ``factor``, in place."""
    for app in spec.apps:
        for s in app.slo.values():
            s.tpot_ms *= factor
            s.ttft_min_ms *= factor
            if s.ttft_ms is not None:
                s.ttft_ms *= factor
