"""Shared test doubles. HF_HUB_OFFLINE keeps `datasets` from ever touching the network."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


class LinearLatency:
    """t = base + per_token·Σq + per_ctx·Σctx: a tiny, exact LatencyModel for engine/scheduler tests."""

    name = "linear-test"

    def __init__(self, base_s: float = 0.01, per_token_s: float = 5e-5, per_ctx_s: float = 0.0,
                 kv_tokens: int = 1_000_000) -> None:
        self.base_s, self.per_token_s, self.per_ctx_s, self.kv_tokens = base_s, per_token_s, per_ctx_s, kv_tokens

    def batch_latency_s(self, q_lens, ctx_lens, spec_steps: int = 0) -> float:
        return self.base_s + self.per_token_s * float(np.sum(q_lens)) + self.per_ctx_s * float(np.sum(ctx_lens))

    def kv_capacity_tokens(self) -> int:
        return self.kv_tokens

    def prefill_latency_s(self, prompt_tokens: int) -> float:
        return self.batch_latency_s(np.array([prompt_tokens]), np.array([0]))


@pytest.fixture
def linear_perf() -> LinearLatency:
    return LinearLatency()

