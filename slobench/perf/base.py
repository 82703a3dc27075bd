"""The one question every scheduler and the simulator ask the performance model.

"How long does this iteration take?" for a batch given as two integer arrays: ``q_lens[i]``
tokens processed for sequence i this iteration (a prefill chunk, or 1 + draft tokens for a
speculative verify), ``ctx_lens[i]`` tokens of sequence i already in the KV cache before it.
``spec_steps`` is the number of draft-model steps run before the verify pass (0 = no speculation).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class LatencyModel(Protocol):
    """Predicts one iteration's latency on one replica (seconds)."""

    name: str

    def batch_latency_s(self, q_lens: np.ndarray, ctx_lens: np.ndarray, spec_steps: int = 0) -> float:
        ...

    def kv_capacity_tokens(self) -> int:
        """How many tokens of KV cache fit on the replica (after weights and activation reserve)."""
        ...

    def prefill_latency_s(self, prompt_tokens: int) -> float:
        """Zero-load latency of prefilling one prompt in one iteration (used for TTFT slowdown SLOs)."""
        ...
