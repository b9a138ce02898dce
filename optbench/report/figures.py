"""Static figures (PNG and SVG), drawn with matplotlib: each group's fronts, its serving
configurations' energy and p99 latency against offered load, and, where several machines
are side by side, each machine's chosen configuration as bars.

Every point is drawn in a handful of collection calls (a group of 10,000 configurations
draws its figures, PNG and SVG, in a few seconds); at most `MAX_LABELS` points are
labelled: all of them in a small group, else the fronts' own. Labels are placed greedily,
each at the first of a list of offsets around its point whose box (measured by the
renderer) overlaps no label, legend or labelled point already placed; one that fits nowhere
is left out, and the legend says the tables name the unlabelled points. A log axis
carries labelled ticks across its whole range, however narrow. Rows that failed a validity
check (`valid` False) are hollow. Vertical bars are the quality's 95% intervals.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optbench.cache import atomic_path
from optbench.report.analysis import Group, measured, provenance_groups
from optbench.report.columns import PLOTTED
from optbench.report.fleet import FleetView, bar_series, whiskers
from optbench.report.serving import LOAD_FIGURES, ServingView, load_series, spans_decades
from optbench.report.text import run_label

log = logging.getLogger(__name__)

MAX_LABELS = 24  # labelled points per figure, at most
CROWD = 200  # points: beyond, the others are small marks without intervals
LABEL_SIZE = 7  # points
MARKER_SIZE = 7  # points (a marker's diameter)
INVALID = "failed a validity check"
UNLABELLED = "unlabelled points: see the tables"
# Where a label may go, tried in this order: (dx, dy) in points from its point, and the
# text's alignment there. Further rings get a thin leader line back to the point.
DIRECTIONS = ((1, 1, "left", "bottom"), (1, -1, "left", "top"), (-1, 1, "right", "bottom"),
              (-1, -1, "right", "top"), (1, 0, "left", "center"), (-1, 0, "right", "center"),
              (0, 1, "center", "bottom"), (0, -1, "center", "top"))
RINGS = (6.0, 14.0, 24.0, 38.0)  # points: the first clears the marker
LEADER_FROM = 14.0  # points: from this ring on, a leader line


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


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or None (with a warning) when not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed: no figures (pip install 'optbench[report]')")
        return None
    return plt


def invalid(row: dict[str, Any]) -> bool:
    """A row flagged as having failed a validity check (absent means not checked)."""
    return row.get("valid") is False


def draw_group(group: Group, directory: Path) -> list[str]:
    """One PNG and one SVG per axis; returns paths relative to `directory`'s parent."""
    if pyplot() is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    drawn: list[str] = []
    for column in PLOTTED:
        fig = front_figure(group, column)
        if fig is not None:
            stem = column.plot or column.key
            save(fig, directory, f"{slug(group.model)}-{slug(group.metric)}-{stem}", drawn)
    fig = training_figure(group)
    if fig is not None:
        save(fig, directory, f"{slug(group.model)}-{slug(group.metric)}-training", drawn)
    return drawn


def curve_name(row: dict[str, Any]) -> str:
    """A training curve: the model fitted again (refit) and its base fit are one; a
    distilled student is another model, drawn apart."""
    lineage = str(row.get("lineage") or "")
    return f"{row['model']} student" if lineage.startswith("distill") else row["model"]


def training_curves(group: Group) -> dict[str, list[dict[str, Any]]]:
    """Per curve (`curve_name`), one row per variant (the first backend's: the others run
    the same trained artifact), those with a training energy first, by that energy."""
    curves: dict[str, dict[str, dict[str, Any]]] = {}
    for r in group.rows:
        if r.get("quality_value") is not None:
            curves.setdefault(curve_name(r), {}).setdefault(r["variant"], r)
    return {name: sorted(v.values(), key=lambda r: (r.get("training_energy_j") is not None,
                                                    r.get("training_energy_j") or 0.0))
            for name, v in curves.items()}


