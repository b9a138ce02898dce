"""Render one or more stores: Markdown, PNG/SVG figures and a self-contained HTML page.

Everything lands in `DEST/<name>/` (index.html, report.md, figures/), where `name` is the
most recent recipe in the store unless given. Reports state the measurement boundary, keep
estimated energy apart from measured, and end with a recommendation. Each file is written
to a temporary file renamed into place (`cache.atomic_path`): a failure never leaves a
half-written one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from optbench.cache import atomic_path
from optbench.carbon import CarbonSettings, carbon_settings
from optbench.report.analysis import analyse
from optbench.report.data import ReportData, load
from optbench.report.figures import draw_fleet, draw_group, draw_serving, slug
from optbench.report.fleet import fleet_views
from optbench.report.markdown import render_markdown
from optbench.report.recommend import Constraints, recommend
from optbench.report.serving import serving_views


@dataclass(frozen=True)
class RenderedReport:
    directory: Path
    markdown: Path
    html: Path | None
    figures: list[Path]


def write_text(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a full disk leaves the previous file as it was and
    removes the temporary one; even a SIGKILL mid-write leaves only a hidden `.NAME.tmpPID`
    file beside it, never a half-written report under the real name."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def report_name(data: ReportData, name: str | None) -> str:
    return slug(name or (data.recipes[-1] if data.recipes else "report"))


def render(outs: list[Path], dest: Path | None = None, carbon: CarbonSettings | None = None,
           price_per_kwh: float | None = None, constraints: Constraints | None = None,
           name: str | None = None, html: bool = True,
           machine_prices: dict[str, float] | None = None) -> RenderedReport:
    carbon = carbon or carbon_settings()
    constraints = constraints or Constraints()
    data = load(outs, carbon, price_per_kwh, machine_prices)
    directory = (dest or outs[0]) / report_name(data, name)
    directory.mkdir(parents=True, exist_ok=True)
    groups = analyse(data.rows)
    recs = [recommend(g, constraints) for g in groups]
    figures = {f"{g.model}|{g.metric}": draw_group(g, directory / "figures") for g in groups}
    serving = serving_views(groups, data.serving, constraints)
    for key, view in serving.items():
        figures[f"{key}|serving"] = draw_serving(view, directory / "figures")
    fleet = fleet_views(groups, constraints, serving)
    for key, fleet_view in fleet.items():
        figures[f"{key}|fleet"] = draw_fleet(fleet_view, directory / "figures")
    markdown = directory / "report.md"
    write_text(markdown, render_markdown(data, groups, recs, carbon, figures, serving, fleet))
    page = None
    if html:
        from optbench.report.html import render_html

        page = directory / "index.html"
        title = f"optbench report: {', '.join(data.recipes) or 'no runs'}"
        write_text(page, render_html(data, groups, recs, carbon, title, serving, fleet,
                                          figures))
    drawn = [directory / p for paths in figures.values() for p in paths]
    return RenderedReport(directory, markdown, page, drawn)
