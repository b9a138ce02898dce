"""Pareto dominance and fronts. Pure: no plotting or I/O imports.

Each objective has a sense: "min" (energy, latency) or "max" (accuracy, throughput).
`pareto_front` is the definition below, computed without comparing every pair: two
objectives by a sort and one sweep, three by a sweep over a staircase of the points seen so
far (both O(n log n)); more objectives compare blocks of points with numpy.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from typing import Literal

Sense = Literal["min", "max"]
BLOCK = 512  # points compared at once in more than three objectives


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
    """Indices of the non-dominated points, in input order. Duplicates all stay on the front.

    A point with a NaN coordinate is neither dominated nor dominating (every comparison
    with NaN is false), so it is on the front, as `dominates` has it.
    """
    if any(len(p) != len(senses) for p in points):
        raise ValueError("points and senses must have the same length")
    signs = [1.0 if s == "min" else -1.0 for s in senses]
    keyed: list[tuple[float, ...]] = []  # every objective as "min"
    index: list[int] = []
    front: list[int] = []
    for i, p in enumerate(points):
        q = tuple(float(v) * sign for v, sign in zip(p, signs))
        if any(math.isnan(v) for v in q):
            front.append(i)
        else:
            keyed.append(q)
            index.append(i)
    if keyed:
        dims = len(senses)
        kept = (_front1(keyed) if dims == 1 else _front2(keyed) if dims == 2
                else _front3(keyed) if dims == 3 else _front_blocks(keyed))
        front += [index[k] for k in kept]
    return sorted(front)


def _front1(points: list[tuple[float, ...]]) -> list[int]:
    best = min(p[0] for p in points)
    return [i for i, p in enumerate(points) if p[0] == best]


def _front2(points: list[tuple[float, ...]]) -> list[int]:
    """Sorted by (x, y): a point is dominated by one of smaller x with y at most its own,
    or by one of the same x with a smaller y; sweeping keeps the least y seen so far."""
    kept: list[int] = []
    least_before = math.inf  # least y among points of strictly smaller x
    for run in _equal_x_runs(points):
        least_here = points[run[0]][1]  # sorted: the first of the run has the least y
        if least_here < least_before:
            kept += [i for i in run if points[i][1] == least_here]
            least_before = least_here
    return kept


def _equal_x_runs(points: list[tuple[float, ...]]) -> Iterator[list[int]]:
    """The indices of the points sorted, in runs of equal x."""
    order = sorted(range(len(points)), key=points.__getitem__)
    start = 0
    while start < len(order):
        x = points[order[start]][0]
        end = start
        while end < len(order) and points[order[end]][0] == x:
            end += 1
        yield order[start:end]
        start = end


def _front3(points: list[tuple[float, ...]]) -> list[int]:
    """Sorted by x, points of equal x at once: a point is dominated by one of smaller x that
    is at most its own in (y, z), or by one of the same x that dominates it in (y, z).
    The (y, z) front of the points of smaller x is a staircase (y ascending, z descending):
    whether it holds a point at most (y, z) is one bisection."""
    ys: list[float] = []  # the staircase: y strictly ascending, z strictly descending
    zs: list[float] = []
    kept: list[int] = []
    for run in _equal_x_runs(points):
        local = _front2([points[i][1:] for i in run])  # within the same x: (y, z) dominance
        for k in local:
            _, y, z = points[run[k]]
            at = bisect_right(ys, y) - 1  # the staircase point of largest y <= y: least z
            if at < 0 or zs[at] > z:
                kept.append(run[k])
        for k in local:  # then the run joins the staircase
            _, y, z = points[run[k]]
            at = bisect_right(ys, y) - 1
            if at >= 0 and zs[at] <= z:
                continue  # already covered
            lo = bisect_left(ys, y)
            hi = lo
            while hi < len(ys) and zs[hi] >= z:  # the steps it covers: y >= its y, z >= its z
                hi += 1
            ys[lo:hi] = [y]
            zs[lo:hi] = [z]
    return kept


def _front_blocks(points: list[tuple[float, ...]]) -> list[int]:
    """Any number of objectives: each block of points against every point, vectorised."""
    import numpy as np

    values = np.asarray(points, dtype=np.float64)
    kept: list[int] = []
    for start in range(0, len(values), BLOCK):
        block = values[start:start + BLOCK]
        at_most = (values[None, :, :] <= block[:, None, :]).all(axis=2)
        differs = (values[None, :, :] != block[:, None, :]).any(axis=2)
        dominated = (at_most & differs).any(axis=1)
        kept += [start + i for i in np.flatnonzero(~dominated)]
    return kept


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume the points dominate up to `reference`, every objective a loss (smaller
    is better; negate the others). Points not better than the reference in every
    objective add nothing. Exact, by slicing along the first objective: for the few
    objectives and the hundreds of points a search has, not for thousands."""
    inside = [tuple(p) for p in points if all(v < r for v, r in zip(p, reference))]
    if not inside:
        return 0.0
    if len(reference) == 1:
        return float(reference[0] - min(p[0] for p in inside))
    inside.sort()
    volume = 0.0
    for i, point in enumerate(inside):
        upper = inside[i + 1][0] if i + 1 < len(inside) else reference[0]
        if upper > point[0]:  # the slice [point, next) is dominated by the first i+1 points
            volume += (upper - point[0]) * hypervolume([p[1:] for p in inside[:i + 1]],
                                                       reference[1:])
    return volume
