"""NVIDIA GPU energy through NVML (package nvidia-ml-py, module pynvml).

Sources, strongest first; the first that passes the self-test is used, and says so:
1. `nvmlDeviceGetTotalEnergyConsumption` (mJ counter, Volta and newer): measured-counter.
   The window start is aligned on a counter update; the end is interpolated between the
   two updates that bracket it, so neither edge loses up to a whole update period.
2. `nvmlDeviceGetSamples(NVML_TOTAL_POWER_SAMPLES)`: the driver's own timestamped buffer.
3. `nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)` polled at 20 Hz.
4. `nvmlDeviceGetPowerUsage` polled at 20 Hz, flagged `averaged_1s` (a 1 s average on
   recent GPUs).
2-4 are measured-polled, integrated with interpolated edges (meters/polled.py). With the
counter, the sample buffer (when present) is integrated too as a cross-check: more than
10% apart flags `counter_polled_mismatch` and records both.

The device is the one the run uses: the first of CUDA_VISIBLE_DEVICES (index or UUID),
mapped to NVML by UUID. Under MIG the channel is the whole board, flagged
`mig_not_attributable`. Other processes on the GPU flag the window `contended`. A lost
GPU or a counter that goes backwards makes the window `invalid` (energy None).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optbench.errors import Availability
from optbench.meters.base import Meter, MeterContext
from optbench.meters.polled import integrate
from optbench.meters.ticker import Ticker
from optbench.results.schema import EnergyReading

POLL_S = 0.05
MISMATCH = 0.10
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal", 0x40: "hw_thermal", 0x80: "hw_power_brake",
    0x100: "display_clocks",
}


def load_nvml() -> Any:
    import pynvml

    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def visible_device(nvml: Any, env: Mapping[str, str]) -> tuple[Any, str, str]:
    """(handle, uuid, how it was chosen) of the GPU the run's cuda:0 is."""
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    count = nvml.nvmlDeviceGetCount()
    if cvd is None:
        if count == 0:
            raise LookupError("no-device: NVML sees no GPU")
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
        return handle, _text(nvml.nvmlDeviceGetUUID(handle)), "NVML index 0"
    first = cvd.split(",")[0].strip()
    if not first or first.startswith("-"):
        raise LookupError(f"no-device: CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU")
    for i in range(count):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        if first.isdigit() and i == int(first):
            # CUDA orders devices fastest-first unless CUDA_DEVICE_ORDER=PCI_BUS_ID; NVML
            # always uses PCI order. The runner sets PCI_BUS_ID so both agree.
            return handle, uuid, f"CUDA_VISIBLE_DEVICES index {first} (PCI bus order)"
        if first.startswith("GPU-") and uuid.startswith(first):
            return handle, uuid, f"CUDA_VISIBLE_DEVICES uuid {first}"
        if first.startswith("MIG-") and _mig_enabled(nvml, handle):
            return handle, uuid, f"MIG instance {first} on board {uuid}"
    raise LookupError(f"no-device: CUDA_VISIBLE_DEVICES={cvd!r} names no GPU NVML sees")


def _mig_enabled(nvml: Any, handle: Any) -> bool:
    try:
        return bool(nvml.nvmlDeviceGetMigMode(handle)[0])
    except nvml.NVMLError:
        return False


POLLED_APIS = {"samples": "pynvml:nvmlDeviceGetSamples(NVML_TOTAL_POWER_SAMPLES)",
               "field": "pynvml:nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)",
               "usage": "pynvml:nvmlDeviceGetPowerUsage"}


class CounterReset(Exception):
    """The energy counter decreased inside a window."""


@dataclass
class CounterRead:
    t_ns: int
    mj: int


