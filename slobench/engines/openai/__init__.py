"""Any OpenAI-compatible endpoint: the engine, the streaming load generator, the wire protocol and prompt synthesis."""
