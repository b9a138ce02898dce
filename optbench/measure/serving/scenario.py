"""What a serving measurement asks for: MLPerf's scenario, the offered load, the batching
policy and the optional prediction cache. Parsed from a recipe's `scenario:` section."""

from __future__ import annotations

import math
from dataclasses import dataclass

SCENARIOS = ("single-stream", "multi-stream", "server", "offline")
SWEEP = "sweep"
# A sweep (GuideLLM-style, from light load to past saturation) offers the rates of a
# 1-2-3-5-7 series from SWEEP_LOW x the configuration's closed-loop capacity up to it (a
# grid shared by every configuration, so curves compare rate by rate), then one rate
# SWEEP_PAST x the capacity, rounded to two digits, to show where it saturates.
SWEEP_LOW, SWEEP_PAST, SWEEP_MAX_POINTS = 0.05, 1.1, 7
SERIES = (1, 2, 3, 5, 7)


def sweep_rates(capacity_per_s: float) -> tuple[float, ...]:
    """The series' rates (req/s) in [SWEEP_LOW x capacity, capacity], the highest
    SWEEP_MAX_POINTS of them (light loads are the cheapest to thin out), then the rate
    past saturation."""
    if capacity_per_s <= 0:
        raise ValueError("capacity must be positive")
    low = SWEEP_LOW * capacity_per_s
    rates: list[float] = []
    decade = 10.0 ** math.floor(math.log10(low))
    while decade <= capacity_per_s:
        rates += [m * decade for m in SERIES if low <= m * decade <= capacity_per_s]
        decade *= 10
    past = float(f"{SWEEP_PAST * capacity_per_s:.2g}")
    return tuple(float(f"{r:.6g}") for r in rates[-SWEEP_MAX_POINTS:]) + (past,)


@dataclass(frozen=True)
class Scenario:
    """One serving configuration (the rates are measured inside one run).

    Attributes:
        kind: one of SCENARIOS.
        rates_per_s: offered Poisson rates (server only); empty with `sweep` True.
        sweep: server rates chosen from the measured capacity (`sweep_rates`).
        latency_bound_ms: the p99 bound (arrival to completion); with it, server runs
            also search the highest rate that holds it, and goodput counts requests under it.
        ttft_bound_ms, tpot_bound_ms: text generation's bounds on first-token time and
            time per output token, for goodput and the rate search.
        duration_s: how long LoadGen issues queries at each rate.
        max_wait_ms: how long the batcher may hold a request to fill a batch (the run's
            `batch_size` is the batcher's max_batch).
        samples_per_query: multi-stream's query size.
        cache_size: LRU prediction cache entries in front of the model (0: none).
        repeat_skew: Zipf exponent of a request stream with repeats over the evaluation
            inputs (None: LoadGen's uniform choice).
        search_steps: bisection steps of the rate search.
        seed: LoadGen's schedule and sample seeds, and the repeat stream's.
    """

    kind: str = "server"
    rates_per_s: tuple[float, ...] = ()
    sweep: bool = False
    latency_bound_ms: float | None = None
    ttft_bound_ms: float | None = None
    tpot_bound_ms: float | None = None
    duration_s: float = 10.0
    max_wait_ms: float = 0.0
    samples_per_query: int = 8
    cache_size: int = 0
    repeat_skew: float | None = None
    search_steps: int = 3
    seed: int = 0

    def label(self, max_batch: int) -> str:
        parts = [self.kind]
        if self.kind != "single-stream":
            parts.append(f"mb{max_batch} wait{self.max_wait_ms:g}ms")
        if self.cache_size:
            parts.append(f"cache{self.cache_size}")
        return " ".join(parts)

    @property
    def searches(self) -> bool:
        """Whether the run searches the highest rate holding the bounds."""
        return self.kind == "server" and any(
            b is not None for b in (self.latency_bound_ms, self.ttft_bound_ms,
                                    self.tpot_bound_ms))
