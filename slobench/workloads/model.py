"""The domain model every layer shares: SLO, Stage, Request, Workload.

Plain frozen dataclasses (not pydantic): the simulator touches them millions of times, and they
cross the scheduler boundary as dumb records (see vLLM V1's `sched/output.py`). YAML specs that
*produce* workloads are pydantic models in `spec.py`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class SLO:
    """Latency targets of one stage.

    ttft_s: first output token due this long after the stage's input is available.
    tpot_s: per-token pace; token n (1-based) is due at ``t0 + (n-1)*tpot_s`` where
    ``t0 = max(stage_start + ttft_s, first_token_time)`` (SLOs-Serve's per-token deadlines).
    """

    ttft_s: float
    tpot_s: float


@dataclass(frozen=True, slots=True)
class Stage:
    """One prefill-then-decode step of a request.

    prompt_tokens: *new* input tokens this stage appends to the context (a tool result, the user
    prompt); 0 for a continuation stage such as reasoning's "answer" after "think".
    output_tokens: tokens generated in this stage.
    gap_s: client-side pause between the previous stage's last token and this stage's input
    (tool execution time); 0 for the first stage and for continuations.
    """

    prompt_tokens: int
    output_tokens: int
    slo: SLO
    gap_s: float = 0.0
    name: str = "main"

    @property
    def is_continuation(self) -> bool:
        """A stage that adds no input and starts right away (reasoning's answer after think)."""
        return self.prompt_tokens == 0 and self.gap_s == 0.0


@dataclass(frozen=True, slots=True)
class Request:
    """One client request: a chain of stages sharing one growing context.

    prefix_blocks: hashes of the leading blocks of the first stage's prompt, each standing for
    ``prefix_block_tokens`` tokens (the last one may cover a partial block), as Mooncake's ``hash_ids``.
    Two requests share the leading blocks whose hashes are equal (a hash names the whole prefix up to
    and including its block), so a replica that computed them may skip them (cross-request prefix
    caching, `slobench.engines.sim`). Empty: the prompt shares nothing with other requests.
    """

    id: int
    arrival_s: float
    app: str
    tier: str
    stages: tuple[Stage, ...]
    text: str | None = None
    prefix_blocks: tuple[int, ...] = ()
    prefix_block_tokens: int = 512

    @property
    def total_prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.stages)

    @property
    def total_output_tokens(self) -> int:
        return sum(s.output_tokens for s in self.stages)

    @property
    def max_context_tokens(self) -> int:
        return self.total_prompt_tokens + self.total_output_tokens


@dataclass(slots=True)
class Workload:
    """A seeded, reproducible request stream plus the spec that produced it."""

    name: str
    requests: list[Request]
    spec: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def duration_s(self) -> float:
        return self.requests[-1].arrival_s if self.requests else 0.0

    def to_json(self) -> str:
        return json.dumps(
            {"name": self.name, "seed": self.seed, "spec": self.spec,
             "requests": [asdict(r) for r in self.requests]}
        )

    @classmethod
    def from_json(cls, text: str) -> Workload:
        raw = json.loads(text)
        reqs = [
            Request(
                id=r["id"], arrival_s=r["arrival_s"], app=r["app"], tier=r["tier"], text=r.get("text"),
                prefix_blocks=tuple(r.get("prefix_blocks", ())), prefix_block_tokens=r.get("prefix_block_tokens", 512),
                stages=tuple(
                    Stage(prompt_tokens=s["prompt_tokens"], output_tokens=s["output_tokens"],
                          slo=SLO(**s["slo"]), gap_s=s["gap_s"], name=s["name"])
                    for s in r["stages"]
                ),
            )
            for r in raw["requests"]
        ]
        return cls(name=raw["name"], requests=reqs, spec=raw.get("spec", {}), seed=raw.get("seed", 0))

    def save(self, path: Path) -> None:
        path.write_text(self.to_json())
