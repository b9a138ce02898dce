"""The typer app, its consoles, and the one place a user-facing error becomes an exit code."""

from __future__ import annotations

import errno
import logging
import os
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


# OSErrors the machine causes, not optbench (a full disk, a read-only mount, permissions,
# the file-size limit), with what to do. Any other OSError (ENOENT from a bug, say) stays
# a traceback; EPIPE is left to click (`optbench export | head`).
WRITE_ERRNOS = {errno.ENOSPC: "free some space, or write elsewhere (--out, --dest)",
                errno.EDQUOT: "the disk quota is used up: free some space, or write elsewhere",
                errno.EFBIG: "the file-size limit (ulimit -f) or the file system's maximum",
                errno.EROFS: "a read-only file system: pass --out or --dest on a writable one"}
ACCESS_ERRNOS = {errno.EACCES: "check the permissions, or pass another --out or --dest",
                 errno.EPERM: "check the permissions, or pass another --out or --dest",
                 errno.EIO: "the disk or file system reports an I/O error",
                 errno.ENOTDIR: "a file stands where a directory is needed",
                 errno.EISDIR: "a directory stands where a file is needed",
                 errno.ENAMETOOLONG: "use a shorter path",
                 errno.EMFILE: "too many open files (ulimit -n)",
                 errno.ENFILE: "too many open files on this machine"}


def print_error(exc: OptbenchError) -> None:
    console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)


def os_error_text(exc: OSError) -> str | None:
    """`cannot write PATH: No space left on device (advice)`, or None for an OSError that
    is not the machine's doing."""
    if exc.errno in WRITE_ERRNOS:
        verb, advice = "cannot write", WRITE_ERRNOS[exc.errno]
    elif exc.errno in ACCESS_ERRNOS:
        verb, advice = "cannot access", ACCESS_ERRNOS[exc.errno]
    else:
        return None
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    what = f"{verb} {path}" if path is not None else verb
    return f"{what}: {exc.strerror or os.strerror(exc.errno)} ({advice})"


class ErrorBoundary(TyperGroup):
    """Every command runs inside this group: an OptbenchError from anywhere below becomes
    one line on stderr and the error's exit code (2 for bad input), never a traceback;
    so does an OSError of the machine (full disk, read-only, permissions), with exit 1."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OptbenchError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            text = os_error_text(exc)
            if text is None:
                raise
            console.print(f"[red]error:[/red] {escape(text)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


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
