"""The `slobench` command line: thin — parse, validate, call the layers, print.

Every user-input problem surfaces as `UserError` and is printed as one red line with exit code 2
(no traceback); Ctrl-C exits 130 after the command has saved what it finished.
"""

from __future__ import annotations

import warnings

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from slobench.errors import InputWarning, UserError

err_console = Console(stderr=True)


class _WarningPrinter:
    """Shows each distinct `InputWarning` once per command as one yellow line; other warnings as Python does."""

    def __init__(self, fallback) -> None:  # noqa: ANN001
        self.seen: set[str] = set()
        self.fallback = fallback

    def __call__(self, message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if not issubclass(category, InputWarning):
            self.fallback(message, category, filename, lineno, file, line)
            return
        text = str(message)
        if text not in self.seen:  # a capacity search generates the workload once per probe
            self.seen.add(text)
            err_console.print(f"[bold yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


class _SlobenchGroup(TyperGroup):
    """Root group: turns `UserError` into one red line + exit 2 for every (sub)command."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        with warnings.catch_warnings():
            warnings.simplefilter("always", InputWarning)
            warnings.showwarning = _WarningPrinter(warnings.showwarning)
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context):  # noqa: ANN202
        try:
            return super().invoke(ctx)
        except UserError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: finished records were kept in the results folder")
            raise typer.Exit(130) from None
        except Exception as exc:
            # A flag that does not parse (`--rate abc`): one red line, like every other input error.
            # Typer vendors its own click, so its exception classes are recognised by name.
            if type(exc).__name__ in _USAGE_ERRORS and hasattr(exc, "format_message"):
                err_console.print(f"[bold red]error:[/] {escape(exc.format_message())} (see --help)",
                                  highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            raise


_USAGE_ERRORS = {"BadParameter", "MissingParameter", "NoSuchOption", "BadOptionUsage", "BadArgumentUsage",
                 "UsageError"}


app = typer.Typer(
    cls=_SlobenchGroup,
    name="slobench",
    help="How much load can an LLM serving stack carry while its requests meet their latency SLOs?\n\n"
    "Example: slobench compare --workload coding",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from slobench.cli import run as _run  # (registers `run`, `bench`)
    from slobench.cli.bench_cmd import register as register_bench

    register_bench(_run.bench_app)

    try:
        from slobench.cli.workloads_cmd import workloads_app

        app.add_typer(workloads_app, name="workloads")  # its own help carries the example
    except ImportError:  # pragma: no cover - during development only
        pass
    try:
        from slobench.cli.compare import register as register_compare

        register_compare(app)
    except ImportError:  # pragma: no cover
        pass
    from slobench.cli.sensitivity_cmd import register as register_sensitivity

    register_sensitivity(app)
    from slobench.cli.calibrate_cmd import register as register_calibrate

    register_calibrate(app)
    from slobench.cli.validate_cmd import register as register_validate

    register_validate(app)
    from slobench.cli.qualify_cmd import register as register_qualify

    register_qualify(app)
    try:
        from slobench.cli.doctor import register as register_doctor

        register_doctor(app)
    except ImportError:  # pragma: no cover
        pass


_register()


def main() -> None:
    """Console-script entry point: run the command, then end the process without the interpreter's teardown
    (`slobench.cli.fast_exit`: ~0.3 s of a compare). An uncaught exception ends it the normal way."""
    from slobench.cli.fast_exit import fast_exit

    try:
        app()
    except SystemExit as exc:
        fast_exit(exc.code)
    fast_exit(0)
