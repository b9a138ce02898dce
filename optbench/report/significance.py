"""What a report says about quality differences: which are real and which are noise (pure).

Each configuration's quality was tested against its group's baseline on the same samples
(report.analysis.add_quality_tests); this turns those tests into sentences, and says for a
difference within noise how many samples would resolve one of its size.
"""

from __future__ import annotations

from typing import Any

from optbench.report.analysis import Group
from optbench.report.recommend import quality_text
from optbench.report.text import run_label

LISTED = 12  # configurations named per sentence; the rest are counted


def names(rows: list[dict[str, Any]], describe: Any) -> str:
    shown = [f"{run_label(r, short=True)} ({describe(r)})" for r in rows[:LISTED]]
    more = len(rows) - LISTED
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def samples_text(row: dict[str, Any]) -> str:
    needed = row.get("quality_samples_to_resolve")
    if needed is None:
        return "no difference seen"
    return f"~{needed:,} samples would resolve a difference this size"


def significance_lines(group: Group) -> list[str]:
    """Sentences on the group's quality differences; empty when nothing was tested."""
    base = group.baseline
    tested = [r for r in group.rows if r.get("quality_delta_p_value") is not None]
    if base is None or not tested:
        return []
    untested = [r for r in group.rows if r is not base and r not in tested]
    tied = [r for r in tested if r["quality_tied"]]
    real = [r for r in tested if not r["quality_tied"]]
    samples = base.get("quality_samples")
    test = tested[0]["quality_test"]
    lines = [f"Quality against the baseline {run_label(base, short=True)} "
             f"({group.metric} {quality_text(base)}"
             + (f", {samples:,} samples" if samples else "")
             + f"; {test}, same samples for every configuration):"]
    if tied:
        lines.append("- not distinguishable from it (p >= 0.05, tied on quality): "
                     + names(tied, lambda r: f"{r['quality_delta']:+.4g}, "
                                             f"p={r['quality_delta_p_value']:.2g}; "
                                             f"{samples_text(r)}"))
    if real:
        lines.append("- significantly different (p < 0.05): "
                     + names(real, lambda r: f"{r['quality_delta']:+.4g}, "
                                             f"p={r['quality_delta_p_value']:.2g}"))
    if untested:
        lines.append("- not tested (no per-sample outcomes stored, or other inputs): "
                     + names(untested, lambda r: quality_text(r)))
    return lines
