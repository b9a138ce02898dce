"""Static figures (PNG and SVG), drawn with matplotlib: each group's fronts, and its serving
configurations' energy and p99 latency against offered load."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from optbench.cache import atomic_path
from optbench.report.analysis import Group, measured, provenance_groups
from optbench.report.columns import PLOTTED
from optbench.report.serving import LOAD_FIGURES, ServingView, load_series, spans_decades
from optbench.report.text import run_label

log = logging.getLogger(__name__)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def save(fig: Any, directory: Path, base: str, drawn: list[str]) -> None:
    """The figure as PNG and SVG, each renamed into place once complete (a full disk leaves
    the previous file, not half of one); the figure is closed whatever happens."""
    import matplotlib.pyplot as plt

    try:
        for ext in ("png", "svg"):
            with atomic_path(directory / f"{base}.{ext}") as tmp:
                fig.savefig(tmp, dpi=120, format=ext)
            drawn.append(f"{directory.name}/{base}.{ext}")
    finally:
        plt.close(fig)


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
        save(fig, directory, base, drawn)
    return drawn


def draw_serving(view: ServingView, directory: Path) -> list[str]:
    """Energy per request and p99 latency against offered load, one line per serving
    configuration (saturated points marked, bounds drawn); paths as `draw_group` gives."""
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
    for stem, (key, err_key, scale, ylabel, title) in LOAD_FIGURES.items():
        lines = load_series(view, key, err_key, scale)
        if not any(v is not None for s in lines for v in s.y):
            continue
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        nan, marked = float("nan"), False
        for n, s in enumerate(lines):
            y = [nan if v is None else v for v in s.y]
            err = None if not any(e is not None for e in s.err) else [
                0.0 if e is None else e for e in s.err]
            estimated = not s.measured and key == "energy_per_request_j"
            ax.errorbar(s.x, y, yerr=err, marker="o", color=f"C{n % 10}", ms=5, capsize=3, lw=1.2,
                        mfc="none" if estimated else f"C{n % 10}", ls="--" if estimated else "-",
                        label=s.label + (" (estimated)" if estimated else ""))
            hot = [(x, v) for x, v, sat in zip(s.x, y, s.saturated) if sat]
            if hot:
                ax.plot([p[0] for p in hot], [p[1] for p in hot], "x", color="C3", ms=10,
                        mew=2, label=None if marked else "saturated")
                marked = True
        if key == "latency_p99_s":
            for bound in view.bounds_s:
                ax.axhline(bound * 1e3, color="C3", ls=":", lw=1.2,
                           label=f"latency bound {bound * 1e3:g} ms")
        if spans_decades([x for s in lines for x in s.x]):
            ax.set_xscale("log")
        if spans_decades([v for s in lines for v in s.y]):
            ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":  # 1-2-5 ticks: one per decade reads too sparse
                axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("offered load (requests/s)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{view.group.model}: {title}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        base = f"{slug(view.group.model)}-{slug(view.group.metric)}-{stem}"
        save(fig, directory, base, drawn)
    return drawn
