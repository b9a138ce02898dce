"""The search loop: Optuna's ask-and-tell around whatever measures a configuration.

A trial is one configuration measured (its row is an ordinary run in the store). The fp32
baseline is enqueued first: the quality bound is relative to it. The objectives are
minimised (throughput maximised) with the bound as Optuna's constraint, so a configuration
over it never counts as found. A configuration that fails or is skipped is a failed trial,
not a crash. A sampler proposing a configuration this study already has is answered from
the study (no measurement, no energy, not counted): trials count measurements. After
REPEATS_BEFORE_FALLBACK such answers in a row the next trial is a random configuration not
yet measured, marked as such.

The study lives in a journal file beside the store (`search.journal`), written as each
trial ends: `--resume` continues it, and a trial an interruption left running is failed
(`interrupted`) before the search goes on.
"""

from __future__ import annotations

import logging
import random
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from optbench.errors import OptbenchError, UsageError
from optbench.report.pareto import dominates
from optbench.run.recipe import Recipe, RunSpec
from optbench.search.objectives import Objective, QualityBound, bound_from, objective_values
from optbench.search.space import SearchSpace

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "nsga2", "random", "grid")
JOURNAL = "search.journal"
REPEATS_BEFORE_FALLBACK = 10

# Trial user attributes (the study is the search's record; summary.py reads it back)
COUNTED, KEY, LABEL, STATUS, REASON = "counted", "key", "label", "status", "reason"
VALUES, QUALITY, VIOLATION, ENERGY, WALL = "values", "quality", "constraint", "bench_j", "wall_s"
REPEAT_OF, FALLBACK, BASELINE = "repeat_of", "fallback", "baseline"


class Evaluate(Protocol):
    """Measures a configuration (or finds it measured) and returns its summary row, or
    None where no row could be had (a result kept on disk, say)."""

    def __call__(self, spec: RunSpec) -> dict[str, Any] | None: ...


class SearchEvents(Protocol):
    def trial(self, record: TrialRecord, state: SearchState) -> None: ...
    def note(self, text: str) -> None: ...


@dataclass(frozen=True)
class SearchSettings:
    trials: int
    objectives: tuple[Objective, ...]
    max_quality_drop: float | None = None
    sampler: str = "tpe"
    seed: int = 0
    energy_budget_j: float | None = None
    patience: int | None = None  # stop when the front has not grown for this many trials

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise UsageError("--trials must be at least 1")
        if self.sampler not in SAMPLERS:
            raise UsageError(f"--sampler: unknown sampler '{self.sampler}'; choose from "
                             f"{', '.join(SAMPLERS)}")
        if self.max_quality_drop is not None and self.max_quality_drop < 0:
            raise UsageError("--max-quality-drop must be 0 or more")
        if self.energy_budget_j is not None and self.energy_budget_j <= 0:
            raise UsageError("--energy-budget-j must be more than 0")
        if self.patience is not None and self.patience < 1:
            raise UsageError("--patience must be at least 1")


@dataclass
class TrialRecord:
    """One trial as the search saw it (rebuilt from the study's attributes)."""

    number: int
    counted: bool
    label: str
    key: str
    status: str  # ok | failed | skipped | infeasible | interrupted
    reason: str | None = None
    values: list[float] | None = None
    quality: float | None = None
    violation: float = 0.0
    bench_energy_j: float | None = None
    wall_s: float | None = None
    repeat_of: int | None = None
    fallback: bool = False
    baseline: bool = False

    @property
    def feasible(self) -> bool:
        return self.values is not None and self.violation <= 0


@dataclass
class SearchState:
    records: list[TrialRecord] = field(default_factory=list)
    since_improvement: int = 0
    stop_reason: str | None = None

    @property
    def counted(self) -> list[TrialRecord]:
        return [r for r in self.records if r.counted]

    @property
    def spent_j(self) -> float:
        return sum(r.bench_energy_j or 0.0 for r in self.counted)

    @property
    def unmetered(self) -> int:
        """Counted trials whose benchmarking energy is unknown (not in spent_j)."""
        return sum(1 for r in self.counted if r.bench_energy_j is None)

    def evaluated(self) -> dict[str, TrialRecord]:
        return {r.key: r for r in self.records if r.counted}


