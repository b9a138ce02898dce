"""Statistics derived on read from raw per-iteration and per-trial values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 95% Student t quantiles by degrees of freedom (1..30); beyond, the normal 1.96
# is within 2% of the true quantile.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def t95(dof: int) -> float:
    """Two-sided 95% Student t quantile for `dof` degrees of freedom."""
    if dof < 1:
        raise ValueError("need at least one degree of freedom")
    if dof <= len(_T95):
        return _T95[dof - 1]
    return 1.96 + 2.4 / dof  # Cornish-Fisher-style tail; within 0.1% of exact past 30


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method), q in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Summary:
    """Mean, median, 95% confidence half-width (Student t), coefficient of variation, n."""

    n: int
    mean: float
    median: float
    ci95: float | None
    cov: float | None
    min: float
    max: float

    @property
    def ci_relative(self) -> float | None:
        if self.ci95 is None or self.mean == 0:
            return None
        return self.ci95 / abs(self.mean)


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("summary of no values")
    n = len(values)
    mean = sum(values) / n
    if n > 1:
        var = sum((v - mean) ** 2 for v in values) / (n - 1)
        sd = math.sqrt(var)
        ci = t95(n - 1) * sd / math.sqrt(n)
        cov = sd / abs(mean) if mean else None
    else:
        ci = cov = None
    return Summary(n, mean, percentile(values, 50), ci, cov, min(values), max(values))


def overlaps(a: Summary, b: Summary) -> bool:
    """Whether two 95% intervals overlap (the points are not distinguishable)."""
    if a.ci95 is None or b.ci95 is None:
        return False
    return abs(a.mean - b.mean) <= a.ci95 + b.ci95
