"""What a search minimises, the quality bound it keeps, and what a measured row gives them.

Objectives are report columns (report/columns.py), read from a configuration's summary
row (results/summary.py): the search and the report read one set of numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optbench.errors import UsageError, closest
from optbench.report.columns import COLUMNS, Column

# `--objectives` name -> the summary row's key
OBJECTIVE_KEYS = {"energy": "energy_per_sample_j", "latency_p99": "latency_p99_s",
                  "latency_p50": "latency_p50_s", "throughput": "throughput_per_s",
                  "ttft": "ttft_p50_s", "tpot": "tpot_p50_s"}
ALIASES = {"latency": "latency_p99", "p99": "latency_p99", "p50": "latency_p50"}
INFEASIBLE = 1e9  # the constraint of a run without a quality figure: never feasible


@dataclass(frozen=True)
class Objective:
    name: str
    column: Column

    @property
    def key(self) -> str:
        return self.column.key

    @property
    def direction(self) -> str:
        return "maximize" if self.column.sense == "max" else "minimize"

    def label(self, unit: str = "sample") -> str:
        return f"{self.column.label.format(unit=unit)} ({self.column.unit.format(unit=unit)})"

    def shown(self, value: float | None) -> str:
        return "" if value is None else f"{value * self.column.scale:.4g}"

    def loss(self, value: float) -> float:
        """The value as a loss (smaller is better) on a log scale, for fronts and
        hypervolume: halving the energy counts alike at any level (the objectives span
        orders of magnitude: in their units the cheapest batch holds nearly all volume)."""
        return -math.log10(value) if self.direction == "maximize" else math.log10(value)

    def value_of(self, loss: float) -> float:
        return 10 ** (-loss) if self.direction == "maximize" else 10 ** loss


def parse_objectives(text: str) -> tuple[Objective, ...]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--objectives: name at least one of {', '.join(OBJECTIVE_KEYS)}")
    by_key = {c.key: c for c in COLUMNS}
    out: list[Objective] = []
    for raw in names:
        name = ALIASES.get(raw, raw)
        if name not in OBJECTIVE_KEYS:
            hint = closest(raw, [*OBJECTIVE_KEYS, *ALIASES])
            raise UsageError(f"--objectives: unknown objective '{raw}'; choose from "
                             f"{', '.join(OBJECTIVE_KEYS)}"
                             + (f" (did you mean '{hint}'?)" if hint else ""))
        if any(o.name == name for o in out):
            raise UsageError(f"--objectives: '{name}' given twice")
        out.append(Objective(name, by_key[OBJECTIVE_KEYS[name]]))
    return tuple(out)


@dataclass(frozen=True)
class QualityBound:
    """A configuration is feasible when its quality is at most `max_drop` below the
    baseline's (absolute, in the metric's units; for a lower-is-better metric, above).
    The point estimates decide: a drop within noise of the bound is not given the benefit
    of the doubt either way."""

    max_drop: float | None
    baseline: float | None = None
    metric: str | None = None
    higher_is_better: bool = True
    inputs: str | None = None  # the samples it was judged on (results/summary.py)

    def violation(self, row: Mapping[str, Any]) -> float:
        """Optuna's constraint value: <= 0 feasible. Without a bound, always 0."""
        if self.max_drop is None:
            return 0.0
        quality = row.get("quality_value")
        if (quality is None or self.baseline is None or row.get("quality_metric") != self.metric
                or row.get("quality_inputs") != self.inputs):
            return INFEASIBLE
        drop = self.baseline - quality if self.higher_is_better else quality - self.baseline
        return float(drop - self.max_drop)

    def describe(self) -> str:
        if self.max_drop is None:
            return "no quality bound (every configuration is feasible)"
        base = "" if self.baseline is None else f" {self.baseline:.4g}"
        return (f"{self.metric} at most {self.max_drop:g} below the baseline's{base}, "
                "on the same samples")


def bound_from(row: Mapping[str, Any], max_drop: float | None) -> QualityBound:
    return QualityBound(max_drop, row.get("quality_value"), row.get("quality_metric"),
                        bool(row.get("quality_higher_is_better", True)),
                        row.get("quality_inputs"))


def objective_values(row: Mapping[str, Any], objectives: Sequence[Objective]
                     ) -> tuple[list[float] | None, str | None]:
    """The row's objective values, or None with the reason one is missing."""
    if row.get("status") != "ok":
        return None, f"{row.get('status')}: {row.get('reason')}"
    values = []
    for objective in objectives:
        value = row.get(objective.key)
        if value is None or not math.isfinite(value):
            why = row.get("energy_reason") if objective.name == "energy" else None
            return None, f"{objective.name} not measured" + (f" ({why})" if why else "")
        if value <= 0:
            return None, f"{objective.name} is {value}: not a positive figure"
        values.append(float(value))
    return values, None