class NvmlMeter(Meter):
    name = "nvml"
    role = "gpu"
    rank = 10

    def __init__(self, ctx: MeterContext, nvml: Any = None,
                 env: Mapping[str, str] | None = None, background: bool = True,
                 self_test_s: float = 0.5, wall_clock: Any = time.time_ns,
                 sleep: Any = time.sleep) -> None:
        super().__init__(ctx)
        self.nvml = nvml or load_nvml()
        self.env = os.environ if env is None else env
        self.background = background
        self.self_test_s = self_test_s
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.source = ""
        self.period_s: float | None = None
        self.notes: list[str] = []
        self.flags: tuple[str, ...] = ()
        self._samples: deque[tuple[int, float]] = deque(maxlen=100_000)
        self._last_sample_us = 0
        self._lock = threading.Lock()
        self._ticker = Ticker(self.poll, lambda: POLL_S, name="optbench-nvml-poll")
        self._lost: str | None = None
        self._last_poll_mj: int | None = None
        self._start: CounterRead | None = None
        self._t0 = 0
        self._before: CounterRead | None = None
        self._foreign_at_start: set[int] = set()

    # ------------------------------------------------------------------ availability
    @classmethod
    def availability(cls, ctx: MeterContext, nvml: Any = None,
                     env: Mapping[str, str] | None = None) -> Availability:
        try:
            nvml = nvml or load_nvml()
        except ImportError:
            return Availability.no("not-supported: nvidia-ml-py is not installed "
                                   "(pip install 'optbench[nvml]')")
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            if isinstance(exc, getattr(nvml, "NVMLError_LibraryNotFound", ())):
                return Availability.no("no-device: the NVIDIA driver library (libnvidia-ml) "
                                       "is not found: no NVIDIA GPU or driver here")
            if isinstance(exc, getattr(nvml, "NVMLError_NoPermission", ())):
                return Availability.no(f"permission: NVML refused access ({exc})")
            return Availability.no(f"not-supported: NVML failed to initialise ({exc})")
        try:
            visible_device(nvml, os.environ if env is None else env)
        except LookupError as exc:
            return Availability.no(str(exc))
        finally:
            nvml.nvmlShutdown()
        return Availability.yes()

    # ------------------------------------------------------------------ set-up
    def open(self) -> None:
        nvml = self.nvml
        nvml.nvmlInit()
        self.handle, self.uuid, self.chosen = visible_device(nvml, self.env)
        self.channel = f"gpu:{self.uuid}"
        if _mig_enabled(nvml, self.handle):
            self.flags = ("mig_not_attributable",)
            self.notes.append("MIG is enabled: the energy is the whole board's, not "
                              "attributable to one instance")
        self._choose_source()
        if self.background:
            self._ticker.start()

    def _choose_source(self) -> None:
        nvml = self.nvml
        reasons = []
        try:
            self.period_s = self._counter_self_test()
            self.source = "counter"
        except nvml.NVMLError as exc:
            reasons.append(f"energy counter: {exc}")
        except RuntimeError as exc:
            reasons.append(f"energy counter: {exc}")
        self.has_buffer = self._try(lambda: nvml.nvmlDeviceGetSamples(
            self.handle, nvml.NVML_TOTAL_POWER_SAMPLES, 0), reasons, "sample buffer")
        if not self.source and self.has_buffer:
            self.source, self.period_s = "samples", 0.02
        if not self.source and self._try(lambda: self._field_power(), reasons, "instant field"):
            self.source, self.period_s = "field", POLL_S
        if not self.source and self._try(lambda: nvml.nvmlDeviceGetPowerUsage(self.handle),
                                         reasons, "power usage"):
            self.source, self.period_s = "usage", 1.0
        if not self.source:
            raise RuntimeError("no NVML energy or power source works: " + "; ".join(reasons))
        self.notes += [f"not used: {r}" for r in reasons]

    def _try(self, call: Any, reasons: list[str], what: str) -> bool:
        try:
            call()
            return True
        except self.nvml.NVMLError as exc:
            reasons.append(f"{what}: {exc}")
            return False

    def _counter_self_test(self) -> float | None:
        """Readable, monotone, advancing; returns the observed update period."""
        first = self._read_counter()
        changes, last = [], first
        deadline = self.ctx.clock() + int(self.self_test_s * 1e9)
        for _ in range(100_000):
            if self.ctx.clock() >= deadline:
                break
            read = self._read_counter()
            if read.mj < last.mj:
                raise RuntimeError("counter went backwards during the self-test")
            if read.mj != last.mj:
                changes.append(read.t_ns)
            last = read
            self.sleep(0.001)
        if not changes:
            raise RuntimeError(f"counter did not advance in {self.self_test_s:g} s")
        gaps = sorted(b - a for a, b in zip(changes, changes[1:]))
        return gaps[len(gaps) // 2] / 1e9 if gaps else None

    def _read_counter(self) -> CounterRead:
        mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        return CounterRead(self.ctx.clock(), int(mj))

    def _field_power(self) -> tuple[int, float]:
        (value,) = self.nvml.nvmlDeviceGetFieldValues(self.handle,
                                                      [self.nvml.NVML_FI_DEV_POWER_INSTANT])
        if value.nvmlReturn != 0:
            raise self.nvml.NVMLError(value.nvmlReturn)
        return int(value.timestamp), value.value.uiVal / 1000.0

    # ------------------------------------------------------------------ polling
    def _to_mono(self, wall_us: int) -> int:
        """Driver timestamps are wall-clock microseconds: map them onto the monotonic clock."""
        offset = self.wall_clock() - self.ctx.clock()
        return wall_us * 1000 - offset

    def poll(self) -> None:
        """Collect power samples (the background tick; tests call it directly)."""
        nvml = self.nvml
        try:
            if self.source == "counter":
                # a reset between the window's edges can leave the end above the start:
                # watching the counter on every poll catches any decrease
                read = self._read_counter()
                if self._last_poll_mj is not None and read.mj < self._last_poll_mj:
                    self._lost = "counter went backwards (driver reset?)"
                self._last_poll_mj = read.mj
            if self.source in ("samples", "counter") and self.has_buffer:
                _, samples = nvml.nvmlDeviceGetSamples(self.handle, nvml.NVML_TOTAL_POWER_SAMPLES,
                                                       self._last_sample_us)
                with self._lock:
                    for s in samples:
                        if s.timeStamp > self._last_sample_us:
                            self._samples.append((self._to_mono(s.timeStamp),
                                                  s.sampleValue.uiVal / 1000.0))
                            self._last_sample_us = s.timeStamp
            elif self.source == "field":
                wall_us, watts = self._field_power()
                with self._lock:
                    self._samples.append((self._to_mono(wall_us), watts))
            elif self.source == "usage":
                watts = nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
                with self._lock:
                    self._samples.append((self.ctx.clock(), watts))
        except nvml.NVMLError as exc:
            if isinstance(exc, getattr(nvml, "NVMLError_GpuIsLost", ())):
                self._lost = f"GPU lost: {exc}"
            elif not isinstance(exc, getattr(nvml, "NVMLError_NotFound", ())):
                raise

    # ------------------------------------------------------------------ windows
    def start(self) -> None:
        self._ticker.check()
        self._lost = None
        self._last_poll_mj = None
        self._foreign_at_start = self._foreign_processes()
        if self.source == "counter":
            self._start = self._aligned_start()
            self._t0 = self._start.t_ns
        else:
            self.poll()
            self._t0 = self.ctx.clock()

    def _aligned_start(self) -> CounterRead:
        """Wait (at most two update periods) for the counter to tick, so the start is exact."""
        first = self._read_counter()
        limit = first.t_ns + int(2 * (self.period_s or 0.1) * 1e9)
        read = first
        while read.mj == first.mj and read.t_ns < limit:
            self.sleep(0.0002)
            read = self._read_counter()
        self._before = first
        return read

    def _interpolated_end(self, t1: int) -> tuple[float, dict[str, Any]]:
        """Counter energy (mJ) at t1, interpolated between the updates that bracket it."""
        at_t1 = self._read_counter()
        limit = at_t1.t_ns + int(2 * (self.period_s or 0.1) * 1e9)
        after = at_t1
        while after.mj == at_t1.mj and after.t_ns < limit:
            self.sleep(0.0002)
            after = self._read_counter()
        if after.mj == at_t1.mj:
            return float(at_t1.mj), {"end": "no update within two periods; read at stop"}
        # the value read at t1 was produced by the update before it, at most one period ago
        prev_t = max(self._t0, after.t_ns - int((self.period_s or 0.1) * 1e9))
        frac = (t1 - prev_t) / max(after.t_ns - prev_t, 1)
        frac = min(max(frac, 0.0), 1.0)
        mj = at_t1.mj + (after.mj - at_t1.mj) * frac
        return mj, {"end": "interpolated", "end_fraction": round(frac, 4),
                    "tail_mj": round(mj - at_t1.mj, 3)}

    def stop(self) -> list[EnergyReading]:
        self._ticker.check()
        t1 = self.ctx.clock()
        window_s = (t1 - self._t0) / 1e9
        flags = list(self.flags)
        details: dict[str, Any] = {"source": self.source, "device": self.chosen,
                                   "update_period_s": self.period_s}
        foreign = self._foreign_at_start | self._foreign_processes()
        if foreign:
            flags.append("contended")
            details["foreign_pids"] = sorted(foreign)
        try:
            counter_j = self._counter_energy(t1, details) if self.source == "counter" else None
            if self.source != "counter":
                self.poll()
        except (self.nvml.NVMLError, CounterReset) as exc:
            return [self._invalid(window_s, f"{exc}", details)]
        if self._lost:
            return [self._invalid(window_s, self._lost, details)]
        polled = None
        if self.source != "counter" or self.has_buffer:
            with self._lock:
                samples = sorted(self._samples)
            polled = integrate(samples, self._t0, t1, self.period_s)
            details.update(polled_j=polled.energy_j, polled_samples=polled.samples,
                           polled_max_gap_s=polled.max_gap_s)
        if self.period_s and window_s < 10 * self.period_s:
            flags.append("below_resolution")
        if counter_j is not None:
            if polled is not None and polled.energy_j:
                ratio = counter_j / polled.energy_j
                details["counter_vs_polled"] = round(ratio, 4)
                if abs(ratio - 1) > MISMATCH:
                    flags.append("counter_polled_mismatch")
            # start aligned, end interpolated: the residual is a fraction of one period
            uncertainty = (self.period_s or 0.1) * counter_j / max(window_s, 1e-9) / 4
            return [EnergyReading(self.channel, counter_j, window_s, "measured-counter",
                                  "pynvml:nvmlDeviceGetTotalEnergyConsumption", reads=3,
                                  flags=tuple(dict.fromkeys(flags)), uncertainty_j=uncertainty,
                                  details=details)]
        assert polled is not None
        api = POLLED_APIS[self.source]
        flags += polled.flags
        if self.source == "usage":
            flags.append("averaged_1s")
        if polled.energy_j is None:
            return [EnergyReading(self.channel, None, window_s, "unavailable", api,
                                  flags=tuple(flags), reason="no power samples in the window",
                                  details=details)]
        uncertainty = (self.period_s or POLL_S) * polled.energy_j / max(window_s, 1e-9)
        return [EnergyReading(self.channel, polled.energy_j, window_s, "measured-polled", api,
                              reads=polled.samples, flags=tuple(dict.fromkeys(flags)),
                              uncertainty_j=uncertainty, details=details)]

    def _counter_energy(self, t1: int, details: dict[str, Any]) -> float:
        assert self._start is not None
        end_mj, extra = self._interpolated_end(t1)
        details.update(extra)
        if end_mj < self._start.mj:
            raise CounterReset("counter went backwards (driver reset?)")
        return (end_mj - self._start.mj) / 1000.0

    def _invalid(self, window_s: float, reason: str, details: dict[str, Any]) -> EnergyReading:
        return EnergyReading(self.channel, None, window_s, "unavailable",
                             "pynvml", flags=("invalid",), reason=reason, details=details)

    def _foreign_processes(self) -> set[int]:
        """Compute processes on this GPU that are not this process or its children."""
        try:
            procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except self.nvml.NVMLError:
            return set()
        pids = {p.pid for p in procs}
        own = own_process_tree()
        if pids & own or not pids:
            return pids - own
        # In a container NVML may report host PIDs: our own context is then unrecognisable,
        # so only more than one process counts as contention.
        return pids if len(pids) > 1 else set()

    def telemetry(self) -> dict[str, Any]:
        nvml, h = self.nvml, self.handle
        out: dict[str, Any] = {}
        calls = {
            "sm_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
            "mem_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM),
            "temperature_c": lambda: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
            "power_limit_w": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,
            "clock_event_reasons": lambda: decode_reasons(
                nvml.nvmlDeviceGetCurrentClocksEventReasons(h)),
        }
        for key, call in calls.items():
            try:
                out[key] = call()
            except nvml.NVMLError as exc:
                out[key] = f"unavailable: {exc}"
        return out

    def close(self) -> None:
        self._ticker.stop()
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass

    def update_period_s(self) -> float | None:
        return self.period_s

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "channel": getattr(self, "channel", None),
                "source": self.source, "device": getattr(self, "chosen", None),
                "update_period_s": self.period_s, "notes": self.notes,
                "method": "measured-counter" if self.source == "counter" else "measured-polled"}


def decode_reasons(mask: int) -> list[str]:
    return [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit] or ["none"]


def own_process_tree(pid: int | None = None) -> set[int]:
    """This process and its descendants, from /proc (empty children where /proc is absent)."""
    root = pid or os.getpid()
    tree, frontier = {root}, [root]
    while frontier:
        current = frontier.pop()
        try:
            with open(f"/proc/{current}/task/{current}/children") as handle:
                children = [int(c) for c in handle.read().split()]
        except OSError:
            children = []
        for child in children:
            if child not in tree:
                tree.add(child)
                frontier.append(child)
    return tree
