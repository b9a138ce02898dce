"""NVML checks of docs/measurement (section D), to run on a GPU machine.

1. counter update period (and the instant-power field's);
2. counter vs polled energy (driver sample buffer; instant field at 20 Hz; 1 s average
   power usage) under constant load and under a 50 ms square wave (25 ms on / 25 ms off);
3. idle power before and after, and its drift;
4. trial-to-trial CoV of energy per iteration over N windows of S seconds of steady load.
Raw traces are saved as JSON (replay fixtures) under --out.

Usage: python benchmarks/nvml_validation.py [--trials 5 --trial-s 60] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import pynvml as N
import torch

from optbench.meters.base import MeterContext
from optbench.meters.nvml import NvmlMeter
from optbench.meters.polled import integrate


def busy(a: torch.Tensor, seconds: float) -> int:
    iters, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(4):
            a @ a
        torch.cuda.synchronize()
        iters += 4
    return iters


def square(a: torch.Tensor, seconds: float, period_s: float = 0.05) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        on_until = time.monotonic() + period_s / 2
        while time.monotonic() < on_until:
            a @ a
            torch.cuda.synchronize()
        time.sleep(period_s / 2)


class Poller:
    """Field instant power and power usage at 20 Hz, with their own timestamps."""

    def __init__(self, handle) -> None:
        self.h = handle
        self.field: list[tuple[int, float]] = []
        self.usage: list[tuple[int, float]] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop_event.wait(0.05):
            (v,) = N.nvmlDeviceGetFieldValues(self.h, [N.NVML_FI_DEV_POWER_INSTANT])
            offset = time.time_ns() - time.monotonic_ns()
            if v.nvmlReturn == 0:
                self.field.append((v.timestamp * 1000 - offset, v.value.uiVal / 1000))
            self.usage.append((time.monotonic_ns(), N.nvmlDeviceGetPowerUsage(self.h) / 1000))


def window(meter: NvmlMeter, poller: Poller, work, seconds: float) -> dict:
    meter.start()
    work(seconds)
    torch.cuda.synchronize()
    (r,) = meter.stop()
    t0, t1 = meter._t0, meter._t0 + int(r.window_s * 1e9)
    field = integrate(sorted(poller.field), t0, t1, 0.1).energy_j
    usage = integrate(sorted(poller.usage), t0, t1, 0.05).energy_j
    return {"window_s": r.window_s, "counter_j": r.energy_j, "buffer_j": r.details.get("polled_j"),
            "field_j": field, "usage_j": usage, "flags": list(r.flags),
            "buffer_vs_counter": (r.details.get("polled_j") or 0) / r.energy_j,
            "field_vs_counter": field / r.energy_j, "usage_vs_counter": usage / r.energy_j,
            "details": r.details}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--trial-s", type=float, default=60.0)
    p.add_argument("--compare-s", type=float, default=10.0)
    p.add_argument("--out", default="nvml-validation")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {}
    meter = NvmlMeter(MeterContext(device="cuda"))
    meter.open()
    report["device"] = meter.describe()
    report["driver"] = N.nvmlSystemGetDriverVersion()
    poller = Poller(meter.handle)
    poller.thread.start()
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    idle = lambda s: time.sleep(s)  # noqa: E731
    report["idle_before"] = window(meter, poller, idle, args.compare_s)
    busy(a, 3)
    report["constant"] = window(meter, poller, lambda s: busy(a, s), args.compare_s)
    report["square_50ms"] = window(meter, poller, lambda s: square(a, s), args.compare_s)
    trials = []
    for _ in range(args.trials):
        meter.start()
        iters = busy(a, args.trial_s)
        (r,) = meter.stop()
        trials.append({"window_s": r.window_s, "energy_j": r.energy_j, "iterations": iters,
                       "j_per_iteration": r.energy_j / iters, "flags": list(r.flags),
                       "telemetry": meter.telemetry()})
    per = [t["j_per_iteration"] for t in trials]
    report["trials"] = trials
    report["trial_cov"] = statistics.stdev(per) / statistics.mean(per) if len(per) > 1 else None
    report["idle_after"] = window(meter, poller, idle, args.compare_s)
    before = report["idle_before"]["counter_j"] / report["idle_before"]["window_s"]
    after = report["idle_after"]["counter_j"] / report["idle_after"]["window_s"]
    report["idle_w"] = {"before": before, "after": after, "drift": after / before - 1}
    poller.stop_event.set()
    with meter._lock:
        buffer = list(meter._samples)
    meter.close()
    (out / "nvml-validation.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "nvml-traces.json").write_text(json.dumps(
        {"buffer_mono_ns_w": buffer, "field_mono_ns_w": poller.field,
         "usage_mono_ns_w": poller.usage}, default=str))
    summary = {k: v for k, v in report.items() if k not in ("trials",)}
    for key in ("idle_before", "constant", "square_50ms", "idle_after"):
        summary[key] = {k: v for k, v in report[key].items() if k != "details"}
    print(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
