"""GPU energy per output token: poll the GPUs' power draw during a run and integrate it.

``PowerSampler`` asks ``nvidia-smi`` for every GPU's ``power.draw`` every ``interval_s`` in a background
thread and keeps ``(t, watts)`` with the GPUs summed, so the energy covers the whole replica set. Energy is
the trapezoidal integral of those samples. The number is only as good as the sampling, so
``energy_result`` refuses (``valid=False`` with a reason code) rather than report a guess: too few samples,
a gap longer than ``max_gap_s`` (the query hung or failed), no reading at all, or no output tokens.

Caveats a reader should know: on many drivers ``power.draw`` is a ~1 s moving average, so runs much
shorter than a few seconds blur; and the figure is GPU board power only (no CPU, memory, fans).
Sampling never raises: an absent tool or GPU is recorded in ``unavailable_reason``.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

import numpy as np

ENERGY_NOT_AVAILABLE = "energy_not_available"
TOO_FEW_POWER_SAMPLES = "too_few_power_samples"
POWER_SAMPLE_GAP = "power_sample_gap"
NO_OUTPUT_TOKENS = "no_output_tokens"
NVIDIA_SMI_ARGS = ("--query-gpu=power.draw", "--format=csv,noheader,nounits")

# numpy 2 renamed trapz to trapezoid (and removed trapz in 2.x later); use whichever this numpy has.
_trapezoid: Callable[..., Any] = getattr(np, "trapezoid", None) or np.trapz  # type: ignore[attr-defined]


class PowerUnavailable(Exception):
    """A power query that cannot answer (no tool, no GPU, no reading); the message says which."""


def parse_power_draw(text: str) -> list[float]:
    """``nvidia-smi --query-gpu=power.draw`` csv (one number per GPU) → watts per GPU.

    ``[N/A]`` (a GPU without a power sensor) or no line at all is PowerUnavailable: a sum that silently
    leaves out a GPU would under-count the energy.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise PowerUnavailable("nvidia-smi listed no GPU")
    watts = []
    for i, line in enumerate(lines):
        try:
            watts.append(float(line))
        except ValueError:
            raise PowerUnavailable(f"nvidia-smi gives no power reading for GPU {i} ({line!r})") from None
    return watts


def nvidia_smi_power() -> list[float]:
    """Watts per GPU now, from nvidia-smi; PowerUnavailable when the tool or a reading is missing."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise PowerUnavailable("nvidia-smi not found")
    try:
        out = subprocess.run([exe, *NVIDIA_SMI_ARGS], capture_output=True, text=True, timeout=5.0, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PowerUnavailable(f"nvidia-smi failed: {exc}") from None
    if out.returncode != 0:
        first = (out.stderr or out.stdout).strip().splitlines()
        raise PowerUnavailable(f"nvidia-smi exited {out.returncode}: {first[0] if first else 'no output'}")
    return parse_power_draw(out.stdout)


class PowerSampler:
    """Samples summed GPU power in a background thread while the ``with`` block runs.

    ``query`` returns watts per GPU (default: nvidia-smi) and may raise PowerUnavailable; ``clock`` is
    injectable so tests control time. The first failing query marks the sampler unavailable and stops
    it (a machine without GPUs stays cheap); a later failure skips that sample and is counted, and the
    gap it leaves is what ``energy_result`` judges.
    """

    def __init__(self, interval_s: float = 0.1, *, query: Callable[[], list[float]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0 (got {interval_s})")
        self.interval_s = interval_s
        self._query = query or nvidia_smi_power
        self._clock = clock
        self._samples: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.unavailable_reason: str | None = None  # why no samples were taken, when none could be
        self.failed_queries = 0  # failures after the first success (each leaves a gap)
        self.last_error: str | None = None

    @property
    def samples(self) -> list[tuple[float, float]]:
        """A copy of the ``(t_s, watts summed over GPUs)`` samples so far, in time order."""
        with self._lock:
            return list(self._samples)

    def _sample_once(self) -> bool:
        """Take one sample; False when sampling should stop (the first query already failed)."""
        t0 = self._clock()
        try:
            watts = self._query()
            if not watts:
                raise PowerUnavailable("the power query returned no GPU")
        except Exception as exc:  # any failure: a sampler must never take the run down
            reason = str(exc) or type(exc).__name__
            with self._lock:
                first = not self._samples
            if first:
                self.unavailable_reason = reason
                return False
            self.failed_queries += 1
            self.last_error = reason
            return True
        t = (t0 + self._clock()) / 2  # the reading belongs to the middle of the call, not its end
        with self._lock:
            self._samples.append((t, float(sum(watts))))
        return True

    def _loop(self) -> None:
        while self._sample_once() and not self._stop.wait(self.interval_s):
            pass

    def start(self) -> PowerSampler:
        """Start sampling (the first sample is taken at once)."""
        if self._thread is not None:
            raise RuntimeError("PowerSampler already started")
        self._thread = threading.Thread(target=self._loop, name="slobench-power", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and take a last sample, so the integral reaches the end of the run."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        if self.unavailable_reason is None:
            self._sample_once()

    def __enter__(self) -> PowerSampler:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def result(self, output_tokens: int, *, min_samples: int = 10, max_gap_s: float = 1.0) -> EnergyResult:
        """``energy_result`` of this sampler's samples, carrying its unavailable reason."""
        return energy_result(self.samples, output_tokens, min_samples=min_samples, max_gap_s=max_gap_s,
                             unavailable_reason=self.unavailable_reason)


