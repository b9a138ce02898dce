"""A powercap (RAPL) tree of real files whose counters follow power traces, for the RAPL
meter's tests: wraparound, unreadable ranges, updates from another process."""

from __future__ import annotations

from typing import Any

from optbench.testing.traces import PowerTrace


def multiprocessing_child() -> bool:
    import multiprocessing

    return multiprocessing.parent_process() is not None


def raise_priority() -> None:
    """Real-time scheduling where allowed (root), else the highest nice level, else none:
    like the hardware, the simulated counters should not wait for a busy CPU."""
    import os

    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        return
    except (AttributeError, OSError):
        pass
    try:
        os.nice(-20)
    except OSError:
        pass


class FakePowercap:
    """A powercap tree of real files whose counters advance by PowerTraces, modulo a range.

    `zones` maps a zone id ("intel-rapl:0", "intel-rapl:0:1", "intel-rapl-mmio:0") to its
    name file content and power trace. `write()` sets every energy_uj to the exact
    integral since construction, wrapped at `max_range_uj`; `run()` does it in a thread
    every `period_s`, like the hardware's own update. Files are replaced atomically.
    """

    def __init__(self, root: Any, zones: dict[str, tuple[str, PowerTrace]],
                 max_range_uj: int = 262_143_328_850, clock: Any = None,
                 unreadable_range: tuple[str, ...] = ()) -> None:
        import time
        from pathlib import Path

        self.root = Path(root)
        self.zones = zones
        self.max_range_uj = max_range_uj
        self.clock = clock or time.monotonic_ns
        self.t0 = self.clock()
        self._thread: Any = None
        self._stop: Any = None
        for zone_id, (name, _) in zones.items():
            path = self.root / zone_id
            path.mkdir(parents=True, exist_ok=True)
            (path / "name").write_text(name + "\n")
            if zone_id not in unreadable_range:
                (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        (self.root / "intel-rapl").mkdir(exist_ok=True)  # the control-type dir sysfs has
        self.write()

    def elapsed_s(self, now_ns: int | None = None) -> float:
        return ((self.clock() if now_ns is None else now_ns) - self.t0) / 1e9

    def truth_j(self, zone_id: str, t0_ns: int, t1_ns: int) -> float:
        """Exact energy of a zone between two clock readings."""
        trace = self.zones[zone_id][1]
        return trace.energy_j(self.elapsed_s(t0_ns), self.elapsed_s(t1_ns))

    def write(self, now_ns: int | None = None) -> None:
        import os

        t = self.elapsed_s(now_ns)
        for zone_id, (_, trace) in self.zones.items():
            raw = round(trace.energy_j(0.0, t) * 1e6) % self.max_range_uj
            path = self.root / zone_id / "energy_uj"
            tmp = path.with_name(f".energy_uj.{os.getpid()}")
            tmp.write_text(f"{raw}\n")
            tmp.replace(path)

    def run(self, period_s: float = 0.001, process: bool = False) -> FakePowercap:
        """Update the files every `period_s` in a thread, or in a separate process so the
        updates do not wait on this process's GIL (the hardware never would)."""
        if process:
            import multiprocessing

            context = multiprocessing.get_context("fork")
            self._stop = context.Event()
            self._thread = context.Process(target=self._loop, args=(period_s,), daemon=True)
        else:
            import threading

            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._loop, args=(period_s,),
                                            name="fake-powercap", daemon=True)
        self._thread.start()
        return self

    def _loop(self, period_s: float) -> None:
        if multiprocessing_child():
            raise_priority()
        while not self._stop.wait(period_s):
            self.write()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
