"""Roofline iteration-latency model: first-principles batch time for any GPU × model × TP.

Model (DESIGN.md "Performance model"): one iteration on one replica takes

    t = max(C / (F·ηc), B / (W·ηm)) + t_allreduce + t0

* C, FLOPs per GPU = [2·P_dense·Σq + 2·P_head·n_logits + 4·L·d_attn·Σ q·(ctx + (q+1)/2)] / tp.
  P_dense excludes the embedding tables (the input embedding is a gather; the LM head runs only
  for the tokens that are sampled: the last token of each sequence, or all 1+k verify tokens).
  The attention term is causal within a chunk: token j of a q-token chunk attends ctx + j keys.
* B, bytes per GPU = weights (streamed once per iteration) / tp + KV bytes per token per GPU ·
  (Σctx read + Σq written). KV heads are sharded over TP ranks (replicated when tp > kv_heads).
* t_allreduce (tp > 1): 2 ring all-reduces per layer of Σq·hidden·2 bytes, each
  2(tp−1)/tp·msg/link_bw + link latency; not overlapped with compute (vLLM does not overlap).
* speculative decoding (``spec_steps`` = k > 0): k draft passes run before the verify pass over
  q_lens (which already holds 1+k tokens per speculating sequence). A draft pass decodes one
  token for every sequence in the batch; it costs ``draft_fraction`` (default 0.10) of a target
  decode step of the same batch, or, with ``draft_model``, that model's own roofline time on one
  GPU of the same kind with a quarter of t0. The draft's weights and KV shrink `kv_capacity_tokens`.
* t0: per-iteration framework overhead (scheduling, input prep, sampling, detokenisation and
  kernel-launch gaps that CUDA graphs do not remove).

Defaults, and why:
* ηc = 0.50: large bf16 GEMMs reach ~70% of dense peak on H100, and attention, norms,
  activations and sampling pull a whole prefill iteration down to roughly half of peak.
* ηm = 0.80: decode GEMV/paged-attention kernels stream weights and KV at ~75-85% of HBM peak.
* t0 = 2 ms: vLLM V1 replays CUDA graphs and overlaps much host work, so its per-iteration
  overhead is small. Check: a public `vllm bench serve` sweep (johnmusgrave.com, vLLM 0.23,
  Llama-3.1-8B, A100-40GB, 1024-token prompts) measured ~75 tok/s at concurrency 1 (13.3 ms per
  token) and almost unchanged latency at concurrency 8; this model predicts 14.2 ms and 15.0 ms.
  The paper's fitted intercepts (25-45 ms on A100) come from its own prototype and are much
  larger; use a ``paper:`` profile to reproduce the paper, or `slobench.perf.fit` to calibrate.
* activation_reserve_bytes = 2 GiB: vLLM's profiling pass reserves peak activations for an
  8k-token batch, sampler buffers, CUDA graphs and NCCL buffers, about 1-3 GB for 7-8B models.

Predictions with the defaults (bf16, gpu_mem_util 0.9; range-checked in tests/test_perf.py;
apart from the A100 check above, these are model outputs, not measurements):
* Llama-3.1-8B on H100-SXM: decode step of 64 sequences at 1k context ≈ 10.8 ms (15 GB of
  weights + 8.6 GB of KV at 2.7 TB/s ≈ 8.8 ms, + t0); 1 sequence ≈ 7.7 ms; 256 sequences at
  2k ≈ 33 ms. Prefill of 2048 tokens ≈ 62 ms (3.2e13 FLOPs at 495 TFLOP/s + t0); 8192 tokens
  ≈ 269 ms. KV capacity ≈ 451k tokens (≈ 28k 16-token blocks).
* Llama-3.1-70B on H100-SXM: decode 64@1k ≈ 33.6 / 18.8 / 11.4 ms at TP 2 / 4 / 8;
  2k prefill ≈ 305 / 166 / 97 ms.
* Against the paper's fits: 2k-token prefills agree within ~15% (OPT-13B on H100: 110 vs 113 ms;
  OPT-13B TP2 on A100: 179 vs 179 ms) except R1-Distill-Qwen-7B (179 vs 138 ms), while the paper's
  32-sequence decode steps are 1.3-3.3× slower than ours because of its larger intercepts.

Speed: the simulator calls `batch_latency_s` every iteration, so all shape constants are folded
into a few coefficients at construction and a call reduces the batch to four sums: ~4.5 µs for
any numpy int64 batch up to 256 sequences; plain lists take a pure-Python path (~1.5 µs for
small batches, ~5 µs at 64 sequences).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import mul

import numpy as np

from slobench.errors import UserError
from slobench.perf.hardware import GPUSpec
from slobench.perf.models import ModelSpec

GiB = 1024**3

DEFAULT_ETA_COMPUTE = 0.50
DEFAULT_ETA_MEMORY = 0.80
DEFAULT_T0_S = 2e-3
DEFAULT_ACTIVATION_RESERVE_BYTES = 2 * GiB
# A draft step costs ~10% of a target decode step: the paper's fitted per-step cost k2 over the
# intercept b is 0.07-0.14 across its A100 setups (e.g. OPT-6.7B: 3.46e-3 / 0.0248).
DEFAULT_DRAFT_FRACTION = 0.10
# A small draft model's step is CUDA-graph captured and skips most per-iteration host work.
DRAFT_OVERHEAD_FRACTION = 0.25

IntSeq = np.ndarray | Sequence[int]


def _largest_root(a: float, b: float, c: float) -> float:
    """Largest x with a·x² + b·x + c ≤ 0 for a, b ≥ 0 (−inf when even x = 0 exceeds it)."""
    if c > 0:
        return -math.inf
    if a <= 0:
        return math.inf if b <= 0 else -c / b
    return -2.0 * c / (b + math.sqrt(b * b - 4.0 * a * c))  # the stable form of (−b + √Δ) / 2a


class RooflineModel:
    """`LatencyModel` from GPU and model specs; see the module docstring for the formula."""

    def __init__(
        self,
        gpu: GPUSpec,
        model: ModelSpec,
        tp: int = 1,
        eta_compute: float = DEFAULT_ETA_COMPUTE,
        eta_memory: float = DEFAULT_ETA_MEMORY,
        t0_s: float = DEFAULT_T0_S,
        gpu_mem_util: float = 0.9,
        activation_reserve_bytes: float = DEFAULT_ACTIVATION_RESERVE_BYTES,
        draft_model: ModelSpec | None = None,
        draft_fraction: float = DEFAULT_DRAFT_FRACTION,
    ) -> None:
        if not isinstance(tp, (int, np.integer)) or tp < 1:
            raise UserError(f"tp must be a positive integer (got {tp!r}); use e.g. 1, 2, 4 or 8")
        if model.heads % tp != 0:
            raise UserError(f"tp={tp} must divide {model.name}'s {model.heads} attention heads; use e.g. 1, 2, 4")
        if not (0 < eta_compute <= 1 and 0 < eta_memory <= 1):
            raise UserError(f"eta_compute/eta_memory must be in (0, 1] (got {eta_compute}, {eta_memory})")
        if t0_s < 0:
            raise UserError(f"t0_s must be >= 0 (got {t0_s})")
        if not 0 < gpu_mem_util <= 1:
            raise UserError(f"gpu_mem_util must be in (0, 1] (got {gpu_mem_util}); vLLM's default is 0.9")
        self.gpu = gpu
        self.model = model
        self.tp = int(tp)
        self.eta_compute = float(eta_compute)
        self.eta_memory = float(eta_memory)
        self.t0_s = float(t0_s)
        self.gpu_mem_util = float(gpu_mem_util)
        self.activation_reserve_bytes = float(activation_reserve_bytes)
        self.draft_model = draft_model
        self.draft_fraction = float(draft_fraction)
        suffix = f"-tp{tp}" if tp > 1 else ""
        self.name = f"roofline:{model.name}@{gpu.name}{suffix}"

        n_emb = 1 if model.tied_embeddings else 2
        dense_params = model.params - n_emb * model.embedding_params
        d_attn = model.heads * model.head_dim
        inv_f = 1.0 / (gpu.peak_flops * self.eta_compute * tp)
        inv_w = 1.0 / (gpu.hbm_bw_Bps * self.eta_memory)
        # Seconds of compute per unit of each batch statistic.
        self._c_q = 2.0 * dense_params * inv_f  # per Σq
        self._c_logit = 2.0 * model.lm_head_params * inv_f  # per sampled token
        self._c_attn = 4.0 * model.layers * d_attn * inv_f  # per Σ q·(ctx + (q+1)/2)
        # Seconds of memory traffic: weights once, KV per token per GPU.
        streamed_params = model.params - (0 if model.tied_embeddings else model.embedding_params)
        self._m_w = streamed_params * model.bytes_per_param / tp * inv_w
        self.kv_bytes_per_token_per_gpu = (
            2.0 * model.layers * model.head_dim * model.kv_dtype_bytes * max(model.kv_heads / tp, 1.0)
        )
        self._m_kv = self.kv_bytes_per_token_per_gpu * inv_w
        # All-reduce: 2 per layer; per-token bytes = hidden·2 (bf16 activations).
        if tp > 1:
            ring = 2.0 * (tp - 1) / tp
            self._ar_q = 2 * model.layers * ring * model.hidden * 2.0 / gpu.link_bw_Bps
            self._ar_0 = 2 * model.layers * gpu.link_latency_s
        else:
            self._ar_q = 0.0
            self._ar_0 = 0.0
        self._draft: RooflineModel | None = None
        if draft_model is not None:
            self._draft = RooflineModel(gpu, draft_model, tp=1, eta_compute=eta_compute, eta_memory=eta_memory,
                                        t0_s=self.t0_s * DRAFT_OVERHEAD_FRACTION, gpu_mem_util=gpu_mem_util,
                                        activation_reserve_bytes=0.0)

    # -- core -------------------------------------------------------------------------------
    def _time(self, s_q: float, s_c: float, s_qc: float, s_qq: float, n_logits: float) -> float:
        """Iteration time from the batch's sufficient statistics (Σq, Σctx, Σq·ctx, Σq², logits)."""
        if s_q <= 0:
            return 0.0
        t_c = self._c_q * s_q + self._c_logit * n_logits + self._c_attn * (s_qc + 0.5 * (s_qq + s_q))
        t_m = self._m_w + self._m_kv * (s_c + s_q)
        return (t_c if t_c > t_m else t_m) + self._ar_q * s_q + self._ar_0 + self.t0_s

    @staticmethod
    def _stats(q_lens: IntSeq, ctx_lens: IntSeq) -> tuple[float, float, float, float, int]:
        """(Σq, Σctx, Σq·ctx, Σq², n). Integer dot products avoid dtype-conversion copies (~3.5 µs at n=64)."""
        if isinstance(q_lens, np.ndarray) and isinstance(ctx_lens, np.ndarray):
            n = q_lens.size
            if n == 0:
                return 0.0, 0.0, 0.0, 0.0, 0
            if q_lens.dtype.kind == "f" or ctx_lens.dtype.kind == "f":
                q_lens = q_lens.astype(np.float64, copy=False)
                ctx_lens = ctx_lens.astype(np.float64, copy=False)
            return (float(q_lens.sum()), float(ctx_lens.sum()), float(np.dot(q_lens, ctx_lens)),
                    float(np.dot(q_lens, q_lens)), n)
        q_list = q_lens if isinstance(q_lens, (list, tuple)) else list(q_lens)
        c_list = ctx_lens if isinstance(ctx_lens, (list, tuple)) else list(ctx_lens)
        if len(q_list) != len(c_list):
            raise ValueError(f"q_lens and ctx_lens differ in length ({len(q_list)} vs {len(c_list)})")
        return (float(sum(q_list)), float(sum(c_list)), float(sum(map(mul, q_list, c_list))),
                float(sum(map(mul, q_list, q_list))), len(q_list))

    def batch_latency_s(self, q_lens: IntSeq, ctx_lens: IntSeq, spec_steps: int = 0) -> float:
        """Seconds for one iteration: ``spec_steps`` draft passes, then the (verify) pass over q_lens."""
        s_q, s_c, s_qc, s_qq, n = self._stats(q_lens, ctx_lens)
        if n == 0 or s_q <= 0:
            return 0.0
        n_logits = min(s_q, n * (1 + spec_steps))
        t = self._time(s_q, s_c, s_qc, s_qq, n_logits)
        if spec_steps > 0:
            t += spec_steps * self.draft_step_s(n, s_c)
        return t

    def latency_from_stats(self, s_q: float, s_c: float, s_qc: float, s_qq: float, n: int,
                           spec_steps: int = 0) -> float:
        """`batch_latency_s` from the batch's sums (Σq, Σctx, Σq·ctx, Σq², n): O(1) for batch builders
        that grow a batch token by token (`slobench.schedulers.batching.BatchDraft`)."""
        if n == 0 or s_q <= 0:
            return 0.0
        # `_time`, inlined (the same expression): batch builders and the simulator call this ~10⁶ times per search.
        n_logits = min(s_q, n * (1 + spec_steps))
        t_c = self._c_q * s_q + self._c_logit * n_logits + self._c_attn * (s_qc + 0.5 * (s_qq + s_q))
        t_m = self._m_w + self._m_kv * (s_c + s_q)
        t = (t_c if t_c > t_m else t_m) + self._ar_q * s_q + self._ar_0 + self.t0_s
        if spec_steps > 0:
            t += spec_steps * self.draft_step_s(n, s_c)
        return t

    def tokens_within_from_stats(self, budget_s: float, s_q: float, s_c: float, s_qc: float, s_qq: float, n: int,
                                 spec_steps: int, ctx_tokens: int) -> float:
        """Approximately the largest x with `latency_from_stats` of the batch plus one sequence of x tokens at
        ``ctx_tokens`` ≤ ``budget_s``: the roots of the memory (linear) and compute (quadratic) branches.

        Only a starting point: `slobench.schedulers.batching.BatchDraft.max_tokens_within` checks it with the
        exact latency and steps to the exact integer answer, so rounding here never changes a result; it
        replaces a ~25-probe binary search with ~3 probes.
        """
        n1 = n + 1
        c_tot = s_c + ctx_tokens
        r = budget_s - self._ar_0 - self.t0_s
        if spec_steps > 0:
            r -= spec_steps * self.draft_step_s(n1, c_tot)
        x_m = (r - self._m_w - self._m_kv * (c_tot + s_q) - self._ar_q * s_q) / (self._m_kv + self._ar_q)
        a2 = 0.5 * self._c_attn
        b1 = self._c_q + self._c_attn * (ctx_tokens + 0.5) + self._ar_q
        c0 = (self._c_q + self._ar_q) * s_q + self._c_attn * (s_qc + 0.5 * (s_qq + s_q)) - r
        x_c = _largest_root(a2, b1 + self._c_logit, c0 + self._c_logit * s_q)  # logits: one per token
        k = n1 * (1 + spec_steps)
        if s_q + x_c > k:  # past k tokens the logits are one per sequence and step
            x_c = _largest_root(a2, b1, c0 + self._c_logit * k)
        return x_m if x_m < x_c else x_c

    def draft_step_s(self, n_seqs: int, ctx_sum: float) -> float:
        """One draft-model step over ``n_seqs`` sequences (one token each) holding ``ctx_sum`` tokens."""
        if self._draft is not None:
            return self._draft._time(n_seqs, ctx_sum, ctx_sum, n_seqs, n_seqs)
        return self.draft_fraction * self._time(n_seqs, ctx_sum, ctx_sum, n_seqs, n_seqs)

    def prefill_latency_s(self, prompt_tokens: int) -> float:
        """Zero-load time to prefill one prompt in one iteration."""
        n = float(prompt_tokens)
        return self._time(n, 0.0, 0.0, n * n, 1.0)

    def decode_latency_s(self, batch_size: int, ctx_tokens: int) -> float:
        """Convenience: one decode step of ``batch_size`` sequences, each with ``ctx_tokens`` cached."""
        b = float(batch_size)
        return self._time(b, b * ctx_tokens, b * ctx_tokens, b, b)

    # -- memory -----------------------------------------------------------------------------
    def kv_capacity_tokens(self) -> int:
        """(memory·util − weights/tp − activation reserve [− draft weights]) / KV bytes per token per GPU."""
        free = (self.gpu.memory_bytes * self.gpu_mem_util - self.model.weight_bytes / self.tp
                - self.activation_reserve_bytes)
        per_token = self.kv_bytes_per_token_per_gpu
        if self._draft is not None:
            # The draft's weights and its own KV cache (one entry per token, like the target's) share the pool.
            free -= self._draft.model.weight_bytes
            per_token += self._draft.kv_bytes_per_token_per_gpu
        if free <= 0:
            raise UserError(
                f"{self.model.name} ({self.model.weight_bytes / 1e9:.0f} GB of weights) does not fit on "
                f"{self.tp}× {self.gpu.name} at gpu_mem_util={self.gpu_mem_util}; raise tp or use a bigger GPU"
            )
        return int(free // per_token)

    def __repr__(self) -> str:
        return (f"RooflineModel({self.gpu.name}, {self.model.name}, tp={self.tp}, eta_compute={self.eta_compute}, "
                f"eta_memory={self.eta_memory}, t0_s={self.t0_s})")
