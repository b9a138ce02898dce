"""Static figures: point labels never overprint, log axes are labelled across their range,
rows that failed a validity check are hollow, and 10,000 points draw in seconds."""

import itertools
import random
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from optbench.report import figures  # noqa: E402
from optbench.report.analysis import Group  # noqa: E402
from optbench.report.columns import BY_KEY  # noqa: E402

ENERGY, P99, THROUGHPUT = (BY_KEY[k] for k in ("energy_per_sample_j", "latency_p99_s",
                                               "throughput_per_s"))


def row(run_id, backend, variant, batch, quality, energy_mj, p99_ms, **extra):
    base = {"run_id": run_id, "status": "ok", "model": "mnist-cnn", "quality_metric": "top1",
            "quality_higher_is_better": True, "sample_unit": "image", "backend": backend,
            "variant": variant, "batch_size": batch, "device": "cpu", "quality_value": quality,
            "energy_per_sample_j": energy_mj / 1e3, "energy_per_sample_ci95_j": energy_mj / 3e4,
            "energy_reason": "", "energy_method": "measured-counter",
            "latency_p50_s": p99_ms / 2e3, "latency_p99_s": p99_ms / 1e3,
            "throughput_per_s": batch * 1e3 / p99_ms}
    return {**base, **extra}


def crowded_rows(n=18, seed=3):
    """The quickstart's situation, worse: near-equal energies and top-1 for many runs."""
    rng = random.Random(seed)
    names = itertools.product(("torch", "ort", "openvino"), ("fp32", "int8", "fp16"), (1, 8))
    return [row(i, b, v, bs, 0.985 + rng.uniform(-4e-4, 4e-4), 1.0 + rng.uniform(0, 0.08),
                rng.uniform(0.3, 3.0)) for i, (b, v, bs) in enumerate(itertools.islice(
                    itertools.cycle(names), n), start=1)]


def fast_front(rows, key, sense):
    """The (key, quality) front of rows whose quality is higher-is-better, by one sweep."""
    ordered = sorted(rows, key=lambda r: (r[key] if sense == "min" else -r[key],
                                          -r["quality_value"]))
    best, ids = float("-inf"), set()
    for r in ordered:
        if r["quality_value"] > best:
            best = r["quality_value"]
            ids.add(r["run_id"])
    return ids


def group_of(rows):
    """A report group as `analysis.analyse` makes it, as far as the figures read it."""
    fronts = {c.key: fast_front(rows, c.key, c.sense) for c in figures.PLOTTED
              if c.key in rows[0]}
    first = rows[0]
    return Group(first["model"], first["quality_metric"], first["sample_unit"], True, rows,
                 fronts=fronts)


def figure_of(rows, column=ENERGY):
    fig = figures.front_figure(group_of(rows), column)
    assert fig is not None
    return fig


def label_boxes(fig):
    (ax,) = fig.axes
    renderer = fig.canvas.get_renderer()
    return ax, renderer, [t.get_window_extent(renderer) for t in ax.texts]


def overlap(a, b):
    return min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("n", [6, 18, 24])
def test_labels_of_close_points_do_not_overlap(n):
    fig = figure_of(crowded_rows(n))
    ax, renderer, boxes = label_boxes(fig)
    assert len(boxes) >= min(n, 8)  # most get a label, in a small group
    for a, b in itertools.combinations(boxes, 2):
        assert not overlap(a, b), (a, b)
    frame = ax.get_window_extent(renderer)
    legend = ax.get_legend().get_window_extent(renderer)
    for box in boxes:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1
        assert not overlap(box, legend)


def test_labels_stay_apart_once_saved(tmp_path):
    """savefig draws at 120 dpi, not the figure's: the layout must hold there too."""
    fig = figure_of(crowded_rows(18))
    fig.savefig(tmp_path / "f.png", dpi=120)
    fig.set_dpi(120)
    ax, renderer, boxes = label_boxes(fig)
    assert boxes
    for a, b in itertools.combinations(boxes, 2):
        assert not overlap(a, b), (a, b)
    legend = ax.get_legend().get_window_extent(renderer)  # "best" would dodge the labels
    assert not any(overlap(box, legend) for box in boxes)


def test_an_unlabelled_point_is_said_in_the_legend():
    fig = figure_of(crowded_rows(40))  # more than MAX_LABELS: only the front is labelled
    (ax,) = fig.axes
    assert len(ax.texts) <= figures.MAX_LABELS
    assert figures.UNLABELLED in [t.get_text() for t in ax.get_legend().get_texts()]
    small = figure_of(crowded_rows(3))
    assert len(small.axes[0].texts) == 3
    assert figures.UNLABELLED not in [t.get_text() for t in small.axes[0].get_legend().get_texts()]


