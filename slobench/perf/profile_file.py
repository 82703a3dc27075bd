"""Calibrated latency profiles as YAML files: what `slobench calibrate` writes and ``--profile FILE.yaml`` reads.

A profile file is the whole answer to "how fast is this engine on this machine?", kept with how it was
measured, so a simulated capacity can always say what it rests on:

```yaml
slobench_profile: 1                 # format version
name: tiny-llama-cpu
latency:                            # T = max_i(k1_i·n + k2_i·s + b_i) + per_seq_s·seqs + per_context_token_s·Σctx
  kind: piecewise                   # n = Σ tokens of the batch, s = speculation depth
  pieces: [[3.1e-05, 0.0, 0.0042]]  # (k1 s/token, k2 s/speculation step, b s); 1 or 2 pieces
  per_seq_s: 0.0                    # optional, default 0 (the paper's form)
  per_context_token_s: 0.0
kv_capacity_tokens: 65536           # KV-cache tokens of one replica (vLLM's own count at start-up)
frontend:                           # per-request cost outside engine iterations (HTTP, tokenise, API hop)
  constant_s: 0.012
  per_prompt_token_s: 2.0e-06
  per_output_token_s: 0.0
fit:                                # quality on points held back from the fit
  r2: 0.97
  r2_train: 0.98
  n_train: 120
  n_holdout: 30
  abs_error_pct: {p50: 4.1, p90: 11.0, max: 25.2}
  bias_pct: {prefill: 3.0, decode: -1.2, mixed: 0.4}
  repeat_noise_pct: 2.5               # repeated identical batches: the measurement's own noise
environment:
  hardware: cpu
  engine: vllm
  engine_version: 0.32.0
  model: /path/to/model
  options: {max_num_batched_tokens: 2048}
  date: "2026-12-01T14:10:00Z"
  measured: iterations              # iterations (inside the engine) | client (what an OpenAI client sees)
```

A profile measured against an OpenAI endpoint (``slobench calibrate --engine openai --url URL``) cannot see
iterations, so it has no ``latency`` and no ``kv_capacity_tokens``; it holds what the client saw instead:

```yaml
client:
  source: client-visible (openai endpoint; iterations not observable)
  ttft: {intercept_s: 0.051, slope_s: 2.0e-06, r2: 0.98, n: 10}   # zero-load TTFT = a + b·prompt_tokens
  itl: {intercept_s: 0.019, slope_s: 0.0004, r2: 0.95, n: 5}      # inter-token latency = d + e·concurrency
  ttft_points: [[16, 0.0512], [16, 0.0509], …]                     # (prompt tokens, TTFT s), each measured
  itl_points: [[1, 0.0201], [2, 0.0203], …]                        # (requests in flight, median ITL s)
environment: {…, engine: openai, measured: client}
```

Such a profile is the record of what was measured and the decode step SLOs can be scaled by
(`slo_decode_step_s`: ITL at concurrency 1); it cannot drive the simulator's per-iteration model (which needs
batch shapes the endpoint hides), so ``--profile`` refuses it in one line (`to_model`).

Only the piecewise-linear form is stored: it is what `slobench.perf.fit.fit_piecewise` produces and what the
SLOs-Serve planner inverts (`max_tokens_within`); the roofline form needs a GPU spec, which a CPU has not.
The front-end cost is charged by the simulator (`slobench.engines.sim`): a request reaches the engine
``constant_s + per_prompt_token_s·prompt`` after the client sent it, and each token reaches the client
``per_output_token_s`` after the engine emitted it; shipped ``paper:`` profiles have none.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slobench.errors import UserError
from slobench.perf.profiles import PiecewiseLinearModel
from slobench.yaml_files import load_yaml_model

FORMAT_VERSION = 1
PROFILE_SUFFIXES = (".yaml", ".yml")
CLIENT_VISIBLE_SOURCE = "client-visible (openai endpoint; iterations not observable)"


def _finite_nonneg(v: float) -> float:
    if not (math.isfinite(v) and v >= 0):
        raise ValueError("must be a finite number ≥ 0 (seconds)")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatencySection(_Strict):
    """The fitted iteration-latency model."""

    kind: Literal["piecewise"] = "piecewise"
    pieces: list[tuple[float, float, float]] = Field(min_length=1, max_length=2)
    per_seq_s: float = 0.0  # + per_seq_s × sequences in the batch (outside the max)
    per_context_token_s: float = 0.0  # + per_context_token_s × Σ cached context tokens of the batch

    @field_validator("per_seq_s", "per_context_token_s")
    @classmethod
    def _extra_nonneg(cls, v: float) -> float:
        return _finite_nonneg(v)

    @field_validator("pieces")
    @classmethod
    def _coefficients(cls, v: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
        for i, piece in enumerate(v):
            for name, x in zip(("k1", "k2", "b"), piece, strict=True):
                if not (math.isfinite(x) and x >= 0):
                    raise ValueError(f"piece {i} {name} must be a finite number ≥ 0 (got {x}); "
                                     "give [k1 s/token, k2 s/spec-step, b s]")
        return v


class FrontendCost(_Strict):
    """Seconds a request spends outside engine iterations: in before its prefill, out after each token."""

    constant_s: float = 0.0
    per_prompt_token_s: float = 0.0
    per_output_token_s: float = 0.0

    @field_validator("constant_s", "per_prompt_token_s", "per_output_token_s")
    @classmethod
    def _nonneg(cls, v: float) -> float:
        return _finite_nonneg(v)

    def ingress_s(self, prompt_tokens: int) -> float:
        """Client send → engine arrival for a prompt of this length."""
        return self.constant_s + self.per_prompt_token_s * prompt_tokens

    @property
    def is_zero(self) -> bool:
        return self.constant_s == 0 and self.per_prompt_token_s == 0 and self.per_output_token_s == 0


class ErrorPercentiles(_Strict):
    p50: float = Field(ge=0)
    p90: float = Field(ge=0)
    max: float = Field(ge=0)


class FitSection(_Strict):
    """How well the latency model predicts iterations it was not fitted on."""

    r2: float = Field(description="R² on the held-back iterations")
    r2_train: float | None = None
    n_train: int = Field(ge=0)
    n_holdout: int = Field(ge=0)
    abs_error_pct: ErrorPercentiles = Field(description="|predicted/measured − 1| in %, held-back iterations")
    bias_pct: dict[str, float] = Field(
        default_factory=dict, description="median (predicted/measured − 1) in % per iteration kind (prefill, "
        "decode, mixed), all iterations: which part of the model is off, and in which direction")
    repeat_noise_pct: float | None = Field(
        default=None, description="median |measured/median − 1| in % over repeated identical batches: the "
        "run-to-run noise, a floor under any model's error")
    frontend_r2: float | None = None


class EnvironmentSection(_Strict):
    """Where and how the profile was measured."""

    hardware: str = Field(min_length=1)
    engine: str = Field(min_length=1)
    engine_version: str = ""
    model: str = ""
    options: dict[str, object] = Field(default_factory=dict)
    date: str = ""
    measured: Literal["iterations", "client"] = "iterations"
    notes: list[str] = Field(default_factory=list)


class LinearFit(_Strict):
    """``y = intercept_s + slope_s·x`` fitted by non-negative least squares over ``n`` measured points."""

    intercept_s: float
    slope_s: float  # seconds per unit of x (prompt token, request in flight)
    r2: float | None = None  # None: fewer than 3 distinct x, nothing to judge the line on
    n: int = Field(ge=0)

    @field_validator("intercept_s", "slope_s")
    @classmethod
    def _nonneg(cls, v: float) -> float:
        return _finite_nonneg(v)

    def at(self, x: float) -> float:
        return self.intercept_s + self.slope_s * x


class ClientVisibleSection(_Strict):
    """What a client of an OpenAI endpoint can measure: zero-load TTFT against prompt length and inter-token
    latency against concurrency. The endpoint's iterations (batch shapes and their times) stay hidden."""

    source: str = CLIENT_VISIBLE_SOURCE
    ttft: LinearFit  # zero-load TTFT (s) against prompt tokens
    itl: LinearFit  # median inter-token latency (s) against requests in flight
    ttft_points: list[tuple[int, float]] = Field(default_factory=list)  # (prompt tokens, TTFT s) per request
    itl_points: list[tuple[int, float]] = Field(default_factory=list)  # (requests in flight, median ITL s)


