"""Quality uncertainty and paired significance, from per-sample outcomes (pure).

Every configuration of a model is judged on the same evaluation inputs in the same order,
so a difference in quality is tested where it lives, sample by sample:
- accuracies and agreements (0/1 per sample): a Wilson 95% interval for each figure, and
  the exact McNemar test on the samples where two configurations disagree;
- perplexity (a mean NLL per window of text): a bootstrap 95% interval over the windows,
  and a paired bootstrap of the difference (the same windows resampled for both).
`samples_to_resolve` says how many samples a difference of the observed size would need to
be significant at 5% with 80% power, so a reader knows what a longer run would buy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
Z80 = 0.8416212335729143  # one-sided 80% power
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20261202  # fixed: the same store always gives the same intervals
# Metrics whose per-sample outcomes are windows' mean NLL (nats per token), not 0/1.
NLL_METRICS = ("perplexity",)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (good down to 0 and n successes)."""
    if n <= 0:
        raise ValueError("a proportion of no samples has no interval")
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} outside 0..{n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), summed in log space (n up to millions)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    log_half_n = n * math.log(0.5)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n
            for i in range(k + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b samples right only in one configuration, c right
    only in the other; under no difference each discordant sample is a fair coin."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be >= 0")
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * binomial_cdf_half(min(b, c), n))


def discordant(a: Sequence[float], b: Sequence[float]) -> tuple[int, int]:
    """(right in a only, right in b only) over paired 0/1 outcomes."""
    x, y = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    return int(np.sum(x & ~y)), int(np.sum(~x & y))


def mcnemar_samples_to_resolve(b: int, c: int, n: int) -> int | None:
    """Samples at which discordance rates like these (b + c of n, net b - c) would reach
    significance at 5% with 80% power (Connor 1987); None when no difference was seen."""
    if n <= 0 or b == c:
        return None
    psi, delta = (b + c) / n, abs(b - c) / n
    root = math.sqrt(max(psi - delta * delta, 0.0))
    return math.ceil(((Z95 * math.sqrt(psi) + Z80 * root) / delta) ** 2)


def perplexity(nll: Sequence[float]) -> float:
    return float(math.exp(float(np.mean(nll))))


def bootstrap_indices(n: int, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(resamples, n) indices drawn with replacement, reproducible for a seed."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def perplexity_interval(nll: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of perplexity over the windows."""
    values = np.asarray(nll, dtype=float)
    if len(values) < 2:
        raise ValueError("a bootstrap interval needs at least two windows")
    means = values[bootstrap_indices(len(values), resamples, seed)].mean(axis=1)
    low, high = np.percentile(np.exp(means), [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class Paired:
    """A configuration's quality against its baseline's on the same samples."""

    test: str  # "mcnemar-exact" | "paired-bootstrap"
    delta: float  # the configuration's figure minus the baseline's
    p_value: float
    samples: int  # the paired samples (or windows) the test saw
    samples_to_resolve: int | None  # None: no difference seen, nothing to resolve

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def paired_bootstrap(a: Sequence[float], b: Sequence[float],
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
                     ) -> Paired:
    """Perplexity of windows' NLL `b` minus that of `a`, the same windows resampled for
    both. Two-sided p: twice the smaller share of resampled differences on either side of
    zero (at least 1/resamples: the resolution of the bootstrap)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("paired bootstrap needs two equal-length series of >= 2 windows")
    idx = bootstrap_indices(len(x), resamples, seed)
    diffs = np.exp(y[idx].mean(axis=1)) - np.exp(x[idx].mean(axis=1))
    delta = perplexity(y) - perplexity(x)
    if not np.any(diffs) and delta == 0:
        return Paired("paired-bootstrap", 0.0, 1.0, len(x), None)
    p = 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0)))
    p = min(1.0, max(p, 1 / resamples))
    se = float(np.std(diffs, ddof=1))
    needed = None
    if delta != 0 and se > 0:
        needed = math.ceil(len(x) * ((Z95 + Z80) * se / abs(delta)) ** 2)
    return Paired("paired-bootstrap", delta, p, len(x), needed)


def paired_mcnemar(base: Sequence[float], other: Sequence[float]) -> Paired:
    """0/1 outcomes of `other` against `base` on the same samples."""
    if len(base) != len(other) or not len(base):
        raise ValueError("McNemar needs two equal-length, non-empty outcome series")
    right_base_only, right_other_only = discordant(base, other)
    n = len(base)
    return Paired("mcnemar-exact", (right_other_only - right_base_only) / n,
                  mcnemar_exact(right_base_only, right_other_only), n,
                  mcnemar_samples_to_resolve(right_base_only, right_other_only, n))


def compare(metric: str, base: Sequence[float], other: Sequence[float]) -> Paired:
    """The paired test that fits `metric`'s outcomes."""
    if metric in NLL_METRICS:
        return paired_bootstrap(base, other)
    return paired_mcnemar(base, other)


def interval(metric: str, outcomes: Sequence[float]) -> tuple[float, float] | None:
    """The 95% interval of a figure from its per-sample outcomes (None: too few)."""
    n = len(outcomes)
    if metric in NLL_METRICS:
        return perplexity_interval(outcomes) if n >= 2 else None
    if not n:
        return None
    return wilson_interval(int(round(float(np.sum(np.asarray(outcomes) > 0.5)))), n)
