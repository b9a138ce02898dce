"""Stores of 10,000 configurations (issue 15): bounded energy overlaps, the benchmark's
plumbing on a small store, and a long report page that stays usable in a browser."""

import importlib.util
import os
import random
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optbench.carbon import carbon_settings
from optbench.report.analysis import analyse, energy_overlaps, interval, measured
from optbench.report.data import load

ROOT = Path(__file__).resolve().parents[2]


def benchmark():
    spec = importlib.util.spec_from_file_location("store_scale", ROOT / "benchmarks" /
                                                  "store_scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def naive_overlaps(rows):
    """The definition: every other row of the same provenance whose interval meets one's own."""
    out = {}
    for a in rows:
        ia = interval(a)
        if ia is None:
            continue
        out[a["run_id"]] = [b["run_id"] for b in rows if b is not a and measured(b) == measured(a)
                            and (ib := interval(b)) is not None
                            and ia[0] <= ib[1] and ib[0] <= ia[1]]
    return out


energy = st.one_of(st.none(), st.integers(0, 30).map(lambda v: v / 10), st.floats(0, 3))
ci = st.one_of(st.none(), st.just(0.0), st.floats(0, 0.05), st.floats(0, 3))
row = st.tuples(energy, ci, st.booleans())


@settings(deadline=None, max_examples=200)
@given(st.lists(row, max_size=80), st.sampled_from([1, 3, 10, 100]))
def test_overlaps_are_the_nearest_of_the_overlapping_with_exact_counts(spec, limit):
    rows = [{"run_id": 100 + i, "energy_per_sample_j": e, "energy_per_sample_ci95_j": c,
             "energy_method": "measured-counter" if m else "estimated"}
            for i, (e, c, m) in enumerate(spec)]
    counts = {}
    got = energy_overlaps(rows, limit, counts)
    want = naive_overlaps(rows)
    assert got.keys() == want.keys() == counts.keys()
    centre = {r["run_id"]: sum(interval(r)) / 2 for r in rows if interval(r) is not None}
    for run_id, overlapping in want.items():
        chosen = got[run_id]
        assert counts[run_id] == len(overlapping)
        assert len(chosen) == len(set(chosen)) == min(limit, len(overlapping))
        assert set(chosen) <= set(overlapping)
        far = [abs(centre[i] - centre[run_id]) for i in chosen]
        assert far == sorted(far)  # nearest first
        rest = set(overlapping) - set(chosen)
        assert all(abs(centre[i] - centre[run_id]) >= max(far, default=0) - 1e-12 for i in rest)


def test_overlaps_of_ten_thousand_look_alikes_stay_small_and_fast():
    import time

    rng = random.Random(0)
    rows = [{"run_id": i, "energy_per_sample_j": 1 + rng.random() * 0.01,
             "energy_per_sample_ci95_j": 0.05, "energy_method": "measured-counter"}
            for i in range(10_000)]
    started = time.perf_counter()
    counts = {}
    overlaps = energy_overlaps(rows, counts=counts)
    assert time.perf_counter() - started < 5  # the pairwise version: minutes
    assert all(len(v) == 10 for v in overlaps.values()) and set(counts.values()) == {9999}


SMALL = dict(latencies=50, samples=20, load_trials=2)


def test_the_benchmark_builds_a_cached_store_and_times_the_commands(tmp_path):
    bench = benchmark()
    shape = bench.Shape(**SMALL)
    directory = tmp_path / "store-40"
    assert bench.build(directory, 40, shape) > 0
    assert bench.build(directory, 40, shape) == 0  # cached: same size and shape
    data = load([directory], carbon_settings(), None)
    assert len(data.rows) == 40  # reruns replaced by their latest run
    ok = [r for r in data.rows if r["status"] == "ok"]
    assert ok and all(r["latency_n"] == 50 and r["energy_per_sample_j"] for r in ok)
    assert {r["model"] for r in data.rows} == set(bench.MODELS)
    for name in ("export csv", "recommend"):
        command, stdout = bench.commands(directory)[name]
        seconds, rss_mib, code = bench.timed(command, stdout)
        assert code == 0 and 0 < seconds < 120 and 10 < rss_mib < 1024
    assert len(stdout.read_text().splitlines()) > 4  # recommend said something per model


def chromium():
    try:
        import playwright  # noqa: F401
    except ImportError:
        if os.environ.get("OPTBENCH_REQUIRE_BROWSER") == "1":
            raise
        pytest.skip("playwright is not installed")
    from optbench.report.screenshot import chromium_path

    path = chromium_path()
    if path is None:
        if os.environ.get("OPTBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail("OPTBENCH_REQUIRE_BROWSER=1 but no Chromium (apt-get install chromium)")
        pytest.skip("no Chromium: apt-get install chromium")
    return path


def test_a_long_report_pages_filters_and_draws_with_webgl(tmp_path):
    executable = chromium()
    pytest.importorskip("plotly")
    from playwright.sync_api import sync_playwright

    from optbench.report.html import GL_POINTS, LIVE_CONTEXTS, PAGE_ROWS, render_html
    from optbench.report.recommend import Constraints, recommend
    from optbench.report.screenshot import FLAGS

    bench = benchmark()
    directory = tmp_path / "store"
    bench.build(directory, 2460, bench.Shape(**SMALL))
    carbon = carbon_settings()
    data = load([directory], carbon, None)
    for n, row in enumerate(data.rows):  # one group of 2,100; twelve of 30, each a cube
        row["model"] = "big" if n < 2100 else f"small-{n % 12}"
    groups = analyse(data.rows)
    for row in groups[0].rows[:5]:
        row["valid"] = False  # drawn open
    assert len(groups) == 13
    page = render_html(data, groups, [recommend(g, Constraints()) for g in groups], carbon, "t")
    assert len(groups[0].rows) > GL_POINTS and len(groups[0].rows) > PAGE_ROWS
    blob = re.search(r'id="optbench-data">(.*?)</script>', page).group(1)
    # each group's hover texts travel once, however many figures draw them
    assert blob.count("energy measured-counter") < 1.1 * sum(
        1 for r in data.rows if r["status"] == "ok" and r["energy_method"] == "measured-counter")
    html = tmp_path / "index.html"
    html.write_text(page)
    errors, warnings = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.on("console", lambda m: warnings.append(m.text)
                   if "Invalid" in m.text or "WebGL contexts" in m.text else None)
            tab.goto(html.resolve().as_uri(), wait_until="load")
            tab.wait_for_timeout(1500)
            first = tab.locator(".paged").first
            assert first.locator("tbody tr").count() == PAGE_ROWS
            assert first.locator(".info").inner_text() == f"rows 1-100 of {len(groups[0].rows)}"
            first.locator("input").fill("torch")
            tab.wait_for_timeout(200)
            shown = first.locator("tbody tr").all_inner_texts()
            assert shown and all("torch" in t for t in shown)
            assert "filtered from" in first.locator(".info").inner_text()
            first.locator("button.next").click()
            assert first.locator("tbody tr").count() > 0
            total = tab.locator(".plot").count()
            drawn = int(tab.get_attribute("body", "data-plots-drawn") or 0)
            assert 2 <= drawn < total  # the figures in view; the rest as they scroll in
            with_gl = ("Array.from(document.querySelectorAll('.plot'))"
                       ".filter(e => e.querySelector('canvas')).map(e => e.id)")
            assert "plot-0-2" in tab.evaluate(with_gl)  # latency p99 of 2,100: scattergl
            for y in range(0, tab.evaluate("document.body.scrollHeight") + 1500, 1500):
                tab.evaluate(f"window.scrollTo(0, {y})")
                tab.wait_for_timeout(60)
            tab.wait_for_timeout(300)
            assert int(tab.get_attribute("body", "data-plots-drawn") or 0) == total
            # those scrolled past gave their WebGL contexts back (a canvas each)
            assert 0 < tab.locator(".plot canvas").count() <= LIVE_CONTEXTS
        finally:
            browser.close()
    assert errors == [] and warnings == []


def test_the_page_sends_each_row_once_and_long_tables_as_cells(tmp_path):
    pytest.importorskip("plotly")
    import json

    from optbench.report.analysis import best_first
    from optbench.report.columns import table_cells, table_columns
    from optbench.report.html import PAGE_ROWS, render_html
    from optbench.report.recommend import Constraints, recommend

    bench = benchmark()
    bench.build(tmp_path, 300, bench.Shape(**SMALL))
    carbon = carbon_settings()
    data = load([tmp_path], carbon, None)
    groups = analyse(data.rows)
    big = groups[0]
    big.rows[3]["valid"] = False
    page = render_html(data, groups, [recommend(g, Constraints()) for g in groups], carbon, "t")
    blob = json.loads(re.search(r'id="optbench-data">(.*?)</script>', page).group(1))
    assert set(blob) == {"plots", "cubes", "tables"}
    first = blob["plots"][0]
    assert len(first["text"]) == len(first["y"]) == len(big.rows) > PAGE_ROWS
    assert first["hollow"] == [3] and "invalid" in first["text"][3]
    for figure in first["figures"]:  # figures hold no copy of the rows: keys and indices
        assert set(figure) == {"id", "key", "split", "err", "lines", "title", "xlabel",
                               "ylabel", "log"}
        assert len(first["x"][figure["key"]]) == len(big.rows)
    assert blob["cubes"][0]["group"] == 0
    (table,) = [t for t in blob["tables"] if len(t["rows"]) == len(big.rows)]
    columns = table_columns(big)
    assert table["rows"] == [table_cells(columns, r, big) for r in best_first(big)]
    assert f'id="{table["id"]}"' in page and "<tbody></tbody>" in page
    short = [g for g in groups if len(g.rows) <= PAGE_ROWS]
    assert short and all(len(t["rows"]) > PAGE_ROWS for t in blob["tables"])  # short: HTML
