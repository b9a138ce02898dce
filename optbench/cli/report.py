"""`optbench report`, `recommend` and `export`: read stores, never measure."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from optbench.cli.app import app, console, say
from optbench.cli.flags import DEFAULT_OUT, OutOption, ReportFlags, report_flags


def render_report(outs: list[Path], flags: ReportFlags, dest: Path | None = None,
                  name: str | None = None, html: bool = True, screenshot: bool = False) -> Any:
    """Write the report of `outs` (and its screenshot, and MLflow runs, where asked);
    returns what report.render wrote."""
    from optbench.report.render import render

    rendered = render(outs, dest, flags.carbon, flags.price_per_kwh, flags.constraints,
                      name, html, flags.machine_prices)
    console.print(f"report: {rendered.markdown}")
    if rendered.html is not None:
        console.print(f"html:   {rendered.html}")
    if screenshot and rendered.html is not None:
        from optbench.report.screenshot import check_page

        png = rendered.directory / "screenshot.png"
        check = check_page(rendered.html, png)
        problems = check.errors + check.dialogs
        console.print(f"screenshot: {png} ({check.plots_drawn} plots drawn"
                      + (f"; page errors: {problems}" if problems else "") + ")")
    if flags.mlflow_uri is not None:
        from optbench.report.data import load
        from optbench.report.mlflow import default_uri, log_runs

        uri = flags.mlflow_uri or default_uri(outs[0])
        counts = log_runs(load(outs, flags.carbon, flags.price_per_kwh,
                               flags.machine_prices).rows,
                          rendered.directory, uri)
        console.print(f"mlflow: {counts['logged']} runs logged, {counts['skipped']} already "
                      f"there ({uri})")
    return rendered


@app.command()
@report_flags(constraints=True, mlflow=True)
def report(
    outs: list[Path] = typer.Option([DEFAULT_OUT], "--out", "-o",
                                    help="store directory; repeat to put machines side by side"),
    dest: Optional[Path] = typer.Option(None, "--dest",
                                        help="where to write (default: first --out)"),
    name: Optional[str] = typer.Option(None, "--name", help="report name (default: latest recipe)"),
    html: bool = typer.Option(True, "--html/--no-html", help="write index.html"),
    screenshot: bool = typer.Option(False, "--screenshot",
                                    help="render index.html in headless Chromium to a PNG"),
    flags: ReportFlags = None,  # type: ignore[assignment]  # filled in by report_flags
) -> None:
    """Render the report (Markdown, PNG/SVG, offline HTML) from one or more stores."""
    render_report(outs, flags, dest, name, html, screenshot)


@app.command()
@report_flags(constraints=True)
def recommend(
    outs: list[Path] = typer.Option([DEFAULT_OUT], "--out", "-o", help="store directory"),
    flags: ReportFlags = None,  # type: ignore[assignment]  # filled in by report_flags
) -> None:
    """The configuration to ship and the runners-up, with reasons; exit 1 if none fits.
    With --rate: the serving configuration and batching policy to run at that load."""
    from optbench.report.analysis import analyse
    from optbench.report.data import load

    data = load(outs, flags.carbon, flags.price_per_kwh, flags.machine_prices)
    groups = analyse(data.rows)
    if not groups:
        console.print("[red]error:[/red] no successful runs in the store to choose from")
        raise typer.Exit(1)
    if flags.constraints.rate_per_s is None:
        missing = say_recommendations(groups, flags.constraints)
        if missing and data.serving:
            say("serving runs are judged at a load: add --rate R (req/s) to choose among them")
    else:
        missing = say_rate_choices(groups, data.serving, flags.constraints)
    say_fleet(groups, data.serving, flags.constraints)
    if missing:
        raise typer.Exit(1)


def say_recommendations(groups: list[Any], constraints: Any) -> bool:
    """Each group's closed-loop choice; True when some group has none."""
    from optbench.report.families import classic_line
    from optbench.report.recommend import recommend as pick
    from optbench.report.text import run_label

    missing = False
    for group in groups:
        rec = pick(group, constraints)
        say(f"{group.model} ({group.metric}):", style="bold")
        shallow = classic_line(group)
        if shallow:
            say(f"  {shallow}")
        if rec.best is None:
            missing = True
            say("  nothing satisfies the constraints:")
            for row, why in rec.rejected:
                say(f"    {run_label(row)}: {why}")
            continue
        say(f"  best: {run_label(rec.best)}")
        for reason in rec.reasons:
            say(f"    - {reason}")
        for other in rec.runners_up:
            say(f"  runner-up: {run_label(other)}")
    return missing


def say_fleet(groups: list[Any], serving: list[dict[str, Any]], constraints: Any) -> None:
    """Where a store holds several machines: what each does best and what it costs."""
    from optbench.report.fleet import fleet_views
    from optbench.report.serving import serving_views

    views = fleet_views(groups, constraints, serving_views(groups, serving, constraints))
    for view in views.values():
        say(f"{view.group.model} ({view.group.metric}), machines side by side:", style="bold")
        for line in (view.findings if view.closed_loop else []) + view.rate_findings:
            say(f"  - {line}")


def say_rate_choices(groups: list[Any], serving: list[dict[str, Any]], constraints: Any) -> bool:
    """Each group's serving choice at the asked rate; True when some group has none, or
    the store holds no serving runs at all."""
    from optbench.report.serving import asked_text, runner_up_text, serving_views
    from optbench.report.text import serving_label

    views = serving_views(groups, serving, constraints)
    if not views:
        console.print("[red]error:[/red] no serving runs in the store: --rate needs runs "
                      "with a scenario (recipe `scenario:`, or compare --scenario server)")
        return True
    missing = False
    for group in groups:
        view = views.get(f"{group.model}|{group.metric}")
        if view is None:
            say(f"{group.model} ({group.metric}): no serving runs; --rate applies to those "
                "only", style="bold")
            continue
        choice = view.choice
        assert choice is not None
        say(f"{group.model} ({group.metric}), {asked_text(constraints)}:", style="bold")
        if choice.best is None:
            missing = True
            say("  nothing satisfies the constraints:")
            for row, why in choice.rejected:
                say(f"    {serving_label(row)}: {why}")
            continue
        say(f"  best: {serving_label(choice.best)}")
        for reason in choice.reasons:
            say(f"    - {reason}")
        for other in choice.runners_up:
            say(f"  runner-up: {runner_up_text(choice, other)}")
        for row, why in choice.rejected:
            say(f"  rejected: {serving_label(row)}: {why}")
    return missing


@app.command()
@report_flags()
def export(
    format: str = typer.Option("csv", "--format", "-f", help="csv | json"),
    out: Path = OutOption,
    flags: ReportFlags = None,  # type: ignore[assignment]  # filled in by report_flags
) -> None:
    """Print one row per run (latest per configuration) as CSV or JSON on stdout."""
    from optbench.report.export import export_rows

    sys.stdout.write(export_rows(out, format, flags.carbon, flags.price_per_kwh,
                                 flags.machine_prices))