def energy_joules(times: Sequence[float], watts: Sequence[float]) -> float:
    """∫ P dt by the trapezoidal rule over samples at ``times`` (s); 0 with fewer than two samples."""
    if len(times) != len(watts):
        raise ValueError(f"{len(times)} times but {len(watts)} power values")
    if len(times) < 2:
        return 0.0
    return float(_trapezoid(np.asarray(watts, dtype=float), np.asarray(times, dtype=float)))


@dataclass(frozen=True)
class EnergyResult:
    """Energy of a measured window, and whether it may be reported.

    ``joules`` and ``seconds`` are what the samples give even when invalid (for diagnosis);
    ``per_output_token_j`` is None unless ``valid``. ``reason`` is a code (``energy_not_available``,
    ``too_few_power_samples``, ``power_sample_gap``, ``no_output_tokens``) or None; ``detail`` says it
    in words (which GPU query failed, how long the gap was).
    """

    joules: float
    seconds: float
    samples: int
    per_output_token_j: float | None
    valid: bool
    reason: str | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _problem(times: np.ndarray, output_tokens: int, min_samples: int, max_gap_s: float,
             unavailable_reason: str | None) -> tuple[str, str] | None:
    """(reason code, detail) of the first problem, in the order a reader should fix them; None if none."""
    if unavailable_reason is not None:
        return ENERGY_NOT_AVAILABLE, unavailable_reason
    if len(times) == 0:
        return ENERGY_NOT_AVAILABLE, "no power reading was taken"
    if len(times) < min_samples:
        return TOO_FEW_POWER_SAMPLES, f"{len(times)} power samples (< {min_samples}); run longer or sample faster"
    gaps = np.diff(times)
    if len(gaps) and gaps.max() > max_gap_s:
        at = int(gaps.argmax())
        return POWER_SAMPLE_GAP, (f"{gaps[at]:.2f} s without a power sample (> {max_gap_s} s) after "
                                  f"{times[at] - times[0]:.2f} s")
    if output_tokens <= 0:
        return NO_OUTPUT_TOKENS, f"{output_tokens} output tokens: no per-token energy"
    return None


def energy_result(samples: Sequence[tuple[float, float]], output_tokens: int, *, min_samples: int = 10,
                  max_gap_s: float = 1.0, unavailable_reason: str | None = None) -> EnergyResult:
    """Integrate ``(t_s, watts)`` samples and divide by ``output_tokens``, or say why that is not valid.

    ``unavailable_reason`` (a PowerSampler's) makes the result ``energy_not_available`` with that detail.
    """
    ordered = sorted(samples)
    times = np.array([t for t, _ in ordered], dtype=float)
    watts = np.array([w for _, w in ordered], dtype=float)
    joules = energy_joules(times, watts)
    seconds = float(times[-1] - times[0]) if len(times) else 0.0
    problem = _problem(times, output_tokens, min_samples, max_gap_s, unavailable_reason)
    if problem is not None:
        return EnergyResult(joules, seconds, len(times), None, False, problem[0], problem[1])
    return EnergyResult(joules, seconds, len(times), joules / output_tokens, True, None)
