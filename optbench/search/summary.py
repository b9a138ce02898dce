"""A search's report: the front it found, its hypervolume over trials, what it spent, and,
where the store holds the recipe's full grid, the share of the grid's front found for the
share of the grid's benchmarking energy.

Hypervolume is measured on the logarithm of each objective, every one a loss (throughput
negated), up to a reference point just past the worst feasible value of each objective:
of the full grid where it is known (so a search and its grid are measured alike), else of
the search's own trials. Only feasible configurations (within the quality bound) count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optbench.report.pareto import hypervolume, pareto_front
from optbench.search.objectives import Objective, QualityBound, objective_values
from optbench.search.study import SearchSettings, SearchState, TrialRecord

REFERENCE_MARGIN = 0.1  # the reference point lies this share of each range past the worst


@dataclass
class GridComparison:
    configurations: int
    front: list[str]  # labels of the grid's feasible front
    hypervolume: float
    energy_j: float  # benchmarking energy of the whole grid
    unmetered: int  # grid rows without a benchmarking-energy figure

    def share(self, value: float) -> float | None:
        return value / self.hypervolume if self.hypervolume > 0 else None


@dataclass
class SearchSummary:
    recipe: str
    settings: SearchSettings
    bound: str
    grid_size: int
    records: list[TrialRecord]  # counted trials, in order
    front: list[TrialRecord]
    curve: list[float]  # hypervolume after each counted trial
    reference: list[float] | None
    box: float  # the volume between the reference set's ideal point and the reference
    spent_j: float
    unmetered: int
    wall_s: float
    stop_reason: str | None
    grid: GridComparison | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def hypervolume(self) -> float:
        return self.curve[-1] if self.curve else 0.0

    def normalised(self, value: float) -> float:
        """Hypervolume as a share of the box from the ideal point to the reference (0-1)."""
        return value / self.box if self.box > 0 else 0.0


def losses(values: Sequence[float], objectives: Sequence[Objective]) -> list[float]:
    return [o.loss(v) for o, v in zip(objectives, values)]


def reference_point(points: list[list[float]]) -> tuple[list[float] | None, float]:
    """The reference point past the worst of `points` in each objective, and the volume of
    the box between it and their ideal point (the best of each)."""
    if not points:
        return None, 0.0
    out, box = [], 1.0
    for column in zip(*points):
        worst, best = max(column), min(column)
        span = worst - best or abs(worst) or 1.0
        out.append(worst + REFERENCE_MARGIN * span)
        box *= out[-1] - best
    return out, box


def summarize(recipe: str, state: SearchState, settings: SearchSettings, bound: QualityBound,
              grid_size: int, grid_rows: Mapping[str, Mapping[str, Any]] | None = None
              ) -> SearchSummary:
    """`grid_rows`: every configuration of the grid (key -> row), where the store holds
    them all; None otherwise."""
    objectives = settings.objectives
    records = state.counted
    feasible = [r for r in records if r.feasible]
    grid = None
    grid_points: list[list[float]] = []
    grid_labels: list[str] = []
    if grid_rows is not None:
        for row in grid_rows.values():
            values, _ = objective_values(row, objectives)
            if values is not None and bound.violation(row) <= 0:
                grid_points.append(losses(values, objectives))
                grid_labels.append(row_label(row))
    reference, box = reference_point(grid_points or [losses(r.values or [], objectives)
                                                for r in feasible])
    curve: list[float] = []
    seen: list[list[float]] = []
    for record in records:
        if record.feasible:
            seen.append(losses(record.values or [], objectives))
        curve.append(hypervolume(seen, reference) if reference and seen else 0.0)
    senses = ["min"] * len(objectives)
    front = [feasible[i] for i in pareto_front(
        [losses(r.values or [], objectives) for r in feasible], senses)] if feasible else []
    if grid_rows is not None and reference is not None:
        energies = [row.get("bench_energy_j") for row in grid_rows.values()]
        grid = GridComparison(
            len(grid_rows), [grid_labels[i] for i in pareto_front(grid_points, senses)]
            if grid_points else [], hypervolume(grid_points, reference),
            sum(e or 0.0 for e in energies), sum(1 for e in energies if e is None))
    return SearchSummary(recipe, settings, bound.describe(), grid_size, records,
                         sorted(front, key=lambda r: r.values or []), curve, reference, box,
                         state.spent_j, state.unmetered,
                         sum(r.wall_s or 0.0 for r in records), state.stop_reason, grid)


def row_label(row: Mapping[str, Any]) -> str:
    return f"{row.get('model')} {row.get('backend')} {row.get('variant')} bs{row.get('batch_size')}"


def _j(value: float) -> str:
    return f"{value:.4g} J" if value < 1e4 else f"{value / 3.6e3:.4g} Wh"


def headline(s: SearchSummary) -> list[str]:
    """The lines the CLI prints and the Markdown opens with."""
    out = [f"{len(s.records)} of {s.grid_size} configurations measured "
           f"({s.settings.sampler}, seed {s.settings.seed}); stopped: {s.stop_reason}",
           f"benchmarking energy spent: {_j(s.spent_j)}"
           + (f" ({s.unmetered} trial(s) without an energy figure, not in it)"
              if s.unmetered else "") + f", {s.wall_s / 60:.1f} min measuring",
           f"front found: {len(s.front)} configuration(s) within the bound: {s.bound}"]
    if s.grid is not None:
        share = s.grid.share(s.hypervolume)
        spent = s.spent_j / s.grid.energy_j if s.grid.energy_j else None
        out.append(f"against the full grid in the store: {_pct(share)} of its front's "
                   f"hypervolume for {_pct(spent)} of its benchmarking energy "
                   f"({_j(s.grid.energy_j)})")
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def to_markdown(s: SearchSummary, figure: str | None = None) -> str:
    objectives = s.settings.objectives
    heads = [o.label() for o in objectives]
    lines = [f"# Search: {s.recipe}", "", *[f"- {line}" for line in headline(s)], ""]
    lines += ["## Front found", "", "| trial | configuration | " + " | ".join(heads)
              + " | quality |", "|---" * (len(heads) + 3) + "|"]
    for r in s.front:
        cells = [o.shown(v) for o, v in zip(objectives, r.values or [])]
        lines.append(f"| {r.number} | {r.label} | " + " | ".join(cells)
                     + f" | {_quality(r)} |")
    if not s.front:
        lines.append("| | none within the bound | " + " | " * len(heads) + " |")
    reference = ("none: no feasible configuration" if s.reference is None else
                 ", ".join(f"{o.name} {o.shown(o.value_of(v))} {o.column.unit}"
                           for o, v in zip(objectives, s.reference)))
    lines += ["", "## Hypervolume over trials", "",
              "The hypervolume the feasible configurations measured so far dominate, up to "
              f"the reference point ({reference}), as a share of the box from the best "
              "values to that point"
              + ("; the share of the grid is of the full grid front's hypervolume." if s.grid
                 else "."), ""]
    if figure:
        lines += [f"![hypervolume over trials]({figure})", ""]
    lines += ["| # | trial | configuration | status | energy spent | hypervolume |"
              + (" share of grid |" if s.grid else ""),
              "|---|---|---|---|---|---|" + ("---|" if s.grid else "")]
    spent = 0.0
    for i, (r, hv) in enumerate(zip(s.records, s.curve), 1):
        spent += r.bench_energy_j or 0.0
        status = r.status + (" (baseline)" if r.baseline else "") + (
            " (random fallback)" if r.fallback else "")
        share = f" {_pct(s.grid.share(hv))} |" if s.grid else ""
        lines.append(f"| {i} | {r.number} | {r.label} | {status} | {_j(spent)} | "
                     f"{s.normalised(hv):.3f} |{share}")
    failed = [r for r in s.records if r.status not in ("ok",)]
    if failed:
        lines += ["", "## Failed, or outside the quality bound", ""]
        lines += [f"- trial {r.number}, {r.label}: {r.status}: {r.reason}" for r in failed]
    if s.grid is not None:
        lines += ["", "## The full grid", "",
                  f"The store holds all {s.grid.configurations} configurations of the grid: "
                  f"its front has {len(s.grid.front)} ({', '.join(s.grid.front)}), "
                  f"hypervolume {s.normalised(s.grid.hypervolume):.3f}; measuring it drew "
                  f"{_j(s.grid.energy_j)}"
                  + (f" ({s.grid.unmetered} without an energy figure)" if s.grid.unmetered
                     else "") + "."]
    return "\n".join(lines) + "\n"


def _quality(r: TrialRecord) -> str:
    return "" if r.quality is None else f"{r.quality:.4g}"


def to_json(s: SearchSummary) -> dict[str, Any]:
    def record(r: TrialRecord) -> dict[str, Any]:
        return {"trial": r.number, "configuration": r.label, "key": r.key,
                "status": r.status, "reason": r.reason, "values": r.values,
                "quality": r.quality, "constraint": r.violation,
                "bench_energy_j": r.bench_energy_j, "wall_s": r.wall_s,
                "baseline": r.baseline, "fallback": r.fallback}

    return {"recipe": s.recipe, "sampler": s.settings.sampler, "seed": s.settings.seed,
            "objectives": [o.name for o in s.settings.objectives], "bound": s.bound,
            "grid_size": s.grid_size, "stop_reason": s.stop_reason,
            "spent_bench_energy_j": s.spent_j, "unmetered_trials": s.unmetered,
            "reference_point": s.reference, "hypervolume_curve": s.curve,
            "hypervolume_box": s.box,
            "front": [record(r) for r in s.front], "trials": [record(r) for r in s.records],
            "grid": None if s.grid is None else {
                "configurations": s.grid.configurations, "front": s.grid.front,
                "hypervolume": s.grid.hypervolume, "bench_energy_j": s.grid.energy_j,
                "hypervolume_share_found": s.grid.share(s.hypervolume),
                "energy_share_spent": (s.spent_j / s.grid.energy_j if s.grid.energy_j
                                       else None)}}


def curve_figure(s: SearchSummary, path: Path) -> Path | None:
    """Hypervolume (or its share of the grid's) against the benchmarking energy spent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    spent, xs = 0.0, []
    for r in s.records:
        spent += r.bench_energy_j or 0.0
        xs.append(spent)
    ys = [s.grid.share(v) or 0.0 for v in s.curve] if s.grid else [s.normalised(v)
                                                                     for v in s.curve]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, x, label in ((axes[0], range(1, len(ys) + 1), "trials measured"),
                         (axes[1], xs, "benchmarking energy spent (J)")):
        ax.step(list(x), ys, where="post", color="tab:blue")
        ax.set_xlabel(label)
        ax.set_ylabel("share of the grid's hypervolume" if s.grid
                      else "hypervolume (normalised)")
        ax.set_ylim(0, 1.05)
        if s.grid:
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    fig.suptitle(f"search of {s.recipe}: {s.settings.sampler}, seed {s.settings.seed}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(s: SearchSummary, out: Path) -> list[Path]:
    """search-RECIPE.md, .json and -hypervolume.png in OUT."""
    stem = f"search-{s.recipe}"
    figure = curve_figure(s, out / f"{stem}-hypervolume.png")
    md = out / f"{stem}.md"
    md.write_text(to_markdown(s, figure.name if figure else None))
    js = out / f"{stem}.json"
    js.write_text(json.dumps(to_json(s), indent=1, default=str))
    return [md, js] + ([figure] if figure else [])