def tick_texts(fig, axis):
    fig.canvas.draw()
    lo, hi = sorted(axis.get_view_interval())
    return [t.get_text() for t, loc in zip(axis.get_majorticklabels(), axis.get_majorticklocs())
            if t.get_text() and lo <= loc <= hi]


def test_a_log_axis_within_a_decade_has_several_labels():
    rows = [row(i, "ort", f"v{i}", 1, 0.98 + i / 1e3, 1.0 + i, p99)
            for i, p99 in enumerate((0.3, 0.5, 0.9, 1.6, 3.0))]
    fig = figure_of(rows, P99)
    axis = fig.axes[0].xaxis
    assert axis.get_scale() == "log"
    labels = tick_texts(fig, axis)
    assert len(labels) >= 3, labels
    assert all("$" not in t and "e" not in t for t in labels)  # plain numbers: 0.5, 1, 2


@pytest.mark.parametrize("lo,hi", [(0.3, 3.0), (1.05, 1.9), (0.45, 1.5), (0.95, 1.05),
                                   (2.0, 700.0), (1e-3, 1e5), (1e-9, 1e9)])
def test_tick_labels_cover_any_log_range(lo, hi):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    figures.tick_labels(ax.xaxis)
    labels = tick_texts(fig, ax.xaxis)
    assert 3 <= len(labels) <= 12, labels
    assert len(set(labels)) == len(labels)  # no two ticks read the same


def test_rows_that_failed_a_validity_check_are_hollow():
    rows = crowded_rows(8)
    for r in rows[:3]:
        r["valid"] = False
    rows[3]["valid"] = True  # checked and passed: drawn as usual
    fig = figure_of(rows)
    (ax,) = fig.axes
    (flagged,) = [c for c in ax.collections if c.get_label() == figures.INVALID]
    assert len(flagged.get_offsets()) == 3
    faces = flagged.get_facecolors()
    assert len(faces) == 0 or all(f[3] == 0 for f in faces)  # facecolor none
    assert len(flagged.get_edgecolors()) and flagged.get_edgecolors()[0][3] > 0
    assert figures.INVALID in [t.get_text() for t in ax.get_legend().get_texts()]
    others = [c for c in ax.collections if c.get_label() != figures.INVALID
              and hasattr(c, "get_offsets") and len(c.get_offsets())]
    assert sum(len(c.get_offsets()) for c in others) >= 5  # the rest drawn apart
    assert not any(c.get_label() == figures.INVALID for c in figure_of(crowded_rows(8))
                   .axes[0].collections)


def test_serving_points_that_failed_a_validity_check_are_hollow():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_serving_report import closed, point

    from optbench.report.recommend import Constraints
    from optbench.report.serving import serving_view

    points = [point(1, 0, 10, 4.0), point(1, 1, 30, 6.0, valid=False), point(1, 2, 40, 5.0),
              point(2, 0, 10, 8.0, max_batch=8), point(2, 1, 30, 2.0, max_batch=8)]
    view = serving_view(group_of([closed(1, 1), closed(2, 1)]), points, Constraints())
    fig = figures.serving_figure(view, "serving_energy")
    (ax,) = fig.axes
    (ring,) = [line for line in ax.lines if line.get_label() == figures.INVALID]
    assert list(ring.get_xdata()) == [30] and ring.get_markerfacecolor() == "none"
    assert figures.INVALID in [t.get_text() for t in ax.get_legend().get_texts()]


def test_ten_thousand_points_draw_in_seconds(tmp_path):
    rng = random.Random(1)
    rows = [row(i, "ort", f"v{i}", 1, 0.99 - 0.01 * rng.random(), rng.uniform(0.3, 3.0),
                rng.uniform(0.3, 30.0), **({"valid": False} if i % 97 == 0 else {}))
            for i in range(10_000)]
    group = group_of(rows)
    start = time.perf_counter()
    drawn = figures.draw_group(group, tmp_path / "figures")
    elapsed = time.perf_counter() - start
    assert len(drawn) == 2 * len(group.fronts)
    assert elapsed < 30, f"{elapsed:.1f} s"  # about 3 s on a 2-core VM
    fig = figures.front_figure(group, ENERGY)
    (ax,) = fig.axes
    assert 0 < len(ax.texts) <= figures.MAX_LABELS
    assert len(ax.collections) <= 8  # a handful of collections, not one artist per point
