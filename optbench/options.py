"""Typed plugin options: a plain mapping from YAML or the CLI -> a frozen Config dataclass.

Each plugin declares its options as a frozen dataclass with typed fields and defaults;
`build_config` checks names (with did-you-mean) and types, naming the recipe path on error.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from optbench.errors import RecipeError, closest


def build_config(cls: type, options: Mapping[str, Any], path: str) -> Any:
    """Instantiate the Config dataclass `cls` from `options`, validating names and types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for key, raw in options.items():
        if key not in fields:
            raise RecipeError(
                f"{path}.{key}",
                f"unknown option; valid options: {', '.join(sorted(fields)) or 'none'}",
                closest(key, fields),
            )
        values[key] = coerce(raw, hints[key], f"{path}.{key}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise RecipeError(path, str(exc)) from exc


def coerce(value: Any, hint: Any, path: str) -> Any:
    """Check `value` against the type `hint`, converting where it is lossless."""
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise RecipeError(
                path,
                f"invalid value {value!r}; choose one of {', '.join(map(repr, args))}",
                closest(str(value), [str(a) for a in args]),
            )
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, path)
            except RecipeError as exc:
                errors.append(exc.message)
        raise RecipeError(path, "; ".join(errors))
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise RecipeError(path, f"expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise RecipeError(path, f"expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise RecipeError(path, f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise RecipeError(path, f"expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise RecipeError(path, f"expected an integer, got {value!r}") from None
    if hint is float:
        if isinstance(value, bool):
            raise RecipeError(path, f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise RecipeError(path, f"expected a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise RecipeError(path, f"expected a string, got {value!r}")
        return str(value)
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready form of a Config dataclass (tuples become lists)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }
