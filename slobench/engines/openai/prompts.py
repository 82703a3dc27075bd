"""Synthetic prompts of an exact length, reproducible from (seed, request, stage).

With vLLM (and OpenAI's legacy completions API) a prompt may be a list of token ids: sending N
ids makes the server process exactly N prompt tokens, with no tokenizer on the client side. Ids
are drawn from a range of ordinary tokens (special tokens sit at the very start or end of common
vocabularies, so the range avoids both). Text prompts (chat API, or servers that refuse id lists)
are space-separated common words: about one token per word for BPE vocabularies, exactly one for
word-level ones; the server's reported usage tells the real count.
"""

from __future__ import annotations

import numpy as np

WORDS = (
    "the of and to in is was for on that with as by at from his it an were are which this be or has had not "
    "but one their its they have who first two been new more all after also she other time when her there "
    "people would into can year only most over city some made state such where during may him these world "
    "many then through used than part three later known under about between both well school since against"
).split()


def token_id_range(vocab_size: int | None) -> tuple[int, int]:
    """Ids to draw prompt tokens from: clear of specials at both ends of the vocabulary."""
    if vocab_size is None:
        return 1000, 20000  # safe for every common 32k+ vocabulary (Llama, Mistral, Qwen, OPT, GPT-2)
    low = max(4, min(1000, vocab_size // 8))
    high = min(vocab_size - max(4, vocab_size // 64), 30000)
    if high <= low:
        raise ValueError(f"vocabulary of {vocab_size} tokens is too small for synthetic prompts")
    return low, high


class PromptSynth:
    """Seeded prompt factory: the same (seed, request id, stage) always gives the same prompt."""

    def __init__(self, seed: int, vocab_size: int | None = None) -> None:
        self.seed = seed
        self.low, self.high = token_id_range(vocab_size)

    def _rng(self, request_id: int, stage_idx: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, request_id, stage_idx])

    def token_ids(self, n: int, request_id: int, stage_idx: int) -> list[int]:
        if n <= 0:
            return []
        return self._rng(request_id, stage_idx).integers(self.low, self.high, size=n).tolist()

    def text(self, n: int, request_id: int, stage_idx: int) -> str:
        if n <= 0:
            return ""
        picks = self._rng(request_id, stage_idx).integers(0, len(WORDS), size=n)
        return " ".join(WORDS[i] for i in picks)
