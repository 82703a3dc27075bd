"""One exception type for every user-facing input problem.

The CLI catches `UserError` and prints its message as one red line with a non-zero exit, so a
bad flag, YAML field or trace file never shows a traceback. Raise it with a message that names the
bad thing and the fix: ``UserError("workloads/x.yaml: slo.tpot_ms must be > 0 (got -5); use e.g. 50")``.
"""


class UserError(Exception):
    """A problem with user input (flag, file, field) that the user can fix."""


class InputWarning(UserWarning):
    """An input slobench accepts but changes (clips long requests, sends a 0-token count as 1).

    Raised with `warnings.warn`; the CLI prints each distinct one once per command as one yellow
    ``warning:`` line, and a script sees an ordinary Python warning.
    """
