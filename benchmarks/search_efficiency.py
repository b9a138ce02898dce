"""How much of the grid's front a search finds for a share of the trials, by sampler.

The recipe's full grid is measured once (`optbench run`, into --grid-out, resumed where it
stopped), then every search is replayed from that store (search.rows.Replay): each sampler
runs with many seeds at the cost of the sampler alone. For each, the share of the grid
front's hypervolume found after 25% and 50% of the grid's configurations were measured
(median and quartiles over the seeds) with a Mann-Whitney test of each sampler against
random search, the mean share of the grid front's configurations among the trials, and
the median share of the grid's benchmarking energy the trials drew.

    python benchmarks/search_efficiency.py [--recipe recipes/search-space.yaml]
        [--grid-out bench-grid] [--seeds 30] [--max-quality-drop 0.01]
        [--objectives energy,latency_p99]

Prints a Markdown table; docs/search.md records the figures seen.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from optbench.run.parse import load_recipe
from optbench.search.objectives import parse_objectives
from optbench.search.rows import Replay, StoreRows
from optbench.search.space import SearchSpace
from optbench.search.study import Search, SearchSettings, open_study
from optbench.search.summary import summarize

SAMPLERS = ("tpe", "nsga2", "grid", "random")
POINTS = (0.25, 0.5)


def grid_rows(recipe_path: Path, out: Path, space: SearchSpace) -> dict[str, dict]:
    rows = StoreRows(out, None).latest(space.specs)
    if len(rows) < len(space):
        print(f"measuring the grid: {len(space) - len(rows)} of {len(space)} configurations "
              f"missing from {out}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "optbench", "run", str(recipe_path), "--out",
                        str(out), "--resume"], check=True)
        rows = StoreRows(out, None).latest(space.specs)
    if len(rows) < len(space):
        raise SystemExit(f"{out} still lacks {len(space) - len(rows)} configurations")
    return rows


def replay(recipe, space, rows, sampler: str, seed: int, trials: int, drop: float | None,
           objectives) -> tuple[list[float], list[float], list[float]]:
    """After each measured trial: the share of the grid's hypervolume found, of its
    benchmarking energy spent, and of the grid front's configurations measured."""
    settings = SearchSettings(trials, objectives, drop, sampler, seed)
    engine = Search(recipe, space, settings, Replay(rows),
                    open_study(None, recipe, space, settings, False))
    state = engine.run()
    summary = summarize(recipe.name, state, settings, engine.bound, len(space), rows)
    grid = summary.grid
    assert grid is not None
    spent, energy, members, found = 0.0, [], set(grid.front), []
    for record in summary.records:
        spent += record.bench_energy_j or 0.0
        energy.append(spent / grid.energy_j)
        found.append(len({r.label for r in summary.records[:len(energy)]} & members)
                     / len(members))
    return [grid.share(v) or 0.0 for v in summary.curve], energy, found


def grid_front(recipe, space, rows, objectives, drop: float | None) -> list[str]:
    settings = SearchSettings(1, objectives, drop)
    engine = Search(recipe, space, settings, Replay(rows),
                    open_study(None, recipe, space, settings, False))
    engine.run()  # the baseline alone: it sets the bound
    summary = summarize(recipe.name, engine.state, settings, engine.bound, len(space), rows)
    assert summary.grid is not None
    return summary.grid.front


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", type=Path, default=Path("recipes/search-space.yaml"))
    ap.add_argument("--grid-out", type=Path, default=Path("bench-grid"))
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--max-quality-drop", type=float, default=0.01)
    ap.add_argument("--objectives", default="energy,latency_p99")
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    args = ap.parse_args()
    from scipy.stats import mannwhitneyu

    recipe = load_recipe(args.recipe)
    space = SearchSpace.of(recipe, recipe.expand("cpu"))
    rows = grid_rows(args.recipe, args.grid_out, space)
    objectives = parse_objectives(args.objectives)
    budget = round(max(POINTS) * len(space))
    front_labels: list[str] = []
    at = {p: max(1, round(p * len(space))) for p in POINTS}
    found: dict[str, dict[float, list[float]]] = {}
    spent: dict[str, dict[float, list[float]]] = {}
    members: dict[str, dict[float, list[float]]] = {}
    for sampler in args.samplers.split(","):
        found[sampler] = {p: [] for p in POINTS}
        spent[sampler] = {p: [] for p in POINTS}
        members[sampler] = {p: [] for p in POINTS}
        for seed in range(args.seeds):
            shares, energy, front = replay(recipe, space, rows, sampler, seed, budget,
                                           args.max_quality_drop, objectives)
            front_labels = front_labels or grid_front(recipe, space, rows, objectives,
                                                      args.max_quality_drop)
            for p, n in at.items():
                found[sampler][p].append(shares[n - 1])
                spent[sampler][p].append(energy[n - 1])
                members[sampler][p].append(front[n - 1])
    ok = sum(1 for r in rows.values() if r.get("status") == "ok")
    print(f"{recipe.name}: {len(space)} configurations ({ok} ok), objectives "
          f"{args.objectives}, max quality drop {args.max_quality_drop}, {args.seeds} seeds, "
          f"each search {budget} trials")
    print(f"grid front ({len(front_labels)}): {'; '.join(front_labels)}")
    print()
    print("| sampler | " + " | ".join(
        f"hypervolume share at {int(p * 100)}% ({at[p]} trials), median [IQR] | "
        f"p vs random | grid front found | energy spent" for p in POINTS) + " |")
    print("|---" * (1 + 4 * len(POINTS)) + "|")
    for sampler in found:
        cells = []
        for p in POINTS:
            lo, mid, hi = quartiles(found[sampler][p])
            cells.append(f"{mid:.3f} [{lo:.3f}, {hi:.3f}]")
            if sampler == "random" or "random" not in found:
                cells.append("")
            else:
                test = mannwhitneyu(found[sampler][p], found["random"][p],
                                    alternative="two-sided")
                cells.append(f"{test.pvalue:.3g}")
            cells.append(f"{statistics.mean(members[sampler][p]):.0%}")
            cells.append(f"{statistics.median(spent[sampler][p]):.0%}")
        print(f"| {sampler} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
