"""Any OpenAI-compatible endpoint: the streaming load generator, the wire protocol and prompt synthesis."""
