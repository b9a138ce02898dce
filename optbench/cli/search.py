"""`optbench search`: a recipe's grid searched with Optuna instead of swept."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from optbench.cli.app import app, console, say
from optbench.cli.flags import OutOption, ReportFlags, report_flags
from optbench.cli.run import SweepProgress, say_interrupted, stop_signals_interrupt


@app.command()
@report_flags(constraints=True)
def search(
    recipe_file: Path = typer.Argument(..., help="recipe YAML: its axes are the space"),
    trials: int = typer.Option(..., "--trials", "-n", help="configurations to measure"),
    energy_budget_j: Optional[float] = typer.Option(
        None, "--energy-budget-j", help="stop once measuring has drawn this many joules"),
    patience: Optional[int] = typer.Option(
        None, "--patience", help="stop when the front has not grown for this many trials"),
    objectives: str = typer.Option("energy,latency_p99", "--objectives",
                                   help="energy | latency_p99 | latency_p50 | throughput | "
                                        "ttft | tpot, comma-separated"),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe | nsga2 | random | grid"),
    seed: int = typer.Option(0, "--seed", help="the sampler's seed"),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="quick | standard | rigorous: replaces measure.preset"),
    out: Path = OutOption,
    resume: bool = typer.Option(False, "--resume", help="continue the search kept in --out"),
    flags: ReportFlags = None,  # type: ignore[assignment]  # filled in by report_flags
) -> None:
    """Search a recipe's configurations for the energy/latency front under a quality bound
    (--max-quality-drop), measuring a fraction of the grid; writes the store, the report
    and search-RECIPE.md (front, hypervolume over trials, energy spent)."""
    from optbench.run.parse import load_recipe
    from optbench.search.objectives import parse_objectives
    from optbench.search.study import SearchSettings

    settings = SearchSettings(trials, parse_objectives(objectives),
                              flags.constraints.max_quality_drop, sampler.strip().lower(),
                              seed, energy_budget_j, patience)
    recipe = load_recipe(recipe_file, preset=preset)
    run_search(recipe, settings, out, resume, flags)


def run_search(recipe: Any, settings: Any, out: Path, resume: bool, flags: ReportFlags) -> None:
    from optbench.cli.report import render_report
    from optbench.env import env_id, fingerprint
    from optbench.errors import UsageError
    from optbench.run.sweep import Runner, SweepInterrupted
    from optbench.search.rows import MeasureHere, StoreRows
    from optbench.search.space import SearchSpace
    from optbench.search.study import Search, open_study
    from optbench.search.summary import headline, summarize, write

    if recipe.executor.kind != "local":
        raise UsageError("optbench search runs its trials here, one at a time: remove the "
                         "recipe's executor (or sweep it with `optbench run`)")

    progress = SearchProgress(console, settings.trials)
    runner = Runner(out, progress)
    space = SearchSpace.of(recipe, runner.plan(recipe))
    study = open_study(out, recipe, space, settings, resume)
    env = env_id(fingerprint())
    engine = Search(recipe, space, settings, MeasureHere(out, recipe, runner, env), study,
                    progress)
    console.print(f"searching {len(space)} configurations of {escape(recipe.name)} "
                  f"({', '.join(f'{k} {len(v)}' for k, v in space.dimensions.items())}) "
                  f"with {settings.sampler}, up to {settings.trials} trials",
                  highlight=False, soft_wrap=True)
    try:
        with progress, stop_signals_interrupt():
            state = engine.run()
    except SweepInterrupted as stop:
        say_interrupted(stop, out)
        console.print(f"the search is kept in {escape(str(out / 'search.journal'))}: the "
                      "same `optbench search` with --resume continues it", highlight=False,
                      soft_wrap=True)
        raise typer.Exit(128 + stop.signum) from None
    grid = StoreRows(out, env).latest(space.specs)
    summary = summarize(recipe.name, state, settings, engine.bound, len(space),
                        grid if len(grid) == len(space) else None)
    rendered = render_report([out], flags, name=recipe.name)
    for line in headline(summary):
        say(line)
    for path in write(summary, rendered.directory):
        say(f"wrote {path}")


class SearchProgress(SweepProgress):
    """The sweep's bar, counting trials; one line per trial with the front so far."""

    def __init__(self, console: Any, trials: int) -> None:
        super().__init__(console)
        self.trials = trials
        self.progress.update(self.task, total=trials, description="search")

    def started(self, index: int, total: int, spec: Any) -> None:
        self.progress.update(self.task, total=self.trials,
                             description=escape(f"{spec.label()}: starting"))

    def advance(self) -> None:
        """A run ended: the bar counts trials (trial() advances it)."""

    def trial(self, record: Any, state: Any) -> None:
        self.progress.advance(self.task)
        front = sum(1 for r in state.counted if r.feasible)
        why = f": {record.reason}" if record.reason and record.status != "ok" else ""
        self.console.print(
            f"trial {len(state.counted)}/{self.trials} {escape(record.label)}: "
            f"{record.status}{escape(why)}; spent {state.spent_j:.4g} J, {front} feasible, "
            f"front unchanged for {state.since_improvement}", highlight=False, soft_wrap=True)

    def note(self, text: str) -> None:
        self.notice(text)
