"""Which configuration to ship, under constraints, and why (pure).

The quality floor is relative to the group's baseline (fp32 eager torch, else the first
fp32 run, else the best quality seen): `max_quality_drop` 0.01 allows one percentage point
below it. Candidates are ranked by the objective; energy and CO2 rank measured figures
before estimated ones, since the two are not comparable. Runners-up whose energy
interval overlaps the winner's are called out as not distinguishable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from optbench.report.analysis import Group, energy_tied, measured, paired_quality
from optbench.report.columns import OBJECTIVE_COLUMNS
from optbench.report.text import run_label

OBJECTIVES = {c.objective: (c.key, c.sense, c.label)  # name -> (row key, sense, label)
              for c in OBJECTIVE_COLUMNS}


@dataclass(frozen=True)
class Constraints:
    max_quality_drop: float | None = None
    max_latency_p99_s: float | None = None
    objective: str = "energy"
    rate_per_s: float | None = None  # choose among serving points at this offered rate
    # MLPerf's gate: quality at least this share of the baseline's (0.99 = 99%)
    min_quality_ratio: float | None = None

    def __post_init__(self) -> None:
        # NaN compares false with everything: a bare `< 0` test would let it disable a bound.
        drop = self.max_quality_drop
        if drop is not None and not (math.isfinite(drop) and drop >= 0):
            raise ValueError(f"max_quality_drop must be a finite number >= 0, got {drop!r}")
        ratio = self.min_quality_ratio
        if ratio is not None and not (math.isfinite(ratio) and 0 < ratio <= 1):
            raise ValueError(f"min_quality_ratio must be in (0, 1], got {ratio!r}")
        for name in ("max_latency_p99_s", "rate_per_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; "
                             f"choose one of {', '.join(OBJECTIVES)}")
        if self.rate_per_s is not None and self.objective != "energy":
            raise ValueError(f"at an offered rate the choice is by energy per request; "
                             f"objective {self.objective!r} does not apply there")


@dataclass
class Recommendation:
    group: Group
    constraints: Constraints
    best: dict[str, Any] | None
    runners_up: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    quality_floor: float | None = None


def quality_floor(group: Group, max_drop: float | None,
                  min_ratio: float | None = None) -> float | None:
    """The worst quality allowed: the baseline's less `max_drop`, or `min_ratio` of it
    (for a lower-is-better metric such as perplexity: at most baseline / ratio); the
    stricter of the two when both are given."""
    if max_drop is None and min_ratio is None:
        return None
    values = [r["quality_value"] for r in group.rows if r["quality_value"] is not None]
    reference = group.baseline["quality_value"] if group.baseline else None
    if reference is None and values:
        reference = max(values) if group.higher_is_better else min(values)
    if reference is None:
        return None
    hib = group.higher_is_better
    floors = []
    if max_drop is not None:
        floors.append(reference - max_drop if hib else reference + max_drop)
    if min_ratio is not None:
        floors.append(reference * min_ratio if hib else reference / min_ratio)
    return max(floors) if hib else min(floors)


def recommend(group: Group, constraints: Constraints, runners_up: int = 3) -> Recommendation:
    key, sense, _ = OBJECTIVES[constraints.objective]
    floor = quality_floor(group, constraints.max_quality_drop, constraints.min_quality_ratio)
    rec = Recommendation(group, constraints, None, quality_floor=floor)
    candidates = []
    for row in group.rows:
        why = rejection(row, group, constraints, floor, key)
        if why:
            rec.rejected.append((row, why))
        else:
            candidates.append(row)
    if not candidates:
        return rec
    energy_like = key in ("energy_per_sample_j", "co2_g_per_1000", "cost_per_million")

    def rank(row: dict[str, Any]) -> tuple[int, float]:
        value = row[key] if sense == "min" else -row[key]
        return (0 if not energy_like or measured(row) else 1, value)

    ordered = sorted(candidates, key=rank)
    rec.best, rec.runners_up = ordered[0], ordered[1:1 + runners_up]
    rec.reasons = explain(rec, key)
    return rec


def rejection(row: dict[str, Any], group: Group, c: Constraints, floor: float | None,
              key: str) -> str | None:
    if row.get(key) is None:
        return f"no {OBJECTIVES[c.objective][2].format(unit=group.unit)} figure"
    beyond = beyond_floor(row, group, floor)
    if beyond:
        return beyond
    if c.max_latency_p99_s is not None:
        p99 = row.get("latency_p99_s")
        if p99 is None or p99 > c.max_latency_p99_s:
            shown = "unknown" if p99 is None else f"{p99 * 1e3:.3g} ms"
            return f"latency p99 {shown} above {c.max_latency_p99_s * 1e3:.3g} ms"
    return None


def beyond_floor(row: dict[str, Any], group: Group, floor: float | None) -> str | None:
    """Why a row's quality is beyond the group's allowed floor, or None when it is not."""
    quality = row["quality_value"]
    if floor is None or quality is None:
        return None
    if quality < floor if group.higher_is_better else quality > floor:
        why = f"{group.metric} {quality:.4g} beyond the allowed floor {floor:.4g}"
        if row.get("quality_tied"):
            why += (f" (though not significantly different from the baseline, "
                    f"p={row['quality_delta_p_value']:.2g}: more samples would tell)")
        return why
    return None


def explain(rec: Recommendation, key: str) -> list[str]:
    best, group = rec.best, rec.group
    assert best is not None
    name = OBJECTIVES[rec.constraints.objective][2].format(unit=group.unit)
    qualified = len(group.rows) - len(rec.rejected)
    reasons = [f"best {name} among the {qualified} configurations meeting the constraints"]
    if rec.quality_floor is not None:
        bound = ">= floor" if group.higher_is_better else "<= ceiling"
        reasons.append(f"{group.metric} {best['quality_value']:.4g} {bound} "
                       f"{rec.quality_floor:.4g}")
    reasons.extend(quality_ties(rec))
    if key in ("energy_per_sample_j", "co2_g_per_1000"):
        note = "" if measured(best) else " (no measured figure qualified)"
        reasons.append(f"energy is {best['energy_method']}{note}")
        for other in rec.runners_up:
            if energy_tied(best, other):
                reasons.append(f"not distinguishable in energy from {run_label(other)}: the 95% "
                               "intervals overlap")
    return reasons


def quality_ties(rec: Recommendation) -> list[str]:
    """Why the choice among configurations of indistinguishable quality is what it is: the
    winner's quality against the baseline's, and runners-up tied with the winner (paired
    tests on the same samples), which were therefore passed over on the objective alone."""
    best, group = rec.best, rec.group
    assert best is not None
    base = group.baseline
    reasons = []
    objective = OBJECTIVES[rec.constraints.objective][2].format(unit=group.unit)
    if base is not None and best is not base and best.get("quality_delta_p_value") is not None:
        if best["quality_tied"]:
            reasons.append(
                f"{group.metric} {quality_text(best)} ≈ baseline {quality_text(base)}: the "
                f"difference is not significant ({best['quality_test']} "
                f"p={best['quality_delta_p_value']:.2g}), so quality is tied and "
                f"{objective} decides")
        else:
            reasons.append(
                f"{group.metric} {quality_text(best)} differs from the baseline's "
                f"{quality_text(base)} ({best['quality_test']} "
                f"p={best['quality_delta_p_value']:.2g})")
    tied = []
    for other in rec.runners_up:
        paired = paired_quality(best, other)
        if paired is not None and not paired.significant:
            tied.append(f"{run_label(other)} (p={paired.p_value:.2g})")
    if tied:
        reasons.append(f"tied on quality with {', '.join(tied)}; chosen over them on "
                       f"{objective}")
    return reasons


def quality_text(row: dict[str, Any]) -> str:
    """A quality figure with its 95% interval where known, e.g. "0.966 [0.953, 0.976]"."""
    value, low, high = (row.get(k) for k in ("quality_value", "quality_ci95_low",
                                             "quality_ci95_high"))
    if value is None:
        return "-"
    return f"{value:.4g}" + ("" if low is None else f" [{low:.4g}, {high:.4g}]")


def quality_gates(c: Constraints) -> list[str]:
    """The quality constraints asked for, in words."""
    asked = []
    if c.max_quality_drop is not None:
        asked.append(f"quality drop at most {c.max_quality_drop:g}")
    if c.min_quality_ratio is not None:
        asked.append(f"quality at least {c.min_quality_ratio:.4g} of the baseline")
    return asked
