"""Speculative decoding arithmetic: expected tokens per verify step and a seeded acceptance sampler.

Model (SLOs-Serve §speculation; Leviathan et al. 2023): each of the ``s`` draft tokens is accepted
independently with probability α, in order, until the first rejection; the verify pass always
yields one more token (the target's correction or, when all drafts pass, its bonus token). So the
accepted draft count is min(Geometric, s) and the tokens emitted per verify are

    E(s) = 1 + α + α² + … + α^s = (1 − α^(s+1)) / (1 − α).

(DESIGN.md's "Facts" quote (1−α^s)/(1−α), which counts s−1 drafts plus the bonus token; we count
``s`` drafts, so our E(s) is theirs at s+1.)
"""

from __future__ import annotations

import math

import numpy as np

from slobench.errors import UserError


def _check(alpha: float, steps: int) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"speculative acceptance rate alpha must be in [0, 1] (got {alpha}); typical is 0.6-0.8")
    if steps < 0:
        raise UserError(f"speculation steps must be >= 0 (got {steps})")


def expected_tokens(alpha: float, steps: int) -> float:
    """Expected tokens emitted per verify step with ``steps`` drafts, bonus token included."""
    _check(alpha, steps)
    if alpha >= 1.0:
        return float(steps + 1)
    return (1.0 - alpha ** (steps + 1)) / (1.0 - alpha)


def tokens_per_verify(alpha: float | None, steps: int) -> int:
    """Tokens a verify step can be counted on for when pacing a request: floor(E(steps)), at least 1.

    SLOs-Serve paces a speculating tier by the tokens it gets in (almost) every verify, so a tier
    verifying every ``tokens_per_verify·TPOT`` seconds keeps its per-token deadlines. 1 without drafts.
    """
    if not steps or not alpha:
        return 1
    return max(1, math.floor(expected_tokens(alpha, steps)))


def expected_accepted(alpha: float, steps: int) -> float:
    """Expected accepted draft tokens per verify: E(s) − 1."""
    return expected_tokens(alpha, steps) - 1.0


def sample_accepted(rng: np.random.Generator, alpha: float, steps: int, size: int | None = None) -> int | np.ndarray:
    """Accepted draft count(s): min(G, steps) with G ~ number of successes before the first failure.

    numpy's geometric counts trials up to and including the first success (support 1, 2, …), so the
    run of acceptances before a rejection (probability 1−α) is ``geometric(1−α) − 1``.
    """
    _check(alpha, steps)
    if steps == 0:
        return 0 if size is None else np.zeros(size, dtype=np.int64)
    if alpha >= 1.0:
        return steps if size is None else np.full(size, steps, dtype=np.int64)
    g = rng.geometric(1.0 - alpha, size=size) - 1
    if size is None:
        return int(min(g, steps))
    return np.minimum(g, steps)
