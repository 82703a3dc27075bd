"""Per-stage records: what every engine (simulator, real vLLM client, OpenAI client) emits.

One row per request stage, with every output token's timestamp, so all metrics (TTFT, TPOT,
ITL, per-token-deadline attainment) are computed once, in `slobench.metrics.attainment`, the same
way for every engine. Timestamps are seconds on the run's clock (0 = start of the workload).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

STATUSES = ("finished", "failed", "timeout", "rejected", "unfinished")


@dataclass(slots=True)
class StageRecord:
    request_id: int
    stage_idx: int
    stage_name: str
    num_stages: int
    app: str
    tier: str
    arrival_s: float
    stage_start_s: float
    prompt_tokens: int
    output_tokens: int
    ttft_slo_s: float
    tpot_slo_s: float
    token_times_s: list[float] = field(default_factory=list)
    admission: str = "admitted"
    status: str = "finished"
    error: str | None = None
    replica: int = 0
    num_preemptions: int = 0

    def as_row(self) -> dict:
        """The record as a plain dict (what ``dataclasses.asdict`` gives, without its slow deep copy:
        every field is immutable except the token list, which is copied)."""
        row = {name: getattr(self, name) for name in _FIELDS}
        row["token_times_s"] = list(self.token_times_s)
        return row


_FIELDS: tuple[str, ...] = tuple(StageRecord.__dataclass_fields__)


def records_frame(records: list[StageRecord]) -> pd.DataFrame:
    """Records as a DataFrame (one row per stage), the format written to requests.parquet.

    Built column by column: a capacity search builds one frame per probe, and going through a dict
    per row (``asdict``) cost as much as simulating the run.
    """
    if not records:
        return pd.DataFrame(columns=list(_FIELDS))
    cols = {name: [getattr(r, name) for r in records] for name in _FIELDS}
    cols["token_times_s"] = [list(t) for t in cols["token_times_s"]]
    return pd.DataFrame(cols)
