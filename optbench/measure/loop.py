"""The one measured loop, shared by every backend.

warm-up (until throughput is steady) -> accuracy pass -> latency pass (per-iteration,
synchronized) -> idle baseline -> metered trials (fixed minimum windows over steady work,
repeated until the 95% CI of energy per sample is tight enough or the preset's maximum).

Backends only load / prepare / infer / synchronize; all timing lives here. Time is the
monotonic clock in nanoseconds, injected for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optbench.measure.contention import CpuContention
from optbench.measure.presets import Preset
from optbench.results.schema import Trial
from optbench.results.stats import summarize

Clock = Callable[[], int]


@contextmanager
def phase(phases: dict[str, float], key: str, label: str,
          on_phase: Callable[[str], None] = lambda _: None,
          clock: Clock = time.monotonic_ns) -> Iterator[None]:
    """Announce a phase (`on_phase(label)`) and record its seconds under `phases[key]`.

    The one timer of the run's phases, in the loop and in the worker around it; the
    duration is recorded even when the phase ends early (a skip or an error)."""
    t = clock()
    on_phase(label)
    try:
        yield
    finally:
        phases[key] = (clock() - t) / 1e9


@dataclass
class LoopOutput:
    """Raw results of one loop: nothing here is aggregated except the eval outputs."""

    outputs: np.ndarray
    latencies_s: list[float]
    device_latencies_s: list[float]
    trials: list[Trial]
    warmup: dict[str, Any]
    window_s: float
    phases_s: dict[str, float] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)  # text runs: TTFT, TPOT, ...
    serving: dict[str, Any] = field(default_factory=dict)  # scenario runs: points, search


def make_batches(x: np.ndarray, batch_size: int) -> tuple[list[np.ndarray], int]:
    """Split into full batches; the last is padded by wrapping around. Returns (batches, n)."""
    n = len(x)
    if n == 0:
        raise ValueError("no evaluation inputs")
    count = -(-n // batch_size)
    idx = np.arange(count * batch_size) % n
    return [x[idx[i * batch_size : (i + 1) * batch_size]] for i in range(count)], n


class MeasuredLoop:
    """Drives one loaded backend through the protocol under the given meters."""

    def __init__(
        self,
        backend: Any,
        batch_size: int,
        meters: Sequence[Any],
        protocol: Preset,
        clock: Clock = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
        on_phase: Callable[[str], None] = lambda phase: None,
        contention: CpuContention | None = None,
    ) -> None:
        self.backend = backend
        self.batch_size = batch_size
        self.meters = list(meters)
        self.protocol = protocol
        self.clock = clock
        self.sleep = sleep
        self.on_phase = on_phase
        self.contention = contention or CpuContention()
        self._cursor = 0

    def window_s(self) -> float:
        """Preset minimum, stretched to `window_periods` x the slowest meter update period."""
        periods = [p for m in self.meters if (p := m.update_period_s()) is not None]
        stretched = [self.protocol.window_periods * p for p in periods]
        return max([self.protocol.window_min_s, *stretched])

    def run(self, eval_inputs: np.ndarray, served: Any = None) -> LoopOutput:
        """All phases; with `served` (serve mode) the parent schedules the energy trials."""
        out, prepared = self.closed_loop(eval_inputs)
        out.trials, out.window_s = self.trials_phase(prepared, served, out.phases_s)
        return out

    def closed_loop(self, eval_inputs: np.ndarray) -> tuple[LoopOutput, list[Any]]:
        """Warm-up, accuracy and latency passes (no trials yet), and the prepared batches."""
        phases: dict[str, float] = {}
        batches, n_eval = make_batches(eval_inputs, self.batch_size)
        prepared = [self.backend.prepare(b) for b in batches]

        with self.phase(phases, "warmup_s", "warm-up"):
            warmup = self.warm_up(prepared)
        with self.phase(phases, "accuracy_s", "accuracy pass"):
            outputs = np.concatenate([self.backend.to_numpy(self.backend.infer(p))
                                      for p in prepared])[:n_eval]
        with self.phase(phases, "latency_s", "latency pass"):
            latencies, device_latencies = self.latency_pass(prepared)
        return LoopOutput(outputs, latencies, device_latencies, [], warmup, 0.0,
                          phases), prepared

    def phase(self, phases: dict[str, float], key: str, label: str) -> Any:
        """Announce a phase and record its duration in seconds under `key`."""
        return phase(phases, key, label, self.on_phase, self.clock)

    def trials_phase(self, prepared: list[Any], served: Any,
                     phases: dict[str, float]) -> tuple[list[Trial], float]:
        """The metered trials (by the preset, or on the parent's requests when served)."""
        with self.phase(phases, "trials_s", "energy trials"):
            window_s = self.window_s()
            trials = (self.energy_trials(prepared, window_s) if served is None
                      else self.served_trials(prepared, window_s, served))
        return trials, window_s

    def _next(self, prepared: list[Any]) -> Any:
        item = prepared[self._cursor % len(prepared)]
        self._cursor += 1
        return item

    def warm_up(self, prepared: list[Any]) -> dict[str, Any]:
        """Run blocks of work until the last three blocks' throughput agree within tolerance.

        The record says whether that happened and by how much (`spread`: (max - min) /
        mean of the last three blocks' rates, None with fewer than three), against which
        `tolerance`, and the cap that ended it otherwise (results/validity.py reads it)."""
        p = self.protocol
        block_ns = int(p.warmup_block_s * 1e9)
        start = self.clock()
        rates: list[float] = []
        iterations = 0
        steady = False
        spread: float | None = None
        while True:
            t0 = self.clock()
            n = 0
            while n == 0 or self.clock() - t0 < block_ns:
                self.backend.infer(self._next(prepared))
                n += 1
            self.backend.synchronize()
            elapsed = self.clock() - t0
            iterations += n
            rates.append(n * self.batch_size / max(elapsed, 1) * 1e9)
            total_s = (self.clock() - start) / 1e9
            if len(rates) >= 3:
                last = rates[-3:]
                spread = (max(last) - min(last)) / (sum(last) / 3)
                if total_s >= p.warmup_min_s and spread <= p.steady_tolerance:
                    steady = True
                    break
            if total_s >= p.warmup_max_s:
                break
        return {"iterations": iterations, "seconds": (self.clock() - start) / 1e9,
                "steady": steady, "last_rates_per_s": rates[-3:], "blocks": len(rates),
                "spread": spread, "tolerance": p.steady_tolerance,
                "min_s": p.warmup_min_s, "max_s": p.warmup_max_s}

    def latency_pass(self, prepared: list[Any]) -> tuple[list[float], list[float]]:
        """Per-iteration latency of one batch, the device synchronized inside each timing.

        Returns host latencies (what a caller waits) and, where the runtime can time
        itself on the device (CUDA events), device latencies; else an empty list.
        """
        p = self.protocol
        latencies: list[float] = []
        device: list[float] = []
        start = self.clock()
        while len(latencies) < p.latency_max_iters:
            item = self._next(prepared)
            t0 = self.clock()
            _, device_s = self.backend.infer_timed(item)
            self.backend.synchronize()
            t1 = self.clock()
            latencies.append((t1 - t0) / 1e9)
            if device_s is not None:
                device.append(device_s)
            elapsed = (t1 - start) / 1e9
            if len(latencies) >= p.latency_min_iters and elapsed >= p.latency_min_s:
                break
            if elapsed >= p.latency_max_s and len(latencies) >= 3:
                break
        return latencies, device

    def _open_window(self) -> dict[str, Any]:
        """Device idle, telemetry recorded, contention and meters started: a window opens."""
        self.backend.synchronize()
        telemetry: dict[str, Any] = {
            m.name: {"start": m.telemetry()} for m in self.meters if m.telemetry()}
        # CLOCK_MONOTONIC is system-wide: windows of different runs can be ordered by it
        telemetry["t_start_monotonic_ns"] = time.monotonic_ns()
        self.contention.start()
        for meter in self.meters:
            meter.start()
        return telemetry

    def _close_window(self, index: int, phase: str, t0: int, samples: int,
                      telemetry: dict[str, Any]) -> Trial:
        elapsed = (self.clock() - t0) / 1e9
        readings = tuple(r for meter in self.meters for r in meter.stop())
        foreign = self.contention.stop()
        for meter in self.meters:
            end = meter.telemetry()
            if end:
                telemetry.setdefault(meter.name, {})["end"] = end
        if foreign is not None:
            telemetry["foreign_cpu_cores"] = round(foreign, 4)
            telemetry["foreign_cpu_threshold_cores"] = round(self.contention.threshold_cores(), 4)
        flags = ("contended",) if self.contention.contended(foreign) else ()
        return Trial(index, phase, elapsed, samples, readings, flags, telemetry)

    def idle_baseline(self, index: int) -> Trial:
        """Meters over a window with the model loaded and no work."""
        telemetry = self._open_window()
        t0 = self.clock()
        self.sleep(self.protocol.idle_s)
        return self._close_window(index, "idle", t0, 0, telemetry)

    def load_trial(self, index: int, prepared: list[Any], window_s: float) -> Trial:
        """Steady work for at least `window_s`; counts only samples completed inside it.

        The seconds spent inside the backend's calls (infer and the final synchronize) are
        recorded as `telemetry["in_call_s"]`: the rest of the window is the harness's."""
        window_ns = int(window_s * 1e9)
        telemetry = self._open_window()
        t0 = self.clock()
        batches = 0
        in_call = 0
        while True:
            item = self._next(prepared)
            c0 = self.clock()
            self.backend.infer(item)
            c1 = self.clock()
            in_call += c1 - c0
            batches += 1
            if c1 - t0 >= window_ns:
                break
        c0 = self.clock()
        self.backend.synchronize()
        in_call += self.clock() - c0
        telemetry["in_call_s"] = in_call / 1e9
        return self._close_window(index, "load", t0, batches * self.batch_size, telemetry)

    def energy_trials(self, prepared: list[Any], window_s: float) -> list[Trial]:
        p = self.protocol
        trials = [self.idle_baseline(0)]
        loads: list[Trial] = []
        while len(loads) < p.trials_max:
            loads.append(self.load_trial(len(loads) + 1, prepared, window_s))
            if len(loads) >= p.trials_min and converged(loads, p.ci_target):
                break
        if p.idle_after:
            loads.append(self.idle_baseline(len(loads) + 1))
        return trials + loads


    def served_trials(self, prepared: list[Any], window_s: float, served: Any) -> list[Trial]:
        """Idle baseline, then one load trial per request from the parent (interleaving).

        Each trial follows a short re-warm: while other configurations ran, this one sat
        idle and its caches and clocks cooled down.
        """
        trials = [self.idle_baseline(0)]
        served.ready()
        for index in served.requests():
            self.rewarm(prepared)
            trial = self.load_trial(index, prepared, window_s)
            served.send(trial)
            trials.append(trial)
        if self.protocol.idle_after:
            trials.append(self.idle_baseline(len(trials)))
        return trials

    def rewarm(self, prepared: list[Any]) -> None:
        deadline = self.clock() + int(self.protocol.rewarm_s * 1e9)
        while self.clock() < deadline:
            self.backend.infer(self._next(prepared))
        self.backend.synchronize()


def converged(loads: Sequence[Trial], target: float) -> bool:
    """Stop rule: 95% CI half-width of energy per sample (else of throughput) <= target.

    Excluded trials (ambiguous wrap, counter reset) do not count towards the rule.
    """
    usable = [t for t in loads if not t.excluded and t.samples > 0]
    totals = [t.total_energy_j() for t in usable]
    if len(usable) < 2:
        return False
    if all(e is not None for e in totals):
        values = [e / t.samples for e, t in zip(totals, usable)]  # type: ignore[operator]
    else:
        values = [t.samples / t.window_s for t in usable]
    summary = summarize(values)
    return summary.ci_relative is not None and summary.ci_relative <= target
