"""The shapes of stored results: energy readings, trials, and one run's record.

Units are SI and in the field names (`_s`, `_j`, `_w`). An energy figure that was not
measured is None with a reason, never 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# How an energy figure was obtained, strongest first. A total inherits its weakest part.
METHODS = ("measured-counter", "measured-polled", "estimated", "unavailable")
# Flags that make a trial's energy unusable: it is kept in the store but not in statistics.
EXCLUDING_FLAGS = frozenset({"ambiguous_wrap", "counter_reset", "invalid"})


def weakest_method(methods: list[str]) -> str:
    """The weakest provenance label among `methods` ("unavailable" when empty)."""
    if not methods:
        return "unavailable"
    return max(methods, key=METHODS.index)


@dataclass(frozen=True)
class EnergyReading:
    """Energy of one channel over one window, with how it was obtained.

    Attributes:
        channel: meter domain, e.g. "gpu:<uuid>", "cpu:package-0", "dram:0", "cpu:estimate".
        energy_j: energy over the window; None when not measured (see `reason`).
        window_s: the window's duration on the monotonic clock.
        method: one of METHODS.
        api: the exact source, e.g. "powercap:intel-rapl:0/energy_uj".
        reads: how many raw reads the figure integrates.
        wraps: counter wraparounds corrected inside the window.
        flags: caveats such as "below_resolution", "gappy", "contended", "ambiguous_wrap".
        uncertainty_j: absolute uncertainty of this figure, when known.
        reason: why the figure is None (unavailable) or how it was estimated.
        details: method-specific inputs (an estimate's formula and inputs, sample counts).
        in_total: False for channels that overlap others (psys contains the packages), so
            totals follow the domain algebra and never double count.
    """

    channel: str
    energy_j: float | None
    window_s: float
    method: str
    api: str
    reads: int = 0
    wraps: int = 0
    flags: tuple[str, ...] = ()
    uncertainty_j: float | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    in_total: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown energy method {self.method!r}")
        if self.energy_j is None and self.method != "unavailable":
            raise ValueError("an energy figure without a value must be method 'unavailable'")
        if self.energy_j is not None and self.energy_j < 0:
            raise ValueError(f"negative energy {self.energy_j} J on {self.channel}")

    @property
    def power_w(self) -> float | None:
        if self.energy_j is None or self.window_s <= 0:
            return None
        return self.energy_j / self.window_s

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["flags"] = list(self.flags)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnergyReading:
        return cls(**{**data, "flags": tuple(data.get("flags", ()))})


@dataclass(frozen=True)
class Trial:
    """One metered window: steady work ("load") or the loaded-but-idle baseline ("idle").

    `telemetry` holds device state at the window's edges (clocks, temperature, power limit,
    throttle reasons); `flags` the trial's caveats ("contended", "invalid"). `samples` are
    the work units completed in the window (images, or output tokens); `requests` the
    text-generation requests completed in it (None for other workloads).
    """

    index: int
    phase: str
    window_s: float
    samples: int
    readings: tuple[EnergyReading, ...]
    flags: tuple[str, ...] = ()
    telemetry: dict[str, Any] = field(default_factory=dict)
    requests: int | None = None

    @property
    def excluded(self) -> bool:
        """True when a flag makes this trial's energy unusable (ambiguous wrap, reset...)."""
        flags = set(self.flags).union(*(r.flags for r in self.readings if r.in_total))
        return bool(flags & EXCLUDING_FLAGS)

    def total_energy_j(self) -> float | None:
        """Sum over the channels that make up the total; None if any of them is unmeasured."""
        values = [r.energy_j for r in self.readings if r.in_total]
        if not values or any(v is None for v in values):
            return None
        return float(sum(values))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "phase": self.phase,
            "window_s": self.window_s,
            "samples": self.samples,
            "readings": [r.to_dict() for r in self.readings],
            "flags": list(self.flags),
            "telemetry": self.telemetry,
            "requests": self.requests,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        return cls(
            index=data["index"],
            phase=data["phase"],
            window_s=data["window_s"],
            samples=data["samples"],
            readings=tuple(EnergyReading.from_dict(r) for r in data["readings"]),
            flags=tuple(data.get("flags", ())),
            telemetry=data.get("telemetry", {}),
            requests=data.get("requests"),
        )


@dataclass(frozen=True)
class Metric:
    """A scalar result with its unit, e.g. ("top1", 0.981, "fraction")."""

    name: str
    value: float | None
    unit: str


@dataclass
class RunResult:
    """What one RunSpec produced in its child process (the parent adds env and versions)."""

    status: str  # "ok" | "failed" | "skipped"
    reason: str | None = None
    quality_metric: str | None = None
    quality_higher_is_better: bool = True
    metrics: list[Metric] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    device_latencies_s: list[float] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    artifact: dict[str, Any] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    phases_s: dict[str, float] = field(default_factory=dict)
    # Per-sample quality outcomes on the evaluation inputs, by metric name, in input order:
    # 0/1 correctness for accuracies and agreements ("top1", "top1_agreement"), per-window
    # mean NLL in nats for "perplexity". Every run sees the same inputs in the same order,
    # so two runs' outcomes pair sample by sample (results/quality.py).
    outcomes: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "quality_metric": self.quality_metric,
            "quality_higher_is_better": self.quality_higher_is_better,
            "metrics": [asdict(m) for m in self.metrics],
            "latencies_s": list(self.latencies_s),
            "device_latencies_s": list(self.device_latencies_s),
            "trials": [t.to_dict() for t in self.trials],
            "artifact": self.artifact,
            "backend": self.backend,
            "details": self.details,
            "phases_s": self.phases_s,
            "outcomes": {k: list(v) for k, v in self.outcomes.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(
            status=data["status"],
            reason=data.get("reason"),
            quality_metric=data.get("quality_metric"),
            quality_higher_is_better=data.get("quality_higher_is_better", True),
            metrics=[Metric(**m) for m in data.get("metrics", [])],
            latencies_s=list(data.get("latencies_s", [])),
            device_latencies_s=list(data.get("device_latencies_s", [])),
            trials=[Trial.from_dict(t) for t in data.get("trials", [])],
            artifact=data.get("artifact", {}),
            backend=data.get("backend", {}),
            details=data.get("details", {}),
            phases_s=data.get("phases_s", {}),
            outcomes={k: list(v) for k, v in data.get("outcomes", {}).items()},
        )
