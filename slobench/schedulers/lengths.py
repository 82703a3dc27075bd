"""What a policy may know about output lengths: the public request and an online length predictor.

A real server does not know how many tokens a request will generate; it knows the request's
``max_tokens`` bound and what it has seen finish. Engines therefore give a policy

* a **public copy** of each request (`LengthInfo.public`), whose stages' ``output_tokens`` are the
  bound a real server would know, so a policy that reads ``seq.req.stages[i].output_tokens`` or
  ``seq.remaining_output`` reads only that bound; and
* a **length predictor** (``SchedulerView.lengths``) with `expected_remaining` and
  `quantile_remaining`, learned online, per replica, from the output lengths of the stages that
  finished so far (the engine calls `observe` when a stage ends).

The bound (`max_tokens` of the public stage): the context the request may still fill — the app's
``lengths.max_context`` from the workload spec (the context limit the workload was generated under;
on a real server, vLLM's ``max_model_len``) minus the prompt tokens of this stage and the stages
before it. It ignores earlier stages' outputs, so it is known at arrival and leaks nothing about
them; it is an upper bound for every stage because the context never exceeds ``max_context``.
Without a spec entry for the app, the replica's KV capacity in tokens (the most any request may hold).

The prediction: for a stage of (app, tier, stage name) that has produced ``k`` tokens, the
conditional distribution of its remaining length ``L − k`` given ``L > k`` under the empirical
distribution of the finished stages of the same key: ``expected_remaining`` = E[L − k | L > k],
``quantile_remaining(q)`` = its q-quantile. Each key keeps a sorted array and suffix sums,
rebuilt in batches (when the observations have grown by ``refresh_fraction``, at least one), so a
query is one binary search (O(log n)) and an observation O(1) amortised (a rebuild sorts once per
batch). Both are capped by the stage's bound. Cold start, in order: the key's own history once it
has ``min_samples`` observations (default 1: the first finished stage of a key is its prediction
until more finish); else the (app, stage name) history pooled over tiers; else the stage name's
history pooled over apps; else the bound itself (conservative: what a real server knows before
anything finished). ``min_samples`` was measured, not assumed: on reasoning (seed 0, 1.04 req/s,
slos-serve) 1 → 94.8% attainment, 8 → 90.7%, 32 → 81.3% — every request admitted while the
predictor still answers with the 16k-token bound reserves three times its real KV, and the first
thinking stages end only after ~2 minutes. Early finishers are short ones, so the first
predictions are optimistic; the next observations correct them within minutes. A stage that has
outlived every observation is predicted to last half as long again as it has (``k/2``, at least 1,
within the bound).

`OracleLengths` is the paper's known-length assumption (``PolicySpec.oracle_lengths``): the public
request is the true one and the predictor returns the truth. Runs record which one a policy had
(``information`` in summary.json).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from slobench.workloads.model import Request, Stage

if TYPE_CHECKING:
    from slobench.schedulers.base import SeqState

ONLINE = "online-predictor"
ORACLE = "oracle"


def information(oracle_lengths: bool) -> dict[str, str]:
    """What a run's policy knew, for summary.json (``information``)."""
    return {"output_lengths": ORACLE if oracle_lengths else ONLINE}


class LengthInfo(Protocol):
    """The length information an engine hands a policy (``SchedulerView.lengths``)."""

    kind: str  # ONLINE or ORACLE

    def public(self, req: Request) -> Request: ...

    def observe(self, app: str, tier: str, stage: str, n_out: int) -> None: ...

    def expected_remaining(self, seq: SeqState, stage_idx: int | None = None) -> float: ...

    def quantile_remaining(self, seq: SeqState, q: float, stage_idx: int | None = None) -> int: ...


def _stage_progress(seq: SeqState, stage_idx: int | None) -> tuple[int, int]:
    """(stage index, tokens already produced in it): the current stage, or a later one (0 produced)."""
    if stage_idx is None or stage_idx == seq.stage_idx:
        return seq.stage_idx, seq.stage_out
    return stage_idx, 0