class ProfileFile(_Strict):
    """The file, validated; every field documented in the module docstring.

    An iteration profile (``environment.measured: iterations``) has ``latency`` and ``kv_capacity_tokens``; a
    client-visible one (``measured: client``) has ``client`` instead, since the client never sees iterations.
    """

    slobench_profile: int = FORMAT_VERSION
    name: str = Field(min_length=1)
    latency: LatencySection | None = None
    kv_capacity_tokens: int | None = Field(default=None, gt=0)
    frontend: FrontendCost = Field(default_factory=FrontendCost)
    fit: FitSection | None = None
    client: ClientVisibleSection | None = None
    environment: EnvironmentSection

    @model_validator(mode="after")
    def _what_was_measured(self) -> ProfileFile:
        if self.environment.measured == "client":
            if self.client is None:
                raise ValueError("environment.measured is client but the client section is missing")
        elif missing := [n for n in ("latency", "kv_capacity_tokens") if getattr(self, n) is None]:
            raise ValueError(f"{' and '.join(missing)}: required in a profile measured from iterations "
                             "(environment.measured: iterations); a client-visible profile says "
                             "environment.measured: client")
        return self

    @property
    def client_visible(self) -> bool:
        """Measured from outside an OpenAI endpoint: no iteration model, cannot drive the simulator."""
        return self.environment.measured == "client"

    @field_validator("slobench_profile")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != FORMAT_VERSION:
            raise ValueError(f"this slobench reads profile format {FORMAT_VERSION} (got {v}); re-run calibrate")
        return v


