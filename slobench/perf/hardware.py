"""GPU specifications the roofline model needs: peak compute, memory bandwidth, capacity, links.

Memory is what the driver reports (GiB), not the marketing number. Compute and bandwidth are
vendor datasheet peaks (dense bf16 tensor-core FLOP/s, i.e. *without* the 2:4
sparsity doubling; HBM bandwidth) because the roofline model's fitted
efficiencies (ηc, ηm) absorb the gap to achieved throughput. ``link_bw_Bps`` is the
per-direction GPU-to-GPU bandwidth an NCCL ring all-reduce can use (NVLink/Infinity Fabric for
SXM/OAM parts, PCIe for PCIe cards), and ``link_latency_s`` is the fixed cost of one small
all-reduce (NCCL launch + hop latency), which dominates decode-sized messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from slobench.errors import UserError

GiB = 1024**3


@dataclass(frozen=True)
class GPUSpec:
    """One accelerator. Units in the field names; peaks are per GPU."""

    name: str
    peak_flops: float  # dense bf16 FLOP/s
    hbm_bw_Bps: float  # bytes/s
    memory_bytes: float
    link_bw_Bps: float  # per-direction interconnect bandwidth for TP all-reduce
    link_latency_s: float = 10e-6
    vendor: str = "nvidia"


_GPUS: tuple[GPUSpec, ...] = (
    # A100 SXM4: 312 TFLOP/s bf16 dense; NVLink3 600 GB/s bidirectional = 300 GB/s each way.
    GPUSpec("A100-40GB", 312e12, 1.555e12, 40 * GiB, 300e9, 10e-6),
    GPUSpec("A100-80GB", 312e12, 2.039e12, 80 * GiB, 300e9, 10e-6),
    # H100 SXM5: 989 TFLOP/s bf16 dense, 3.35 TB/s HBM3; NVLink4 900 GB/s bidirectional.
    GPUSpec("H100-SXM", 989e12, 3.35e12, 80 * GiB, 450e9, 8e-6),
    # H100 PCIe: 756 TFLOP/s, 2.0 TB/s HBM2e; TP over PCIe Gen5 x16 (64 GB/s each way).
    GPUSpec("H100-PCIe", 756e12, 2.0e12, 80 * GiB, 64e9, 15e-6),
    # H200: H100 compute, "141 GB" HBM3e at 4.8 TB/s; nvidia-smi reports 143,771 MiB ≈ 140 GiB.
    GPUSpec("H200", 989e12, 4.8e12, 140 * GiB, 450e9, 8e-6),
    # L40S: 362 TFLOP/s bf16 dense, 864 GB/s GDDR6, "48 GB" (46,068 MiB usable with ECC on);
    # PCIe Gen4 x16 only (32 GB/s each way).
    GPUSpec("L40S", 362e12, 0.864e12, 45 * GiB, 32e9, 20e-6),
    # MI300X: 1307 TFLOP/s bf16 dense, 5.3 TB/s, 192 GB; 7 Infinity Fabric links × 64 GB/s.
    GPUSpec("MI300X", 1307e12, 5.3e12, 192 * GiB, 448e9, 12e-6, vendor="amd"),
    # A CPU host running vLLM's CPU build: a label for calibrated profiles and reports, not a roofline target.
    # Its numbers are a generic 2-socket-class server's order of magnitude (≈1 TFLOP/s fp32 with AVX-512,
    # ≈100 GB/s DRAM); a CPU's iteration latency comes from `slobench calibrate`, never from these.
    GPUSpec("cpu", 1e12, 100e9, 64 * GiB, 20e9, 50e-6, vendor="cpu"),
)

GPUS: dict[str, GPUSpec] = {g.name: g for g in _GPUS}

# Lower-cased aliases -> canonical name. Bare family names pick the common datacenter variant.
_ALIASES: dict[str, str] = {
    "a100": "A100-80GB",
    "a100-80g": "A100-80GB",
    "a100-80": "A100-80GB",
    "a100-sxm": "A100-80GB",
    "a100-40g": "A100-40GB",
    "a100-40": "A100-40GB",
    "h100": "H100-SXM",
    "h100-sxm5": "H100-SXM",
    "h100-80gb": "H100-SXM",
    "h100-pcie-80gb": "H100-PCIe",
    "h100pcie": "H100-PCIe",
    "h200-sxm": "H200",
    "h200-141gb": "H200",
    "l40s-48gb": "L40S",
    "mi300": "MI300X",
}


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def get_gpu(name: str) -> GPUSpec:
    """Look a GPU up by name or alias, case-insensitively (``"h100"`` -> H100-SXM)."""
    key = _norm(name)
    for canonical in GPUS:
        if _norm(canonical) == key:
            return GPUS[canonical]
    if key in _ALIASES:
        return GPUS[_ALIASES[key]]
    raise UserError(f"unknown hardware {name!r}; known GPUs: {', '.join(GPUS)} (aliases e.g. 'h100', 'a100')")


def list_gpus() -> list[str]:
    """Canonical GPU names, in table order."""
    return list(GPUS)
