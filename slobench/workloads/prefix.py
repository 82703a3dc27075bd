"""Shared prompt prefixes: how much of a request's prompt another request already computed.

A request's ``prefix_blocks`` are hashes of its prompt's leading blocks (Mooncake's ``hash_ids``); a hash
names the whole prefix up to and including its block, so two requests share exactly the leading blocks whose
hashes are equal. `cached_prefix_tokens` is the one rule for "how many leading tokens are cached", used by the
simulator's prefix cache (against a replica's map) and by `prefix_stats` (against everything seen earlier: the
hit rate an infinite cache on one replica would reach, an upper bound for any router and cache size).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from slobench.workloads.model import Request


def cached_prefix_tokens(cache: Mapping[int, int], req: Request) -> tuple[int, int]:
    """(tokens, blocks) of ``req``'s leading prefix blocks found in ``cache`` (hash → tokens that block covers).

    The match stops at the first hash not cached, and after a partial block (its content ends there); the
    tokens are capped at prompt − 1: vLLM always computes the last prompt token, to produce the first output.
    """
    got = blocks = 0
    full = req.prefix_block_tokens
    for h in req.prefix_blocks:
        c = cache.get(h)
        if c is None:
            break
        got += c
        blocks += 1
        if c < full:
            break
    cap = req.stages[0].prompt_tokens - 1
    return (cap if got > cap else got), blocks


def block_tokens(req: Request) -> list[int]:
    """Tokens each of ``req``'s prefix blocks covers (the last may be partial; blocks past the prompt cover 0)."""
    full, prompt = req.prefix_block_tokens, req.stages[0].prompt_tokens
    return [max(0, min(full, prompt - i * full)) for i in range(len(req.prefix_blocks))]


def prefix_stats(requests: Sequence[Request]) -> dict[str, float | int]:
    """Shared-prefix statistics of a request stream, in arrival order, with an infinite cache.

    ``shared_token_share``: of all first-stage prompt tokens, those whose prefix blocks an earlier request had
    (what a single replica that never evicts would skip; a cache hit rate's upper bound).
    ``requests_sharing``: share of requests with at least one shared leading block.
    ``reuse_p50/p90/max``: over distinct block hashes, how many requests carry each (1 = never reused).
    ``reuse_gap_p50_s/p90_s``: for each shared block, time since the last request that carried it (how long
    a cache must keep a block for it to hit). Empty dict when no request carries prefix_blocks.
    """
    reqs = sorted((r for r in requests if r.prefix_blocks), key=lambda r: (r.arrival_s, r.id))
    if not reqs:
        return {}
    seen: dict[int, int] = {}
    last_s: dict[int, float] = {}
    uses: dict[int, int] = {}
    gaps: list[float] = []
    prompt = shared = sharing = 0
    for r in reqs:
        prompt += r.stages[0].prompt_tokens
        got, blocks = cached_prefix_tokens(seen, r)
        shared += got
        sharing += got > 0
        for h in r.prefix_blocks[:blocks]:
            gaps.append(r.arrival_s - last_s[h])
        for h, c in zip(r.prefix_blocks, block_tokens(r), strict=True):
            if c > 0:
                seen[h] = max(seen.get(h, 0), c)
                last_s[h] = r.arrival_s
                uses[h] = uses.get(h, 0) + 1
    reuse = np.array(list(uses.values()), dtype=float)
    g = np.array(gaps) if gaps else np.array([np.nan])
    return {
        "requests": len(reqs), "prompt_tokens": prompt, "shared_tokens": shared,
        "shared_token_share": shared / prompt if prompt else 0.0, "requests_sharing": sharing / len(reqs),
        "distinct_blocks": len(uses), "reuse_p50": float(np.percentile(reuse, 50)),
        "reuse_p90": float(np.percentile(reuse, 90)), "reuse_max": int(reuse.max()),
        "reuse_gap_p50_s": float(np.nanpercentile(g, 50)) if gaps else float("nan"),
        "reuse_gap_p90_s": float(np.nanpercentile(g, 90)) if gaps else float("nan"),
    }
