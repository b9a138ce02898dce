"""CPU energy estimate for machines without a readable counter (labelled `estimated`).

    E = P_thread x t_cpu,   P_thread = TDP / hardware_threads

where t_cpu is the CPU time this process consumed in the window (all its threads). TDP
comes from `--cpu-tdp-w`, a small table matched on the CPU model name, or a default. It
ignores idle and uncore power and the gap between TDP and actual draw, so the recorded
band is wide: x0.5 .. x1.5 for a known TDP, x0.25 .. x2 for the default.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from optbench.env import cpu_model_name
from optbench.errors import Availability
from optbench.meters.base import Meter, MeterContext
from optbench.results.schema import EnergyReading

DEFAULT_W_PER_THREAD = 4.0
# (pattern on the model name, TDP in W, hardware threads of that part). Vendor figures.
TDP_TABLE: tuple[tuple[str, float, int], ...] = (
    (r"EPYC 9654", 360, 192),
    (r"EPYC 9554", 360, 128),
    (r"EPYC 9454", 290, 96),
    (r"EPYC 7763", 280, 128),
    (r"EPYC 7713", 225, 128),
    (r"EPYC 7543", 225, 64),
    (r"EPYC 7742", 225, 128),
    (r"Platinum 8480", 350, 112),
    (r"Platinum 8380", 270, 80),
    (r"Platinum 8358", 250, 64),
    (r"Gold 6338", 205, 64),
    (r"Core\(TM\) i9-13900K", 125, 32),
    (r"Core\(TM\) i7-12700", 65, 20),
    (r"Ryzen 9 7950X", 170, 32),
    (r"Apple M", 30, 10),
)


@dataclass(frozen=True)
class CpuPower:
    """Power attributed to one busy hardware thread, and where the figure came from."""

    watts_per_thread: float
    tdp_w: float | None
    threads: int
    source: str
    band: tuple[float, float]


def resolve_cpu_power(tdp_w: float | None, model: str, logical_cpus: int) -> CpuPower:
    """User TDP (for the CPUs this machine sees) > table match > default per thread."""
    if tdp_w is not None:
        return CpuPower(tdp_w / logical_cpus, tdp_w, logical_cpus,
                        f"user-supplied TDP {tdp_w:g} W over {logical_cpus} logical CPUs",
                        (0.5, 1.5))
    for pattern, tdp, threads in TDP_TABLE:
        if re.search(pattern, model):
            return CpuPower(tdp / threads, tdp, threads,
                            f"TDP table: {model} = {tdp:g} W / {threads} threads", (0.5, 1.5))
    return CpuPower(DEFAULT_W_PER_THREAD, None, logical_cpus,
                    f"default {DEFAULT_W_PER_THREAD:g} W per busy thread (CPU model "
                    f"'{model}' not in the TDP table; set --cpu-tdp-w)", (0.25, 2.0))


def cpu_time_tick_s() -> float:
    """The resolution of process CPU time: one clock tick (1 / SC_CLK_TCK, 10 ms mostly)."""
    return 1.0 / os.sysconf("SC_CLK_TCK")


def process_cpu_s() -> float:
    """CPU seconds (user + system) of this process, all threads, children reaped so far."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuEstimateMeter(Meter):
    name = "estimate"
    role = "cpu"
    rank = 90
    estimated = True

    def __init__(self, ctx: MeterContext, cpu_seconds: Any = process_cpu_s) -> None:
        super().__init__(ctx)
        self._cpu_seconds = cpu_seconds
        self.power = resolve_cpu_power(ctx.cpu_tdp_w, cpu_model_name(), os.cpu_count() or 1)
        self._start: tuple[int, float] | None = None

    @classmethod
    def availability(cls, ctx: MeterContext) -> Availability:
        return Availability.yes()

    def start(self) -> None:
        self._start = (self.ctx.clock(), self._cpu_seconds())

    def stop(self) -> list[EnergyReading]:
        if self._start is None:
            raise RuntimeError("stop() without start()")
        t0, cpu0 = self._start
        window_s = (self.ctx.clock() - t0) / 1e9
        cpu_s = max(0.0, self._cpu_seconds() - cpu0)
        energy = self.power.watts_per_thread * cpu_s
        low, high = self.power.band
        self._start = None
        return [EnergyReading(
            channel="cpu:estimate",
            energy_j=energy,
            window_s=window_s,
            method="estimated",
            api="estimate:tdp-per-thread x process-cpu-time",
            reads=2,
            uncertainty_j=energy * max(1 - low, high - 1),
            reason=self.power.source,
            details={
                "formula": "E = TDP_W / threads x process_cpu_s",
                "watts_per_thread": self.power.watts_per_thread,
                "tdp_w": self.power.tdp_w,
                "threads": self.power.threads,
                "process_cpu_s": cpu_s,
                "cpu_utilisation": cpu_s / window_s / (os.cpu_count() or 1) if window_s else None,
                "band_j": [energy * low, energy * high],
                "boundary": "this process's CPU time only; idle, uncore and DRAM power excluded",
            },
        )]

    def describe(self) -> dict[str, Any]:
        # process CPU time advances in clock ticks (os.times, /proc): the estimate's period
        return {**super().describe(), "method": "estimated", "source": self.power.source,
                "watts_per_thread": self.power.watts_per_thread, "channel": "cpu:estimate",
                "update_period_s": cpu_time_tick_s(),
                "update_period_source": "process CPU time counts in clock ticks"}