def training_figure(group: Group) -> Any:
    """Quality against the energy spent training (left: a line per model through its
    trained variants) and against the inference energy per sample (right, every variant):
    deep models circles, classic ones squares. None when fewer than two rows carry a
    training energy."""
    plt = pyplot()
    curves = training_curves(group)
    trained = {n: [r for r in rows if r.get("training_energy_j") is not None]
               for n, rows in curves.items()}
    if plt is None or sum(len(t) for t in trained.values()) < 2:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    labels: list[tuple[float, float, str]] = []
    for i, (name, rows) in enumerate(curves.items()):
        marker = "s" if rows[0].get("model_kind") == "classic" else "o"
        color = f"C{i % 10}"
        if trained[name]:
            left.plot([r["training_energy_j"] for r in trained[name]],
                      [r["quality_value"] for r in trained[name]], marker=marker, color=color,
                      label=name)
        else:
            left.plot([], [], marker=marker, color=color, label=f"{name} (no training "
                      "energy)")
        inferred = [r for r in rows if r.get("energy_per_sample_j") is not None]
        right.scatter([r["energy_per_sample_j"] * 1e3 for r in inferred],
                      [r["quality_value"] for r in inferred], marker=marker, color=color,
                      s=MARKER_SIZE ** 2, zorder=3)
        labels += [(r["energy_per_sample_j"] * 1e3, r["quality_value"], r["variant"])
                   for r in inferred]
    shown = [r for t in trained.values() for r in t]
    estimated = (any(not str(r.get("training_energy_method")).startswith("measured")
                     for r in shown),
                 any(not measured(r) for rows in curves.values() for r in rows))
    for ax, label, guessed in ((left, "training energy (J)", estimated[0]),
                               (right, f"inference energy per {group.unit} (mJ)", estimated[1])):
        ax.set_xscale("log")
        ax.margins(x=0.1, y=0.1)
        tick_labels(ax.xaxis)
        ax.set_xlabel(label + (", estimated" if guessed else ""))
        ax.grid(True, alpha=0.3)
    left.set_ylabel(group.metric + ("" if group.higher_is_better else " (lower is better)"))
    left.legend(fontsize=8, loc="best", title="squares: classic ML", title_fontsize=8)
    fig.suptitle(f"{group.model}: {group.metric} vs training and inference energy",
                 fontsize=11)
    fig.tight_layout()
    place_labels(right, sorted(labels, key=lambda p: -p[1]))  # those that fit, best first
    return fig


