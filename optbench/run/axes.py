"""`axes:` in a recipe: option values crossed with every backend or transform step they name.

    axes:
      prune.sparsity: [0.3, 0.6]     # each variant with a prune step, at each sparsity
      ort.intra_op_threads: [1, 2]   # each ort backend entry, at each thread count

The axes expand the recipe's backends and variants before anything runs, so `optbench run`
measures the full grid and `optbench search` samples the same configurations (with the
same keys); the search also keeps each axis as one dimension of its space. An expanded
variant is named `NAME[option=value]`; an expanded backend carries the option as any
other (`ort(intra_op_threads=2)`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any

from optbench.errors import RecipeError, closest
from optbench.run.recipe import Axis, BackendSpec, ModelEntry, TransformStep, Variant, freeze

PATH = "recipe.axes"


def parse_axes(data: Any, variants: tuple[Variant, ...],
               backends: tuple[BackendSpec, ...]) -> tuple[Axis, ...]:
    """The recipe's axes, each naming a backend or a transform the recipe uses and an
    option it accepts, with a list of distinct values."""
    from optbench.backends import BACKENDS
    from optbench.transforms import TRANSFORMS

    if data is None:
        return ()
    if not isinstance(data, Mapping) or not data:
        raise RecipeError(PATH, "expected a mapping of NAME.OPTION -> list of values, "
                          "e.g. prune.sparsity: [0.3, 0.6]")
    used_backends = sorted({b.name for b in backends})
    used_transforms = sorted({s.name for v in variants for s in v.steps})
    axes = []
    for key, values in data.items():
        path = f"{PATH}.{key}"
        target, _, option = str(key).partition(".")
        if not target or not option:
            raise RecipeError(path, "expected NAME.OPTION: a backend or transform of this "
                              "recipe and one of its options, e.g. prune.sparsity")
        if _canonical(BACKENDS, target) in used_backends:
            kind, target, config = "backend", _canonical(BACKENDS, target), BACKENDS
        elif _canonical(TRANSFORMS, target) in used_transforms:
            kind, target, config = "transform", _canonical(TRANSFORMS, target), TRANSFORMS
        else:
            names = used_backends + used_transforms
            raise RecipeError(path, f"'{target}' is no backend or transform step of this "
                              f"recipe (it has {', '.join(names) or 'none'})",
                              closest(target, names))
        fields = [f.name for f in dataclasses.fields(config.get(target).Config) if f.init]
        if option not in fields:
            raise RecipeError(path, f"{target} has no option '{option}' (its options: "
                              f"{', '.join(fields) or 'none'})", closest(option, fields))
        if not isinstance(values, (list, tuple)) or not values:
            raise RecipeError(path, f"expected a non-empty list of values, got {values!r}")
        if any(isinstance(v, (list, tuple, Mapping)) for v in values):
            raise RecipeError(path, "each value must be a number, string or boolean")
        if len(set(map(repr, values))) != len(values):
            raise RecipeError(path, f"a value is listed twice in {list(values)}")
        axis = Axis(kind, target, option, tuple(values))
        if any(a.name == axis.name for a in axes):
            raise RecipeError(path, f"axis {axis.name} given twice")
        axes.append(axis)
    return tuple(axes)


def _canonical(registry: Any, name: str) -> str | None:
    from optbench.errors import PluginNotFound

    try:
        return str(registry.canonical(name))
    except PluginNotFound:
        return None


def expand_variants(variants: tuple[Variant, ...], axes: tuple[Axis, ...]
                    ) -> tuple[tuple[Variant, ...], dict[str, list[str]]]:
    """Each variant once per combination of the values of the axes its steps take; and
    each original name -> its expanded names (for `models:` entries that list variants)."""
    out: list[Variant] = []
    names: dict[str, list[str]] = {}
    for variant in variants:
        mine = [a for a in axes if a.kind == "transform"
                and any(s.name == a.target for s in variant.steps)]
        names[variant.name] = []
        for combo in itertools.product(*(a.values for a in mine)):
            chosen = list(zip(mine, combo))
            steps = tuple(_with(step.name, step.options, chosen, "transform",
                                f"recipe.variants.{variant.name}") for step in variant.steps)
            suffix = ",".join(f"{a.option}={v}" for a, v in chosen)
            name = f"{variant.name}[{suffix}]" if suffix else variant.name
            out.append(Variant(name, steps))
            names[variant.name].append(name)
    return tuple(out), names


def expand_backends(backends: tuple[BackendSpec, ...], axes: tuple[Axis, ...],
                    path: str = "recipe.backends") -> tuple[BackendSpec, ...]:
    out: list[BackendSpec] = []
    for backend in backends:
        mine = [a for a in axes if a.kind == "backend" and a.target == backend.name]
        for combo in itertools.product(*(a.values for a in mine)):
            options = _with(backend.name, backend.options, list(zip(mine, combo)), "backend",
                            path)
            spec = BackendSpec(backend.name, options.options)
            if spec not in out:
                out.append(spec)
    return tuple(out)


def expand_entries(entries: tuple[ModelEntry, ...], axes: tuple[Axis, ...],
                   names: dict[str, list[str]]) -> tuple[ModelEntry, ...]:
    return tuple(ModelEntry(e.model, expand_backends(e.backends, axes, f"recipe.models"
                                                     f"[{i}].backends"),
                            tuple(n for v in e.variants for n in names[v]))
                 for i, e in enumerate(entries))


def _with(name: str, options: tuple[tuple[str, Any], ...], chosen: list[tuple[Axis, Any]],
          kind: str, path: str) -> TransformStep:
    """The step (or backend) `name` with the chosen axis values set, checked as the
    recipe's own options are."""
    from optbench.backends import BACKENDS
    from optbench.options import build_config, config_to_dict
    from optbench.transforms import TRANSFORMS

    given = dict(options)
    for axis, value in chosen:
        if axis.target == name:
            given[axis.option] = value
    if given == dict(options):
        return TransformStep(name, options)
    registry = BACKENDS if kind == "backend" else TRANSFORMS
    config = build_config(registry.get(name).Config, given, f"{PATH} on {path}.{name}")
    explicit = {k: v for k, v in config_to_dict(config).items() if k in given}
    return TransformStep(name, freeze(explicit))
