"""`slobench.cli.fast_exit`: the console entry point skips the interpreter's teardown but keeps what an exit
must do (status, exit handlers, flushed output and files), in a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slobench.cli.fast_exit import exit_code

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_exit_codes_follow_system_exit() -> None:
    assert exit_code(None) == 0
    assert exit_code(3) == 3
    assert exit_code("bad thing") == 1


def test_status_handlers_and_unclosed_files_survive_the_fast_exit(tmp_path: Path) -> None:
    code = (
        "import atexit, sys\n"
        "from slobench.cli.fast_exit import fast_exit\n"
        "f = open('left-open.txt', 'w'); f.write('kept' * 1000)\n"  # buffered, never closed
        "atexit.register(lambda: open('handler.txt', 'w').write('ran'))\n"
        "sys.stdout.write('x' * 100000)\n"
        "fast_exit(5)\n"
        "print('not reached')\n"
    )
    r = _python(code, tmp_path)
    assert r.returncode == 5
    assert r.stdout == "x" * 100000
    assert (tmp_path / "left-open.txt").read_text() == "kept" * 1000
    assert (tmp_path / "handler.txt").read_text() == "ran"


def test_a_live_non_daemon_thread_gets_the_normal_exit(tmp_path: Path) -> None:
    """A normal exit waits for such a thread; so does this one (its file is written after the call)."""
    code = (
        "import threading, time\n"
        "from slobench.cli.fast_exit import fast_exit\n"
        "def late():\n"
        "    time.sleep(0.5); open('late.txt', 'w').write('done')\n"
        "threading.Thread(target=late).start()\n"
        "fast_exit(0)\n"
    )
    r = _python(code, tmp_path)
    assert r.returncode == 0
    assert (tmp_path / "late.txt").read_text() == "done"


@pytest.mark.parametrize(("args", "status", "stream", "text"), [
    (["workloads", "list"], 0, "stdout", "coding"),
    (["run", "--rate", "abc"], 2, "stderr", "error"),
])
def test_the_console_entry_point_keeps_output_and_status(tmp_path: Path, args: list[str], status: int, stream: str,
                                                         text: str) -> None:
    r = _python(f"import sys; sys.argv = ['slobench', *{args!r}]; from slobench.cli import main; main()", tmp_path)
    assert r.returncode == status, r.stderr
    assert text in getattr(r, stream)
