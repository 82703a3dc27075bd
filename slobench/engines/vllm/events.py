"""The scheduler adapter's side channel: a JSONL file of events written inside vLLM, read by slobench.

The OpenAI API has no field for "your request was admitted / moved to best-effort / rejected",
and vLLM drops empty stream chunks, so a rejected request's stream just ends with 0 tokens. The
adapter therefore appends one line per decision (keyed by the request's ``slobench_id``), a
``loaded`` line when vLLM instantiates it, and periodic ``stats`` lines (schedule() calls and
overhead, plan deviations); the load generator tails the file to label its records, and tests
use it to prove the class was loaded and called. One writer (vLLM's engine core), one reader.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from slobench.metrics.records import Admission


class EventWriter:
    """Append-only, line-buffered, flushed per call: a crash loses at most the event being written."""

    def __init__(self, path: str | Path | None) -> None:
        self._fh = Path(path).open("a", buffering=1) if path else None

    def write(self, event: str, **fields: Any) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps({"event": event, "t": time.time(), **fields}, default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()


class EventReader:
    """Tails an events file: `admission(id)` for the client, `last(event)` for stats."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._offset = 0
        self._partial = ""
        self.admissions: dict[str, Admission] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.count: dict[str, int] = {}

    def poll(self) -> None:
        """Read lines appended since the last call."""
        if self.path is None or not self.path.exists():
            return
        with self.path.open() as fh:
            fh.seek(self._offset)
            chunk = fh.read()
            self._offset = fh.tell()
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next poll
        for line in lines:
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            name = str(ev.get("event"))
            self.count[name] = self.count.get(name, 0) + 1
            self.latest[name] = ev
            if name == "admission":
                try:
                    self.admissions[str(ev.get("id"))] = Admission(str(ev.get("decision")))
                except ValueError:  # a decision this version does not know: no decision, not a crash
                    continue

    def admission(self, request_id: str) -> Admission | None:
        """The server's latest admission decision for ``request_id`` (None: no decision seen)."""
        self.poll()
        return self.admissions.get(request_id)

    def last(self, event: str) -> dict[str, Any] | None:
        self.poll()
        return self.latest.get(event)
