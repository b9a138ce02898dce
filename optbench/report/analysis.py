"""What a report says about a set of runs, computed once for every renderer (pure).

Groups are (model, quality metric): only runs judged by the same metric share a front.
The models of a `models:` recipe judged by the same labelled metric on the same samples
(the same dataset, split and count) share one group: a random forest and a CNN on the same
held-out digits are on one front (`merge_models`). Agreement with a model's own reference
is no cross-model measure: such groups stay apart.
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
from optbench.results.quality import Paired, compare

AXES = {c.key: (c.sense, c.label) for c in PLOTTED}  # key -> (sense, label)


def measured(row: dict[str, Any]) -> bool:
    return str(row.get("energy_method") or "").startswith("measured")


@dataclass
class Group:
    model: str  # the model, or for several on one front "DATASET, N models"
    metric: str
    unit: str
    higher_is_better: bool
    rows: list[dict[str, Any]]
    baseline: dict[str, Any] | None = None
    models: tuple[str, ...] = ()  # every model in the group, in order of first run
    fronts: dict[str, set[int]] = field(default_factory=dict)
    front3: set[int] = field(default_factory=set)
    overlaps: dict[int, list[int]] = field(default_factory=dict)  # the nearest few
    overlap_counts: dict[int, int] = field(default_factory=dict)  # how many in all
    _index: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)
    # figures a renderer works out once per group, not per cell (e.g. the CO2 unit)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.models:
            self.models = (self.model,)

    def by_id(self, run_id: int) -> dict[str, Any]:
        if len(self._index) != len(self.rows):  # built once: tables look up every overlap
            self._index = {r["run_id"]: r for r in self.rows}
        return self._index[run_id]


def provenance_groups(rows: list[dict[str, Any]], key: str) -> list[list[dict[str, Any]]]:
    """Energy points split into measured and estimated; other axes form one group."""
    if key not in ("energy_per_sample_j", "cost_per_million"):  # cost: energy + time
        return [rows]
    return [[r for r in rows if measured(r)], [r for r in rows if not measured(r)]]


def tier(row: dict[str, Any]) -> float | None:
    """The quality a front compares: the baseline's where the row's difference from it is
    not significant (tied on quality), else the row's own figure."""
    value = row.get("quality_tier")
    return row.get("quality_value") if value is None else value


def front_ids(rows: list[dict[str, Any]], key: str, higher_is_better: bool) -> set[int]:
    """Rows on the (axis, quality) front; energy fronts per provenance group. Quality is
    compared by tier: rows tied with the baseline compete on the axis alone."""
    sense = AXES[key][0]
    pts = [r for r in rows if r.get(key) is not None and tier(r) is not None]
    ids: set[int] = set()
    for group in provenance_groups(pts, key):
        if group:
            idx = pareto_front([(r[key], tier(r)) for r in group],
                               (sense, "max" if higher_is_better else "min"))
            ids |= {group[i]["run_id"] for i in idx}
    return ids


