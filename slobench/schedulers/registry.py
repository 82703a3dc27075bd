"""Scheduler registry: ``--scheduler NAME`` looks a factory up in one dict.

Factories take the engine's context (GPU memory for vLLM's size-dependent defaults) plus
user options, so each policy gets vLLM's real defaults unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slobench.errors import UserError
from slobench.schedulers.base import Scheduler
from slobench.schedulers.vllm_v1 import VLLMScheduler, vllm_defaults

SchedulerFactory = Callable[..., Scheduler]


def _vllm(gpu_memory_bytes: float | None = None, gpu_name: str = "", **opts: Any) -> Scheduler:
    return VLLMScheduler(**{**vllm_defaults(gpu_memory_bytes, gpu_name), **opts})


def _vllm_v0(gpu_memory_bytes: float | None = None, gpu_name: str = "", **opts: Any) -> Scheduler:
    from slobench.schedulers.vllm_v0 import VLLMv0Scheduler

    return VLLMv0Scheduler(**opts)


def _sarathi(gpu_memory_bytes: float | None = None, gpu_name: str = "", **opts: Any) -> Scheduler:
    from slobench.schedulers.sarathi import SarathiScheduler

    return SarathiScheduler(**opts)


def _slos_serve(gpu_memory_bytes: float | None = None, gpu_name: str = "", **opts: Any) -> Scheduler:
    from slobench.schedulers.slos_serve import SLOsServeScheduler

    return SLOsServeScheduler(**opts)


SCHEDULERS: dict[str, SchedulerFactory] = {
    "vllm": _vllm,
    "vllm-v0": _vllm_v0,
    "sarathi": _sarathi,
    "slos-serve": _slos_serve,
}


def scheduler_names() -> list[str]:
    return list(SCHEDULERS)


def make_scheduler(name: str, *, gpu_memory_bytes: float | None = None, gpu_name: str = "", **opts: Any) -> Scheduler:
    """Build the policy called ``name`` (one of `scheduler_names()`)."""
    key = name.strip().lower().replace("_", "-")
    if key not in SCHEDULERS:
        raise UserError(f"unknown scheduler '{name}'; choose one of: {', '.join(SCHEDULERS)}")
    try:
        return SCHEDULERS[key](gpu_memory_bytes=gpu_memory_bytes, gpu_name=gpu_name, **opts)
    except TypeError as exc:
        raise UserError(f"scheduler '{name}': bad option ({exc})") from exc
