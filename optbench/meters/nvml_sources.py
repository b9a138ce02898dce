"""The NVML energy sources, one class each; `NvmlMeter` (meters/nvml.py) picks one.

Every source has `self_test()` (raises when the source cannot be used on this GPU),
`poll()` (the background tick) and `window(...)` (the energy of one window). The counter
also has `start()`, since its window start waits for a counter update. Sources read the
GPU only through an `NvmlDevice`, so tests drive them with a fake NVML and clock.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from optbench.meters.base import Clock
from optbench.meters.polled import PolledEnergy, integrate

POLL_S = 0.05
COUNTER_BACKWARDS = "counter went backwards (driver reset?)"


class CounterReset(Exception):
    """The energy counter decreased inside a window."""


@dataclass(frozen=True)
class NvmlDevice:
    """One GPU as the sources read it: the pynvml module, the handle and the time seams."""

    nvml: Any
    handle: Any
    clock: Clock
    wall_clock: Callable[[], int]
    sleep: Callable[[float], None]

    def to_mono(self, wall_us: int) -> int:
        """Driver timestamps are wall-clock microseconds: map them onto the monotonic clock."""
        offset = self.wall_clock() - self.clock()
        return wall_us * 1000 - offset


@dataclass
class CounterRead:
    t_ns: int
    mj: int


class EnergyCounter:
    """`nvmlDeviceGetTotalEnergyConsumption`, a mJ counter (Volta and newer): measured-counter.

    The window start is aligned on a counter update; the end is interpolated between the
    two updates that bracket it, so neither edge loses up to a whole update period.
    """

    key = "counter"
    label = "energy counter"
    api = "pynvml:nvmlDeviceGetTotalEnergyConsumption"

    def __init__(self, device: NvmlDevice, self_test_s: float) -> None:
        self.device = device
        self.self_test_s = self_test_s
        self.period_s: float | None = None
        self._start: CounterRead | None = None
        self._last_poll_mj: int | None = None

    def read(self) -> CounterRead:
        mj = self.device.nvml.nvmlDeviceGetTotalEnergyConsumption(self.device.handle)
        return CounterRead(self.device.clock(), int(mj))

    def self_test(self) -> None:
        """Readable, monotone, advancing; sets the observed update period."""
        clock = self.device.clock
        first = self.read()
        changes, last = [], first
        deadline = clock() + int(self.self_test_s * 1e9)
        for _ in range(100_000):
            if clock() >= deadline:
                break
            read = self.read()
            if read.mj < last.mj:
                raise RuntimeError("counter went backwards during the self-test")
            if read.mj != last.mj:
                changes.append(read.t_ns)
            last = read
            self.device.sleep(0.001)
        if not changes:
            raise RuntimeError(f"counter did not advance in {self.self_test_s:g} s")
        gaps = sorted(b - a for a, b in zip(changes, changes[1:]))
        self.period_s = gaps[len(gaps) // 2] / 1e9 if gaps else None

    def poll(self) -> bool:
        """Read the counter; True when it is below the previous poll's value.

        A reset between the window's edges can leave the end above the start: watching
        the counter on every poll catches any decrease.
        """
        read = self.read()
        decreased = self._last_poll_mj is not None and read.mj < self._last_poll_mj
        self._last_poll_mj = read.mj
        return decreased

    def start(self) -> int:
        """Begin a window on a counter update, so the start is exact; its monotonic ns."""
        self._last_poll_mj = None
        self._start = self._next_update(self.read())
        return self._start.t_ns

    def window(self, t1: int, details: dict[str, Any]) -> float:
        """Joules from the window start to t1.

        How the end was found goes into `details` first, so that a reading made invalid by
        a CounterReset still shows it.
        """
        assert self._start is not None
        end_mj, end = self._interpolated_end(t1)
        details.update(end)
        if end_mj < self._start.mj:
            raise CounterReset(COUNTER_BACKWARDS)
        return (end_mj - self._start.mj) / 1000.0

    def _nominal_period_s(self) -> float:
        return self.period_s or 0.1

    def _next_update(self, last: CounterRead) -> CounterRead:
        """The first read that differs from `last`; waits at most two update periods."""
        limit = last.t_ns + int(2 * self._nominal_period_s() * 1e9)
        read = last
        while read.mj == last.mj and read.t_ns < limit:
            self.device.sleep(0.0002)
            read = self.read()
        return read

    def _interpolated_end(self, t1: int) -> tuple[float, dict[str, Any]]:
        """Counter energy (mJ) at t1, interpolated between the updates that bracket it."""
        assert self._start is not None
        at_t1 = self.read()
        after = self._next_update(at_t1)
        if after.mj == at_t1.mj:
            return float(at_t1.mj), {"end": "no update within two periods; read at stop"}
        # the value read at t1 was produced by the update before it, at most one period ago
        prev_t = max(self._start.t_ns, after.t_ns - int(self._nominal_period_s() * 1e9))
        frac = (t1 - prev_t) / max(after.t_ns - prev_t, 1)
        frac = min(max(frac, 0.0), 1.0)
        mj = at_t1.mj + (after.mj - at_t1.mj) * frac
        return mj, {"end": "interpolated", "end_fraction": round(frac, 4),
                    "tail_mj": round(mj - at_t1.mj, 3)}


class PolledSource(ABC):
    """A power reading collected as (monotonic ns, watts) samples: measured-polled.

    Each window is integrated with interpolated edges (meters/polled.py). `poll()` runs on
    the meter's background thread, so the samples are guarded by a lock.

    Class attributes:
        period_s: the nominal sample period (the meter's update period with this source).
        flags: flags every reading from this source carries.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    api: ClassVar[str]
    period_s: ClassVar[float]
    flags: ClassVar[tuple[str, ...]] = ()

    def __init__(self, device: NvmlDevice) -> None:
        self.device = device
        self._samples: deque[tuple[int, float]] = deque(maxlen=100_000)
        self._lock = threading.Lock()

    @abstractmethod
    def self_test(self) -> None:
        """One read; raises NVMLError where this GPU or driver lacks the source."""

    @abstractmethod
    def poll(self) -> None:
        """Collect the samples that are new since the last poll."""

    def window(self, t0_ns: int, t1_ns: int, nominal_period_s: float | None) -> PolledEnergy:
        with self._lock:
            samples = sorted(self._samples)
        return integrate(samples, t0_ns, t1_ns, nominal_period_s)

    def _add(self, samples: Iterable[tuple[int, float]]) -> None:
        with self._lock:
            self._samples.extend(samples)


class SampleBuffer(PolledSource):
    """`nvmlDeviceGetSamples(NVML_TOTAL_POWER_SAMPLES)`: the driver's own timestamped buffer.

    With the counter it is kept too, as a cross-check of the counter's energy.
    """

    key = "samples"
    label = "sample buffer"
    api = "pynvml:nvmlDeviceGetSamples(NVML_TOTAL_POWER_SAMPLES)"
    period_s = 0.02

    def __init__(self, device: NvmlDevice) -> None:
        super().__init__(device)
        self._last_us = 0

    def _fetch(self, since_us: int) -> Any:
        nvml = self.device.nvml
        _, samples = nvml.nvmlDeviceGetSamples(self.device.handle,
                                               nvml.NVML_TOTAL_POWER_SAMPLES, since_us)
        return samples

    def self_test(self) -> None:
        self._fetch(0)

    def poll(self) -> None:
        samples = self._fetch(self._last_us)
        with self._lock:
            for s in samples:
                if s.timeStamp > self._last_us:
                    self._samples.append((self.device.to_mono(s.timeStamp),
                                          s.sampleValue.uiVal / 1000.0))
                    self._last_us = s.timeStamp


class InstantField(PolledSource):
    """`nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)`, polled at 20 Hz."""

    key = "field"
    label = "instant field"
    api = "pynvml:nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)"
    period_s = POLL_S

    def _read(self) -> tuple[int, float]:
        """(driver wall-clock microseconds, watts)."""
        nvml = self.device.nvml
        (value,) = nvml.nvmlDeviceGetFieldValues(self.device.handle,
                                                 [nvml.NVML_FI_DEV_POWER_INSTANT])
        if value.nvmlReturn != 0:
            raise nvml.NVMLError(value.nvmlReturn)
        return int(value.timestamp), value.value.uiVal / 1000.0

    def self_test(self) -> None:
        self._read()

    def poll(self) -> None:
        wall_us, watts = self._read()
        self._add([(self.device.to_mono(wall_us), watts)])


class PowerUsage(PolledSource):
    """`nvmlDeviceGetPowerUsage`, polled at 20 Hz; a 1 s average on recent GPUs."""

    key = "usage"
    label = "power usage"
    api = "pynvml:nvmlDeviceGetPowerUsage"
    period_s = 1.0
    flags = ("averaged_1s",)

    def _read_w(self) -> float:
        return self.device.nvml.nvmlDeviceGetPowerUsage(self.device.handle) / 1000.0

    def self_test(self) -> None:
        self._read_w()

    def poll(self) -> None:
        watts = self._read_w()
        # the value carries no timestamp: it is stamped when it arrives
        self._add([(self.device.clock(), watts)])
