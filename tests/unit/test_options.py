from dataclasses import dataclass
from typing import Literal

import pytest

from optbench.errors import RecipeError
from optbench.options import build_config, coerce


@dataclass(frozen=True)
class Cfg:
    threads: int | None = None
    mode: Literal["a", "b"] = "a"
    ratio: float = 0.5
    flag: bool = False
    names: tuple[str, ...] = ()


def test_valid_options_build_a_typed_config():
    cfg = build_config(Cfg, {"threads": "4", "mode": "b", "ratio": 1, "flag": "yes",
                             "names": "x, y"}, "recipe.backends.x")
    assert cfg == Cfg(threads=4, mode="b", ratio=1.0, flag=True, names=("x", "y"))


def test_unknown_option_names_path_and_suggestion():
    with pytest.raises(RecipeError) as info:
        build_config(Cfg, {"thread": 2}, "recipe.backends.ort")
    assert info.value.path == "recipe.backends.ort.thread"
    assert info.value.suggestion == "threads"


@pytest.mark.parametrize("value, hint", [("x", int), (True, int), ("z", float), ("maybe", bool),
                                         ([1], str)])
def test_wrong_types_are_rejected(value, hint):
    with pytest.raises(RecipeError):
        coerce(value, hint, "p")


def test_literal_rejects_values_outside_the_choices():
    with pytest.raises(RecipeError, match="choose one of"):
        build_config(Cfg, {"mode": "c"}, "p")


def test_optional_accepts_none():
    assert build_config(Cfg, {"threads": None}, "p").threads is None
