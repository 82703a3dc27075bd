"""End the `slobench` process without the interpreter's teardown, once a command is done.

Why: after the command's work, CPython finalises every module and object it holds before the process ends:
~0.18 s after merely importing pandas, pyarrow and plotly, ~0.3 s after a `compare` (measured on the 2-core
development machine; docs/capacity.md "Simulator speed"), in a command whose whole budget is ~10 s. Nothing in
that teardown is the command's work: results are written through `atomic_target` and closed, and the operating
system reclaims memory, file descriptors and locks anyway.

What a normal exit does that matters is kept: `atexit` handlers run (logging, multiprocessing's children, Ray,
temporary folders), every file object still open for writing is flushed, and so are stdout and stderr. Where
another non-daemon thread is still alive (a normal exit would wait for it) the exit is the normal one.
"""

from __future__ import annotations

import atexit
import gc
import io
import os
import sys
import threading


def exit_code(code: object) -> int:
    """`SystemExit.code` as a process exit status: None → 0, an int as is, anything else (a message, which
    `sys.exit` would print) → 1 after printing it to stderr."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _flush_open_files() -> None:
    """Flush every open writable file object, as their finalisers would at teardown."""
    for obj in gc.get_objects():
        if isinstance(obj, io.IOBase):
            try:
                if not obj.closed and obj.writable():
                    obj.flush()
            except Exception:  # noqa: BLE001, S112 - a broken stream is not ours to report at exit
                continue


def fast_exit(code: object) -> None:
    """Exit with ``code`` (as `SystemExit` would), skipping the interpreter's teardown when it is safe to."""
    status = exit_code(code)
    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(status)  # the normal exit joins those threads first
    atexit._run_exitfuncs()  # noqa: SLF001 - the handlers a normal exit runs, in the same (reverse) order
    _flush_open_files()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110 - a closed pipe (`slobench … | head`)
            pass
    os._exit(status)
