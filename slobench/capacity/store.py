"""The probe store of a results folder: probes.csv, per-probe records, summary.json, and resume.

Every finished probe is saved at once (its records as ``parts/`` files first, then its row in
probes.csv), so Ctrl-C or a kill keeps what finished. probes.csv and summary.json are replaced
atomically (temp file + rename), so a reader or a kill never sees a torn file. On resume the rows
of the earlier session are read back (`Collector.load_previous`) and a probe found there is
replayed from its row instead of rerun (`Collector.cached_result`); the final save folds the parts
into requests.parquet / iterations.parquet in probes.csv order. Rows are written and read by the
typed models of `slobench.report.probes`, so the report layer reads what this layer wrote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from slobench.capacity.plan import SearchSpec
from slobench.capacity.search import EVIDENCE_FIELDS, CapacityResult, Probe, ProbeResult
from slobench.errors import UserError
from slobench.report.probes import (
    PROBES_VERSION,
    SUMMARY_VERSION,
    CapacityRow,
    ExperimentSummary,
    ProbeRow,
    ScalingRow,
    probes_frame,
    read_probe_rows,
    write_probe_rows,
)
from slobench.report.results import probe_key

ProbeKey = tuple[str, str, float, int] | tuple[str, str, float, int, float]  # `probe_key`
# Records of parts written this session kept in memory for the final fold (`Collector._keep_written`): a compare's
# are ~10 MB; a sweep beyond this reads the rest back from disk.
WRITTEN_CACHE_BYTES = 256 << 20
# Columns a saved probe row needs to stand in for a rerun (the search's inputs, not its outputs).
EVIDENCE_COLUMNS = ("num_met", "num_requests", "offered_rate_rps", "achieved_rate_rps", "client_lag_s", "tail_s",
                    "unfinished")


def probe_row(spec: SearchSpec, p: Probe) -> ProbeRow:
    """One probe of ``spec``'s search as its probes.csv row (grid values appended)."""
    return ProbeRow.model_validate({"workload": spec.label, "scheduler": spec.scheduler} | p.row() | spec.extra
                                   | {"schema_version": PROBES_VERSION})


def capacity_row(spec: SearchSpec, result: CapacityResult) -> CapacityRow:
    """One search's outcome as its row of summary.json's ``capacities`` (grid values appended)."""
    return CapacityRow.model_validate({
        "workload": spec.label, "scheduler": spec.scheduler, "capacity_rps": result.capacity_rps,
        "lower_rps": result.lower_rps, "upper_rps": result.upper_rps, "status": result.status,
        "message": result.message, "min_rate_rps": result.points[0].rate_rps if result.points else None,
        "num_rates": len(result.points), "num_probes": len(result.probes), "notes": "; ".join(result.notes),
        "probe_requests": spec.run_kwargs.get("probe_requests"), "warmup": spec.run_kwargs.get("warmup"),
        "at_capacity": serving_at(result.probes, result.capacity_rps),
    } | spec.extra)


def serving_at(probes: list[Probe], rate_rps: float | None) -> dict[str, float]:
    """The vLLM-style figures (tokens/s, both goodputs, latency ms) of the probes at ``rate_rps``, averaged over
    seeds: what a capacity means in the numbers `vllm bench serve` users read. Empty without such probes."""
    if rate_rps is None:
        return {}
    values: dict[str, list[float]] = {}
    for p in probes:
        if abs(p.rate_rps - rate_rps) > 1e-9 * max(1.0, rate_rps):
            continue
        for k, v in p.evidence.items():
            if k not in EVIDENCE_FIELDS and isinstance(v, int | float) and v == v:
                values.setdefault(k, []).append(float(v))
    return {k: sum(v) / len(v) for k, v in values.items()}


def _evidence_columns_missing(path: Path) -> list[str]:
    header = pd.read_csv(path, nrows=0).columns
    return [c for c in ("workload", "scheduler", "rate_rps", "seed", *EVIDENCE_COLUMNS) if c not in header]