def front_figure(group: Group, column: Any) -> Any:
    """One axis against quality: every point, the fronts' lines, labels that do not
    overlap; None when no row has both values. The caller closes the figure."""
    plt = pyplot()
    if plt is None:
        return None
    key, scale, stem = column.key, column.scale, column.plot or column.key
    pts = [r for r in group.rows if r.get(key) is not None and r.get("quality_value")
           is not None]
    if not pts:
        return None
    front = group.fronts.get(key, set())
    energy = key == "energy_per_sample_j"
    fig, ax = plt.subplots(figsize=(7.5, 4.8))

    def xy(rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        return [r[key] * scale for r in rows], [r["quality_value"] for r in rows]

    crowd = len(pts) > CROWD  # a cloud: small marks, intervals only on the fronts
    if energy:  # the 95% intervals, one call per colour
        for on_front, color in ((False, "C7"), (True, "C0")):
            rows = [r for r in pts if r.get("energy_per_sample_ci95_j") is not None
                    and (r["run_id"] in front) == on_front]
            if rows and (on_front or not crowd):
                ax.errorbar(*xy(rows), xerr=[r["energy_per_sample_ci95_j"] * scale
                                             for r in rows],
                            fmt="none", ecolor=color, capsize=3, lw=1, zorder=1)
    ranged = [r for r in pts if r.get("quality_ci95_low") is not None
              and r.get("quality_ci95_high") is not None and (not crowd or r["run_id"] in front)]
    if ranged:  # the quality intervals: differences inside them are not real
        x, y = xy(ranged)
        ax.errorbar(x, y, yerr=[[max(q - r["quality_ci95_low"], 0) for q, r in zip(y, ranged)],
                                [max(r["quality_ci95_high"] - q, 0) for q, r in zip(y, ranged)]],
                    fmt="none", ecolor="C7", alpha=0.35, capsize=2, lw=1, zorder=1)
    size, other = MARKER_SIZE ** 2, (3 ** 2 if crowd else MARKER_SIZE ** 2)
    kinds: dict[str, list[dict[str, Any]]] = {
        "invalid": [], "front": [], "front-estimated": [], "other": [], "other-estimated": []}
    for r in pts:
        estimated = energy and not measured(r)
        kind = "invalid" if invalid(r) else ("front" if r["run_id"] in front else "other")
        kinds[kind + ("-estimated" if estimated and kind != "invalid" else "")].append(r)
    for kind, rows in kinds.items():
        if not rows:
            continue
        x, y = xy(rows)
        if kind == "invalid":
            ax.scatter(x, y, s=size, marker="o", facecolors="none", edgecolors="C3",
                       linewidths=1.5, zorder=4, label=INVALID)
        elif kind == "front-estimated":
            ax.scatter(x, y, s=size, marker="o", facecolors="none", edgecolors="C0",
                       linewidths=1, zorder=3)
        elif kind == "other-estimated":
            ax.scatter(x, y, s=other, marker="o", facecolors="none", edgecolors="C7",
                       linewidths=1, zorder=2)
        elif kind == "front":
            ax.scatter(x, y, s=size, marker="o", color="C0", zorder=3)
        else:
            ax.scatter(x, y, s=other, marker="x", color="C7", linewidths=1, zorder=2)
    for members in provenance_groups(pts, key):
        line = sorted((r[key] * scale, r["quality_value"]) for r in members
                      if r["run_id"] in front)
        if line:
            estimated = energy and not measured(members[0])
            ax.step([p[0] for p in line], [p[1] for p in line],
                    where="post" if column.sense == "min" else "pre",
                    color="C1" if estimated else "C0", alpha=0.6, zorder=2,
                    label="front (estimated energy)" if estimated else "front")
    values = [r[key] for r in pts]
    if key != "throughput_per_s" or max(values) / max(min(values), 1e-12) > 20:
        ax.set_xscale("log")
    ax.margins(x=0.08, y=0.12)  # room for the labels of the outermost points
    tick_labels(ax.xaxis)
    ax.set_xlabel(column.axis.format(unit=group.unit))
    ax.set_ylabel(group.metric + ("" if group.higher_is_better else " (lower is better)"))
    ax.set_title(f"{group.model}: {stem.replace('_', ' ')} vs {group.metric}")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()  # before the labels: it moves the axes, and so the points
    if len(pts) <= MAX_LABELS:
        chosen = pts
    else:  # a large group: the fronts' points, best quality first
        chosen = sorted((r for r in pts if r["run_id"] in front),
                        key=lambda r: -r["quality_value"] if group.higher_is_better
                        else r["quality_value"])[:MAX_LABELS]
    chosen = sorted(chosen, key=lambda r: (r["run_id"] not in front, r[key]))
    labelled = [(r[key] * scale, r["quality_value"], run_label(r, short=True))
                for r in chosen]
    handles, names = ax.get_legend_handles_labels()

    def legend(note: bool) -> list[Any]:
        """The legend (as the labels' obstacle), with the unlabelled note if asked."""
        from matplotlib.lines import Line2D

        shown = [*handles, Line2D([], [], ls="none")] if note else handles
        if not shown:
            return []
        made = ax.legend(shown, [*names, UNLABELLED] if note else names, loc="best",
                         fontsize=8)
        # "best" is found again at each draw, and counts texts: fixed here, where the data
        # alone chose it, the labels placed around it cannot move it
        corner = made.get_window_extent(fig.canvas.get_renderer())
        made.set_loc(tuple(ax.transAxes.inverted().transform((corner.x0, corner.y0))))
        return [made]

    note = len(chosen) < len(pts)
    box = legend(note)
    placed, leaders = place_labels(ax, labelled, box)
    if len(placed) < len(pts) and not note:  # say so, and place again around it
        for artist in (*placed, *leaders, *box):
            artist.remove()
        place_labels(ax, labelled, legend(True))
    return fig


def place_labels(ax: Any, points: Sequence[tuple[float, float, str]],
                 obstacles: Sequence[Any] = ()) -> tuple[list[Any], list[Any]]:
    """Annotate each (x, y, text), in order, at the first candidate offset whose text box
    lies inside the axes and overlaps no box placed so far: earlier labels, the markers of
    the points being labelled, and `obstacles` (artists: a legend). A label with no such
    place is left out; one placed away from its point gets a thin leader line (a figure
    artist, not part of the label). Call it once the axes' limits and position are final;
    returns the annotations and the leader lines made."""
    import numpy as np
    from matplotlib.lines import Line2D

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0  # pixels per point
    frame = ax.get_window_extent(renderer)
    pad = 1.0 * px
    centres = ax.transData.transform([(x, y) for x, y, _ in points]).reshape(-1, 2)
    half = (MARKER_SIZE / 2 + 1) * px
    taken = [(cx - half, cy - half, cx + half, cy + half) for cx, cy in centres
             if np.isfinite(cx) and np.isfinite(cy)]
    for artist in obstacles:
        box = artist.get_window_extent(renderer)
        taken.append((box.x0, box.y0, box.x1, box.y1))
    boxes = np.array(taken, dtype=float).reshape(-1, 4)
    to_figure = fig.transFigure.inverted()
    made, leaders = [], []
    for (x, y, text), (cx, cy) in zip(points, centres):
        if not (np.isfinite(cx) and np.isfinite(cy)):
            continue
        probe = ax.annotate(text, (x, y), textcoords="offset points", xytext=(0, 0),
                            fontsize=LABEL_SIZE, ha="left", va="bottom")
        extent = probe.get_window_extent(renderer)
        probe.remove()
        w, h = extent.width, extent.height
        spot = None
        for ring in RINGS:
            for sx, sy, ha, va in DIRECTIONS:
                dx, dy = sx * ring, sy * ring
                left = cx + dx * px - {"left": 0.0, "center": w / 2, "right": w}[ha]
                bottom = cy + dy * px - {"bottom": 0.0, "center": h / 2, "top": h}[va]
                box = (left - pad, bottom - pad, left + w + pad, bottom + h + pad)
                if not (box[0] >= frame.x0 and box[2] <= frame.x1 and box[1] >= frame.y0
                        and box[3] <= frame.y1):
                    continue
                if len(boxes) and np.any((boxes[:, 0] < box[2]) & (box[0] < boxes[:, 2])
                                         & (boxes[:, 1] < box[3]) & (box[1] < boxes[:, 3])):
                    continue
                spot = (dx, dy, ha, va, ring, box)
                break
            if spot:
                break
        if spot is None:
            continue
        dx, dy, ha, va, ring, box = spot
        made.append(ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy),
                                fontsize=LABEL_SIZE, ha=ha, va=va, zorder=5))
        boxes = np.vstack([boxes, box])
        if ring >= LEADER_FROM:  # from the marker's edge to the label's anchor
            unit = math.hypot(dx, dy)
            start = (cx + dx / unit * half, cy + dy / unit * half)
            end = (cx + dx * px, cy + dy * px)
            (x0, y0), (x1, y1) = to_figure.transform([start, end])
            leaders.append(fig.add_artist(Line2D([x0, x1], [y0, y1], lw=0.5, color="0.55",
                                                 transform=fig.transFigure, zorder=4)))
    return made, leaders


