"""Per-stage records: what every engine (simulator, real vLLM client, OpenAI client) emits.

One row per request stage, with every output token's timestamp, so all metrics (TTFT, TPOT,
ITL, per-token-deadline attainment) are computed once, in `slobench.metrics.attainment`, the same
way for every engine. Timestamps are seconds on the run's clock (0 = start of the workload).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import pandas as pd


class _StrEnum(str, Enum):
    """A str whose value is the word written to files (``str()``/f-strings give the value, as 3.11's
    StrEnum does; the package supports 3.10)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Status(_StrEnum):
    """How a stage ended. Every status but FINISHED is a miss."""

    FINISHED = "finished"  # every expected token arrived
    FAILED = "failed"  # the engine answered with an error (HTTP error, broken stream)
    TIMEOUT = "timeout"  # a real engine's request exceeded its timeout
    REJECTED = "rejected"  # admission control refused it (never served)
    UNFINISHED = "unfinished"  # still running when the run ended (drain timeout)


class Admission(_StrEnum):
    """What admission control decided for a request (baselines admit everything)."""

    PENDING = "pending"  # not decided yet
    ADMITTED = "admitted"  # the policy committed to its SLOs
    BEST_EFFORT = "best_effort"  # served with leftover capacity, no promise
    REJECTED = "rejected"  # refused


STATUSES = tuple(s.value for s in Status)


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
    admission: Admission = Admission.ADMITTED
    status: Status = Status.FINISHED
    error: str | None = None
    replica: int = 0
    num_preemptions: int = 0

    def as_row(self) -> dict:
        """The record as a plain dict (what ``dataclasses.asdict`` gives, without its slow deep copy:
        every field is immutable except the token list, which is copied)."""
        row = {name: getattr(self, name) for name in _FIELDS}
        row["token_times_s"] = list(self.token_times_s)
        row["admission"], row["status"] = str(self.admission), str(self.status)
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
    for name in ("admission", "status"):  # frames and files hold the plain words
        cols[name] = [str(v) for v in cols[name]]
    return pd.DataFrame(cols)
