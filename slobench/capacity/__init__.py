"""Capacity: the pure search, experiment plans, their execution, the probe store and benchmarks."""
