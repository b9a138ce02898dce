"""The report's serving section: crossovers of energy curves, the load figures, the table."""

import json
import re

import pytest

from optbench.carbon import carbon_settings
from optbench.report.analysis import analyse
from optbench.report.data import ReportData
from optbench.report.figures import draw_serving
from optbench.report.html import render_html, serving_section, serving_specs
from optbench.report.markdown import render_markdown, serving_lines
from optbench.report.recommend import Constraints, recommend
from optbench.report.serving import (
    configurations,
    crossings,
    crossover_lines,
    crossovers,
    energy_curve,
    max_rate_text,
    serving_view,
)


def closed(run_id, max_batch):
    return {"run_id": run_id, "status": "ok", "model": "m", "quality_metric": "top1",
            "quality_higher_is_better": True, "sample_unit": "image", "backend": "ort",
            "variant": "int8", "batch_size": max_batch, "device": "cpu", "quality_value": 0.98,
            "energy_per_sample_j": None, "energy_per_sample_ci95_j": None,
            "latency_p50_s": 0.002, "latency_p99_s": 0.004, "throughput_per_s": 500.0,
            "energy_method": "measured-counter", "weights": "w"}


def point(run_id, n, rate, energy_mj, *, max_batch=1, ci_mj=0.1, saturated=False, p99_ms=5.0,
          method="measured-counter", **extra):
    return {**closed(run_id, max_batch), "row_id": f"{run_id}:{n}", "point": n,
            "scenario": "server", "max_batch": max_batch, "max_wait_ms": 2.0, "cache_size": 0,
            "latency_bound_ms": 20.0, "offered_rate_per_s": rate, "achieved_rate_per_s": rate,
            "latency_p50_s": None if p99_ms is None else p99_ms / 3e3,
            "latency_p99_s": None if p99_ms is None else p99_ms / 1e3, "goodput_per_s": rate,
            "saturated": saturated, "mean_batch": 1.0, "search_probe": False,
            "max_rate_under_bound_per_s": None,
            "energy_per_request_j": None if energy_mj is None else energy_mj / 1e3,
            "energy_per_request_ci95_j": None if ci_mj is None else ci_mj / 1e3,
            "net_energy_per_request_j": None, "idle_share": None, "energy_method": method,
            **extra}


# mb1 costs 4 -> 6 mJ from 10 to 30 req/s; mb8 costs 8 -> 2: they cross at 20 req/s.
# mb1 saturates at 40 (its cheap figure there must not make a second crossing).
CROSSING = [point(1, 0, 10, 4.0), point(1, 1, 30, 6.0), point(1, 2, 40, 1.0, saturated=True),
            point(2, 0, 10, 8.0, max_batch=8), point(2, 1, 30, 2.0, max_batch=8),
            point(2, 2, 40, 1.5, max_batch=8)]


def view_of(points, constraints=None):
    rows = [closed(r, 1) for r in sorted({p["run_id"] for p in points})]
    (group,) = analyse(rows)
    return serving_view(group, points, constraints or Constraints())


def test_crossing_of_two_lines_by_interpolation():
    assert crossings([(0, 0.0), (10, 10.0)], [(0, 5.0), (10, 5.0)]) == [(5.0, True, 0, 10)]
    # measured at different rates: compared over the common range only (12..18)
    ((rate, a_below, lo, hi),) = crossings([(10, 4.0), (20, 2.0)], [(12, 1.0), (18, 5.0)])
    assert rate == pytest.approx(15.0) and not a_below and (lo, hi) == (12, 18)
    # equal at a measured rate: the crossing is there; touching is not crossing
    assert crossings([(10, 1.0), (20, 2.0), (30, 3.0)], [(10, 2.0), (30, 2.0)])[0][0] == 20
    assert crossings([(10, 1.0), (20, 2.0), (30, 1.0)], [(10, 2.0), (30, 2.0)]) == []
    assert crossings([(10, 1.0)], [(10, 2.0), (20, 0.0)]) == []  # a single point: no range


def test_crossovers_of_configurations_stop_at_saturation():
    configs = configurations(CROSSING)
    assert energy_curve(configs[0]) == [(10, 0.004), (30, 0.006)]
    (x,) = crossovers(configs)
    assert x.rate_per_s == pytest.approx(20.0)
    assert (x.cheaper_below, x.cheaper_above) == ("ort int8 mb1 wait2ms", "ort int8 mb8 wait2ms")
    assert x.within_noise is False  # 0.1 mJ intervals, 4 mJ apart at 10 and 30 req/s
    (line,) = crossover_lines(configs, [x])
    assert line == ("below 20 req/s ort int8 mb1 wait2ms costs less energy per request than "
                    "ort int8 mb8 wait2ms; above it ort int8 mb8 wait2ms does")


def test_no_crossover_across_provenance_or_without_a_common_range():
    estimated = [dict(p, energy_method="estimated") if p["run_id"] == 2 else p for p in CROSSING]
    configs = configurations(estimated)
    assert crossovers(configs) == []
    assert "no two configurations" in crossover_lines(configs, [])[0]
    parallel = configurations([point(1, 0, 10, 1.0), point(1, 1, 30, 1.0),
                               point(2, 0, 10, 2.0, max_batch=8),
                               point(2, 1, 30, 2.0, max_batch=8)])
    assert crossover_lines(parallel, crossovers(parallel))[0].startswith("the energy-per-")


def test_a_crossing_within_the_intervals_says_so():
    noisy = [dict(p, energy_per_request_ci95_j=0.003) for p in CROSSING]
    (x,) = crossovers(configurations(noisy))
    assert x.within_noise is True
    assert "within measurement noise" in crossover_lines(configurations(noisy), [x])[0]


