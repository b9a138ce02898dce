"""The Meter contract: start() and stop() bracket a window; stop returns EnergyReadings.

Meters read hardware through narrow seams (a clock, a sysfs root, an nvml module) so tests
drive them with fakes. A meter that cannot measure says so through `availability()`;
it never returns 0 for energy it did not measure.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from optbench.errors import Availability
from optbench.results.schema import EnergyReading

Clock = Callable[[], int]  # monotonic nanoseconds
# A window must span at least this many update periods of a meter: its two edges each
# lose up to a period, so the edge error is at most 2 x period / window (20% at 10x).
# Shorter windows are flagged `below_resolution` (docs/measurement.md, "Validity checks").
RESOLUTION_PERIODS = 10


@dataclass(frozen=True)
class MeterContext:
    """What meters may know about the run: device, user-given CPU power, a clock."""

    device: str = "cpu"
    cpu_tdp_w: float | None = None
    clock: Clock = field(default=time.monotonic_ns)


class Meter(ABC):
    """An energy source covering one role ("cpu" or "gpu").

    Class attributes:
        role: the part of the machine the meter covers; `auto` picks one meter per role.
        rank: lower is stronger (a counter ranks before polling, polling before an estimate).
        estimated: True for sources that model energy rather than measure it.
    """

    name: ClassVar[str] = "base"
    role: ClassVar[str] = "cpu"
    rank: ClassVar[int] = 100
    estimated: ClassVar[bool] = False

    def __init__(self, ctx: MeterContext) -> None:
        self.ctx = ctx
        self.passed_over: list[str] = []

    @classmethod
    @abstractmethod
    def availability(cls, ctx: MeterContext) -> Availability:
        """Whether this source can be read here; the reason says what to do if not."""

    def open(self) -> None:
        """Acquire handles and run the self-test; called once before the first window."""

    @abstractmethod
    def start(self) -> None:
        """Mark the start of a window."""

    @abstractmethod
    def stop(self) -> list[EnergyReading]:
        """End the window; one reading per channel."""

    def close(self) -> None:
        """Release handles and background threads."""

    def telemetry(self) -> dict[str, Any]:
        """Device state at a window edge (clocks, temperature, limits); empty if none."""
        return {}

    def update_period_s(self) -> float | None:
        """Observed counter update period (windows under RESOLUTION_PERIODS x of it are
        below resolution)."""
        return None

    def describe(self) -> dict[str, Any]:
        """What the run stores about the meter (`details.meters[]`); with its update period
        and the number of them a window must span (`min_window_periods`)."""
        info: dict[str, Any] = {"meter": self.name, "role": self.role,
                                "update_period_s": self.update_period_s(),
                                "min_window_periods": RESOLUTION_PERIODS}
        if self.passed_over:
            info["instead_of"] = self.passed_over
        return info
