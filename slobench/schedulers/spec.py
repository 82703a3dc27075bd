"""`PolicySpec`: which scheduling policy a run uses, with its options, given once for every engine.

The simulator builds the policy from it in-process; the vLLM launcher hands the same spec to the
adapter inside vLLM's engine core (one JSON environment variable), which builds it through the same
registry function (`slobench.schedulers.registry.make_policy`). So an option given once reaches the
policy wherever it runs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slobench.schedulers.base import SpecConfig


class DraftModel(BaseModel):
    """Speculative decoding with a draft model: up to ``max_draft`` drafts per verify step, each
    accepted with probability ``alpha`` in turn.

    Simulator: the engine simulates the drafts (acceptance sampled with ``alpha``, seeded) and the
    policy plans with them. vLLM: the drafts are vLLM's own (``--engine-arg speculative_config=…``,
    whose ``num_speculative_tokens`` is the real maximum); ``alpha`` is the acceptance rate the policy
    assumes when it plans, and ``max_draft`` is not used.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(description="acceptance rate of one draft token, in (0, 1)")
    max_draft: int = Field(default=4, description="most draft tokens per verify step (simulator)")

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError("must be in (0, 1)")
        return v

    @field_validator("max_draft")
    @classmethod
    def _max_draft(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be ≥ 1")
        return v

    def spec_config(self, max_draft: int | None = None) -> SpecConfig:
        """The engine-side record (`SchedulerView.spec`); ``max_draft`` overrides (vLLM's real k)."""
        return SpecConfig(max_draft=self.max_draft if max_draft is None else max_draft, alpha=self.alpha)


class PolicySpec(BaseModel):
    """A scheduling policy: a registry name (``slos-serve``, ``vllm``, …) or ``package.module:Class``
    (also ``package.module.Class``) of a policy of your own, the keyword options it is built with,
    the draft model it may speculate with (None: no speculation), and whether it knows output lengths
    (``oracle_lengths``; default False: engines give it the public request and a length predictor,
    `slobench.schedulers.lengths`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="vllm", description="registry name or package.module:Class")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the policy")
    draft: DraftModel | None = None
    oracle_lengths: bool = Field(
        default=False, strict=True,
        description="the paper's assumption: the policy knows every request's true output lengths "
                    "(default: it sees the max_tokens bound and an online length predictor)")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data  # "slos-serve" is a whole spec

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a policy, e.g. slos-serve or package.module:Class")
        return v.strip()

    @property
    def is_import_path(self) -> bool:
        """True for ``package.module:Class`` / ``package.module.Class`` (registry names have no dots)."""
        return ":" in self.name or "." in self.name
