"""The `optbench` command: one module per command group, one error boundary (cli/app.py).

run.py: compare, run, import. search.py: search. report.py: report, recommend, export.
inspect.py: ls, env.
Arguments become a Recipe or report settings; the work itself lives in the layers below.
The command modules are imported in the order `optbench --help` lists them.
"""

from __future__ import annotations

from optbench.cli.app import app

# isort: off
from optbench.cli import run, search, report, inspect  # noqa: E402, F401  (registers the commands)
# isort: on


def main() -> None:
    app()


__all__ = ["app", "main"]
