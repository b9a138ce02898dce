"""Measurement presets: how long and how often the loop measures.

`smoke` for plumbing checks, `quick` for CI and demos, `standard` and `rigorous` (with
interleaved trials) for figures one can defend.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """How long and how often to measure. Presets below; durations in seconds."""

    name: str
    warmup_min_s: float
    warmup_max_s: float
    latency_min_iters: int
    latency_min_s: float
    latency_max_s: float
    window_min_s: float
    trials_min: int
    trials_max: int
    idle_s: float
    eval_cap: int | None
    window_periods: int = 10
    idle_after: bool = False
    interleave: bool = False
    rewarm_s: float = 2.0
    warmup_block_s: float = 0.25
    steady_tolerance: float = 0.02
    ci_target: float = 0.02
    latency_max_iters: int = 100_000


PRESETS: dict[str, Preset] = {
    # Plumbing checks (tests, CI smoke recipes): windows far too short for real figures.
    "smoke": Preset("smoke", warmup_min_s=0.0, warmup_max_s=0.3, latency_min_iters=5,
                      latency_min_s=0.1, latency_max_s=1, window_min_s=0.3, trials_min=2,
                      trials_max=2, idle_s=0.1, eval_cap=64, window_periods=0),
    "smoke-interleaved": Preset("smoke-interleaved", warmup_min_s=0.0, warmup_max_s=0.3,
                                  latency_min_iters=5, latency_min_s=0.1, latency_max_s=1,
                                  window_min_s=0.3, trials_min=3, trials_max=3, idle_s=0.1,
                                  eval_cap=64, window_periods=0, idle_after=True,
                                  interleave=True, rewarm_s=0.1),
    # CI and demos: short windows, flagged when below a meter's resolution.
    "quick": Preset("quick", warmup_min_s=0.5, warmup_max_s=5, latency_min_iters=20,
                      latency_min_s=1.0, latency_max_s=5, window_min_s=2.0, trials_min=3,
                      trials_max=3, idle_s=1.0, eval_cap=256),
    "standard": Preset("standard", warmup_min_s=2, warmup_max_s=60, latency_min_iters=100,
                         latency_min_s=10, latency_max_s=30, window_min_s=10, trials_min=3,
                         trials_max=10, idle_s=5, eval_cap=1000, window_periods=50),
    # The seed study found sub-60 s windows unreliable with a 1 s sampler.
    "rigorous": Preset("rigorous", warmup_min_s=5, warmup_max_s=120, latency_min_iters=200,
                         latency_min_s=30, latency_max_s=60, window_min_s=60, trials_min=5,
                         trials_max=10, idle_s=10, eval_cap=None, window_periods=50,
                         idle_after=True, interleave=True),
}
