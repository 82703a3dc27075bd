"""The engine boundary: one job in (`EngineJob`), one result out (`EngineResult`).

`slobench.cluster.run.run_once` is the only caller: it builds the latency model, the workload and
the record sink once, hands them to an engine as an `EngineJob`, and turns the `EngineResult` into
the run's summary and results folder. Engines execute; they never write ``summary.json`` or record
files (a real engine may put its server logs and scheduler events in ``EngineJob.log_dir``).

Engines: `slobench.engines.sim.SimEngine` (discrete-event simulator, any number of replicas),
`slobench.engines.vllm.engine.VLLMEngine` (a launched vLLM server with the policy inside it; N of them as Ray
actors behind the driver's router with ``--replicas N``) and
`slobench.engines.openai.engine.OpenAIEngine` (any OpenAI-compatible endpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pandas as pd

from slobench.errors import UserError
from slobench.metrics.records import StageRecord
from slobench.perf.base import LatencyModel
from slobench.schedulers.spec import PolicySpec
from slobench.workloads.model import Workload

RecordSink = Callable[[StageRecord], None]
ProgressFn = Callable[[int, int], None]  # (requests done, requests in the load)


@dataclass(frozen=True)
class OpenLoopLoad:
    """Requests sent at their workload arrival times, whatever the engine does (the benchmark's load)."""

    kind: ClassVar[str] = "open-loop"

    workload: Workload  # generated once by cluster.run (seeded); every request's arrival_s is its send time


@dataclass(frozen=True)
class ClosedLoopLoad:
    """At most ``concurrency`` requests in flight: vLLM ``bench serve --max-concurrency``'s meaning.

    Requests keep their open-loop arrival times, but one that arrives while ``concurrency`` requests are in
    flight waits for a slot and is sent when one frees (a request is in flight from its send to its last
    token, tool gaps included: the client holds the slot). With every arrival at 0 it is a pure closed loop
    (N clients, each sending its next request when the previous one ends). Latency is measured from the
    send, as vLLM's benchmark does: a request's records carry its send time as ``arrival_s`` (time spent
    waiting for a slot is the client's, not the server's, and counts against no SLO).
    """

    kind: ClassVar[str] = "closed-loop"

    workload: Workload
    concurrency: int  # most requests in flight at once (≥ 1)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UserError(f"--max-concurrency: must be ≥ 1 (got {self.concurrency})")


Load = OpenLoopLoad | ClosedLoopLoad  # the loads an engine may be given


@dataclass(frozen=True)
class ReplicaSet:
    """How many replicas serve the load and how requests are placed on them."""

    count: int = 1  # replicas: the simulator's in its event loop; vLLM's as Ray actors; openai: exactly one
    router: str = "round-robin"  # a name of slobench.schedulers.routers.ROUTERS
    refresh_s: float = 0.1  # how often the router's view of replica loads is refreshed (vLLM's DP
    # coordinator publishes every 100 ms); 0: fresh at every request


@dataclass
class EngineJob:
    """One run's work, as `cluster.run.run_once` hands it to an engine.

    Built once per run; engines read it and never change it. Callbacks are called from the engine's
    own thread (the load generator's event loop for real engines), one record at a time.
    """

    load: Load  # what to send, and when
    policy: PolicySpec  # the scheduling policy (+ options, draft model); real vLLM: built inside vLLM
    perf: LatencyModel  # the latency model: the simulator's ground truth; real engines: already used
    # by the workload (slowdown TTFT targets → seconds); the in-vLLM policy builds its own from the run's
    # hardware/model/profile (the engine's settings)
    replicas: ReplicaSet = field(default_factory=ReplicaSet)
    on_record: RecordSink | None = None  # called with every finished (or given-up) stage record, in order
    # of completion; cluster.run streams them to requests.jsonl and to the caller's own callback
    on_progress: ProgressFn | None = None  # (requests done, total) as requests complete
    seed: int = 0  # engine randomness: simulated acceptance of drafts, synthetic prompt token ids
    drain_timeout_s: float = 600.0  # stop this long after the last arrival; the rest is "unfinished"
    log_dir: Path | None = None  # where a real engine may put server logs and scheduler events (None: the
    # engine session's folder); the simulator writes nothing
    stop: Callable[[], bool] | None = None  # real engines ask it after each record: True → send no more, the
    # requests in flight become "unfinished" (a probe that has certainly failed, `metrics.early_fail`); the
    # simulator, which costs no wall time per simulated second, runs to the end


@dataclass
class ClientEvidence:
    """The load generator's account of itself (real engines; the simulator's closed loop): did it offer the
    load it was asked to?

    Capacity searches mark a probe INVALID on it (lag above 1 s, achieved rate off the offered one).
    """

    achieved_rate_rps: float | None  # requests actually sent per second of the send span; None: < 2 sent
    client_lag_s: float | None  # worst lateness of a send against its schedule (s); None: nothing sent
    counters: dict[str, Any] = field(default_factory=dict)  # the rest: lag p50/p99, tokens streamed, prompt
    # tokens sent vs reported by the server, usage mismatches, HTTP errors …


@dataclass
class EngineResult:
    """What an engine returns. The run (cluster.run) computes every metric and summary from it."""

    records: list[StageRecord]  # one per request stage, as passed to EngineJob.on_record (in that order for one
    # replica; the simulator's replicas stream interleaved as requests finish and are returned replica by replica)
    iterations: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per engine iteration (time_s,
    # latency_s, num_seqs, prefill/decode tokens, budget_s, kv_used_blocks, replica): the simulator's;
    # empty for real engines (their iterations happen inside the server)
    scheduler_stats: dict[str, Any] | None = None  # the policy's SchedulerStats.as_dict() (calls, overhead_ms,
    # counters), merged over replicas; vLLM: the adapter's, from its events file; None: stock vLLM or a
    # remote server (no slobench policy ran), or a policy without stats
    client: ClientEvidence | None = None  # the load generator's evidence; None on the simulator's open loop,
    # which offers exactly the generated arrivals (a closed loop reports how long sends waited for a slot)
    info: dict[str, Any] = field(default_factory=dict)  # engine facts for summary.json's engine_info: server
    # URL, pid, log, start-up time, versions, run id; empty on the simulator

    @classmethod
    def make_empty(cls) -> EngineResult:
        return cls(records=[])


class Engine(Protocol):
    """An executor: runs one `EngineJob` to completion (or to its drain timeout) and returns what happened.

    Errors the user can act on (a dead server, an unreachable URL, an unsupported load) are one-line
    `UserError`s (`slobench.engines.errors.EngineError` for real engines); records passed to
    ``job.on_record`` before an error are the run's "records so far".
    """

    name: str  # "sim", "vllm", "openai": the --engine value

    def run(self, job: EngineJob) -> EngineResult:
        ...


def unsupported_load(engine: str, load: object) -> UserError:
    """The one-line error of an engine given a kind of load it cannot drive yet."""
    kind = getattr(load, "kind", type(load).__name__)
    hint = " (--max-concurrency)" if kind == "closed-loop" else ""
    return UserError(f"--engine {engine}: {kind} loads{hint} are not supported yet; use an open-loop load (--rate)")


def client_load(engine: str, job: EngineJob) -> tuple[Workload, int | None]:
    """What a real engine's load generator drives: the workload and the concurrency cap (None: open loop).

    Any other kind of load is refused with `unsupported_load` (before anything is launched)."""
    if isinstance(job.load, OpenLoopLoad):
        return job.load.workload, None
    if isinstance(job.load, ClosedLoopLoad):
        return job.load.workload, job.load.concurrency
    raise unsupported_load(engine, job.load)