def journal_path(out: Path) -> Path:
    return out / JOURNAL


def study_name(recipe: Recipe) -> str:
    return f"search:{recipe.name}"


def identity(recipe: Recipe, space: SearchSpace, settings: SearchSettings) -> dict[str, Any]:
    """What a resumed study must share with the one it continues."""
    return {"recipe": recipe.name, "objectives": [o.name for o in settings.objectives],
            "max_quality_drop": settings.max_quality_drop,
            "grid": sorted(s.key() for s in space.specs)}


def open_study(out: Path | None, recipe: Recipe, space: SearchSpace, settings: SearchSettings,
               resume: bool) -> Any:
    """The Optuna study: in memory (out None), new in OUT's journal, or resumed from it.
    Bad combinations are errors before anything is written."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    name = study_name(recipe)
    storage: Any = None
    exists = False
    if out is not None:
        path = journal_path(out)
        if path.exists():
            storage = JournalStorage(JournalFileBackend(str(path)))
            exists = name in [s.study_name for s in optuna.get_all_study_summaries(storage)]
        if exists and not resume:
            raise UsageError(f"{path} already holds a search of {recipe.name}: pass --resume "
                             "to continue it, or another --out")
        if resume and not exists:
            raise UsageError(f"--resume: no search of {recipe.name} in {path} to continue")
    wanted = identity(recipe, space, settings)
    if exists:
        study = optuna.load_study(study_name=name, storage=storage,
                                  sampler=make_sampler(settings, space))
        had = study.user_attrs.get("identity", {})
        for key in ("objectives", "max_quality_drop", "grid"):
            if had.get(key) != wanted[key]:
                what = "the recipe's configurations" if key == "grid" else f"--{key}"
                raise UsageError(f"--resume: {what.replace('_', '-')} differ from the study "
                                 f"being continued ({had.get(key) if key != 'grid' else ''}); "
                                 "start a new search with another --out")
        return study
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(journal_path(out))))
    study = optuna.create_study(study_name=name, storage=storage,
                                sampler=make_sampler(settings, space),
                                directions=[o.direction for o in settings.objectives])
    study.set_user_attr("identity", wanted)
    return study


def make_sampler(settings: SearchSettings, space: SearchSpace) -> Any:
    """The sampler, sized for the trial budget: TPE's random start is a quarter of it (2 to
    10), NSGA-II's population a quarter of it (4 to 50); Optuna's defaults (10 and 50)
    would make a search of a few dozen trials a random one. TPE and NSGA-II read the
    quality bound from each trial's constraint (`Trial.set_constraint`)."""
    import optuna

    quarter = settings.trials // 4
    if settings.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=settings.seed,
                                          n_startup_trials=max(2, min(10, quarter)),
                                          multivariate=True, group=True)
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=settings.seed,
                                             population_size=max(4, min(50, quarter)))
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=settings.seed)
    return optuna.samplers.GridSampler(space.dimensions, seed=settings.seed)


def record_of(trial: Any) -> TrialRecord:
    """A finished (or abandoned) Optuna trial as a TrialRecord."""
    attrs = trial.user_attrs
    status = attrs.get(STATUS) or "interrupted"
    return TrialRecord(trial.number, bool(attrs.get(COUNTED)), attrs.get(LABEL, "?"),
                       attrs.get(KEY, ""), status, attrs.get(REASON),
                       attrs.get(VALUES), attrs.get(QUALITY), float(attrs.get(VIOLATION, 0.0)),
                       attrs.get(ENERGY), attrs.get(WALL), attrs.get(REPEAT_OF),
                       bool(attrs.get(FALLBACK)), bool(attrs.get(BASELINE)))