@dataclass
class OracleLengths:
    """The paper's assumption: output lengths are known (the public request is the true one)."""

    kind: str = ORACLE

    def public(self, req: Request) -> Request:
        return req

    def observe(self, app: str, tier: str, stage: str, n_out: int) -> None:
        return None

    def expected_remaining(self, seq: SeqState, stage_idx: int | None = None) -> float:
        i, done = _stage_progress(seq, stage_idx)
        return float(max(0, seq.req.stages[i].output_tokens - done))

    def quantile_remaining(self, seq: SeqState, q: float, stage_idx: int | None = None) -> int:
        i, done = _stage_progress(seq, stage_idx)
        return max(0, seq.req.stages[i].output_tokens - done)


class _History:
    """Observed lengths of one key: appended in O(1); a sorted array + suffix sums rebuilt in batches."""

    __slots__ = ("raw", "sorted", "suffix", "n_sorted", "next_refresh", "sorted_list", "suffix_list")

    def __init__(self) -> None:
        self.raw: list[int] = []
        self.sorted: np.ndarray = np.empty(0, dtype=np.int64)
        self.suffix: np.ndarray = np.zeros(1, dtype=np.float64)  # suffix[i] = sum(sorted[i:])
        # The same values as Python lists (``tolist`` is exact): a query bisects and indexes these, since
        # bisecting a numpy array boxes a numpy scalar per comparison (slos-serve asks ~10⁵ times a run).
        self.sorted_list: list[int] = []
        self.suffix_list: list[float] = [0.0]
        self.n_sorted = 0
        self.next_refresh = 1

    def add(self, n: int, refresh_fraction: float) -> None:
        self.raw.append(n)
        if len(self.raw) >= self.next_refresh:
            self.refresh(refresh_fraction)

    def refresh(self, refresh_fraction: float) -> None:
        arr = np.sort(np.asarray(self.raw, dtype=np.int64))
        self.sorted = arr
        self.suffix = np.concatenate([np.cumsum(arr[::-1])[::-1].astype(np.float64), [0.0]])
        self.sorted_list = arr.tolist()
        self.suffix_list = self.suffix.tolist()
        self.n_sorted = len(arr)
        self.next_refresh = len(arr) + max(1, math.ceil(refresh_fraction * len(arr)))

    def above(self, k: int) -> int:
        """Index of the first observation > k (binary search)."""
        return bisect.bisect_right(self.sorted_list, k)


