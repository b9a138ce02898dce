"""What a report says when deep and classic (non-deep) models share a group (pure).

The sustainable-AI question "do you need deep learning at all?" has a one-line answer in
a group's section: whether a classic model (models/classic.py) is on one of its fronts,
at what quality and energy, against the deep baseline.
"""

from __future__ import annotations

from typing import Any

from optbench.report.analysis import AXES, Group, measured
from optbench.report.recommend import quality_text
from optbench.report.text import fmt, run_label


def front_names(row: dict[str, Any], group: Group) -> list[str]:
    return [AXES[key][1].format(unit=group.unit) for key, ids in group.fronts.items()
            if row["run_id"] in ids]


def energy_text(row: dict[str, Any], unit: str) -> str:
    value = row.get("energy_per_sample_j")
    if value is None:
        return "energy not measured"
    kind = "" if measured(row) else " (estimated)"
    return f"{fmt(value, 1e3)} mJ per {unit}{kind}"


def classic_line(group: Group) -> str | None:
    """One sentence when the group holds a classic model: the best-quality classic run on
    any front (named with its fronts, quality and energy, and its energy against the deep
    baseline's where there is one), or that none is on a front. None without classic runs."""
    classic = [r for r in group.rows if r.get("model_kind") == "classic"]
    if not classic:
        return None
    deep = [r for r in group.rows if r.get("model_kind") == "deep"]
    base = group.baseline if group.baseline in deep else None
    on = [r for r in classic if front_names(r, group)]
    if not on:
        return ("No classic (non-deep) model is on a front here: each is dominated by a "
                "deep configuration." if deep else None)
    sign = 1 if group.higher_is_better else -1
    best = max(on, key=lambda r: (sign * r["quality_value"], -(r.get("energy_per_sample_j")
                                                              or float("inf"))))
    fronts = front_names(best, group)
    text = (f"Not deep learning: {run_label(best, short=True)} (a classic "
            f"{best.get('model_family') or 'ML'} model) is on the {', '.join(fronts)} "
            f"front{'s' if len(fronts) > 1 else ''}, {group.metric} {quality_text(best)}, "
            f"{energy_text(best, group.unit)}")
    if base is not None:
        text += (f"; the deep baseline {run_label(base, short=True)}: {quality_text(base)}, "
                 f"{energy_text(base, group.unit)}")
        mine, theirs = best.get("energy_per_sample_j"), base.get("energy_per_sample_j")
        if mine and theirs and measured(best) == measured(base):
            text += f" ({mine / theirs:.2g}x its energy)"
    return text + "."
