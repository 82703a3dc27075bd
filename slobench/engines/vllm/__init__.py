"""Real vLLM: the engine, launcher, server pool, processes, version support, the policy adapter and its events.

Imports nothing from vllm at package level: the adapter module is loaded inside vLLM's own processes."""
