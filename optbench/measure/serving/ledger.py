"""Arrival and completion bookkeeping of one serving run, and what it says over a window.

Every request is recorded once when it completes (arrival, first token, completion, its
batch's size, whether the cache answered it, tokens produced). Over a measurement window
[open, close] the figures are:
- completed: requests that completed inside the window (what its energy paid for), so
  gross energy per request x achieved rate is the window's mean power exactly;
- latency (arrival to completion, queueing included), TTFT and TPOT: of the requests that
  arrived inside the window, whenever they completed;
- goodput: requests completed inside the window within every bound, per second;
- saturated: the backlog grew through the window by more than a stable queue's
  fluctuation (the model cannot keep up).
Times are monotonic nanoseconds. Appends come from several threads; each is one
`list.append`, atomic in CPython.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench.measure.serving.batcher import Request

# A window is saturated when its completions fall behind its arrivals by more than this
# share of them AND by more than what a stable queue holds at a moment: the requests in
# flight (`in_flight`, the batcher's max_batch) plus SATURATION_SIGMAS x sqrt(arrivals)
# of Poisson fluctuation. Short, light windows (a few arrivals) are never called saturated.
SATURATION_SHORTFALL = 0.05
SATURATION_SIGMAS = 2.0


@dataclass(frozen=True)
class Done:
    arrival_ns: int
    done_ns: int
    first_token_ns: int | None
    tokens: int
    batch: int
    hit: bool
    dropped: bool = False


@dataclass(frozen=True)
class Bounds:
    """Seconds; None: not bounded."""

    latency_s: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None


def _percentiles(values: list[float], prefix: str) -> dict[str, float | None]:
    if not values:
        return {f"{prefix}_mean_s": None, f"{prefix}_p50_s": None,
                f"{prefix}_p90_s": None, f"{prefix}_p99_s": None}
    a = np.asarray(values)
    return {f"{prefix}_mean_s": float(a.mean()), f"{prefix}_p50_s": float(np.percentile(a, 50)),
            f"{prefix}_p90_s": float(np.percentile(a, 90)),
            f"{prefix}_p99_s": float(np.percentile(a, 99))}


class Ledger:
    def __init__(self) -> None:
        self.arrivals: list[int] = []
        self.done: list[Done] = []
        self.errors: list[str] = []

    def arrived(self, requests: list[Request]) -> None:
        self.arrivals.extend(r.arrival_ns for r in requests)

    def completed(self, requests: list[Request], done_ns: int, *, batch: int,
                  first_token_ns: int | None = None, tokens: int = 1,
                  hit: bool = False) -> None:
        for r in requests:
            self.done.append(Done(r.arrival_ns, done_ns, first_token_ns, tokens, batch, hit))

    def dropped(self, requests: list[Request], done_ns: int) -> None:
        """Backlog left unserved when arrivals ended (saturated runs only)."""
        for r in requests:
            self.done.append(Done(r.arrival_ns, done_ns, None, 0, 0, False, dropped=True))

    def tpot_s(self, d: Done) -> float | None:
        if d.first_token_ns is None or d.tokens < 2:
            return None
        return (d.done_ns - d.first_token_ns) / 1e9 / (d.tokens - 1)

    def within(self, d: Done, bounds: Bounds) -> bool:
        if d.dropped:
            return False
        if bounds.latency_s is not None and (d.done_ns - d.arrival_ns) / 1e9 > bounds.latency_s:
            return False
        if bounds.ttft_s is not None and (d.first_token_ns is None or
                                          (d.first_token_ns - d.arrival_ns) / 1e9 > bounds.ttft_s):
            return False
        tpot = self.tpot_s(d)
        return bounds.tpot_s is None or (tpot is not None and tpot <= bounds.tpot_s)

    def summary(self, open_ns: int, close_ns: int, bounds: Bounds = Bounds(),
                in_flight: int = 1) -> dict[str, Any]:
        """The window's figures (see the module docstring)."""
        window_s = (close_ns - open_ns) / 1e9
        if window_s <= 0:
            raise ValueError("empty measurement window")
        arrived = sum(1 for t in self.arrivals if open_ns <= t < close_ns)
        served = [d for d in self.done if not d.dropped]
        in_window = [d for d in served if open_ns <= d.done_ns < close_ns]
        cohort = [d for d in served if open_ns <= d.arrival_ns < close_ns]
        backlog_open = self._backlog(open_ns)
        backlog_close = self._backlog(close_ns)
        shortfall = arrived - len(in_window)
        allowed = max(SATURATION_SHORTFALL * arrived,
                      in_flight + SATURATION_SIGMAS * arrived ** 0.5)
        saturated = shortfall > allowed and backlog_close > backlog_open
        out: dict[str, Any] = {
            "window_s": window_s,
            "arrived": arrived,
            "completed": len(in_window),
            "achieved_rate_per_s": len(in_window) / window_s,
            "arrival_rate_per_s": arrived / window_s,
            "tokens": sum(d.tokens for d in in_window),
            "backlog_at_open": backlog_open,
            "backlog_at_close": backlog_close,
            "saturated": saturated,
            "dropped": sum(1 for d in self.done if d.dropped),
            "mean_batch": (float(np.mean([d.batch for d in in_window if not d.hit]))
                           if any(not d.hit for d in in_window) else None),
            "cache_hit_rate": (sum(d.hit for d in in_window) / len(in_window)
                               if in_window else None),
            "goodput_per_s": sum(1 for d in in_window if self.within(d, bounds)) / window_s,
            "errors": len(self.errors),
        }
        out.update(_percentiles([(d.done_ns - d.arrival_ns) / 1e9 for d in cohort], "latency"))
        ttft = [(d.first_token_ns - d.arrival_ns) / 1e9 for d in cohort
                if d.first_token_ns is not None]
        if ttft:
            out.update(_percentiles(ttft, "ttft"))
            out.update(_percentiles([t for d in cohort if (t := self.tpot_s(d)) is not None],
                                    "tpot"))
        return out

    def _backlog(self, t_ns: int) -> int:
        """Requests arrived by `t_ns` and not completed by then."""
        arrived = sum(1 for a in self.arrivals if a < t_ns)
        finished = sum(1 for d in self.done if d.done_ns < t_ns)
        return max(0, arrived - finished)
