"""Transformer architecture specs: what the roofline model needs to count FLOPs and bytes.

A table of the models the SLOs-Serve paper and common vLLM benchmarks use, plus
`load_hf_config` to build a spec from any local Hugging Face ``config.json`` (llama, qwen2,
mistral, opt key styles), so users are never limited to the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from slobench.errors import UserError


@dataclass(frozen=True)
class ModelSpec:
    """Decoder-only transformer shape. ``params`` counts every weight (embeddings included)."""

    name: str
    params: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    bytes_per_param: float = 2.0  # bf16/fp16 weights
    kv_dtype_bytes: float = 2.0  # bf16/fp16 KV cache
    tied_embeddings: bool = False

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V for every layer: 2·layers·kv_heads·head_dim·dtype bytes (whole model, all TP ranks)."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * self.kv_dtype_bytes

    @property
    def weight_bytes(self) -> float:
        """Bytes of weights resident in GPU memory (whole model)."""
        return self.params * self.bytes_per_param

    @property
    def embedding_params(self) -> float:
        """Input-embedding table size. It is gathered (a few rows), not streamed, each iteration."""
        return float(self.vocab * self.hidden)

    @property
    def lm_head_params(self) -> float:
        return float(self.vocab * self.hidden)


def _spec(name: str, params: float, layers: int, hidden: int, heads: int, kv_heads: int, inter: int, vocab: int,
          head_dim: int | None = None, tied: bool = False) -> ModelSpec:
    return ModelSpec(name, params, layers, hidden, heads, kv_heads, head_dim or hidden // heads, inter, vocab,
                     tied_embeddings=tied)


_MODELS: tuple[ModelSpec, ...] = (
    _spec("Llama-3.1-8B", 8.03e9, 32, 4096, 32, 8, 14336, 128256),
    _spec("Llama-3.1-70B", 70.6e9, 80, 8192, 64, 8, 28672, 128256),
    _spec("Llama-2-7B", 6.74e9, 32, 4096, 32, 32, 11008, 32000),
    # ToolLLaMA-2-7B (ToolBench) is a Llama-2-7B fine-tune: same shape.
    _spec("ToolLlama-2-7B", 6.74e9, 32, 4096, 32, 32, 11008, 32000),
    _spec("Mistral-7B", 7.24e9, 32, 4096, 32, 8, 14336, 32768),
    _spec("Qwen2.5-7B", 7.62e9, 28, 3584, 28, 4, 18944, 152064),
    _spec("Qwen2.5-32B", 32.8e9, 64, 5120, 40, 8, 27648, 152064),
    # R1-Distill-Qwen-7B is Qwen2.5-Math-7B shaped.
    _spec("DeepSeek-R1-Distill-Qwen-7B", 7.62e9, 28, 3584, 28, 4, 18944, 152064),
    # OPT ties the LM head to the input embedding and uses full multi-head attention (no GQA).
    _spec("OPT-6.7B", 6.66e9, 32, 4096, 32, 32, 16384, 50272, tied=True),
    _spec("OPT-13B", 12.85e9, 40, 5120, 40, 40, 20480, 50272, tied=True),
    _spec("OPT-30B", 29.97e9, 48, 7168, 56, 56, 28672, 50272, tied=True),
    # Small models: speculative-decoding drafts and CPU smoke tests.
    _spec("OPT-125M", 0.125e9, 12, 768, 12, 12, 3072, 50272, tied=True),
    _spec("Llama-3.2-1B", 1.24e9, 16, 2048, 32, 8, 8192, 128256, head_dim=64, tied=True),
    _spec("Qwen2.5-0.5B", 0.494e9, 24, 896, 14, 2, 4864, 151936, head_dim=64, tied=True),
)

MODELS: dict[str, ModelSpec] = {m.name: m for m in _MODELS}

_ALIASES: dict[str, str] = {
    "llama-3-8b": "Llama-3.1-8B",
    "llama3-8b": "Llama-3.1-8B",
    "llama-3.1-8b-instruct": "Llama-3.1-8B",
    "meta-llama-3.1-8b-instruct": "Llama-3.1-8B",
    "llama-3-70b": "Llama-3.1-70B",
    "llama-3.1-70b-instruct": "Llama-3.1-70B",
    "toolllama-7b": "ToolLlama-2-7B",
    "toolllama": "ToolLlama-2-7B",
    "toolllama-2-7b-v2": "ToolLlama-2-7B",
    "opt-7b": "OPT-6.7B",
    "qwen2.5-7b-instruct": "Qwen2.5-7B",
    "qwen2.5-32b-instruct": "Qwen2.5-32B",
    "r1-distill-qwen-7b": "DeepSeek-R1-Distill-Qwen-7B",
    "mistral-7b-instruct": "Mistral-7B",
}


def _norm(name: str) -> str:
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    return key.rsplit("/", 1)[-1]  # accept HF ids like "meta-llama/Llama-3.1-8B"


def get_model(name: str) -> ModelSpec:
    """Look a model up by name, alias or HF repo id (case-insensitive), or load a local config.json path."""
    p = Path(name)
    if name.endswith(".json") or p.is_dir():
        return load_hf_config(p)
    key = _norm(name)
    for canonical, spec in MODELS.items():
        if canonical.lower() == key:
            return spec
    if key in _ALIASES:
        return MODELS[_ALIASES[key]]
    raise UserError(f"unknown model {name!r}; known models: {', '.join(MODELS)} "
                    "(or pass a path to a Hugging Face config.json)")


def list_models() -> list[str]:
    """Canonical model names, in table order."""
    return list(MODELS)


def _first(cfg: dict, keys: tuple[str, ...], path: Path, required: bool = True) -> int | None:
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return int(cfg[k])
    if required:
        raise UserError(f"{path}: missing {' / '.join(keys)} in config.json; is this a decoder-only HF model config?")
    return None


def load_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """Build a `ModelSpec` from a local Hugging Face ``config.json`` (or the directory holding it).

    Understands llama/qwen2/mistral keys (``num_hidden_layers``, ``num_key_value_heads``,
    ``intermediate_size``) and OPT keys (``ffn_dim``, ``word_embed_proj_dim``). The parameter
    count is computed from the shapes (attention + gated or plain MLP + embeddings), because
    configs do not state it; it is within ~1% of the published counts for the table's models.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise UserError(f"model config {p} not found; pass a Hugging Face config.json or its directory")
    try:
        cfg = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{p}: not valid JSON ({exc}); pass a Hugging Face config.json") from exc
    if not isinstance(cfg, dict):
        raise UserError(f"{p}: expected a JSON object with model hyper-parameters")
    if "text_config" in cfg and isinstance(cfg["text_config"], dict):  # multimodal wrappers
        cfg = {**cfg, **cfg["text_config"]}
    is_opt = cfg.get("model_type") == "opt" or "ffn_dim" in cfg
    hidden = _first(cfg, ("hidden_size", "d_model", "n_embd"), p)
    layers = _first(cfg, ("num_hidden_layers", "n_layer", "num_layers"), p)
    heads = _first(cfg, ("num_attention_heads", "n_head"), p)
    vocab = _first(cfg, ("vocab_size",), p)
    inter = _first(cfg, ("intermediate_size", "ffn_dim", "n_inner"), p, required=False) or 4 * hidden
    kv_heads = _first(cfg, ("num_key_value_heads", "n_kv_heads"), p, required=False) or heads
    head_dim = _first(cfg, ("head_dim",), p, required=False) or hidden // heads
    tied = bool(cfg.get("tie_word_embeddings", is_opt))
    dtype = str(cfg.get("torch_dtype", "bfloat16"))
    bpp = 4.0 if dtype in ("float32", "fp32") else 2.0
    if min(hidden, layers, heads, vocab, kv_heads, head_dim, inter) <= 0:
        raise UserError(f"{p}: hidden/layers/heads/vocab sizes must be positive")
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    mlp = (2 if is_opt else 3) * hidden * inter
    emb = vocab * hidden * (1 if tied else 2)
    params = float(layers * (attn + mlp) + emb)
    spec_name = name or cfg.get("_name_or_path") or p.parent.name or "hf-model"
    return ModelSpec(str(spec_name), params, layers, hidden, heads, kv_heads, head_dim, inter, vocab,
                     bytes_per_param=bpp, tied_embeddings=tied)
