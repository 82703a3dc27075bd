"""Projected KV-cache peak of the admitted requests: how much memory admission may still promise.

Reserving every admitted request's *final* context at once is safe but wasteful: requests finish
at different times, so the peak of the sum is far below the sum of the peaks (for reasoning, with
~5k-token contexts built over minutes, about half). SLOs-Serve assumes output lengths are known
(DESIGN.md, Facts: Evaluation); slobench's policy gets them only with ``oracle_lengths`` and otherwise
predicts them (`slobench.schedulers.lengths`: the conditional mean of the remaining length, or
``kv_length_quantile``). The policy paces decodes by their per-token deadlines, so each admitted
request's context follows a projected trajectory: it holds ``c0`` tokens now (a request still
prefilling counts its whole prompt at once, conservatively), grows by one token per TPOT until it
reaches its (predicted) final size ``f``, and frees everything when it finishes. The total is piecewise linear
in time and peaks just before some request finishes, so evaluating it now and at every finish time
finds the model's exact peak — an O(N²) numpy product, ~0.3 ms for N = 256.
"""

from __future__ import annotations

import numpy as np


def projected_peak_blocks(ctx_tokens: np.ndarray, final_tokens: np.ndarray, tpot_s: np.ndarray,
                          block_size: int) -> int:
    """Peak KV blocks, from now on, of requests growing from ``ctx`` to ``final`` at one token per TPOT.

    Every request is rounded up by one block (blocks are allocated whole): an upper bound of the model.
    """
    if ctx_tokens.size == 0:
        return 0
    ctx = ctx_tokens.astype(float)
    final = np.maximum(final_tokens.astype(float), ctx)
    finish = (final - ctx) * tpot_s  # seconds from now
    times = np.concatenate([[0.0], finish])
    held = np.minimum(final[None, :], ctx[None, :] + times[:, None] / tpot_s[None, :])
    alive = times[:, None] <= finish[None, :] + 1e-12
    blocks = (np.where(alive, held, 0.0).sum(axis=1) / block_size) + alive.sum(axis=1)
    return int(np.ceil(blocks.max()))
