"""A stand-in for the `pynvml` module, driven by a PowerTrace and an injected clock.

It behaves as measured on A100/H100 (docs/gpu-validation.md): the energy counter updates
every 100 ms; the instantaneous power reading is the mean over only part of each update
period; the driver keeps a buffer of power samples every 20 ms stamped with wall-clock
microseconds; nvmlDeviceGetPowerUsage is a 1 s average. Errors are the real pynvml
exception classes (a contract test checks every function here against nvidia-ml-py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from optbench.testing.traces import PowerTrace

try:
    import pynvml as _real
except ImportError:  # the fake still works; its errors are then local stand-ins
    _real = None


NVMLError = _real.NVMLError if _real is not None else type("NVMLError", (Exception,), {})
ERROR_CODES = {"NVMLError_NotSupported": 3, "NVMLError_NoPermission": 4,
               "NVMLError_NotFound": 6, "NVMLError_LibraryNotFound": 12,
               "NVMLError_GpuIsLost": 15}
_LOCAL = {code: type(name, (NVMLError,), {}) for name, code in ERROR_CODES.items()}


def _error_class(name: str) -> Any:
    return getattr(_real, name) if _real is not None else _LOCAL[ERROR_CODES[name]]


def nvml_error(code: int) -> Exception:
    """The exception the real library raises for `code` (its own class when installed)."""
    return _real.NVMLError(code) if _real is not None else _LOCAL[code]()


@dataclass
class FakeGpu:
    trace: PowerTrace
    uuid: str = "GPU-00000000-fake-0000-0000-000000000000"
    name: str = "Fake H100"
    counter_period_s: float = 0.1
    coverage: float = 0.25
    sample_period_s: float = 0.02
    supports: set[str] = field(default_factory=lambda: {"counter", "samples", "field", "usage"})
    lost_after_s: float | None = None
    reset_at_s: float | None = None
    processes: list[int] = field(default_factory=list)
    mig: bool = False
    power_limit_w: float = 700.0


class FakeNvml:
    NVML_TOTAL_POWER_SAMPLES = 0
    NVML_FI_DEV_POWER_INSTANT = 186
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0
    NVMLError = NVMLError
    NVMLError_LibraryNotFound = _error_class("NVMLError_LibraryNotFound")
    NVMLError_NotSupported = _error_class("NVMLError_NotSupported")
    NVMLError_GpuIsLost = _error_class("NVMLError_GpuIsLost")
    NVMLError_NotFound = _error_class("NVMLError_NotFound")
    NVMLError_NoPermission = _error_class("NVMLError_NoPermission")

    def __init__(self, gpus: list[FakeGpu], clock: Any, wall_offset_ns: int = 1_700_000_000 * 10**9,
                 library_missing: bool = False) -> None:
        self.gpus = gpus
        self.clock = clock
        self.wall_offset_ns = wall_offset_ns
        self.library_missing = library_missing
        self.t0 = clock()
        self.calls: dict[str, int] = {}

    # time helpers
    def wall_clock(self) -> int:
        return self.clock() + self.wall_offset_ns

    def _t(self) -> float:
        return (self.clock() - self.t0) / 1e9

    def _wall_us(self, t_s: float) -> int:
        return (self.t0 + int(t_s * 1e9) + self.wall_offset_ns) // 1000

    def _gpu(self, handle: Any) -> FakeGpu:
        gpu = self.gpus[handle.index]
        if gpu.lost_after_s is not None and self._t() >= gpu.lost_after_s:
            raise nvml_error(ERROR_CODES["NVMLError_GpuIsLost"])
        return gpu

    def _need(self, gpu: FakeGpu, what: str) -> None:
        if what not in gpu.supports:
            raise nvml_error(ERROR_CODES["NVMLError_NotSupported"])

    def _mean(self, gpu: FakeGpu, t0: float, t1: float) -> float:
        t0 = max(t0, 0.0)
        return gpu.trace.energy_j(t0, t1) / (t1 - t0) if t1 > t0 else gpu.trace.power_w(t1)

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    # the pynvml surface
    def nvmlInit(self) -> None:
        self._count("nvmlInit")
        if self.library_missing:
            raise nvml_error(ERROR_CODES["NVMLError_LibraryNotFound"])

    def nvmlShutdown(self) -> None:
        self._count("nvmlShutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return SimpleNamespace(index=index)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self.gpus[handle.index].uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self.gpus[handle.index].name

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.00.00-fake"

    def nvmlDeviceGetMigMode(self, device: Any) -> tuple[int, int]:
        mode = int(self.gpus[device.index].mig)
        return mode, mode

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        self._count("energy")
        gpu = self._gpu(handle)
        self._need(gpu, "counter")
        t = self._t()
        updated = math.floor(t / gpu.counter_period_s) * gpu.counter_period_s
        energy_j = gpu.trace.energy_j(0.0, updated)
        if gpu.reset_at_s is not None and t >= gpu.reset_at_s:
            energy_j -= gpu.trace.energy_j(0.0, gpu.reset_at_s)
        return int(energy_j * 1000)

    def nvmlDeviceGetSamples(self, device: Any, sampling_type: int, timeStamp: int) -> Any:
        gpu = self._gpu(device)
        self._need(gpu, "samples")
        t, p = self._t(), gpu.sample_period_s
        newest = math.floor(t / p)
        samples = []
        for k in range(max(1, newest - 118), newest + 1):
            ts = self._wall_us(k * p)
            if ts > timeStamp:
                value = self._mean(gpu, (k - 1) * p, k * p)
                samples.append(SimpleNamespace(timeStamp=ts, sampleValue=SimpleNamespace(
                    uiVal=int(round(value * 1000)))))
        if not samples and timeStamp:
            raise nvml_error(ERROR_CODES["NVMLError_NotFound"])
        return 1, samples

    def nvmlDeviceGetFieldValues(self, handle: Any, fieldIds: list[int]) -> list[Any]:
        gpu = self._gpu(handle)
        out = []
        for field_id in fieldIds:
            ok = field_id == self.NVML_FI_DEV_POWER_INSTANT and "field" in gpu.supports
            t, period = self._t(), gpu.counter_period_s
            updated = math.floor(t / period) * period
            value = self._mean(gpu, updated - gpu.coverage * period, updated)
            out.append(SimpleNamespace(fieldId=field_id, timestamp=self._wall_us(t),
                                       nvmlReturn=0 if ok else 3,
                                       value=SimpleNamespace(uiVal=int(round(value * 1000)))))
        return out

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        gpu = self._gpu(handle)
        self._need(gpu, "usage")
        t = self._t()
        return int(round(self._mean(gpu, t - 1.0, t) * 1000))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return int(self.gpus[handle.index].power_limit_w * 1000)

    def nvmlDeviceGetClockInfo(self, handle: Any, type: int) -> int:
        return 1980 if type == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        return 41

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return 0

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=1 << 30)
                for pid in self.gpus[handle.index].processes]

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: Any = None) -> Any:
        return SimpleNamespace(total=80 * 2**30, used=0, free=80 * 2**30)
