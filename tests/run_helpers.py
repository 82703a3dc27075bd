"""Helpers shared by the CLI run tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def interrupt_runs_after(monkeypatch: pytest.MonkeyPatch, n_requests: int) -> None:
    """Make `slobench run` stop as Ctrl-C would once ``n_requests`` requests have finished (progress still
    reaches the command's own callback, so its bar and messages behave as in a real interruption)."""
    import slobench.cli.run as run_mod

    real_run_once = run_mod.run_once

    def interrupted_run_once(cfg, *, run_dir=None, on_record=None, on_progress=None):  # noqa: ANN001, ANN202
        def progress(done: int, total: int) -> None:
            if on_progress is not None:
                on_progress(done, total)
            if done >= n_requests:
                raise KeyboardInterrupt

        return real_run_once(cfg, run_dir=run_dir, on_record=on_record, on_progress=progress)

    monkeypatch.setattr(run_mod, "run_once", interrupted_run_once)


def one_error_line(output: str) -> str:
    """The one ``error:`` line a bad input must print (and no traceback)."""
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith("error:")]
    assert len(errs) == 1, output
    assert "Traceback" not in output
    return errs[0]


def fake_python(folder: Path, source: str) -> Path:
    """An executable standing in for the interpreter the launcher runs (engine option ``python``): it runs
    ``source`` (a fake ``vllm.entrypoints.openai.api_server``) with the launcher's arguments."""
    script = folder / "fake_vllm.py"
    script.write_text(source)
    exe = folder / "python-fake"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {script} \"$@\"\n")
    exe.chmod(0o755)
    return exe
