"""The fleet report on hand-built rows: cost per million, each machine's choice, what the
machines side by side say, the same at an offered rate, and the inputs that price them."""

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.cli.flags import machine_prices, placement
from optbench.errors import RecipeError, UsageError
from optbench.report.analysis import analyse
from optbench.report.fleet import add_costs, cost_text, fleet_view
from optbench.report.markdown import fleet_lines
from optbench.report.recommend import Constraints
from optbench.report.serving import serving_views
from optbench.run.parse import parse_recipe


def row(run_id, machine, backend, energy_mj, thr, quality=0.98, ci_mj=0.1, price=None,
        p99_ms=10.0, kwh=0.25):
    return {"run_id": run_id, "status": "ok", "model": "m", "quality_metric": "top1",
            "quality_higher_is_better": True, "sample_unit": "image", "backend": backend,
            "variant": "fp32", "batch_size": 1, "device": "cpu", "quality_value": quality,
            "energy_per_sample_j": energy_mj / 1e3, "energy_per_sample_ci95_j": ci_mj / 1e3,
            "latency_p50_s": p99_ms / 2e3, "latency_p99_s": p99_ms / 1e3,
            "throughput_per_s": thr, "throughput_ci95_per_s": thr * 0.01,
            "energy_method": "measured-counter", "machine": machine, "env_label": machine,
            "price_per_hour": price, "price_per_kwh": kwh, "pue": 1.0}


def fleet_rows():
    # gpu: little energy per image and fast, but its hour is dear; cpu: the reverse
    return [row(1, "gpu", "torch", 2.0, 1000.0), row(2, "gpu", "trt", 1.0, 4000.0),
            row(3, "cpu", "torch", 40.0, 50.0), row(4, "cpu", "ort", 20.0, 100.0)]


def priced(rows, prices):
    add_costs(rows, [], prices)
    return rows


def test_cost_per_million_is_electricity_plus_machine_time():
    (r,) = priced([row(1, "gpu", "trt", 1.0, 4000.0)], {"gpu": 3.6})
    # 1 mJ x 1e6 = 1000 J = 1/3600 kWh at 0.25 -> 6.94e-5; 3.6/h over 4000/s x 1e6 -> 0.25
    assert r["cost_energy_per_million"] == pytest.approx(1000 / 3.6e6 * 0.25)
    assert r["cost_machine_per_million"] == pytest.approx(0.25)
    assert r["cost_per_million"] == pytest.approx(0.25 + 1000 / 3.6e6 * 0.25)
    assert r["cost_per_million_low"] < r["cost_per_million"] < r["cost_per_million_high"]
    assert cost_text(r).startswith("0.2501 (6.94e-05 electricity + 0.25 machine)")


def test_an_unpriced_part_leaves_the_cost_empty_and_says_which():
    (no_hour,) = priced([row(1, "gpu", "trt", 1.0, 4000.0)], {})
    assert no_hour["cost_per_million"] is None and no_hour["cost_energy_per_million"]
    assert cost_text(no_hour) == "- (no its price_per_hour)"
    (neither,) = priced([row(1, "gpu", "trt", 1.0, 4000.0, kwh=None)], {})
    assert cost_text(neither) == "- (no --price-per-kwh and no its price_per_hour)"


def test_the_report_price_overrides_the_recipe_price_and_a_host_name_prices_a_local_run():
    recipe_priced, local = row(1, "gpu", "trt", 1.0, 4000.0, price=9.0), row(
        2, None, "ort", 20.0, 100.0)
    local["hostname"] = "box1"
    add_costs([recipe_priced, local], [], {"box1": 0.36})
    assert recipe_priced["price_per_hour"] == 9.0  # the recipe's, nothing overrides it
    assert local["price_per_hour"] == 0.36
    assert local["cost_machine_per_million"] == pytest.approx(0.36 * 1e6 / 3600 / 100)
    other = row(3, "gpu", "trt", 1.0, 4000.0, price=9.0)
    add_costs([other], [], {"gpu": 1.0})
    assert other["price_per_hour"] == 1.0


def test_each_machine_gets_its_own_choice_and_the_findings_compare_them():
    (group,) = analyse(priced(fleet_rows(), {"gpu": 36.0, "cpu": 0.36}))
    view = fleet_view(group, Constraints())
    assert [m.machine for m in view.machines] == ["gpu", "cpu"]
    assert [m.best["backend"] for m in view.machines] == ["trt", "ort"]  # least energy each
    energy, latency, throughput, cost = view.findings
    assert energy.startswith("least energy per image: gpu (trt fp32 bs1 @ gpu, 1 mJ); "
                             "then cpu 20 mJ (20x)")
    assert throughput.startswith("highest throughput: gpu") and "(40x)" in throughput
    # gpu: 36/h over 4000/s = 2.5 per million; cpu: 0.36/h over 100/s = 1.0 per million
    assert cost.startswith("cheapest per million images: cpu with ort fp32 bs1 @ cpu, 1.001")
    assert "then gpu 2.5" in cost


def test_unpriced_machines_are_named_in_the_cost_finding():
    rows = fleet_rows()
    add_costs(rows, [], {"gpu": 36.0})
    view = fleet_view(analyse(rows)[0], Constraints())
    assert view.findings[-1].startswith("cost per million images: not priced; give a price "
                                        "per hour for cpu")


