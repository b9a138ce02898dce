"""What a report says about a set of runs, computed once for every renderer (pure).

Groups are (model, quality metric): only runs judged by the same metric share a front.
Within a group: the fp32 eager baseline and every row's deltas to it, the Pareto fronts
(energy, latency p50, latency p99 and throughput, each against quality; energy fronts
apart for measured and estimated figures), the three-objective non-dominated set (energy,
latency p99, quality), and which rows' energy intervals overlap (not distinguishable).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from optbench.report.columns import PLOTTED
from optbench.report.pareto import pareto_front

AXES = {c.key: (c.sense, c.label) for c in PLOTTED}  # key -> (sense, label)


def measured(row: dict[str, Any]) -> bool:
    return str(row.get("energy_method") or "").startswith("measured")


@dataclass
class Group:
    model: str
    metric: str
    unit: str
    higher_is_better: bool
    rows: list[dict[str, Any]]
    baseline: dict[str, Any] | None = None
    fronts: dict[str, set[int]] = field(default_factory=dict)
    front3: set[int] = field(default_factory=set)
    overlaps: dict[int, list[int]] = field(default_factory=dict)

    def by_id(self, run_id: int) -> dict[str, Any]:
        return next(r for r in self.rows if r["run_id"] == run_id)


def provenance_groups(rows: list[dict[str, Any]], key: str) -> list[list[dict[str, Any]]]:
    """Energy points split into measured and estimated; other axes form one group."""
    if key != "energy_per_sample_j":
        return [rows]
    return [[r for r in rows if measured(r)], [r for r in rows if not measured(r)]]


def front_ids(rows: list[dict[str, Any]], key: str, higher_is_better: bool) -> set[int]:
    """Rows on the (axis, quality) front; energy fronts per provenance group."""
    sense = AXES[key][0]
    pts = [r for r in rows if r.get(key) is not None and r.get("quality_value") is not None]
    ids: set[int] = set()
    for group in provenance_groups(pts, key):
        if group:
            idx = pareto_front([(r[key], r["quality_value"]) for r in group],
                               (sense, "max" if higher_is_better else "min"))
            ids |= {group[i]["run_id"] for i in idx}
    return ids


def front3_ids(rows: list[dict[str, Any]], higher_is_better: bool) -> set[int]:
    keys = ("energy_per_sample_j", "latency_p99_s", "quality_value")
    pts = [r for r in rows if all(r.get(k) is not None for k in keys)]
    ids: set[int] = set()
    for group in provenance_groups(pts, "energy_per_sample_j"):
        if group:
            idx = pareto_front([tuple(r[k] for k in keys) for r in group],
                               ("min", "min", "max" if higher_is_better else "min"))
            ids |= {group[i]["run_id"] for i in idx}
    return ids


def baseline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fp32 eager torch run at the smallest batch; else the smallest-batch fp32 run."""
    fp32 = [r for r in rows if r["variant"] == "fp32"]
    for pool in ([r for r in fp32 if r["backend"] == "torch"], fp32):
        if pool:
            return min(pool, key=lambda r: (r["batch_size"], r["run_id"]))
    return None


def ratio(value: Any, base: Any) -> float | None:
    if value is None or base in (None, 0):
        return None
    return value / base - 1


def add_deltas(rows: list[dict[str, Any]], base: dict[str, Any] | None) -> None:
    for r in rows:
        if base is None or r is base:
            r["delta"] = {}
            continue
        r["delta"] = {
            "quality": (None if r["quality_value"] is None or base["quality_value"] is None
                        else r["quality_value"] - base["quality_value"]),
            "energy": ratio(r["energy_per_sample_j"], base["energy_per_sample_j"]),
            "latency_p99": ratio(r["latency_p99_s"], base["latency_p99_s"]),
            "throughput": ratio(r["throughput_per_s"], base["throughput_per_s"]),
        }


def interval(row: dict[str, Any]) -> tuple[float, float] | None:
    value, ci = row.get("energy_per_sample_j"), row.get("energy_per_sample_ci95_j")
    if value is None or ci is None:
        return None
    return value - ci, value + ci


def energy_overlaps(rows: list[dict[str, Any]]) -> dict[int, list[int]]:
    """For each row, the rows whose 95% energy intervals overlap its own (same provenance)."""
    out: dict[int, list[int]] = {}
    for a in rows:
        ia = interval(a)
        if ia is None:
            continue
        out[a["run_id"]] = [
            b["run_id"] for b in rows
            if b is not a and measured(b) == measured(a) and (ib := interval(b)) is not None
            and ia[0] <= ib[1] and ib[0] <= ia[1]]
    return out


def analyse(rows: list[dict[str, Any]]) -> list[Group]:
    """Groups of ok runs with fronts, baseline, deltas and overlaps."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok" and row["quality_metric"]:
            grouped[(row["model"], row["quality_metric"])].append(row)
    groups = []
    for (model, metric), members in grouped.items():
        hib = bool(members[0]["quality_higher_is_better"])
        group = Group(model, metric, members[0]["sample_unit"], hib, members)
        group.baseline = baseline(members)
        add_deltas(members, group.baseline)
        group.fronts = {key: front_ids(members, key, hib) for key in AXES}
        group.front3 = front3_ids(members, hib)
        group.overlaps = energy_overlaps(members)
        groups.append(group)
    return groups


def generative(group: Group) -> bool:
    """Whether a group's runs generated text (they carry TTFT and TPOT)."""
    return any(r.get("ttft_p50_s") is not None for r in group.rows)


def best_first(group: Group) -> list[dict[str, Any]]:
    """The group's rows, best quality first (whichever direction is better)."""
    sign = -1 if group.higher_is_better else 1
    missing = float("inf")
    return sorted(group.rows, key=lambda r: (missing if r["quality_value"] is None
                                             else sign * r["quality_value"], r["backend"]))


def reference_for(row: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The untransformed fp32 run of the same model, backend, batch, device and machine."""
    for other in rows:
        if (other["status"] == "ok" and not other.get("lineage")
                and other.get("precision") == "fp32"
                and all(other.get(k) == row.get(k)
                        for k in ("model", "backend", "batch_size", "device", "env_id"))):
            return other
    return None


def add_break_even(rows: list[dict[str, Any]]) -> None:
    """For every run of a trained variant: the inferences after which its per-sample energy
    saving over the untransformed fp32 run repays the energy spent training it.

    None with a note when it never does (no saving), or when a figure is missing.
    """
    for row in rows:
        row["break_even_samples"], row["break_even_note"] = None, None
        if row["status"] != "ok" or not row.get("training"):
            continue
        ref = reference_for(row, rows)
        spent, energy = row.get("training_energy_j"), row.get("energy_per_sample_j")
        if ref is None:
            row["break_even_note"] = "no untransformed fp32 run to compare with"
        elif spent is None:
            row["break_even_note"] = "training energy not measured"
        elif energy is None or ref.get("energy_per_sample_j") is None:
            row["break_even_note"] = "inference energy not measured"
        elif (saving := ref["energy_per_sample_j"] - energy) <= 0:
            row["break_even_note"] = "never: no per-sample energy saving"
        else:
            row["break_even_samples"] = spent / saving
            ia, ib = interval(row), interval(ref)
            if ia is not None and ib is not None and ia[0] <= ib[1] and ib[0] <= ia[1]:
                row["break_even_note"] = "saving within measurement noise (95% CIs overlap)"