def tick_labels(axis: Any) -> None:
    """Plain numbers as tick labels (minor ticks unlabelled); on a log axis, major ticks at
    1, 1-3, 1-2-5, 1-2-3-5 or every digit of each decade, the sparsest that labels at
    least four ticks in the view (three where only the densest does), and evenly spaced
    ones where even that cannot: a narrow log axis never shows a single label."""
    import matplotlib.ticker as ticker

    axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axis.set_minor_formatter(ticker.NullFormatter())
    if axis.get_scale() != "log":
        return
    lo, hi = sorted(axis.get_view_interval())
    if not (lo > 0 and math.isfinite(hi)):
        return

    def shown(locator: Any) -> int:
        return sum(lo <= t <= hi for t in locator.tick_values(lo, hi))

    decades = math.log10(hi / lo)
    candidates = [ticker.LogLocator(subs=subs, numticks=max(8, math.ceil(decades) + 2))
                  for subs in ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0),
                               tuple(float(d) for d in range(1, 10)))]
    if decades > 7:  # many decades: a tick every few decades
        candidates = [ticker.LogLocator(numticks=8)]
    chosen = next((c for c in candidates if shown(c) >= 4), None)
    if chosen is None and shown(candidates[-1]) >= 3:
        chosen = candidates[-1]
    axis.set_major_locator(chosen or ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))


