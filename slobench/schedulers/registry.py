"""Scheduler registry: ``--scheduler NAME`` looks a factory up in one dict; ``package.module:Class``
imports a policy of your own. The simulator and the vLLM adapter both build policies here.

Factories take the engine's context (GPU memory for vLLM's size-dependent defaults) plus
user options, so each policy gets vLLM's real defaults unless told otherwise.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from slobench.errors import UserError
from slobench.schedulers.base import Scheduler
from slobench.schedulers.spec import PolicySpec
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def import_policy_class(name: str) -> Callable[..., Scheduler]:
    """``package.module:Class`` (or ``package.module.Class``) → the class; a failure is one UserError line."""
    mod_name, sep, attr = name.partition(":")
    if not sep:
        mod_name, _, attr = name.rpartition(".")
    fix = "give package.module:Class of a policy importable here (installed, or on PYTHONPATH)"
    if not mod_name or not attr:
        raise UserError(f"scheduler '{name}': not a registry name ({', '.join(SCHEDULERS)}) nor package.module:Class")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise UserError(f"scheduler '{name}': cannot import module '{mod_name}' ({_first_line(exc)}); {fix}") \
            from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UserError(f"scheduler '{name}': module '{mod_name}' has no attribute '{attr}'; {fix}") from None
    if not callable(obj):
        raise UserError(f"scheduler '{name}': '{attr}' in '{mod_name}' is not a class; {fix}")
    return obj


def make_policy(
    spec: PolicySpec | str,
    *,
    gpu_memory_bytes: float | None = None,
    gpu_name: str = "",
    offered: dict[str, Any] | None = None,
) -> Scheduler:
    """Build the policy ``spec`` names, with its options.

    ``gpu_memory_bytes``/``gpu_name`` reach registry factories (vLLM's size-dependent defaults);
    ``offered`` are options an engine offers (the vLLM adapter: vLLM's real ``max_num_batched_tokens``
    and ``max_num_seqs``) that a policy gets only if it accepts them; the spec's own options win.
    """
    spec = spec if isinstance(spec, PolicySpec) else PolicySpec(name=spec)
    if spec.is_import_path:
        factory: Callable[..., Scheduler] = import_policy_class(spec.name)
        ctx: dict[str, Any] = {}  # a user's class gets its options only
    else:
        key = spec.name.strip().lower().replace("_", "-")
        if key not in SCHEDULERS:
            raise UserError(f"unknown scheduler '{spec.name}'; choose one of: {', '.join(SCHEDULERS)} "
                            "(or package.module:Class)")
        factory, ctx = SCHEDULERS[key], {"gpu_memory_bytes": gpu_memory_bytes, "gpu_name": gpu_name}
    opts = dict(spec.options)
    if offered:
        try:
            return factory(**ctx, **(offered | opts))
        except TypeError:
            pass  # the policy does not take the offered options: build it with its own only
    try:
        return factory(**ctx, **opts)
    except TypeError as exc:
        raise UserError(f"scheduler '{spec.name}': bad option ({exc})") from exc


def make_scheduler(name: str, *, gpu_memory_bytes: float | None = None, gpu_name: str = "", **opts: Any) -> Scheduler:
    """Build the policy called ``name`` (one of `scheduler_names()`, or package.module:Class) with ``opts``."""
    return make_policy(PolicySpec(name=name, options=opts), gpu_memory_bytes=gpu_memory_bytes, gpu_name=gpu_name)
