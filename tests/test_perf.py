"""slobench.perf: roofline physics, paper profiles, fitting, speculative arithmetic, input errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from slobench.errors import UserError
from slobench.perf import (
    LatencyModel,
    RooflineModel,
    get_gpu,
    get_latency_model,
    get_model,
    list_gpus,
    list_models,
    list_profiles,
    load_hf_config,
)
from slobench.perf.fit import fit_piecewise, fit_roofline
from slobench.perf.profiles import PiecewiseLinearModel, get_profile
from slobench.perf.speculative import expected_tokens, sample_accepted


@pytest.fixture(scope="module")
def h100_8b() -> RooflineModel:
    m = get_latency_model("H100-SXM", "Llama-3.1-8B")
    assert isinstance(m, RooflineModel)
    return m


def _decode(m: LatencyModel, batch: int, ctx: int) -> float:
    return m.batch_latency_s(np.ones(batch, dtype=np.int64), np.full(batch, ctx, dtype=np.int64))


def test_protocol_and_tables() -> None:
    assert {"A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H200", "L40S", "MI300X"} <= set(list_gpus())
    assert {"Llama-3.1-8B", "Llama-3.1-70B", "Qwen2.5-7B", "Qwen2.5-32B", "OPT-6.7B", "OPT-13B", "OPT-30B",
            "ToolLlama-2-7B", "DeepSeek-R1-Distill-Qwen-7B"} <= set(list_models())
    assert get_gpu("h100").name == "H100-SXM" and get_gpu("a100-40gb").name == "A100-40GB"
    assert get_model("meta-llama/Llama-3.1-8B").name == "Llama-3.1-8B"
    for p in list_profiles():
        assert isinstance(get_latency_model(profile=p), LatencyModel)
    assert isinstance(get_latency_model(), LatencyModel)


def test_sanity_numbers_llama8b_h100(h100_8b: RooflineModel) -> None:
    # vLLM users report ~10-15 ms ITL for 64 concurrent 1k-context decodes and 55-120 ms TTFT at 2k.
    assert 0.008 <= _decode(h100_8b, 64, 1024) <= 0.015
    assert 0.055 <= h100_8b.prefill_latency_s(2048) <= 0.120
    assert h100_8b.prefill_latency_s(2048) == h100_8b.batch_latency_s(np.array([2048]), np.array([0]))


def test_decode_memory_bound_grows_with_context(h100_8b: RooflineModel) -> None:
    times = [_decode(h100_8b, 64, c) for c in (0, 512, 2048, 8192)]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))
    # Memory-bound: time barely depends on batch size at zero context (weights dominate).
    assert _decode(h100_8b, 32, 0) == pytest.approx(_decode(h100_8b, 1, 0), rel=0.02)


def test_prefill_compute_bound_scales_linearly(h100_8b: RooflineModel) -> None:
    t0 = h100_8b.t0_s
    a = h100_8b.prefill_latency_s(4096) - t0
    b = h100_8b.prefill_latency_s(8192) - t0
    assert 1.9 <= b / a <= 2.3  # ~2×, a bit more from the quadratic attention term


def test_lists_and_arrays_agree(h100_8b: RooflineModel) -> None:
    q, c = [1, 1, 300, 1], [10, 2000, 0, 77]
    assert h100_8b.batch_latency_s(q, c) == pytest.approx(h100_8b.batch_latency_s(np.array(q), np.array(c)))
    assert h100_8b.batch_latency_s(np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == 0.0


def test_tp_helps_big_batches() -> None:
    m1 = get_latency_model("H100-SXM", "Llama-3.1-70B", tp=2)
    m4 = get_latency_model("H100-SXM", "Llama-3.1-70B", tp=4)
    assert m4.prefill_latency_s(8192) < m1.prefill_latency_s(8192)
    assert _decode(m4, 128, 2048) < _decode(m1, 128, 2048)
    assert m4.kv_capacity_tokens() > 2 * m1.kv_capacity_tokens()


def test_kv_capacity(h100_8b: RooflineModel) -> None:
    kv = h100_8b.kv_capacity_tokens()
    assert 300_000 < kv < 600_000  # 8B on 80 GB: hundreds of thousands of tokens
    assert get_latency_model("H200", "Llama-3.1-8B").kv_capacity_tokens() > kv
    with pytest.raises(UserError, match="does not fit"):
        get_latency_model("A100-40GB", "Llama-3.1-70B").kv_capacity_tokens()


def test_speculative_adds_draft_cost(h100_8b: RooflineModel) -> None:
    q, c = np.full(32, 4), np.full(32, 1000)
    base = h100_8b.batch_latency_s(q, c, 0)
    assert h100_8b.batch_latency_s(q, c, 3) > base
    named = RooflineModel(get_gpu("H100-SXM"), get_model("Llama-3.1-8B"), draft_model=get_model("Llama-3.2-1B"))
    assert base < named.batch_latency_s(q, c, 3) < base + 3 * _decode(h100_8b, 32, 1000)
    assert named.kv_capacity_tokens() < h100_8b.kv_capacity_tokens()


def test_latency_call_is_fast(h100_8b: RooflineModel) -> None:
    q, c = np.ones(64, dtype=np.int64), np.full(64, 1024, dtype=np.int64)
    n = 5000
    t = time.perf_counter()
    for _ in range(n):
        h100_8b.batch_latency_s(q, c)
    per_call_us = (time.perf_counter() - t) / n * 1e6
    assert per_call_us < 50  # ~5 µs on a laptop core; generous bound for loaded CI


# DESIGN.md "Facts": the published fits, 3 significant digits (first piece of each profile).
_PUBLISHED = {
    "paper:opt-6.7b-a100": [(6.88e-5, 1.25e-6, 0.0248), (7.52e-5, 3.46e-3, 0.00303)],
    "paper:opt-13b-a100-tp2": [(7.21e-5, 3.34e-3, 0.0317)],
    "paper:opt-30b-a100-tp4": [(9.31e-5, 2.80e-3, 0.0379)],
    "paper:qwen2.5-32b-a100-tp4": [(1.05e-4, 4.52e-3, 0.0451)],
    "paper:toolllama-7b-a100": [(6.57e-5, 0.0, 0.0275)],
    "paper:r1-distill-qwen-7b-a100": [(6.04e-5, 0.0, 0.0140), (0.0, 0.0, 0.030)],
    "paper:opt-13b-h100": [(4.18e-5, 0.0, 0.0274)],
}


def test_paper_profiles_reproduce_published_coefficients() -> None:
    assert set(_PUBLISHED) == set(list_profiles())
    for name, published in _PUBLISHED.items():
        p = get_profile(name)
        for got, want in zip(p.pieces, published, strict=False):
            assert list(got) == pytest.approx(list(want), rel=6e-3), name
        assert p.kv_capacity_tokens() > 10_000 and p.gpu is not None
        for n, s in ((1, 0), (256, 0), (4096, 0), (512, 4)):  # the extra tiny pieces never bind
            assert p.time_s(n, s) == pytest.approx(max(k1 * n + k2 * s + b for k1, k2, b in published), rel=6e-3)
    m = get_profile("paper:opt-6.7b-a100")
    assert m.batch_latency_s([100, 1, 1], [0, 5, 5], 2) == pytest.approx(m.time_s(102, 2))
    assert get_profile("OPT-13B-H100").time_s(1000) == pytest.approx(4.18e-5 * 1000 + 0.0274, rel=1e-3)
    n = m.max_tokens_within(0.05, 0)
    assert m.time_s(n) <= 0.05 < m.time_s(n + 1)


def test_fit_roofline_recovers_known_coefficients() -> None:
    gpu, model = get_gpu("A100-80GB"), get_model("Qwen2.5-7B")
    truth = RooflineModel(gpu, model, eta_compute=0.42, eta_memory=0.71, t0_s=0.0063)
    rng = np.random.default_rng(7)
    rows = []
    for i in range(120):
        b = int(rng.integers(1, 128))
        q, c = np.ones(b, dtype=np.int64), rng.integers(0, 4000, b)
        if i % 2:
            q[0] = int(rng.integers(16, 8192))
        rows.append((q, c, truth.batch_latency_s(q, c) * (1 + 0.005 * rng.standard_normal())))
    res = fit_roofline(rows, gpu, model)
    assert res.r2 > 0.99 and res.n == 120
    assert res.eta_compute == pytest.approx(0.42, rel=0.03)
    assert res.eta_memory == pytest.approx(0.71, rel=0.03)
    assert res.t0_s == pytest.approx(0.0063, rel=0.1)


@pytest.mark.parametrize("profile", ["paper:opt-6.7b-a100", "paper:r1-distill-qwen-7b-a100"])
def test_fit_piecewise_recovers_paper_profile(profile: str) -> None:
    truth = get_profile(profile)
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(300):
        n, s = int(rng.integers(1, 8192)), int(rng.integers(0, 8))
        rows.append({"q_lens": [n], "ctx_lens": [0], "latency_s": truth.time_s(n, s), "spec_steps": s})
    fitted, r2 = fit_piecewise(rows, pieces=2)
    assert isinstance(fitted, PiecewiseLinearModel) and r2 > 0.999
    flat = [x for piece in sorted(fitted.pieces) for x in piece]
    assert flat == pytest.approx([x for piece in sorted(truth.pieces) for x in piece], rel=1e-3, abs=1e-7)
    one, r2_one = fit_piecewise(rows, pieces=1)
    assert len(one.pieces) == 1 and r2_one > 0.9


def test_speculative_expectation_and_sampler() -> None:
    assert expected_tokens(0.0, 5) == 1.0
    assert expected_tokens(1.0, 5) == 6.0
    assert expected_tokens(0.7, 4) == pytest.approx(1 + 0.7 + 0.49 + 0.343 + 0.2401)
    rng = np.random.default_rng(11)
    draws = sample_accepted(rng, 0.7, 4, size=100_000)
    assert draws.min() == 0 and draws.max() == 4
    assert draws.mean() + 1 == pytest.approx(expected_tokens(0.7, 4), rel=0.01)
    assert isinstance(sample_accepted(rng, 0.6, 3), int)
    with pytest.raises(UserError, match="alpha"):
        expected_tokens(1.5, 2)


def test_unknown_names_raise_user_error() -> None:
    with pytest.raises(UserError, match="H100-SXM"):
        get_latency_model(hardware="B300")
    with pytest.raises(UserError, match="Llama-3.1-8B"):
        get_latency_model(model="GPT-5")
    with pytest.raises(UserError, match="paper:opt-6.7b-a100"):
        get_latency_model(profile="paper:nope")
    with pytest.raises(UserError, match="tp"):
        get_latency_model(tp=3)
    with pytest.raises(UserError, match="eta_compute"):
        get_latency_model(eta_compte=0.5)


def test_options_pass_through() -> None:
    slow = get_latency_model(t0_s=0.03, eta_memory=0.5)
    assert isinstance(slow, RooflineModel) and slow.t0_s == 0.03
    assert _decode(slow, 8, 100) > _decode(get_latency_model(), 8, 100) + 0.025
    drafted = get_latency_model(draft_model="Llama-3.2-1B")
    assert isinstance(drafted, RooflineModel) and drafted.draft_model is not None


def test_load_hf_config(tmp_path: Path) -> None:
    cfg = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
           "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec = load_hf_config(tmp_path)
    ref = get_model("Llama-3.1-8B")
    assert spec.params == pytest.approx(ref.params, rel=0.01)
    assert spec.kv_bytes_per_token == ref.kv_bytes_per_token
    m = get_latency_model("H100", str(tmp_path / "config.json"))
    assert m.kv_capacity_tokens() == pytest.approx(get_latency_model().kv_capacity_tokens(), rel=0.01)
    opt = {"model_type": "opt", "hidden_size": 5120, "num_hidden_layers": 40, "num_attention_heads": 40,
           "ffn_dim": 20480, "vocab_size": 50272}
    (tmp_path / "opt.json").write_text(json.dumps(opt))
    assert load_hf_config(tmp_path / "opt.json").params == pytest.approx(get_model("OPT-13B").params, rel=0.01)
    with pytest.raises(UserError, match="not found"):
        load_hf_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"hidden_size": 64}))
    with pytest.raises(UserError, match="num_hidden_layers"):
        load_hf_config(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_hf_config(tmp_path / "junk.json")


def test_more_work_never_takes_less_time() -> None:
    """Property: adding tokens or context to any sequence never shortens the iteration (seeded fuzz)."""
    rng = np.random.default_rng(5)
    models = [get_latency_model("H100", "Llama-3.1-8B"), get_latency_model("A100-80GB", "Qwen2.5-32B", tp=4),
              get_latency_model(profile="paper:opt-6.7b-a100")]
    for _ in range(300):
        b = int(rng.integers(1, 64))
        q, c = rng.integers(1, 512, b), rng.integers(0, 8000, b)
        i = int(rng.integers(b))
        q2, c2 = q.copy(), c.copy()
        q2[i] += int(rng.integers(1, 100))
        c2[i] += int(rng.integers(1, 1000))
        for m in models:
            base = m.batch_latency_s(q, c)
            assert m.batch_latency_s(q2, c) >= base and m.batch_latency_s(q, c2) >= base
            assert m.batch_latency_s(q, c, 2) >= base


def test_tp_allreduce_term_and_fit_with_tp() -> None:
    gpu, model = get_gpu("H100-PCIe"), get_model("Llama-3.1-70B")
    pcie = RooflineModel(gpu, model, tp=4)
    nvlink = RooflineModel(get_gpu("H100-SXM"), model, tp=4, eta_compute=pcie.eta_compute)
    # Same FLOP/s class, but PCIe all-reduces make big prefills markedly slower than on NVLink.
    assert pcie.prefill_latency_s(8192) > 1.3 * nvlink.prefill_latency_s(8192)
    rng = np.random.default_rng(9)
    truth = RooflineModel(gpu, model, tp=4, eta_compute=0.6, eta_memory=0.75, t0_s=0.004)
    rows = []
    for i in range(60):
        b = int(rng.integers(1, 64))
        q, c = np.ones(b, dtype=np.int64), rng.integers(0, 3000, b)
        if i % 2:
            q[0] = int(rng.integers(64, 4096))
        rows.append({"q_lens": q, "ctx_lens": c, "latency_s": truth.batch_latency_s(q, c)})
    res = fit_roofline(rows, gpu, model, tp=4)
    assert res.r2 > 0.999
    assert res.model(gpu, model, tp=4).batch_latency_s([1] * 8, [500] * 8) == pytest.approx(
        truth.batch_latency_s([1] * 8, [500] * 8), rel=0.01)


def test_fit_rejects_bad_rows() -> None:
    with pytest.raises(UserError, match="at least 3"):
        fit_piecewise([([1], [0], 0.01)])
    with pytest.raises(UserError, match="latency_s"):
        fit_piecewise([([1], [0], 0.01), ([2], [0], -1.0), ([3], [0], 0.02)])
    with pytest.raises(UserError, match="pieces"):
        fit_piecewise([([1], [0], 0.01)] * 3, pieces=3)
