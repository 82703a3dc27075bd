"""Per-stage records: what every engine (simulator, real vLLM client, OpenAI client) emits.

One row per request stage, with every output token's timestamp, so all metrics (TTFT, TPOT,
ITL, per-token-deadline attainment) are computed once, in `slobench.metrics.attainment`, the same
way for every engine. Timestamps are seconds on the run's clock (0 = start of the workload).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
        return asdict(self)


def records_frame(records: list[StageRecord]) -> pd.DataFrame:
    """Records as a DataFrame (one row per stage), the format written to requests.parquet."""
    if not records:
        cols = list(StageRecord.__dataclass_fields__)
        return pd.DataFrame(columns=cols)
    return pd.DataFrame([r.as_row() for r in records])