def test_one_machine_has_no_fleet_view_and_a_machine_with_nothing_qualifying_says_why():
    rows = priced([r for r in fleet_rows() if r["machine"] == "gpu"], {})
    assert fleet_view(analyse(rows)[0], Constraints()) is None
    rows = fleet_rows()
    for r in rows:
        if r["machine"] == "cpu":
            r["latency_p99_s"] = 0.5
    view = fleet_view(analyse(priced(rows, {}))[0], Constraints(max_latency_p99_s=0.1))
    cpu = view.machines[1]
    assert cpu.best is None and "latency p99 500 ms above 100 ms" in cpu.why_none
    text = "\n".join(fleet_lines(view, []))
    assert "| cpu | - | none meets the constraints" in text


def point(run_id, n, rate, energy_mj, saturated=False):
    base = {r["run_id"]: r for r in fleet_rows()}[run_id]
    return {**base, "row_id": f"{run_id}:{n}", "point": n, "scenario": "server",
            "max_batch": 1, "max_wait_ms": 2.0, "cache_size": 0, "latency_bound_ms": None,
            "offered_rate_per_s": rate, "achieved_rate_per_s": rate, "latency_p99_s": 0.01,
            "saturated": saturated, "search_probe": False, "max_rate_under_bound_per_s": None,
            "energy_per_request_j": energy_mj / 1e3, "energy_per_request_ci95_j": 1e-4}


def test_at_an_offered_rate_the_machine_is_paid_for_whether_busy_or_not():
    rows = fleet_rows()
    points = [point(2, 0, 50, 30.0), point(4, 0, 50, 60.0), point(3, 0, 50, 90.0, True)]
    add_costs(rows, points, {"gpu": 36.0, "cpu": 0.36})
    gpu, cpu, saturated = points
    assert gpu["cost_machine_per_million"] == pytest.approx(36.0 * 1e6 / 3600 / 50)  # 200
    assert gpu["cost_energy_per_million"] == pytest.approx(30.0 * 1e3 / 3.6e6 * 0.25)
    assert saturated["cost_per_million"] is None
    assert cost_text(saturated) == "- (saturated at this rate)"
    groups = analyse(rows)
    c = Constraints(rate_per_s=50)
    view = fleet_view(groups[0], c, serving_views(groups, points, c)["m|top1"])
    assert [m.choice.best["backend"] for m in view.at_rate] == ["trt", "ort"]
    least, cheapest = view.rate_findings
    assert least.startswith("least energy per request at 50 req/s: gpu")
    assert cheapest.startswith("cheapest per million requests at 50 req/s: cpu")
    text = "\n".join(fleet_lines(view, []))
    assert "| machine | price/h | chosen at 50 req/s |" in text


def test_recipe_machines_take_prices_and_print_them_back():
    r = parse_recipe({"name": "f", "model": "fake-mlp", "backends": ["fake"],
                      "executor": {"kind": "ray"},
                      "machines": [{"name": "h100", "price_per_hour": 4.1}, "cpu"]})
    assert r.machines == ("h100", "cpu") and r.machine_prices == (("h100", 4.1),)
    assert "- name: h100\n  price_per_hour: 4.1\n- cpu" in r.to_yaml()
    for bad in (-1, "cheap", True, float("nan")):
        with pytest.raises(RecipeError, match=r"recipe.machines\[0\].price_per_hour"):
            parse_recipe({"name": "f", "model": "fake-mlp", "backends": ["fake"],
                          "executor": "ray", "machines": [{"name": "h100",
                                                           "price_per_hour": bad}]})
    with pytest.raises(RecipeError, match="unknown key"):
        parse_recipe({"name": "f", "model": "fake-mlp", "backends": ["fake"],
                      "executor": "ray", "machines": [{"name": "h100", "cost": 1}]})


def test_machines_flag_keeps_the_recipe_prices_of_the_kinds_it_names():
    recipe = {"machines": [{"name": "h100", "price_per_hour": 4.1}, "cpu"]}
    assert placement(None, None, "cpu,h100", recipe)["machines"] == [
        "cpu", {"name": "h100", "price_per_hour": 4.1}]


def test_price_per_hour_flag():
    assert machine_prices("h100=4.1, cpu=0") == {"h100": 4.1, "cpu": 0.0}
    assert machine_prices(None) == {}
    for bad in ("h100", "h100=-1", "=3", "h100=x", "h100=nan"):
        with pytest.raises(UsageError, match="KIND=PRICE"):
            machine_prices(bad)
    with pytest.raises(UsageError, match="priced twice"):
        machine_prices("a=1,a=2")


def test_a_bad_price_per_hour_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "none"),
                                      "--price-per-hour", "h100=cheap"])
    assert result.exit_code == 2
    assert "--price-per-hour takes KIND=PRICE" in result.output
    assert not (tmp_path / "none").exists()


def test_a_cost_range_without_a_top_overlaps_any_cost_above_its_bottom():
    from optbench.report.fleet import costs_overlap

    wide = row(1, "a", "ort", 1.0, 100.0)
    wide["throughput_ci95_per_s"] = 150.0  # the throughput's interval reaches zero
    near, far = row(2, "b", "ort", 1.0, 200.0), row(3, "b", "ort", 1.0, 400.0)
    near["throughput_ci95_per_s"] = far["throughput_ci95_per_s"] = 1.0
    add_costs([wide, near, far], [], {"a": 3.6, "b": 3.6})
    # wide: 10 per million, at least 3.6e6 / 3600 / 250 = 4, no top; near 5, far 2.5
    assert wide["cost_per_million_high"] is None
    assert wide["cost_per_million_low"] == pytest.approx(4.0, rel=1e-3)
    assert costs_overlap(wide, near) and costs_overlap(near, wide)
    assert not costs_overlap(wide, far)