@dataclass
class Collector:
    """Everything a report needs, saved probe by probe into ``out_dir``.

    On resume, ``previous`` holds the rows of probes.csv from the earlier session; a probe found
    there is not rerun (`cached_result`) and its records stay where they were saved.
    """

    out_dir: Path
    target: float
    title: str
    probe_rows: list[ProbeRow] = field(default_factory=list)
    capacities: list[CapacityRow] = field(default_factory=list)
    scaling: list[ScalingRow] = field(default_factory=list)
    previous: dict[ProbeKey, ProbeRow] = field(default_factory=dict)
    replayed: set[ProbeKey] = field(default_factory=set)
    complete: bool = False
    started: float = field(default_factory=time.perf_counter)
    setup: list[dict[str, str]] = field(default_factory=list)  # `slobench.capacity.setup.describe_setup`
    metadata: dict[str, str] = field(default_factory=dict)  # --metadata KEY=VALUE, copied into summary.json
    extra: dict[str, Any] = field(default_factory=dict)  # further summary.json sections (validate: ``validation``)
    _pending: dict[ProbeKey, tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)
    # The parts written this session, kept (up to `WRITTEN_CACHE_BYTES`) so the final fold need not read them back.
    _written: dict[str, dict[ProbeKey, Any]] = field(default_factory=lambda: {"requests": {}, "iterations": {}})
    _written_bytes: int = 0

    def load_previous(self) -> int:
        """Read an earlier session's probes.csv; return how many probes can be reused."""
        path = self.out_dir / "probes.csv"
        if not path.exists() or path.stat().st_size == 0:
            return 0
        rows = read_probe_rows(path)  # first: a torn or foreign file is named as such, not as an old one
        try:
            missing = _evidence_columns_missing(path)
        except pd.errors.EmptyDataError:
            return 0
        if missing:
            raise UserError(f"{path}: cannot resume, columns {', '.join(missing)} missing (written by an older "
                            "slobench); start a new run")
        for row in rows:
            self.previous[row.key] = row
        return len(self.previous)

    def cached_result(self, key: ProbeKey) -> ProbeResult | None:
        """The saved probe as the `ProbeResult` the engine returned then (None if not saved), marked replayed."""
        result = self.saved_result(key)
        if result is not None:
            self.replayed.add(key)
        return result

    def saved_result(self, key: ProbeKey) -> ProbeResult | None:
        """`cached_result` without marking the probe replayed (a worker process's copy of the cache)."""
        row = self.previous.get(key)
        if row is None:
            return None
        return ProbeResult(
            num_met=row.num_met, num_requests=row.num_requests, offered_rate_rps=row.offered_rate_rps,
            achieved_rate_rps=row.achieved_rate_rps, client_lag_s=row.client_lag_s, tail_s=row.tail_s,
            unfinished=row.unfinished, **{f: getattr(row, f) for f in EVIDENCE_FIELDS}, serving=row.serving(),
        )

    def stash(self, key: ProbeKey, stages: pd.DataFrame, iterations: pd.DataFrame) -> None:
        """Hold a fresh probe's frames until its row is written (so records and rows stay in step)."""
        self._pending[key] = (stages, iterations)

    def replays(self, key: ProbeKey) -> bool:
        """True when a probe arriving for ``key`` is a saved one replayed (no fresh records stashed for it):
        a worker process replays from its own copy of the cache, so the parent marks it here."""
        if key in self.previous and key not in self._pending:
            self.replayed.add(key)
            return True
        return False

    def add_probe(self, spec: SearchSpec, p: Probe) -> bool:
        """Save one finished probe (frames first, then its row); return whether it was reused."""
        from slobench.report.results import write_probe_part

        key = probe_key(spec.label, spec.scheduler, p.rate_rps, p.seed, p.span_factor)
        frames = self._pending.pop(key, None)
        if frames is not None:
            for kind, df in zip(("requests", "iterations"), frames, strict=True):
                self._keep_written(kind, key, write_probe_part(self.out_dir, kind, key, df))
        self.probe_rows.append(probe_row(spec, p))
        self.save()
        return frames is None and key in self.replayed

    def _keep_written(self, kind: str, key: ProbeKey, table: Any) -> None:
        """Remember a part's table for the final fold while the cache has room (a long sweep's records can be
        gigabytes: beyond the cap the fold reads them back, as it would after a resume)."""
        old = self._written[kind].pop(key, None)
        self._written_bytes -= old.nbytes if old is not None else 0
        if table is not None and self._written_bytes + table.nbytes <= WRITTEN_CACHE_BYTES:
            self._written[kind][key] = table
            self._written_bytes += table.nbytes

    def add_capacity(self, spec: SearchSpec, result: CapacityResult) -> CapacityRow:
        """Save one finished search's outcome."""
        row = capacity_row(spec, result)
        self.capacities.append(row)
        self.save()
        return row

    @property
    def num_saved(self) -> int:
        """Probes saved in the folder: this session's plus the earlier session's not replayed yet."""
        return len(self.probe_rows) + len(set(self.previous) - self.replayed)

    def rows(self) -> list[ProbeRow]:
        """probes.csv's rows: this session's, then saved probes not replayed yet (a second interruption
        loses nothing)."""
        done = {r.key for r in self.probe_rows}
        return self.probe_rows + [r for k, r in self.previous.items() if k not in done]

    def summary(self) -> ExperimentSummary:
        return ExperimentSummary(schema_version=SUMMARY_VERSION, title=self.title, target=self.target,
                                 complete=self.complete, capacities=self.capacities, scaling=self.scaling,
                                 wall_s=time.perf_counter() - self.started, setup=self.setup,
                                 metadata=self.metadata, **self.extra)

    def save(self, *, final: bool = False) -> None:
        """Write probes.csv and summary.json; on the final save fold the per-probe parts in."""
        from slobench.report.results import consolidate_parts

        rows = self.rows()
        write_probe_rows(self.out_dir / "probes.csv", rows)
        self.summary().write(self.out_dir / "summary.json")
        if final:
            if rows:  # the same tidy table, typed, for pandas users (probes.csv stays the resume source)
                probes_frame(rows).to_parquet(self.out_dir / "probes.parquet", index=False)
            order = [r.key for r in rows]
            for kind in ("requests", "iterations"):
                consolidate_parts(self.out_dir, kind, order, self._written[kind])
            for tables in self._written.values():
                tables.clear()
            self._written_bytes = 0