def test_max_rate_text():
    (config,) = configurations([point(1, 0, 10, 1.0, max_rate_under_bound_per_s=87.5)])
    assert max_rate_text(config) == "ort int8 mb1 wait2ms: 87.5 req/s with p99 within 20 ms"
    (config,) = configurations([point(1, 0, 10, 1.0, latency_bound_ms=None)])
    assert "not searched" in max_rate_text(config)
    (config,) = configurations([point(1, 0, 10, 1.0, search_probe=True)])
    assert "no measured rate held the 20 ms bound" in max_rate_text(config)


# None values, a single-point configuration, a saturated point, a non-server run
AWKWARD = [point(1, 0, 10, None, ci_mj=None, p99_ms=None, method="unavailable"),
           point(1, 1, 20, 3.0, ci_mj=None), point(1, 2, 40, 2.0, saturated=True),
           point(2, 0, 15, 2.5, max_batch=8),
           point(3, 0, None, 2.0, max_batch=4, scenario="offline")]


def test_static_figures_draw_with_none_values_and_single_points(tmp_path):
    pytest.importorskip("matplotlib")
    view = view_of(AWKWARD, Constraints(max_latency_p99_s=0.010))
    drawn = draw_serving(view, tmp_path / "figures")
    assert drawn == [f"figures/m-top1-{stem}.{ext}" for stem in ("serving_energy", "serving_p99")
                     for ext in ("png", "svg")]
    assert all((tmp_path / p).stat().st_size > 0 for p in drawn)
    nothing = view_of([point(1, 0, 10, None, ci_mj=None, p99_ms=None)])
    assert draw_serving(nothing, tmp_path / "empty") == []


def test_html_specs_and_section_with_none_values():
    view = view_of(AWKWARD, Constraints(max_latency_p99_s=0.010, rate_per_s=15))
    energy, p99 = serving_specs(view, 0)
    json.dumps([energy, p99])  # travels as JSON: no NaN, nothing unserialisable
    assert [s["y"] for s in energy["series"]] == [[None, 3.0, 2.0], [2.5]]
    assert energy["series"][0]["symbols"] == ["circle", "circle", "x"]
    assert p99["bounds"] == [{"y": 10.0, "name": "latency bound 10 ms"}]
    page = serving_section(view, [energy, p99])
    assert '<div class="plot" id="serving-0-1">' in page and "not chosen:" in page
    assert "offline has no offered rate" in page


def markdown_table(lines):
    return [line for line in lines if line.startswith("| ")]


def test_markdown_section_has_the_table_figures_words_and_choice():
    view = view_of(CROSSING, Constraints(rate_per_s=30))
    lines = serving_lines(view, ["figures/a.png", "figures/a.svg"])
    table = markdown_table(lines)
    assert table[0] == ("| configuration | offered/s | achieved/s | p50 ms | p99 ms | goodput/s "
                        "| mean batch | energy/request mJ (95% CI) | net mJ | idle share | "
                        "method | saturated |")
    assert len(table) == 1 + len(CROSSING)
    assert table[3] == ("| ort int8 mb1 wait2ms | 40 | 40 | 1.67 | 5 | 40 | 1 | 1 ± 0.1 | - | - "
                        "| measured-counter | yes |")
    text = "\n".join(lines)
    assert "![figures/a.png](figures/a.png)" in text and "a.svg" not in text
    assert "- below 20 req/s ort int8 mb1 wait2ms costs less" in text
    assert "**Recommendation** (at 30 req/s" in text and "**ort int8 mb8 wait2ms (cpu)**" in text
    assert "- ort int8 mb1 wait2ms: not searched" in text


def test_full_report_gains_a_serving_section_only_with_serving_rows():
    rows = [closed(1, 1), closed(2, 8)]
    groups = analyse(rows)
    recs = [recommend(g, Constraints()) for g in groups]
    carbon = carbon_settings()
    plain = render_markdown(ReportData(rows), groups, recs, carbon, {})
    assert "serving" not in plain
    view = view_of(CROSSING)
    served = render_markdown(ReportData(rows, CROSSING), groups, recs, carbon,
                             {"m|top1|serving": ["figures/m-top1-serving_energy.png"]},
                             {view.key: view})
    assert served.startswith(plain.rstrip("\n").rsplit("\n", 1)[0])
    assert "### m: serving" in served and "serving_energy.png" in served
    pytest.importorskip("plotly")
    page = render_html(ReportData(rows, CROSSING), groups, recs, carbon, "t", {view.key: view})
    assert [p["id"] for p in payload(page)["lines"]] == ["serving-0-0", "serving-0-1"]
    plain_page = render_html(ReportData(rows), groups, recs, carbon, "t")
    assert set(payload(plain_page)) == {"plots", "cubes"}  # closed-loop pages as before


def payload(page):
    return json.loads(re.search(r'id="optbench-data">(.*?)</script>', page).group(1))


def test_machine_names_reach_serving_rows_from_their_runs():
    rows = [dict(closed(1, 1), env_label="box (cpu)"), dict(closed(2, 8), env_label="gpu (H200)")]
    (group,) = analyse(rows)
    view = serving_view(group, CROSSING, Constraints())
    assert [c.label for c in view.configurations] == ["ort int8 mb1 wait2ms @ box (cpu)",
                                                      "ort int8 mb8 wait2ms @ gpu (H200)"]
    assert "env_label" not in CROSSING[0]  # the loaded rows are left as they are