class Search:
    """Runs a study until a stopping rule holds; `evaluate` measures configurations."""

    def __init__(self, recipe: Recipe, space: SearchSpace, settings: SearchSettings,
                 evaluate: Evaluate, study: Any, events: SearchEvents | None = None) -> None:
        self.recipe, self.space, self.settings = recipe, space, settings
        self.evaluate, self.study = evaluate, study
        self.events = events
        self.rng = random.Random(settings.seed)
        self.bound = QualityBound(settings.max_quality_drop)
        self.state = SearchState()
        self._losses: list[list[float]] = []  # the feasible points so far, as losses

    def baseline(self) -> RunSpec | None:
        """The recipe's first untransformed configuration: first model, first backend,
        smallest batch (or batching policy) of the grid's order."""
        return next((s for s in self.space.specs if not s.variant.steps), None)

    def run(self) -> SearchState:
        self._replay()
        base = self.baseline()
        if self.settings.max_quality_drop is not None and base is None:
            raise UsageError("--max-quality-drop is relative to an untransformed baseline: "
                             "add `fp32: []` to the recipe's variants")
        if not self.study.trials and base is not None:
            self.study.enqueue_trial(self.space.params_of(base), user_attrs={BASELINE: True})
        repeats = 0
        while (reason := self._stop_reason()) is None:
            trial = self.study.ask()
            params = self.space.suggest(trial)  # an enqueued trial's are fixed
            spec = self.space.spec_of(params)
            if spec is None:  # a grid sampler's point in an option its backend lacks
                self._finish(trial, TrialRecord(trial.number, False, "?", "", "failed",
                                                f"not a configuration of the grid: {params}"))
                repeats += 1
                continue
            earlier = self.state.evaluated().get(spec.key())
            if earlier is not None:
                self._repeat(trial, spec, earlier)
                repeats += 1
                if repeats >= REPEATS_BEFORE_FALLBACK and self.settings.sampler != "grid":
                    self._enqueue_fallback()
                    repeats = 0
                continue
            repeats = 0
            self._measure(trial, spec, bool(trial.user_attrs.get(BASELINE)))
        self.state.stop_reason = reason
        return self.state

    def _stop_reason(self) -> str | None:
        s, counted = self.settings, len(self.state.counted)
        if counted >= s.trials:
            return f"{s.trials} trials measured"
        if len(self.state.evaluated()) >= len(self.space):
            return f"every configuration of the grid ({len(self.space)}) measured"
        if s.energy_budget_j is not None and self.state.spent_j >= s.energy_budget_j:
            return (f"benchmarking-energy budget reached: {self.state.spent_j:.4g} J of "
                    f"{s.energy_budget_j:g} J")
        if s.patience is not None and self.state.since_improvement >= s.patience:
            return f"the front did not grow in the last {s.patience} trials"
        return None

    def _measure(self, trial: Any, spec: RunSpec, is_baseline: bool) -> None:
        row = self.evaluate(spec)
        record = TrialRecord(trial.number, True, spec.label(), spec.key(), "failed",
                             baseline=is_baseline,
                             fallback=bool(trial.user_attrs.get(FALLBACK)))
        if row is None:
            record.reason = "no result could be read back from the store"
            self._finish(trial, record)
            return
        record.bench_energy_j, record.wall_s = row.get("bench_energy_j"), row.get("bench_wall_s")
        record.quality = row.get("quality_value")
        if is_baseline and row.get("status") == "ok":
            self.bound = bound_from(row, self.settings.max_quality_drop)
            self.study.set_user_attr("bound", row_bound(row))
        values, why = objective_values(row, self.settings.objectives)
        status = row.get("status") or "failed"
        record.status = "ok" if values is not None else "failed" if status == "ok" else status
        record.reason, record.values = why, values
        if values is not None:
            record.violation = self.bound.violation(row)
            if record.violation > 0:
                record.status = "infeasible"
                record.reason = quality_reason(row, self.bound)
        self._finish(trial, record)
        if is_baseline and self.settings.max_quality_drop is not None and not record.feasible:
            raise OptbenchError(f"the baseline {record.label} did not measure ({record.reason})"
                                ": the quality bound has nothing to hold against; the run's "
                                "log says why")

    def _repeat(self, trial: Any, spec: RunSpec, earlier: TrialRecord) -> None:
        self._finish(trial, TrialRecord(
            trial.number, False, spec.label(), spec.key(), earlier.status, earlier.reason,
            earlier.values, earlier.quality, earlier.violation, repeat_of=earlier.number))

    def _enqueue_fallback(self) -> None:
        done = self.state.evaluated()
        left = [p for s, p in zip(self.space.specs, self.space.params) if s.key() not in done]
        if left:
            self.study.enqueue_trial(self.rng.choice(left), user_attrs={FALLBACK: True})

    def _finish(self, trial: Any, record: TrialRecord) -> None:
        """Tell Optuna, keep the record (in the study: it survives a crash), report."""
        from optuna.trial import TrialState

        for name, value in ((COUNTED, record.counted), (KEY, record.key),
                            (LABEL, record.label), (STATUS, record.status),
                            (REASON, record.reason), (VALUES, record.values),
                            (QUALITY, record.quality), (VIOLATION, record.violation),
                            (ENERGY, record.bench_energy_j), (WALL, record.wall_s),
                            (REPEAT_OF, record.repeat_of)):
            trial.set_user_attr(name, value)
        if record.values is not None and self.settings.max_quality_drop is not None:
            trial.set_constraint("quality", record.violation)
        if record.values is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, record.values)
        self._keep(record)
        if self.events is not None and record.counted:
            self.events.trial(record, self.state)

    def _keep(self, record: TrialRecord) -> None:
        self.state.records.append(record)
        if not record.counted:
            return
        if record.feasible:
            loss = [o.loss(v) for o, v in zip(self.settings.objectives, record.values or [])]
            grew = not any(dominates(p, loss, ["min"] * len(loss)) or p == loss
                           for p in self._losses)
            self._losses.append(loss)
            self.state.since_improvement = 0 if grew else self.state.since_improvement + 1
        else:
            self.state.since_improvement += 1

    def _replay(self) -> None:
        """A resumed study: its trials become the state; one left running is failed."""
        from optuna.trial import TrialState

        for trial in self.study.get_trials(deepcopy=False):
            if trial.state == TrialState.RUNNING:
                self.study.tell(trial.number, state=TrialState.FAIL)
                if self.events is not None:
                    self.events.note(f"trial {trial.number} was interrupted: failed, and "
                                     "its configuration may be measured again")
        self.state = SearchState()
        self._losses = []
        for trial in self.study.get_trials(deepcopy=False):
            if trial.state == TrialState.WAITING:
                continue
            self._keep(record_of(trial))
        bound = self.study.user_attrs.get("bound")
        if bound is not None:
            self.bound = QualityBound(self.settings.max_quality_drop, **bound)


def row_bound(row: Mapping[str, Any]) -> dict[str, Any]:
    """The baseline's part of the quality bound, as the study keeps it (JSON)."""
    b = bound_from(row, None)
    return {"baseline": b.baseline, "metric": b.metric,
            "higher_is_better": b.higher_is_better, "inputs": b.inputs}


def quality_reason(row: Mapping[str, Any], bound: QualityBound) -> str:
    quality = row.get("quality_value")
    if quality is None or bound.baseline is None:
        return "no quality figure to hold against the bound"
    if row.get("quality_metric") != bound.metric or row.get("quality_inputs") != bound.inputs:
        return "judged on other samples or another metric than the baseline"
    return (f"{row.get('quality_metric')} {quality:.4g} is more than {bound.max_drop:g} "
            f"below the baseline's {bound.baseline:.4g}")
