"""The typer app, its consoles, and the one place a user-facing error becomes an exit code."""

from __future__ import annotations

import logging
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from typer.core import TyperGroup

from optbench import __version__
from optbench.errors import OptbenchError

console = Console(stderr=True)
out_console = Console()


def print_error(exc: OptbenchError) -> None:
    console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)


class ErrorBoundary(TyperGroup):
    """Every command runs inside this group: an OptbenchError from anywhere below becomes
    one line on stderr and the error's exit code (2 for bad input), never a traceback."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OptbenchError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(cls=ErrorBoundary, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="Measure which runtime and optimization to ship: energy, latency and "
                       "accuracy fronts across backends and transforms.")


@app.callback()
def main_options(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v info, -vv debug"),
    version: bool = typer.Option(False, "--version", help="print the version and exit"),
) -> None:
    if version:
        out_console.print(f"optbench {__version__}")
        raise typer.Exit(0)
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def say(text: str, style: str | None = None) -> None:
    """A line on stdout, never interpreted as markup, never wrapped mid-word."""
    out_console.print(Text(text, style=style or ""), soft_wrap=True)
