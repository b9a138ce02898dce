"""The choice at an offered rate (`recommend --rate`) on hand-built serving rows."""

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.report.analysis import analyse
from optbench.report.data import ReportData
from optbench.report.recommend import Constraints
from optbench.report.serving import configurations, nearest_point, recommend_at_rate, serving_views


def closed(run_id, backend="ort", variant="int8", quality=0.98, max_batch=1):
    """A run's closed-loop row (what analyse groups and takes the quality floor from)."""
    return {"run_id": run_id, "status": "ok", "model": "m", "quality_metric": "top1",
            "quality_higher_is_better": True, "sample_unit": "image", "backend": backend,
            "variant": variant, "batch_size": max_batch, "device": "cpu",
            "quality_value": quality, "energy_per_sample_j": None,
            "energy_per_sample_ci95_j": None, "latency_p50_s": 0.002, "latency_p99_s": 0.004,
            "throughput_per_s": 500.0, "energy_method": "measured-counter"}


def point(run_id, n, rate, energy_mj, p99_ms, *, ci_mj=0.5, saturated=False,
          method="measured-counter", max_batch=1, max_rate=None, bound_ms=None,
          scenario="server", **base):
    """A serving point of run `run_id`: its closed-loop row plus the point's figures."""
    return {**closed(run_id, max_batch=max_batch, **base), "row_id": f"{run_id}:{n}",
            "point": n, "scenario": scenario, "max_batch": max_batch, "max_wait_ms": 2.0,
            "cache_size": 0, "latency_bound_ms": bound_ms,
            "offered_rate_per_s": rate if scenario == "server" else None,
            "achieved_rate_per_s": rate, "latency_p50_s": p99_ms / 3e3,
            "latency_p99_s": p99_ms / 1e3, "goodput_per_s": rate, "saturated": saturated,
            "mean_batch": 1.0, "cache_hit_rate": None, "search_probe": False,
            "max_rate_under_bound_per_s": max_rate,
            "energy_per_request_j": None if energy_mj is None else energy_mj / 1e3,
            "energy_per_request_ci95_j": None if ci_mj is None else ci_mj / 1e3,
            "net_energy_per_request_j": None if energy_mj is None else energy_mj / 2e3,
            "idle_share": 0.5, "energy_method": method}


def choose(points, rate, closed_rows=None, **constraints):
    rows = closed_rows or [closed(r) for r in sorted({p["run_id"] for p in points})]
    (group,) = analyse(rows)
    return recommend_at_rate(configurations(points), group,
                             Constraints(rate_per_s=rate, **constraints))


def test_nearest_point_within_ten_percent():
    (config,) = configurations([point(1, 0, 95, 5, 10), point(1, 1, 104, 5, 10),
                                point(1, 2, 300, 5, 10)])
    chosen, why = nearest_point(config, 100)
    assert why is None and chosen["offered_rate_per_s"] == 104  # 4 away beats 5 away
    assert nearest_point(config, 330)[0]["offered_rate_per_s"] == 300  # 30 = 9.1% of 330
    missing, why = nearest_point(config, 200)
    assert missing is None
    assert why == "no point within ±10% of 200 req/s (measured: 95, 104, 300 req/s)"


def test_least_energy_at_the_rate_wins_and_reasons_say_why():
    points = [point(1, 0, 50, 4.0, 5), point(1, 1, 100, 6.0, 8),  # mb1: cheap at low load
              point(2, 0, 50, 9.0, 6, max_batch=8), point(2, 1, 100, 3.0, 9, max_batch=8)]
    choice = choose(points, 98, max_latency_p99_s=0.010)
    assert choice.best["row_id"] == "2:1" and [r["row_id"] for r in choice.runners_up] == ["1:1"]
    text = " | ".join(choice.reasons)
    assert "at offered 100 req/s" in text and "3 ± 0.5 mJ (95% CI, measured-counter)" in text
    assert "latency p99 9 ms within the 10 ms bound" in text
    assert "idle share 50%" in text and "not distinguishable" not in text
    assert choose(points, 50).best["row_id"] == "1:0"


def test_saturated_point_is_rejected():
    points = [point(1, 0, 100, 1.0, 5, saturated=True), point(2, 0, 100, 3.0, 5, max_batch=8)]
    choice = choose(points, 100)
    assert choice.best["run_id"] == 2
    ((row, why),) = choice.rejected
    assert row["run_id"] == 1 and why.startswith("saturated at 100 req/s")


def test_latency_bound_rejects_and_the_recipe_bound_applies_when_none_is_given():
    points = [point(1, 0, 100, 1.0, 30, bound_ms=25), point(2, 0, 100, 3.0, 12, max_batch=8,
                                                           bound_ms=25)]
    tight = choose(points, 100, max_latency_p99_s=0.010)
    assert tight.best is None
    assert {why for _, why in tight.rejected} == {
        "latency p99 30 ms at 100 req/s above the 10 ms bound",
        "latency p99 12 ms at 100 req/s above the 10 ms bound"}
    recipe = choose(points, 100)
    assert recipe.best["run_id"] == 2
    assert recipe.rejected[0][1].endswith("above the 25 ms bound (the recipe's)")
    assert choose(points, 100, max_latency_p99_s=0.040).best["run_id"] == 1