def is_profile_path(profile: str) -> bool:
    """``--profile`` names a file (ends in .yaml/.yml or contains a path separator), not a shipped name."""
    return profile.lower().endswith(PROFILE_SUFFIXES) or os.sep in profile


def load_profile_file(path: str | Path) -> ProfileFile:
    """The validated profile; a missing file, bad YAML or bad field is one `UserError` line naming it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"--profile {path}: file not found; give a profile written by `slobench calibrate --out "
                        "FILE.yaml` or a shipped name (paper:...)")
    try:
        return load_yaml_model(p, ProfileFile)
    except UserError as exc:
        raise UserError(f"--profile {exc}; see docs/calibration.md for the format") from None


def to_model(prof: ProfileFile, source: str = "") -> PiecewiseLinearModel:
    """The simulator's latency model for a profile, with ``frontend`` and ``hardware_label`` attached.

    A client-visible profile is refused in one line: its fits (TTFT against prompt length, ITL against
    concurrency) mix the endpoint's iterations with its front end and its scheduler, and the simulator needs the
    time of each batch shape, which no client can see.
    """
    if prof.client_visible or prof.latency is None or prof.kv_capacity_tokens is None:
        raise UserError(f"--profile {source or prof.name}: a {CLIENT_VISIBLE_SOURCE} profile cannot drive the "
                        "simulator's per-iteration model; it records what the endpoint's clients see (docs/"
                        "calibration.md \"OpenAI endpoints\"); for the simulator calibrate with --engine vllm")
    lat = prof.latency
    model = PiecewiseLinearModel(lat.pieces, prof.kv_capacity_tokens, name=prof.name, per_seq_s=lat.per_seq_s,
                                 per_ctx_token_s=lat.per_context_token_s)
    model.frontend = prof.frontend  # read by the simulator
    model.hardware_label = prof.environment.hardware  # the run's hardware label
    model.source = source
    return model


def slo_decode_step_s(prof: ProfileFile) -> float:
    """The engine's unit of TPOT for `slobench.perf.profiles.slo_time_scale`: one lone decode step at the
    reference context for an iteration profile; for a client-visible one the inter-token latency at concurrency
    1, the closest thing a client sees (it includes the front end's per-token cost)."""
    if prof.client is not None and prof.client_visible:
        return prof.client.itl.at(1)
    from slobench.perf.profiles import decode_step_s

    return decode_step_s(to_model(prof))


def model_from_file(path: str | Path) -> PiecewiseLinearModel:
    """``--profile FILE.yaml`` → latency model (see `to_model`)."""
    return to_model(load_profile_file(path), str(path))


def write_profile_file(prof: ProfileFile, path: str | Path) -> Path:
    """Write atomically (temp file in the same folder, then rename): an interrupted write leaves the old file."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    # Each kind of profile writes only its own sections: an iteration profile no empty ``client``, a
    # client-visible one no empty iteration model.
    skip = {"client"} if prof.client is None else {"latency", "kv_capacity_tokens", "frontend", "fit"}
    text = yaml.safe_dump(prof.model_dump(mode="json", exclude=skip), sort_keys=False, default_flow_style=None,
                          width=110)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
