"""Exclusivity check instead of pretend attribution: was anything else busy in a window?

CPU: busy time of the whole machine (/proc/stat) minus this process's own CPU time. More
than 5% of one core of foreign work flags the window `contended`. (GPU processes are
checked by the NVML meter.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

FOREIGN_CORE_FRACTION = 0.05


def machine_busy_s(stat: Path = Path("/proc/stat")) -> float | None:
    """Busy CPU seconds of the whole machine since boot (None where /proc/stat is absent)."""
    try:
        fields = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if fields[0] != "cpu":
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuContention:
    """start()/stop() around a window; stop() returns the foreign core-seconds per second."""

    def __init__(self, machine: Callable[[], float | None] = machine_busy_s,
                 own: Callable[[], float] = own_cpu_s,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self._machine, self._own = machine, own
        self._clock = clock or time.monotonic
        self._start: tuple[float, float, float] | None = None

    def start(self) -> None:
        machine = self._machine()
        self._start = None if machine is None else (machine, self._own(), self._clock())

    def stop(self) -> float | None:
        """Foreign busy cores averaged over the window, or None when it cannot be known."""
        if self._start is None:
            return None
        machine = self._machine()
        if machine is None:
            return None
        m0, o0, t0 = self._start
        elapsed = self._clock() - t0
        if elapsed <= 0:
            return None
        foreign = (machine - m0) - (self._own() - o0)
        return max(foreign, 0.0) / elapsed

    @staticmethod
    def contended(foreign_cores: float | None) -> bool:
        return foreign_cores is not None and foreign_cores > FOREIGN_CORE_FRACTION