def test_max_rate_under_the_bound_below_the_asked_rate_rejects():
    points = [point(1, 0, 100, 1.0, 9, bound_ms=10, max_rate=95),
              point(2, 0, 100, 3.0, 9, max_batch=8, bound_ms=10, max_rate=400)]
    choice = choose(points, 100)
    assert choice.best["run_id"] == 2
    assert "only up to 95 req/s (rate search), below 100" in choice.rejected[0][1]
    # a looser bound than the search held to: its max rate no longer decides
    assert choose(points, 100, max_latency_p99_s=0.050).best["run_id"] == 1


def test_measured_before_estimated():
    points = [point(1, 0, 100, 1.0, 5, method="estimated"), point(2, 0, 100, 4.0, 5, ci_mj=None,
                                                                  max_batch=8)]
    choice = choose(points, 100)
    assert choice.best["run_id"] == 2 and choice.runners_up[0]["run_id"] == 1
    assert "one window, measured-counter" in choice.reasons[1]
    only_estimated = choose([points[0]], 100)
    assert any("no measured energy figure qualified" in r for r in only_estimated.reasons)


def test_overlapping_intervals_are_not_distinguishable():
    points = [point(1, 0, 100, 3.0, 5, ci_mj=0.4), point(2, 0, 100, 3.5, 5, ci_mj=0.2,
                                                         max_batch=4),
              point(3, 0, 100, 5.0, 5, ci_mj=0.1, max_batch=8)]
    choice = choose(points, 100)
    assert choice.best["run_id"] == 1 and choice.indistinguishable == {"2:0"}
    assert any(r.startswith("not distinguishable in energy from ort int8 mb4 wait2ms")
               for r in choice.reasons)


def test_quality_floor_non_server_and_missing_energy_are_rejected():
    rows = [closed(1, "torch", "fp32", 0.98), closed(2, quality=0.90), closed(3), closed(4)]
    points = [point(2, 0, 100, 1.0, 5, quality=0.90),
              point(3, 0, None, 1.0, 5, scenario="single-stream"),
              point(4, 0, 100, None, 5, method="unavailable")]
    choice = choose(points, 100, closed_rows=rows, max_quality_drop=0.01)
    assert choice.best is None
    reasons = [why for _, why in choice.rejected]
    assert reasons[0] == "top1 0.9 beyond the allowed floor 0.97"
    assert reasons[1].startswith("single-stream scenario sets its own pace")
    assert reasons[2] == "no energy per request figure at 100 req/s (energy unavailable)"


def test_rate_constraints_are_checked():
    with pytest.raises(ValueError, match="energy per request"):
        Constraints(objective="latency", rate_per_s=10)


# -- through the CLI, on rows a fake store loader hands it --------------------------------------

SERVING = [point(1, 0, 50, 4.0, 5), point(1, 1, 100, 6.0, 8, saturated=True),
           point(2, 0, 50, 9.0, 6, max_batch=8), point(2, 1, 100, 3.0, 9, max_batch=8)]


@pytest.fixture
def store(monkeypatch):
    """`recommend` reads these rows instead of a store: one closed-loop row per run."""
    data = ReportData([closed(1), closed(2, max_batch=8)], [dict(r) for r in SERVING])
    monkeypatch.setattr("optbench.report.data.load", lambda *a, **k: data)
    return data


def test_cli_recommends_at_a_rate(store, tmp_path):
    result = CliRunner().invoke(app, ["recommend", "--out", str(tmp_path), "--rate", "100",
                                      "--max-latency-p99-ms", "20"])
    assert result.exit_code == 0, result.output
    assert "m (top1), at 100 req/s" in result.stdout
    assert "best: ort int8 mb8 wait2ms (cpu)" in result.stdout
    assert "rejected: ort int8 mb1 wait2ms (cpu): saturated at 100 req/s" in result.stdout


def test_cli_exit_1_when_nothing_fits_at_the_rate(store, tmp_path):
    result = CliRunner().invoke(app, ["recommend", "--out", str(tmp_path), "--rate", "70"])
    assert result.exit_code == 1
    assert "nothing satisfies the constraints" in result.stdout
    assert "measured: 50, 100 req/s" in result.stdout


def test_cli_rate_without_serving_runs_is_exit_1(monkeypatch, tmp_path):
    monkeypatch.setattr("optbench.report.data.load",
                        lambda *a, **k: ReportData([closed(1)], []))
    result = CliRunner().invoke(app, ["recommend", "--out", str(tmp_path), "--rate", "10"])
    assert result.exit_code == 1 and "no serving runs in the store" in result.stderr


@pytest.mark.parametrize("flags, named", [
    (["--rate", "0"], "--rate"), (["--rate", "-5"], "--rate"),
    (["--max-latency-p99-ms", "0"], "--max-latency-p99-ms"),
    (["--rate", "10", "--max-latency-p99-ms", "-1"], "--max-latency-p99-ms"),
    (["--rate", "10", "--objective", "latency"], "energy per request")])
@pytest.mark.parametrize("command", ["recommend", "report"])
def test_cli_bad_rate_or_bound_is_one_line_exit_2(command, flags, named, tmp_path):
    result = CliRunner().invoke(app, [command, "--out", str(tmp_path), *flags])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert named in result.output and "Traceback" not in result.output


def test_views_group_serving_rows_with_their_closed_loop_group(store):
    groups = analyse(store.rows)
    views = serving_views(groups, store.serving, Constraints(rate_per_s=100))
    (view,) = views.values()
    assert [c.run_id for c in view.configurations] == [1, 2]
    assert view.choice is not None and view.choice.best["row_id"] == "2:1"
    assert serving_views(groups, [], Constraints()) == {}