def front3_ids(rows: list[dict[str, Any]], higher_is_better: bool) -> set[int]:
    keys = ("energy_per_sample_j", "latency_p99_s")
    pts = [r for r in rows if all(r.get(k) is not None for k in keys) and tier(r) is not None]
    ids: set[int] = set()
    for group in provenance_groups(pts, "energy_per_sample_j"):
        if group:
            idx = pareto_front([(r[keys[0]], r[keys[1]], tier(r)) for r in group],
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


QUALITY_TEST_KEYS = ("quality_delta", "quality_delta_p_value", "quality_test",
                     "quality_tied", "quality_samples_to_resolve", "quality_tier")


def paired_quality(a: dict[str, Any], b: dict[str, Any]) -> Paired | None:
    """b's quality against a's on the same samples; None when they cannot be paired (no
    per-sample outcomes, another metric, or other inputs)."""
    x, y = a.get("quality_outcomes"), b.get("quality_outcomes")
    if (x is None or y is None or len(x) != len(y) or a["quality_metric"] != b["quality_metric"]
            or a.get("quality_inputs") != b.get("quality_inputs")):
        return None
    return compare(a["quality_metric"], x, y)


def add_quality_tests(rows: list[dict[str, Any]], base: dict[str, Any] | None) -> None:
    """Each row's paired test against the baseline: p-value, whether it is tied on quality
    (not significant at 5%), the samples that would resolve the difference, and its tier."""
    for r in rows:
        r.update(dict.fromkeys(QUALITY_TEST_KEYS))
        if base is None or r is base:
            continue
        paired = paired_quality(base, r)
        if paired is None:
            continue
        r.update(quality_delta=paired.delta, quality_delta_p_value=paired.p_value,
                 quality_test=paired.test, quality_tied=not paired.significant,
                 quality_samples_to_resolve=paired.samples_to_resolve)
        if not paired.significant:
            r["quality_tier"] = base["quality_value"]


def grouped_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Ok runs by (model, metric), then models on the same inputs merged (`merge_models`)."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok" and row["quality_metric"]:
            grouped[(row["model"], row["quality_metric"])].append(row)
    return merge_models(grouped)


def merge_models(grouped: dict[tuple[str, str], list[dict[str, Any]]]
                 ) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Model groups of one `models:` recipe (the rows' `front`) whose every run was judged
    on one and the same inputs by the same labelled metric, merged into one group per
    (front, inputs, metric), keyed "DATASET, N models"."""
    by_inputs: dict[tuple[str, str, str], list[tuple[str, str]]] = defaultdict(list)
    for key, members in grouped.items():
        inputs = {r.get("quality_inputs") for r in members}
        fronts = sorted({r["front"] for r in members if r.get("front")})
        if fronts and len(inputs) == 1 and None not in inputs and "agreement" not in key[1]:
            by_inputs[(fronts[0], str(next(iter(inputs))), key[1])].append(key)
    out = dict(grouped)
    for (front, inputs, metric), keys in by_inputs.items():
        if len(keys) < 2:
            continue
        merged = [r for k in keys for r in out.pop(k)]
        dataset = inputs.split("|")[1] if inputs.count("|") else inputs  # summary's order
        name = f"{dataset}, {len(keys)} models"
        if (name, metric) in out:  # another recipe's models on the same data: kept apart
            name += f" ({front})"
        out[(name, metric)] = merged
    return out


def compare_quality(rows: list[dict[str, Any]]) -> None:
    """Paired quality tests for rows not yet analysed (the export): per group of ok runs
    (`grouped_rows`), against the group's baseline, as `analyse` does."""
    for members in grouped_rows(rows).values():
        add_quality_tests(members, baseline(members))


def energy_tied(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two rows' 95% energy intervals overlap (same provenance)."""
    ia, ib = interval(a), interval(b)
    return (ia is not None and ib is not None and measured(a) == measured(b)
            and ia[0] <= ib[1] and ib[0] <= ia[1])


def interval(row: dict[str, Any]) -> tuple[float, float] | None:
    value, ci = row.get("energy_per_sample_j"), row.get("energy_per_sample_ci95_j")
    if value is None or ci is None:
        return None
    return value - ci, value + ci


def energy_overlaps(rows: list[dict[str, Any]], limit: int = 10,
                    counts: dict[int, int] | None = None) -> dict[int, list[int]]:
    """For each row with an energy interval, rows whose 95% energy intervals overlap its own
    (same provenance): the `limit` nearest in energy (by interval centre), nearest first,
    so 10,000 look-alikes cost 10 ids a row, not 10,000. `counts`, when given, receives
    how many overlap each row in all.

    Without comparing every pair: the counts come from two sorted arrays (those starting
    at or before a row's end, less those ending before its start); the nearest from the
    neighbours in centre order, scanned outward in doubling windows until no row outside
    the window can be nearer. Both O(n log n) but for contrived spreads of widths.
    """
    import numpy as np

    out: dict[int, list[int]] = {}
    for provenance in (True, False):
        members = [(r["run_id"], iv) for r in rows
                   if measured(r) == provenance and (iv := interval(r)) is not None]
        usable = [(i, lo, hi) for i, (lo, hi) in members if lo == lo and hi == hi]  # no NaN
        for run_id, _ in members:
            out[run_id] = []
            if counts is not None:
                counts[run_id] = 0
        if len(usable) < 2:
            continue
        ids = np.array([u[0] for u in usable])
        lo = np.array([min(u[1], u[2]) for u in usable], dtype=np.float64)
        hi = np.array([max(u[1], u[2]) for u in usable], dtype=np.float64)
        total = (np.searchsorted(np.sort(lo), hi, "right")
                 - np.searchsorted(np.sort(hi), lo, "left") - 1)
        order = np.argsort((lo + hi) / 2, kind="stable")  # positions in centre order
        ids, lo, hi, total = ids[order], lo[order], hi[order], total[order]
        centre, n = (lo + hi) / 2, len(ids)
        want = np.minimum(total, limit)
        pending, width = np.flatnonzero(want > 0), 8
        while pending.size:
            width = min(width, n)
            offsets = np.concatenate([np.arange(1, width + 1), -np.arange(1, width + 1)])
            unsettled = []
            step = max(1, 2_000_000 // offsets.size)  # bounded memory per round
            for start in range(0, pending.size, step):
                at = pending[start:start + step]
                near = at[:, None] + offsets[None, :]
                inside = (near >= 0) & (near < n)
                near = np.clip(near, 0, n - 1)
                overlap = inside & (lo[near] <= hi[at, None]) & (lo[at, None] <= hi[near])
                distance = np.where(overlap, np.abs(centre[near] - centre[at, None]), np.inf)
                ranked = np.argsort(distance, axis=1, kind="stable")
                k = want[at]
                kth = np.take_along_axis(distance, ranked, 1)[
                    np.arange(at.size), np.minimum(k, offsets.size) - 1]
                kth[k > offsets.size] = np.inf  # more wanted than the window holds
                right, left = at + width, at - width  # beyond these, every row is farther
                safe = np.minimum(
                    np.where(right < n, centre[np.minimum(right, n - 1)] - centre[at], np.inf),
                    np.where(left >= 0, centre[at] - centre[np.maximum(left, 0)], np.inf))
                settled = (overlap.sum(axis=1) == total[at]) | (kth <= safe)
                for row in np.flatnonzero(settled):
                    chosen = near[row, ranked[row, :k[row]]]
                    out[int(ids[at[row]])] = ids[chosen].tolist()
                unsettled.append(at[~settled])
            pending, width = np.concatenate(unsettled), width * 2
        if counts is not None:
            counts.update(zip(ids.tolist(), total.tolist()))
    return out


def analyse(rows: list[dict[str, Any]]) -> list[Group]:
    """Groups of ok runs with fronts, baseline, deltas and overlaps."""
    groups = []
    for (model, metric), members in grouped_rows(rows).items():
        hib = bool(members[0]["quality_higher_is_better"])
        group = Group(model, metric, members[0]["sample_unit"], hib, members,
                      models=tuple(dict.fromkeys(r["model"] for r in members)))
        for r in members:  # labels and tables then name the model (report/text.py)
            r["shared_front"] = True if len(group.models) > 1 else None
        group.baseline = baseline(members)
        add_deltas(members, group.baseline)
        add_quality_tests(members, group.baseline)
        group.fronts = {key: front_ids(members, key, hib) for key in AXES}
        group.front3 = front3_ids(members, hib)
        group.overlaps = energy_overlaps(members, counts=group.overlap_counts)
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
        if not row.get("lineage"):  # a model trained by its builder is its own reference
            row["break_even_note"] = "the base model: trained to exist, nothing to repay"
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
