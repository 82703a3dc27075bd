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


@pytest.fixture(autouse=True)
def _no_png_export(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """No PNG export (kaleido starts Chromium: seconds per report) outside the tests of PNG export itself, which
    carry ``@pytest.mark.png`` (tests/test_report*.py); every other report is written as HTML, with the one-line
    "PNG figures skipped" notice. Many modules used to do this one by one; some (README example, real-vLLM
    compare) paid for Chromium on every run."""
    if request.node.get_closest_marker("png") is not None:
        return
    import slobench.report.html as html

    monkeypatch.setattr(html, "png_support", lambda: "PNG figures skipped: disabled in tests")


@pytest.fixture
def linear_perf() -> LinearLatency:
    return LinearLatency()



# --- real vLLM: one pool of servers for the whole session ----------------------------------------------------


@pytest.fixture(scope="session")
def vllm_pool(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - EnginePool (vllm imported lazily)
    """The process-wide engine pool, holding up to 3 real vLLM servers on the tiny model for the whole session.

    Every real-engine test asks it (or the CLI, through the same pool) for `shared_server_spec(tiny, policy)`,
    so the stock and the adapter server start once per session whichever modules use them (a vLLM start is
    ≈ 25–60 s on a 2-core machine). Skips the caller without vllm (fails under SLOBENCH_REQUIRE_VLLM=1). At the
    end of the session no server may be left running."""
    from slobench.testing.kit import require_vllm_or_skip

    require_vllm_or_skip()
    from slobench.engines.vllm.pool import get_pool

    pool = get_pool()
    old = pool.max_servers, pool.log_dir
    pool.max_servers, pool.log_dir = 3, tmp_path_factory.mktemp("engine-logs")
    yield pool
    left = pool.stop_all()
    pool.max_servers, pool.log_dir = old
    assert left == [], f"vLLM server processes left after the session: {left}"


@pytest.fixture(scope="session")
def tiny_server(vllm_pool):  # noqa: ANN001, ANN201 - (policy: str | None) -> VLLMServer
    """``tiny_server(policy)``: the session's running server for the tiny model (``None``: stock vLLM), started
    on first use with exactly the spec `slobench run/compare --engine vllm --model <tiny>` builds."""
    from slobench.testing.kit import shared_server_spec, tiny_model_dir

    def acquire(policy: str | None):  # noqa: ANN202
        return vllm_pool.acquire(shared_server_spec(tiny_model_dir(), policy), cpu_build=True)

    return acquire
