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


def zero_load_ttft_s(perf: LatencyModel, prompt_tokens: int) -> float:
    """TTFT a client sees for one prompt sent alone: the engine's prefill plus, for a calibrated profile, its
    front-end cost (ingress before the prefill, egress of the first token after it).

    Why the front-end belongs here: slowdown TTFT targets (SLOs-Serve's "5× zero-load prefill") are meant to be
    a multiple of the fastest TTFT the serving path can give. On a GPU the prefill dominates; on vLLM's CPU
    build a tiny model prefills in milliseconds while HTTP, JSON and the API-server hop cost 15–30 ms
    (docs/calibration.md), so a target built from the prefill alone could never be met even at zero load.
    Models without a ``frontend`` (roofline, shipped ``paper:`` profiles) give their prefill time unchanged.
    """
    prefill = float(perf.prefill_latency_s(prompt_tokens))
    fe = getattr(perf, "frontend", None)
    if fe is None:
        return prefill
    return float(fe.ingress_s(prompt_tokens)) + prefill + float(fe.per_output_token_s)


def describe_zero_load(perf: LatencyModel) -> str:
    """Which latency model slowdown targets were derived from, in words (the setup table of every report)."""
    name = getattr(perf, "name", "") or type(perf).__name__
    source = getattr(perf, "source", None)
    if source:
        name = f"{name} ({source})"
    fe = getattr(perf, "frontend", None)
    if fe is None or fe.is_zero:
        return f"zero-load prefill of {name} (no front-end cost modelled)"
    return (f"zero-load client TTFT of {name}: prefill + front-end {fe.constant_s * 1e3:.3g} ms + "
            f"{fe.per_prompt_token_s * 1e6:.3g} µs/prompt token + {fe.per_output_token_s * 1e3:.3g} ms/token out")
