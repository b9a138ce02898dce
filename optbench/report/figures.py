"""Static figures (PNG and SVG) of each group's fronts, drawn with matplotlib."""

from __future__ import annotations

import logging
from pathlib import Path

from optbench.report.analysis import Group, measured, provenance_groups
from optbench.report.columns import PLOTTED
from optbench.report.text import run_label

log = logging.getLogger(__name__)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def draw_group(group: Group, directory: Path) -> list[str]:
    """One PNG and one SVG per axis; returns paths relative to `directory`'s parent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        log.warning("matplotlib not installed: no figures (pip install 'optbench[report]')")
        return []
    directory.mkdir(parents=True, exist_ok=True)
    drawn: list[str] = []
    for column in PLOTTED:
        key, scale, stem = column.key, column.scale, column.plot or column.key
        pts = [r for r in group.rows if r.get(key) is not None and r.get("quality_value")
               is not None]
        if not pts:
            continue
        front = group.fronts.get(key, set())
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        for r in pts:
            x, y = r[key] * scale, r["quality_value"]
            on_front = r["run_id"] in front
            color = "C0" if on_front else "C7"
            xerr = None
            if key == "energy_per_sample_j" and r.get("energy_per_sample_ci95_j") is not None:
                xerr = r["energy_per_sample_ci95_j"] * scale
            hollow = key == "energy_per_sample_j" and not measured(r)
            ax.errorbar([x], [y], xerr=xerr, fmt="o" if on_front or hollow else "x",
                        color=color, mfc="none" if hollow else color, ms=7, capsize=3, lw=1)
            ax.annotate(run_label(r, short=True), (x, y), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        for members in provenance_groups(pts, key):
            line = sorted((r[key] * scale, r["quality_value"]) for r in members
                          if r["run_id"] in front)
            if line:
                estimated = key == "energy_per_sample_j" and not measured(members[0])
                ax.step([p[0] for p in line], [p[1] for p in line],
                        where="post" if column.sense == "min" else "pre",
                        color="C1" if estimated else "C0", alpha=0.6,
                        label="front (estimated energy)" if estimated else "front")
        if key != "throughput_per_s" or max(r[key] for r in pts) / max(
                min(r[key] for r in pts), 1e-12) > 20:
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(column.axis.format(unit=group.unit))
        ax.set_ylabel(group.metric + ("" if group.higher_is_better else " (lower is better)"))
        ax.set_title(f"{group.model}: {stem.replace('_', ' ')} vs {group.metric}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        base = f"{slug(group.model)}-{slug(group.metric)}-{stem}"
        for ext in ("png", "svg"):
            fig.savefig(directory / f"{base}.{ext}", dpi=120)
            drawn.append(f"{directory.name}/{base}.{ext}")
        plt.close(fig)
    return drawn
