"""A recipe's grid as a search space: one categorical dimension per axis.

The dimensions are the model (a `models:` recipe), the backend, each backend option of
`axes:`, the variant, each transform option of `axes:`, and the batch size. An option's
dimension exists only for configurations that have its backend or step (Optuna's
define-by-run, conditional parameters). A dimension keeps one set of choices in every
trial, as Optuna requires: where the models of a `models:` recipe take different backends
or variants, each model has its own (`backend@MODEL`). Every point of the space is one
RunSpec of the recipe's grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optbench.errors import UsageError
from optbench.run.recipe import Axis, BackendSpec, Recipe, RunSpec

Params = dict[str, Any]


def _frozen(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


@dataclass
class SearchSpace:
    specs: list[RunSpec]  # the grid, in the recipe's order
    params: list[Params]  # each spec's point
    dimensions: dict[str, list[Any]]  # name -> its choices, in the grid's order

    @classmethod
    def of(cls, recipe: Recipe, specs: list[RunSpec]) -> SearchSpace:
        """The space of `specs` (the recipe's planned grid)."""
        if not specs:
            raise UsageError(f"recipe {recipe.name} has no configurations to search")
        if recipe.scenario is not None:
            raise UsageError("optbench search takes closed-loop recipes: its objectives are "
                             "a run's energy per sample and latency, not a serving run's "
                             "figures per offered rate; sweep a serving recipe with "
                             "`optbench run`")
        models = list(dict.fromkeys(s.model.ref for s in specs))
        per_model = {m: [s for s in specs if s.model.ref == m] for m in models}

        def shared(pick: Any) -> bool:
            """One choice list for all models (else one dimension per model)."""
            lists = [list(dict.fromkeys(pick(s) for s in group)) for group in per_model.values()]
            return all(lst == lists[0] for lst in lists)

        backend_shared = shared(lambda s: base_backend(s.backend, recipe.axes))
        variant_shared = shared(lambda s: base_variant(s, recipe.axes))
        params = []
        for spec in specs:
            point: Params = {}
            if len(models) > 1:
                point["model"] = spec.model.ref
            suffix = "" if len(models) == 1 else f"@{spec.model.ref}"
            point["backend" + ("" if backend_shared else suffix)] = base_backend(
                spec.backend, recipe.axes)
            options = dict(spec.backend.options)
            for axis in recipe.axes:
                if axis.kind == "backend" and axis.target == spec.backend.name:
                    point[axis.name] = options[axis.option]
            point["variant" + ("" if variant_shared else suffix)] = base_variant(
                spec, recipe.axes)
            for axis in recipe.axes:
                step = next((s for s in spec.variant.steps if s.name == axis.target), None)
                if axis.kind == "transform" and step is not None:
                    point[axis.name] = dict(step.options)[axis.option]
            point["batch_size"] = spec.batch_size
            params.append(point)
        dimensions: dict[str, list[Any]] = {}
        for point in params:
            for name, value in point.items():
                choices = dimensions.setdefault(name, [])
                if value not in choices:
                    choices.append(value)
        space = cls(specs, params, dimensions)
        if len(space._index) != len(specs):
            raise UsageError(f"recipe {recipe.name}: two configurations of its grid differ "
                             "in nothing the search can choose")
        return space

    def __post_init__(self) -> None:
        self._index = {_frozen(p): i for i, p in enumerate(self.params)}

    def __len__(self) -> int:
        return len(self.specs)

    def spec_of(self, params: Mapping[str, Any]) -> RunSpec | None:
        """The grid's configuration at `params` (None: not a point of the grid)."""
        index = self._index.get(_frozen(params))
        return None if index is None else self.specs[index]

    def params_of(self, spec: RunSpec) -> Params:
        return self.params[self.specs.index(spec)]

    def suggest(self, trial: Any) -> Params:
        """The point an Optuna trial chooses, dimension by dimension: each is asked only
        where the choices so far leave it open (an option only with its backend or step)."""
        chosen: Params = {}
        for name, choices in self.dimensions.items():
            if self._applies(name, chosen):
                chosen[name] = trial.suggest_categorical(name, choices)
        return chosen

    def _applies(self, name: str, chosen: Params) -> bool:
        """Whether some point agreeing with `chosen` has the dimension `name`."""
        return any(name in p and all(p.get(k) == v for k, v in chosen.items())
                   for p in self.params)


def base_backend(backend: BackendSpec, axes: tuple[Axis, ...]) -> str:
    """The backend's label without the options its axes set."""
    searched = {a.option for a in axes if a.kind == "backend" and a.target == backend.name}
    return BackendSpec(backend.name, tuple((k, v) for k, v in backend.options
                                           if k not in searched)).label()


def base_variant(spec: RunSpec, axes: tuple[Axis, ...]) -> str:
    """The variant's recipe name, without the `[option=value]` its axes added."""
    name = spec.variant.name
    if any(a.kind == "transform" and any(s.name == a.target for s in spec.variant.steps)
           for a in axes) and name.endswith("]"):
        return name[:name.rindex("[")]
    return name
