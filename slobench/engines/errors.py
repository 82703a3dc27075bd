"""Errors of the real-engine path.

`EngineError` is a `UserError`, so the CLI prints it as one red line and exits non-zero: an
unreachable URL, a model folder that does not exist, a port in use or a server that died mid-run
are things the user must see and act on, never a traceback. Messages name what failed, where its
log is, and what was saved.
"""

from __future__ import annotations

from slobench.errors import UserError


class EngineError(UserError):
    """A real engine (a launched vLLM server or an OpenAI-compatible endpoint) failed."""