def draw_serving(view: ServingView, directory: Path) -> list[str]:
    """Energy per request and p99 latency against offered load, one line per serving
    configuration (saturated points marked, bounds drawn); paths as `draw_group` gives."""
    if pyplot() is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    drawn: list[str] = []
    for stem in LOAD_FIGURES:
        fig = serving_figure(view, stem)
        if fig is not None:
            save(fig, directory, f"{slug(view.group.model)}-{slug(view.group.metric)}-{stem}",
                 drawn)
    return drawn


def serving_figure(view: ServingView, stem: str) -> Any:
    """One of LOAD_FIGURES for `view`, or None when no point has a value. Points that
    failed a validity check are hollow, ringed in red."""
    plt = pyplot()
    if plt is None:
        return None
    key, err_key, scale, ylabel, title = LOAD_FIGURES[stem]
    lines = load_series(view, key, err_key, scale)
    if not any(v is not None for s in lines for v in s.y):
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    nan, marked, flagged = float("nan"), False, False
    for n, s in enumerate(lines):
        color = f"C{n % 10}"
        y = [nan if v is None else v for v in s.y]
        err = None if not any(e is not None for e in s.err) else [
            0.0 if e is None else e for e in s.err]
        estimated = not s.measured and key == "energy_per_request_j"
        bad = [invalid(r) for r in s.rows]
        ax.errorbar(s.x, y, yerr=err, marker="o", color=color, ms=5, capsize=3, lw=1.2,
                    mfc="none" if estimated else color, ls="--" if estimated else "-",
                    markevery=[i for i, b in enumerate(bad) if not b],
                    label=s.label + (" (estimated)" if estimated else ""))
        failed = [(x, v) for x, v, b in zip(s.x, y, bad) if b]
        if failed:
            ax.plot([p[0] for p in failed], [p[1] for p in failed], "o", ms=7, mfc="none",
                    mec="C3", mew=1.5, ls="none", label=None if flagged else INVALID)
            flagged = True
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
    tick_labels(ax.xaxis)
    tick_labels(ax.yaxis)
    ax.set_xlabel("offered load (requests/s)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{view.group.model}: {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def draw_fleet(view: FleetView, directory: Path) -> list[str]:
    """The machines side by side: one bar per machine kind for its chosen configuration,
    a panel per axis (energy, p99, throughput, cost where priced), 95% intervals as
    whiskers; paths as `draw_group` gives."""
    plt = pyplot()
    panels = bar_series(view)
    if plt is None or not panels:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 0.6, 4.2),
                             squeeze=False)
    for ax, (title, unit, bars) in zip(axes[0], panels):
        names = [b[0] for b in bars]
        values = [math.nan if b[1] is None else b[1] for b in bars]
        ax.bar(names, values, yerr=list(whiskers(bars)), capsize=4,
               color=[f"C{n % 10}" for n in range(len(bars))])
        for n, (_, value, _, _) in enumerate(bars):
            if value is None:  # an empty figure says so, never a zero bar
                ax.text(n, 0, "n/a", ha="center", va="bottom", fontsize=8, color="C7")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"{view.group.model}: each machine's chosen configuration", fontsize=11)
    fig.tight_layout()
    drawn: list[str] = []
    save(fig, directory, f"{slug(view.group.model)}-{slug(view.group.metric)}-fleet", drawn)
    return drawn
