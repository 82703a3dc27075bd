"""slobench: capacity of LLM serving stacks at SLO attainment (vLLM vs SLOs-Serve, simulated or real)."""

__version__ = "0.1.0"
