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
10% apart flags `counter_polled_mismatch` and records both. Each source is a class in
meters/nvml_sources.py; this module chooses the device and the source, and flags windows.

The device is the one the run uses: the first of CUDA_VISIBLE_DEVICES (index or UUID),
mapped to NVML by UUID. Under MIG the channel is the whole board, flagged
`mig_not_attributable`. Other processes on the GPU flag the window `contended`. A lost
GPU or a counter that goes backwards makes the window `invalid` (energy None).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from optbench.errors import Availability
from optbench.meters.base import RESOLUTION_PERIODS, Meter, MeterContext
from optbench.meters.nvml_sources import (
    COUNTER_BACKWARDS,
    POLL_S,
    CounterReset,
    EnergyCounter,
    InstantField,
    NvmlDevice,
    PolledSource,
    PowerUsage,
    SampleBuffer,
)
from optbench.meters.polled import PolledEnergy
from optbench.meters.ticker import Ticker
from optbench.results.schema import EnergyReading

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


class NvmlMeter(Meter):
    """The GPU the run uses, measured by the strongest NVML source that passes its self-test.

    The meter owns the device choice, MIG, contention and validity flags, telemetry and
    the background poll; the sources (meters/nvml_sources.py) own reading and integrating.
    `counter` is the energy counter when it works; `polled` is the polled source in use,
    or with the counter the sample buffer kept as a cross-check (None without one).
    """

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
        self.counter: EnergyCounter | None = None
        self.polled: PolledSource | None = None
        self._ticker = Ticker(self.poll, lambda: POLL_S, name="optbench-nvml-poll")
        self._lost: str | None = None
        self._t0 = 0
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
        self._choose_source(NvmlDevice(nvml, self.handle, self.ctx.clock, self.wall_clock,
                                       self.sleep))
        if self.background:
            self._ticker.start()

    def _choose_source(self, device: NvmlDevice) -> None:
        """The counter if it works; the sample buffer is tried either way (cross-check)."""
        reasons: list[str] = []
        counter = EnergyCounter(device, self.self_test_s)
        self.counter = counter if self._passes(counter, reasons) else None
        buffer = SampleBuffer(device)
        has_buffer = self._passes(buffer, reasons)
        if has_buffer:
            self.polled = buffer
        elif self.counter is None:
            fallbacks = (InstantField(device), PowerUsage(device))
            self.polled = next((s for s in fallbacks if self._passes(s, reasons)), None)
        chosen = self.counter or self.polled
        if chosen is None:
            raise RuntimeError("no NVML energy or power source works: " + "; ".join(reasons))
        self.source, self.period_s = chosen.key, chosen.period_s
        self.notes += [f"not used: {r}" for r in reasons]

    def _passes(self, source: EnergyCounter | PolledSource, reasons: list[str]) -> bool:
        try:
            source.self_test()
            return True
        # NVMLError: the driver lacks the source; RuntimeError: the counter misbehaved
        except (self.nvml.NVMLError, RuntimeError) as exc:
            reasons.append(f"{source.label}: {exc}")
            return False

    # ------------------------------------------------------------------ polling
    def poll(self) -> None:
        """Collect power samples (the background tick; tests call it directly)."""
        nvml = self.nvml
        try:
            if self.counter is not None and self.counter.poll():
                self._lost = COUNTER_BACKWARDS
            if self.polled is not None:
                self.polled.poll()
        except nvml.NVMLError as exc:
            if isinstance(exc, getattr(nvml, "NVMLError_GpuIsLost", ())):
                self._lost = f"GPU lost: {exc}"
            elif not isinstance(exc, getattr(nvml, "NVMLError_NotFound", ())):
                raise

    # ------------------------------------------------------------------ windows
    def start(self) -> None:
        self._ticker.check()
        self._lost = None
        self._foreign_at_start = self._foreign_processes()
        if self.counter is not None:
            self._t0 = self.counter.start()
        else:
            self.poll()
            self._t0 = self.ctx.clock()

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
        counter_j = None
        try:
            if self.counter is not None:
                counter_j = self.counter.window(t1, details)
            else:
                self.poll()
        except (self.nvml.NVMLError, CounterReset) as exc:
            return [self._invalid(window_s, f"{exc}", details)]
        if self._lost:
            return [self._invalid(window_s, self._lost, details)]
        polled = None
        if self.polled is not None:
            # with the counter, the buffer is judged gappy against the counter's period
            polled = self.polled.window(self._t0, t1, self.period_s)
            details.update(polled_j=polled.energy_j, polled_samples=polled.samples,
                           polled_max_gap_s=polled.max_gap_s)
        if self.period_s and window_s < RESOLUTION_PERIODS * self.period_s:
            flags.append("below_resolution")
        if counter_j is not None:
            return [self._counter_reading(counter_j, polled, window_s, flags, details)]
        assert polled is not None
        return [self._polled_reading(polled, window_s, flags, details)]

    def _counter_reading(self, counter_j: float, polled: PolledEnergy | None, window_s: float,
                         flags: list[str], details: dict[str, Any]) -> EnergyReading:
        assert self.counter is not None
        if polled is not None and polled.energy_j:
            ratio = counter_j / polled.energy_j
            details["counter_vs_polled"] = round(ratio, 4)
            if abs(ratio - 1) > MISMATCH:
                flags.append("counter_polled_mismatch")
        # start aligned, end interpolated: the residual is a fraction of one period
        uncertainty = (self.period_s or 0.1) * counter_j / max(window_s, 1e-9) / 4
        return EnergyReading(self.channel, counter_j, window_s, "measured-counter",
                             self.counter.api, reads=3, flags=tuple(dict.fromkeys(flags)),
                             uncertainty_j=uncertainty, details=details)

    def _polled_reading(self, polled: PolledEnergy, window_s: float, flags: list[str],
                        details: dict[str, Any]) -> EnergyReading:
        assert self.polled is not None
        api = self.polled.api
        flags += [*polled.flags, *self.polled.flags]
        if polled.energy_j is None:
            return EnergyReading(self.channel, None, window_s, "unavailable", api,
                                 flags=tuple(flags), reason="no power samples in the window",
                                 details=details)
        uncertainty = (self.period_s or POLL_S) * polled.energy_j / max(window_s, 1e-9)
        return EnergyReading(self.channel, polled.energy_j, window_s, "measured-polled", api,
                             reads=polled.samples, flags=tuple(dict.fromkeys(flags)),
                             uncertainty_j=uncertainty, details=details)

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
