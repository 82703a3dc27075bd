"""A tiny random-weight Llama-architecture model and tokenizer, built locally (no download).

Why: the real-engine path (launch vLLM, load the SLOs-Serve scheduler class, stream, record,
tear down) must run in CI on a 2-core machine without a GPU or network. vLLM's CPU build serves
this model in a few ms per decode step, so the test suite exercises the real code path cheaply.
The weights are random, so the text is gibberish; runs use ``ignore_eos`` and token-exact
prompts, so lengths (what the benchmark measures) are exact anyway.

Imports transformers/tokenizers (and torch through transformers): only the vLLM extra has them,
hence the ``vllm_`` prefix that the layering rule reserves for such modules.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}"


def build_tiny_llama(
    out_dir: str | Path,
    *,
    vocab_size: int = 1024,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int = 1,
    intermediate_size: int = 256,
    max_positions: int = 16384,
    seed: int = 0,
) -> Path:
    """Write ``config.json``, safetensors weights and a fast tokenizer to ``out_dir``; return it.

    Head size 64 (hidden 128 / 2 heads) because vLLM's CPU attention kernels support only the
    common head sizes. ``max_positions`` covers the shipped workloads' longest context (8192)
    plus outputs, so no request is refused for length.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    vocab.update({f"w{i}": i for i in range(len(SPECIAL_TOKENS), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        model_max_length=max_positions,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions, bos_token_id=1, eos_token_id=2, pad_token_id=3,
        tie_word_embeddings=True, torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    # Generation defaults vLLM reads; keep them neutral so requests fully control sampling.
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    return out
