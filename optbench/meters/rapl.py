"""CPU package and DRAM energy from the Linux powercap (RAPL) interface.

Zones under the powercap root (default /sys/class/powercap, or $OPTBENCH_POWERCAP_ROOT):
`intel-rapl:<n>` packages, their sub-zones `intel-rapl:<n>:<m>` (core, uncore, dram),
a top-level psys, and `intel-rapl-mmio:<n>`. AMD Zen exposes the same interface.

Domain algebra, so nothing is counted twice:
- CPU = the sum of packages; DRAM is its own channel; psys is reported but never summed;
- core and uncore are parts of their package and are never added to it;
- an MMIO zone and an MSR zone of the same name are one domain (the MSR one is read);
- packages whose deltas are identical over the self-test (mirrored AMD dies) are one domain.

Each counter wraps at `max_energy_range_uj`; one WrappingCounter per zone adds `raw - last`
(plus the range when negative). A background tick reads every counter at a period well
under the fastest possible wrap, so no wrap is missed; a gap between reads longer than that
bound makes the window `ambiguous_wrap`, and its energy is excluded from statistics.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optbench.env import powercap_root
from optbench.errors import Availability
from optbench.meters.base import RESOLUTION_PERIODS, Meter, MeterContext
from optbench.meters.ticker import Ticker
from optbench.results.schema import EnergyReading

Reader = Callable[[Path], str]
ZONE_RE = re.compile(r"^intel-rapl(-mmio)?:(\d+)(?::(\d+))?$")
POWER_FLOOR_W = 50.0  # assumed peak before any reading, for the first tick period
TICK_MAX_S = 1.0
# Power (for the fastest-wrap bound) is estimated over at least this span of reads: over
# short gaps the counter's own update jitter makes delta/gap swing several-fold.
PEAK_SPAN_NS = 500_000_000
PERMISSION_HINT = (
    "permission: energy_uj is readable by root only since Linux 5.10 (CVE-2020-8694); run "
    "as root, or grant read access: sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "(or a udev rule for persistence); in Docker mount the tree read-only: "
    "-v /sys/class/powercap:/sys/class/powercap:ro"
)


def read_text(path: Path) -> str:
    return path.read_text()


@dataclass(frozen=True)
class Zone:
    id: str
    path: Path
    name: str
    max_range_uj: int
    mmio: bool
    package: int
    sub: int | None


MAX_CONSTRAINTS = 8  # powercap numbers a zone's constraints 0, 1, ... (long, short, peak)


def power_limits(zone: Path, reader: Reader = read_text) -> dict[str, Any]:
    """A zone's documented power ceilings, in W: each constraint's limit (`constraint_<i>_
    power_limit_uw`, named by `constraint_<i>_name`: long_term = PL1, usually the TDP;
    short_term = PL2; peak_power = PL4) and its `max_power_uw` where given; whether the
    zone enforces them (`enabled`). Empty where the zone documents none."""
    limits: dict[str, float] = {}
    maxima: dict[str, float] = {}
    for i in range(MAX_CONSTRAINTS):
        base = f"constraint_{i}"
        try:
            limit = int(reader(zone / f"{base}_power_limit_uw").strip())
        except (OSError, ValueError):
            break
        try:
            label = reader(zone / f"{base}_name").strip() or base
        except OSError:
            label = base
        if limit > 0:
            limits[label] = limit / 1e6
        try:
            top = int(reader(zone / f"{base}_max_power_uw").strip())
            if top > 0:
                maxima[label] = top / 1e6
        except (OSError, ValueError):
            pass
    if not limits and not maxima:
        return {}
    try:
        enabled: bool | None = reader(zone / "enabled").strip() != "0"
    except OSError:
        enabled = None
    # an enforced limit bounds the mean power; a disabled one only its constraint's maximum
    ceilings = [*maxima.values(), *(limits.values() if enabled is not False else ())]
    return {"power_limits_w": limits, "max_power_w": maxima, "enabled": enabled,
            "power_limit_w": max(ceilings) if ceilings else None}


@dataclass(frozen=True)
class Channel:
    name: str
    zone: Zone
    in_total: bool = True


@dataclass
class Discovery:
    zones: list[Zone] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def discover(root: Path, reader: Reader = read_text) -> Discovery:
    """Every usable zone under `root`; zones without a readable range are noted and skipped."""
    found = Discovery()
    for entry in sorted(root.iterdir()):
        match = ZONE_RE.match(entry.name)
        if not match:
            continue
        try:
            name = reader(entry / "name").strip()
        except OSError as exc:
            found.notes.append(f"{entry.name}: name unreadable ({exc.strerror})")
            continue
        try:
            max_range = int(reader(entry / "max_energy_range_uj").strip())
        except (OSError, ValueError):
            found.notes.append(f"{entry.name} ({name}): max_energy_range_uj unreadable, so "
                               "wraparound cannot be corrected: counter not used")
            continue
        found.zones.append(Zone(entry.name, entry, name, max_range, bool(match.group(1)),
                                int(match.group(2)),
                                int(match.group(3)) if match.group(3) else None))
    return found


def plan_channels(zones: list[Zone]) -> tuple[list[Channel], list[str]]:
    """Apply the domain algebra: which zones become which channels, and what was left out."""
    notes: list[str] = []
    by_name: dict[tuple[str, int | None], Zone] = {}
    for zone in sorted(zones, key=lambda z: z.mmio):  # MSR zones first
        key = (zone.name, zone.package if zone.sub is not None else None)
        if key in by_name:
            notes.append(f"{zone.id} is the same domain as {by_name[key].id} "
                         f"({zone.name}): read once")
            continue
        by_name[key] = zone
    channels: list[Channel] = []
    for zone in sorted(by_name.values(), key=lambda z: (z.package, z.sub or -1, z.mmio)):
        name = zone.name.lower()
        if name.startswith("package"):
            channels.append(Channel(f"cpu:{name}", zone))
        elif name == "dram":
            channels.append(Channel(f"dram:{zone.package}", zone))
        elif name == "psys":
            channels.append(Channel("psys", zone, in_total=False))
        elif name in ("core", "uncore"):
            notes.append(f"{zone.id} ({zone.name}) is part of its package: not added")
        else:
            notes.append(f"{zone.id} ({zone.name}): unknown domain, not used")
    return channels, notes


class WrappingCounter:
    """Cumulative energy of one zone with wraparound corrected; reads are timestamped."""

    def __init__(self, zone: Zone, reader: Reader, clock: Callable[[], int]) -> None:
        self.zone = zone
        self._reader = reader
        self._clock = clock
        self.total_uj = 0
        self.reads = 0
        self.wraps = 0
        self.peak_w = 0.0
        self.last_raw: int | None = None
        self.last_t: int | None = None
        self.gaps_ns: list[int] = []
        self._history: deque[tuple[int, int]] = deque()

    def read_raw(self) -> int:
        return int(self._reader(self.zone.path / "energy_uj").strip())

    def sample(self) -> None:
        raw, now = self.read_raw(), self._clock()
        self.reads += 1
        if self.last_raw is not None and self.last_t is not None:
            delta = raw - self.last_raw
            if delta < 0:
                delta += self.zone.max_range_uj
                self.wraps += 1
            self.total_uj += delta
            self.gaps_ns.append(now - self.last_t)
        self.last_raw, self.last_t = raw, now
        self._update_peak(now)

    def _update_peak(self, now: int) -> None:
        """Highest power over any span of at least PEAK_SPAN_NS between reads so far."""
        history = self._history
        history.append((now, self.total_uj))
        while len(history) > 1 and now - history[1][0] >= PEAK_SPAN_NS:
            history.popleft()
        t0, e0 = history[0]
        if now - t0 >= PEAK_SPAN_NS:
            self.peak_w = max(self.peak_w, (self.total_uj - e0) / (now - t0) * 1e3)

    def fastest_wrap_s(self) -> float:
        """Shortest time a full wrap could take at twice the highest power seen (or a floor)."""
        bound_w = max(2 * self.peak_w, POWER_FLOOR_W)
        return self.zone.max_range_uj / 1e6 / bound_w


@dataclass
class Snapshot:
    t_ns: int
    totals: list[int]
    reads: list[int]
    wraps: list[int]
    gap_index: list[int]


class RaplMeter(Meter):
    name = "rapl"
    role = "cpu"
    rank = 10

    def __init__(self, ctx: MeterContext, root: Path | None = None,
                 reader: Reader = read_text, background: bool = True,
                 self_test_s: float = 0.1) -> None:
        super().__init__(ctx)
        self.root = root or powercap_root()
        self.reader = reader
        self.background = background
        self.self_test_s = self_test_s
        self.channels: list[Channel] = []
        self.counters: list[WrappingCounter] = []
        self.notes: list[str] = []
        self.update_periods: dict[str, float | None] = {}
        self.limits: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._ticker = Ticker(self.step, self.tick_period_s)
        self._snapshot: Snapshot | None = None

    @classmethod
    def availability(cls, ctx: MeterContext, root: Path | None = None,
                     reader: Reader = read_text) -> Availability:
        root = root or powercap_root()
        if not root.is_dir():
            return Availability.no(
                f"vm-no-rapl: no powercap interface at {root} (usual in VMs and in containers "
                "that do not mount it; in Docker: -v /sys/class/powercap:/sys/class/powercap:ro)")
        found = discover(root, reader)
        channels, _ = plan_channels(found.zones)
        if not any(c.in_total for c in channels):
            detail = "; ".join(found.notes) or "no intel-rapl zones"
            return Availability.no(f"not-supported: no usable package or dram zone ({detail})")
        try:
            for channel in channels:
                int(reader(channel.zone.path / "energy_uj").strip())
        except PermissionError:
            return Availability.no(PERMISSION_HINT)
        except (OSError, ValueError) as exc:
            return Availability.no(f"not-supported: energy_uj unreadable ({exc})")
        return Availability.yes()

    def open(self) -> None:
        found = discover(self.root, self.reader)
        self.channels, notes = plan_channels(found.zones)
        self.notes = found.notes + notes
        self.counters = [WrappingCounter(c.zone, self.reader, self.ctx.clock)
                         for c in self.channels]
        self.limits = {c.name: power_limits(c.zone.path, self.reader) for c in self.channels}
        self.self_test()
        if self.background:
            self._ticker.start()

    def self_test(self) -> None:
        """Readable, monotone (wraps aside), advancing; update period; mirrored packages."""
        for counter in self.counters:
            counter.sample()
        changes: dict[int, list[int]] = {i: [] for i in range(len(self.counters))}
        first = [c.total_uj for c in self.counters]
        deadline = self.ctx.clock() + int(self.self_test_s * 1e9)
        for _ in range(5000):  # bounded: an injected clock may not advance on its own
            if self.ctx.clock() >= deadline:
                break
            for i, counter in enumerate(self.counters):
                before = counter.last_raw
                counter.sample()
                if counter.last_raw != before and counter.last_t is not None:
                    changes[i].append(counter.last_t)
            time.sleep(0.0002)
        deltas = [c.total_uj - f for c, f in zip(self.counters, first)]
        for i, channel in enumerate(self.channels):
            times = changes[i]
            period = None
            if len(times) >= 3:
                gaps = sorted(b - a for a, b in zip(times, times[1:]))
                period = gaps[len(gaps) // 2] / 1e9
            self.update_periods[channel.name] = period
            if deltas[i] <= 0:
                self.notes.append(f"{channel.name}: did not advance during the "
                                  f"{self.self_test_s:g} s self-test")
        self._merge_mirrored(deltas)

    def _merge_mirrored(self, deltas: list[int]) -> None:
        keep: list[int] = []
        for i, channel in enumerate(self.channels):
            twin = next((j for j in keep if channel.name.startswith("cpu:")
                         and self.channels[j].name.startswith("cpu:")
                         and deltas[i] > 0 and deltas[i] == deltas[j]), None)
            if twin is None:
                keep.append(i)
            else:
                self.notes.append(f"{channel.name} mirrors {self.channels[twin].name} "
                                  "(identical deltas in the self-test): counted once")
        self.channels = [self.channels[i] for i in keep]
        self.counters = [self.counters[i] for i in keep]

    def tick_period_s(self) -> float:
        if not self.counters:
            return TICK_MAX_S
        return min(TICK_MAX_S, min(c.fastest_wrap_s() for c in self.counters) / 4)

    def step(self) -> None:
        """Read every counter once (the background tick; tests call it directly)."""
        with self._lock:
            for counter in self.counters:
                counter.sample()

    def _snap(self) -> Snapshot:
        with self._lock:
            before = self.ctx.clock()
            for counter in self.counters:
                counter.sample()
            # the window edge is when the counters were read: the middle of the reads
            edge = (before + self.ctx.clock()) // 2
            return Snapshot(edge, [c.total_uj for c in self.counters],
                            [c.reads for c in self.counters], [c.wraps for c in self.counters],
                            [len(c.gaps_ns) for c in self.counters])

    def start(self) -> None:
        self._ticker.check()
        self._snapshot = self._snap()

    def stop(self) -> list[EnergyReading]:
        self._ticker.check()
        if self._snapshot is None:
            raise RuntimeError("stop() without start()")
        begin, end = self._snapshot, self._snap()
        self._snapshot = None
        window_s = (end.t_ns - begin.t_ns) / 1e9
        readings = []
        for i, (channel, counter) in enumerate(zip(self.channels, self.counters)):
            energy_j = (end.totals[i] - begin.totals[i]) / 1e6
            gaps = counter.gaps_ns[begin.gap_index[i]:]
            max_gap_s = max(gaps) / 1e9 if gaps else 0.0
            flags = []
            period = self.update_periods.get(channel.name)
            if period is not None and window_s < RESOLUTION_PERIODS * period:
                flags.append("below_resolution")
            if max_gap_s > counter.fastest_wrap_s():
                flags.append("ambiguous_wrap")
            power = energy_j / window_s if window_s > 0 else 0.0
            readings.append(EnergyReading(
                channel=channel.name,
                energy_j=energy_j,
                window_s=window_s,
                method="measured-counter",
                api=f"powercap:{channel.zone.id}/energy_uj",
                reads=end.reads[i] - begin.reads[i],
                wraps=end.wraps[i] - begin.wraps[i],
                flags=tuple(flags),
                uncertainty_j=2 * (period or 0.001) * power + 2e-6,
                details={"zone": channel.zone.id, "zone_name": channel.zone.name,
                         "max_read_gap_s": max_gap_s, "update_period_s": period,
                         "max_energy_range_uj": channel.zone.max_range_uj},
                in_total=channel.in_total,
            ))
        return readings

    def close(self) -> None:
        self._ticker.stop()

    def update_period_s(self) -> float | None:
        periods = [p for p in self.update_periods.values() if p is not None]
        return max(periods) if periods else None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "method": "measured-counter", "root": str(self.root),
                "channels": {c.name: {"zone": c.zone.id, "in_total": c.in_total,
                                      "update_period_s": self.update_periods.get(c.name),
                                      **self.limits.get(c.name, {})}
                             for c in self.channels},
                "notes": self.notes, "tick_period_s": self.tick_period_s()}
