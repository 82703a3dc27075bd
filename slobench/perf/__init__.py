"""Iteration-latency models: roofline (any GPU × model × TP), the paper's fitted profiles, fitting.

Entry point: `get_latency_model(hardware, model, tp, profile)`. Without ``profile`` it builds a
`RooflineModel` from the GPU and model tables (or a local HF ``config.json`` path as ``model``);
with ``profile="paper:..."`` it returns the SLOs-Serve paper's published piecewise-linear fit, and with
``profile="FILE.yaml"`` a profile written by `slobench calibrate` (`slobench.perf.profile_file`).
"""

from __future__ import annotations

from slobench.errors import UserError
from slobench.perf.base import LatencyModel
from slobench.perf.hardware import GPUS, GPUSpec, get_gpu, list_gpus
from slobench.perf.models import MODELS, ModelSpec, get_model, list_models, load_hf_config
from slobench.perf.roofline import RooflineModel

__all__ = [
    "GPUS",
    "MODELS",
    "GPUSpec",
    "LatencyModel",
    "ModelSpec",
    "RooflineModel",
    "get_gpu",
    "get_latency_model",
    "get_model",
    "list_gpus",
    "list_models",
    "list_profiles",
    "load_hf_config",
]


def list_profiles() -> list[str]:
    """Names of the shipped fitted profiles (``paper:...``)."""
    from slobench.perf.profiles import PROFILES

    return list(PROFILES)


def get_latency_model(
    hardware: str = "H100-SXM",
    model: str = "Llama-3.1-8B",
    tp: int = 1,
    profile: str | None = None,
    *,
    draft_model: str | None = None,
    **roofline_options: float,
) -> LatencyModel:
    """The latency model the simulator and schedulers use.

    ``profile`` (e.g. ``"paper:opt-13b-a100-tp2"``, or a calibrated ``FILE.yaml``) selects a fit and overrides
    hardware/model/tp (the fit was measured on its own setup); otherwise a `RooflineModel` with
    the default efficiencies. ``model`` may be a table name, an HF repo id whose tail is in the
    table, or a path to a local ``config.json``. Keyword options (``eta_compute``, ``eta_memory``,
    ``t0_s``, ``gpu_mem_util``, ``activation_reserve_bytes``, ``draft_fraction``) and
    ``draft_model`` (a model name) pass through to `RooflineModel`, e.g. calibrated values.
    """
    if profile:
        from slobench.perf.profile_file import is_profile_path, model_from_file
        from slobench.perf.profiles import get_profile

        return model_from_file(profile) if is_profile_path(profile) else get_profile(profile)
    allowed = {"eta_compute", "eta_memory", "t0_s", "gpu_mem_util", "activation_reserve_bytes", "draft_fraction"}
    unknown = sorted(set(roofline_options) - allowed)
    if unknown:
        raise UserError(f"unknown latency-model option(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
    draft = get_model(draft_model) if draft_model else None
    return RooflineModel(get_gpu(hardware), get_model(model), tp=tp, draft_model=draft, **roofline_options)
