"""Pareto dominance and fronts. Pure: no plotting or I/O imports.

Each objective has a sense: "min" (energy, latency) or "max" (accuracy, throughput).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Sense = Literal["min", "max"]


def _better_or_equal(a: float, b: float, sense: Sense) -> bool:
    return a <= b if sense == "min" else a >= b


def dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[Sense]) -> bool:
    """True when `a` is at least as good as `b` in every objective and better in one."""
    if not (len(a) == len(b) == len(senses)):
        raise ValueError("points and senses must have the same length")
    at_least = all(_better_or_equal(x, y, s) for x, y, s in zip(a, b, senses))
    strictly = any(x != y for x, y in zip(a, b))
    return at_least and strictly


def pareto_front(points: Sequence[Sequence[float]], senses: Sequence[Sense]) -> list[int]:
    """Indices of the non-dominated points, in input order. Duplicates all stay on the front."""
    return [
        i for i, p in enumerate(points)
        if not any(dominates(q, p, senses) for j, q in enumerate(points) if j != i)
    ]
