"""Exclusivity check instead of pretend attribution: was anything else busy in a window?

CPU: busy time of the whole machine (/proc/stat) minus this process's own CPU time and
that of the optbench runner that started it. More than 5% of one core of foreign work
flags the window `contended`, unless that is within the resolution of /proc/stat (one
clock tick per CPU at each edge), which on many cores and short windows it can be.
(GPU processes are checked by the NVML meter.)
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


def process_cpu_s(pid: int) -> float:
    """user + system CPU seconds of another process, from /proc/<pid>/stat (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """This process (all threads, reaped children) plus the optbench runner above it."""
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    if os.environ.get("OPTBENCH_STATUS_FD"):  # started by optbench's runner
        own += process_cpu_s(os.getppid())
    return own


def resolution_cores(elapsed_s: float) -> float:
    """Foreign cores /proc/stat cannot tell from zero: a tick per CPU at each edge."""
    return 2 * (os.cpu_count() or 1) / os.sysconf("SC_CLK_TCK") / elapsed_s


class CpuContention:
    """start()/stop() around a window; stop() returns the foreign core-seconds per second."""

    def __init__(self, machine: Callable[[], float | None] = machine_busy_s,
                 own: Callable[[], float] = own_cpu_s,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self._machine, self._own = machine, own
        self._clock = clock or time.monotonic
        self._start: tuple[float, float, float] | None = None
        self.last_elapsed_s = 1.0

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
        self.last_elapsed_s = elapsed
        return max(foreign, 0.0) / elapsed

    def threshold_cores(self) -> float:
        """Foreign cores above which the last window counts as contended: 5% of a core,
        or /proc/stat's resolution over that window where it is coarser."""
        return max(FOREIGN_CORE_FRACTION, resolution_cores(self.last_elapsed_s))

    def contended(self, foreign_cores: float | None) -> bool:
        if foreign_cores is None:
            return False
        return foreign_cores > self.threshold_cores()