@dataclass
class OnlineLengths:
    """Per-replica online output-length predictor (see the module docstring for the rules).

    ``max_context``: app → context limit (the bound); ``fallback_context``: the limit for other apps.
    """

    max_context: dict[str, int] = field(default_factory=dict)
    fallback_context: int = 1 << 20
    min_samples: int = 1  # measured (docs/slos-serve.md): 1 beats 4, 8 and 32 on reasoning's cold start
    refresh_fraction: float = 0.05
    kind: str = ONLINE
    _hist: dict[tuple, _History] = field(default_factory=dict, repr=False)
    _bounds: dict[tuple[int, int], tuple[Request, int]] = field(default_factory=dict, repr=False)

    @classmethod
    def for_workload(cls, spec: dict[str, Any] | None, fallback_context: int, **kw: Any) -> OnlineLengths:
        """Bounds from a workload spec's apps (``apps[i].lengths.max_context``, default 8192 as `LengthSpec`)."""
        limits: dict[str, int] = {}
        for app in (spec or {}).get("apps", []) or []:
            if not isinstance(app, dict) or "name" not in app:
                continue
            lengths = app.get("lengths") or {}
            mc = lengths.get("max_context", 8192) if isinstance(lengths, dict) else 8192
            limits[str(app["name"])] = int(mc)
        return cls(max_context=limits, fallback_context=int(fallback_context), **kw)

    # -- what the policy sees -------------------------------------------------------------------
    def bound(self, req: Request, stage_idx: int) -> int:
        """max_tokens of a stage: the context left after the prompts up to this stage (≥ 1).

        Remembered per request object (requests are frozen; the identity check makes a reused id harmless):
        every prediction asks for it, ~10⁵ times a slos-serve run."""
        hit = self._bounds.get((req.id, stage_idx))
        if hit is not None and hit[0] is req:
            return hit[1]
        limit = self.max_context.get(req.app, self.fallback_context)
        prompts = sum(st.prompt_tokens for st in req.stages[: stage_idx + 1])
        b = max(1, limit - prompts)
        self._bounds[(req.id, stage_idx)] = (req, b)
        return b

    def public(self, req: Request) -> Request:
        """The request with each stage's output length replaced by its bound (the engine makes it once).

        Built with the constructors, every field passed positionally: `dataclasses.replace` introspects the
        fields on each call (~5% of a vllm run, one request and its stages per arrival). Stage and Request have
        no ``__post_init__``; ``tests/test_schedulers.py`` checks that every field is copied."""
        stages = tuple(Stage(st.prompt_tokens, self.bound(req, i), st.slo, st.gap_s, st.name)
                       for i, st in enumerate(req.stages))
        return Request(req.id, req.arrival_s, req.app, req.tier, stages, req.text, req.prefix_blocks,
                       req.prefix_block_tokens)

    # -- learning -------------------------------------------------------------------------------
    def observe(self, app: str, tier: str, stage: str, n_out: int) -> None:
        """A stage of (app, tier, stage) finished with ``n_out`` output tokens."""
        n = int(n_out)
        if n <= 0:
            return
        for key in ((app, tier, stage), (app, None, stage), (None, None, stage)):
            h = self._hist.get(key)
            if h is None:
                h = self._hist[key] = _History()
            h.add(n, self.refresh_fraction)

    def samples(self, app: str, tier: str, stage: str) -> int:
        """Observations behind the key's own prediction (before cold-start pooling)."""
        h = self._hist.get((app, tier, stage))
        return h.n_sorted if h is not None else 0

    def _history(self, req: Request, stage_idx: int) -> _History | None:
        name = req.stages[stage_idx].name
        for key in ((req.app, req.tier, name), (req.app, None, name), (None, None, name)):
            h = self._hist.get(key)
            if h is not None and h.n_sorted >= self.min_samples:
                return h
        return None

    # -- predictions ----------------------------------------------------------------------------
    def expected_remaining(self, seq: SeqState, stage_idx: int | None = None) -> float:
        """E[L − k | L > k] for the stage (the current one, or a later ``stage_idx`` with k = 0)."""
        i, k = _stage_progress(seq, stage_idx)
        cap = max(0, self.bound(seq.req, i) - k)
        h = self._history(seq.req, i)
        if h is None:
            return float(cap)
        j = h.above(k)
        count = h.n_sorted - j
        if count <= 0:
            return float(min(cap, max(1, k // 2)))
        return min(float(cap), h.suffix_list[j] / count - k)

    def quantile_remaining(self, seq: SeqState, q: float, stage_idx: int | None = None) -> int:
        """The q-quantile of L − k given L > k (q in [0, 1]; 1 = the longest seen)."""
        i, k = _stage_progress(seq, stage_idx)
        cap = max(0, self.bound(seq.req, i) - k)
        h = self._history(seq.req, i)
        if h is None:
            return cap
        j = bisect.bisect_right(h.sorted_list, k)  # h.above(k), inlined
        count = h.n_sorted - j
        if count <= 0:
            return min(cap, max(1, k // 2))
        pos = j + min(count - 1, max(0, math.ceil(q * count) - 1))
        return min(cap, h.sorted_list[pos] - k)


def make_length_info(oracle_lengths: bool, workload_spec: dict[str, Any] | None, fallback_context: int,
                     **options: Any) -> LengthInfo:
    """What an engine gives a policy: `OracleLengths` under the paper's assumption, else `OnlineLengths`."""
    if oracle_lengths:
        return OracleLengths()
    return OnlineLengths.for_workload(workload_spec, fallback_context, **options)
