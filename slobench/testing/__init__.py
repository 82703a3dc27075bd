"""The importable test kit (tiny model, mock server, test policies) that tests and vLLM subprocesses load."""
