"""Synthetic power traces with exact integrals, and a meter that reads them.

Used by tests (and by the fake hardware in later modules) so that every energy path can
be checked against a known truth: E(t0, t1) is computed in closed form.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from optbench.errors import Availability
from optbench.meters.base import Meter, MeterContext
from optbench.results.schema import EnergyReading


class PowerTrace(ABC):
    """Power in watts as a function of time in seconds, with its exact integral."""

    @abstractmethod
    def power_w(self, t_s: float) -> float: ...

    @abstractmethod
    def energy_j(self, t0_s: float, t1_s: float) -> float: ...


@dataclass(frozen=True)
class Constant(PowerTrace):
    watts: float

    def power_w(self, t_s: float) -> float:
        return self.watts

    def energy_j(self, t0_s: float, t1_s: float) -> float:
        return self.watts * (t1_s - t0_s)


@dataclass(frozen=True)
class Step(PowerTrace):
    before_w: float
    after_w: float
    at_s: float

    def power_w(self, t_s: float) -> float:
        return self.before_w if t_s < self.at_s else self.after_w

    def energy_j(self, t0_s: float, t1_s: float) -> float:
        split = min(max(self.at_s, t0_s), t1_s)
        return self.before_w * (split - t0_s) + self.after_w * (t1_s - split)


@dataclass(frozen=True)
class Ramp(PowerTrace):
    start_w: float
    slope_w_per_s: float

    def power_w(self, t_s: float) -> float:
        return self.start_w + self.slope_w_per_s * t_s

    def energy_j(self, t0_s: float, t1_s: float) -> float:
        return self.start_w * (t1_s - t0_s) + self.slope_w_per_s * (t1_s**2 - t0_s**2) / 2


@dataclass(frozen=True)
class Square(PowerTrace):
    """Alternates high_w for the first half of each period and low_w for the second."""

    low_w: float
    high_w: float
    period_s: float

    def power_w(self, t_s: float) -> float:
        return self.high_w if (t_s % self.period_s) < self.period_s / 2 else self.low_w

    def _cumulative(self, t_s: float) -> float:
        half = self.period_s / 2
        full, rest = divmod(t_s, self.period_s)
        return full * half * (self.high_w + self.low_w) + (
            self.high_w * rest if rest < half else self.high_w * half + self.low_w * (rest - half))

    def energy_j(self, t0_s: float, t1_s: float) -> float:
        return self._cumulative(t1_s) - self._cumulative(t0_s)


@dataclass(frozen=True)
class Sine(PowerTrace):
    """mean_w + amplitude_w * sin(2 pi t / period_s): smooth, seeded by its phase."""

    mean_w: float
    amplitude_w: float
    period_s: float
    phase: float = 0.0

    def power_w(self, t_s: float) -> float:
        return self.mean_w + self.amplitude_w * math.sin(2 * math.pi * t_s / self.period_s
                                                         + self.phase)

    def energy_j(self, t0_s: float, t1_s: float) -> float:
        k = 2 * math.pi / self.period_s
        anti = lambda t: self.mean_w * t - self.amplitude_w * math.cos(k * t + self.phase) / k  # noqa: E731
        return anti(t1_s) - anti(t0_s)


class Recorded(PowerTrace):
    """Piecewise-linear replay of recorded (t_s, watts) samples; held flat outside them."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        import bisect
        import itertools

        self._bisect = bisect
        self.t = [p[0] for p in points]
        self.w = [p[1] for p in points]
        segments = (
            (t1 - t0) * (w0 + w1) / 2
            for (t0, w0), (t1, w1) in zip(points, points[1:])
        )
        self._cumulative = [0.0, *itertools.accumulate(segments)]

    def power_w(self, t_s: float) -> float:
        if t_s <= self.t[0]:
            return self.w[0]
        if t_s >= self.t[-1]:
            return self.w[-1]
        i = self._bisect.bisect_right(self.t, t_s) - 1
        frac = (t_s - self.t[i]) / (self.t[i + 1] - self.t[i])
        return self.w[i] + (self.w[i + 1] - self.w[i]) * frac

    def _integral(self, t_s: float) -> float:
        if t_s <= self.t[0]:
            return self.w[0] * (t_s - self.t[0])
        if t_s >= self.t[-1]:
            return self._cumulative[-1] + self.w[-1] * (t_s - self.t[-1])
        i = self._bisect.bisect_right(self.t, t_s) - 1
        return self._cumulative[i] + (t_s - self.t[i]) * (self.w[i] + self.power_w(t_s)) / 2

    def energy_j(self, t0_s: float, t1_s: float) -> float:
        return self._integral(t1_s) - self._integral(t0_s)


class TraceMeter(Meter):
    """Reads a PowerTrace over the context clock: exact energy, labelled as its `method`."""

    name = "trace"

    def __init__(self, ctx: MeterContext, trace: PowerTrace, channel: str = "fake:trace",
                 method: str = "measured-counter", period_s: float | None = None) -> None:
        super().__init__(ctx)
        self.trace = trace
        self.channel = channel
        self.method = method
        self.period_s = period_s
        self._t0: int | None = None

    @classmethod
    def availability(cls, ctx: MeterContext) -> Availability:
        return Availability.yes()

    def start(self) -> None:
        self._t0 = self.ctx.clock()

    def stop(self) -> list[EnergyReading]:
        assert self._t0 is not None
        t1 = self.ctx.clock()
        energy = self.trace.energy_j(self._t0 / 1e9, t1 / 1e9)
        return [EnergyReading(self.channel, energy, (t1 - self._t0) / 1e9, self.method,
                              "fake:trace", reads=2)]

    def update_period_s(self) -> float | None:
        return self.period_s

    def describe(self) -> dict[str, Any]:
        return {"meter": self.name, "trace": repr(self.trace)}
