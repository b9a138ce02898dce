"""Serving scenarios from recipes and flags: parsing, the swept batching policies and cache
sizes, stable spec keys, and bad input refused in one line (exit 2, nothing written)."""

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.errors import RecipeError
from optbench.run.parse import parse_recipe
from optbench.run.recipe import RunSpec

runner = CliRunner()


def recipe(**scenario):
    return {"name": "s", "model": "fake-mlp", "backends": ["fake"], "scenario": scenario}


def test_batching_and_cache_are_swept_as_configurations():
    parsed = parse_recipe(recipe(kind="server", rates_per_s=[20, 50], latency_bound_ms=50,
                                 batching={"max_batch": [1, 8], "max_wait_ms": 2},
                                 cache={"size": 64, "repeat_skew": 1.0}))
    specs = parsed.expand("cpu")
    policies = {(s.batch_size, s.scenario.max_wait_ms, s.scenario.cache_size) for s in specs}
    assert policies == {(1, 2.0, 0), (1, 2.0, 64), (8, 2.0, 0), (8, 2.0, 64)}
    assert all(s.scenario.rates_per_s == (20.0, 50.0) for s in specs)
    assert all(RunSpec.from_dict(s.to_dict()) == s for s in specs)
    assert len({s.key() for s in specs}) == 4
    assert "server mb8 wait2ms cache64" in specs[-1].label()


def test_closed_loop_keys_do_not_change_with_the_scenario_field():
    spec = parse_recipe({"name": "c", "model": "fake-mlp", "backends": ["fake"]}).expand("cpu")[0]
    assert "scenario" not in {k for k in spec.to_dict() if spec.to_dict()[k] is not None}
    assert spec.key() == RunSpec.from_dict(spec.to_dict()).key()


def test_rates_default_to_a_sweep_and_policies_can_be_listed():
    parsed = parse_recipe(recipe(batching=[{"max_batch": 1}, {"max_batch": 4, "max_wait_ms": 1}]))
    assert parsed.scenario.sweep and parsed.scenario.rates_per_s == ()
    assert parsed.batching == ((1, 0.0), (4, 1.0))
    assert parse_recipe(recipe(kind="offline")).scenario.kind == "offline"


def test_the_recipe_round_trips_through_print_recipe():
    import yaml

    parsed = parse_recipe(recipe(kind="server", rates_per_s="sweep", latency_bound_ms=40,
                                 batching={"max_batch": [1, 4]}))
    again = parse_recipe({**yaml.safe_load(parsed.to_yaml())})
    assert again.expand("cpu") == parsed.expand("cpu")


@pytest.mark.parametrize("scenario, where", [
    ({"kind": "sever"}, "recipe.scenario.kind"),
    ({"rates_per_s": [0]}, "recipe.scenario.rates_per_s"),
    ({"rates_per_s": [10, 10]}, "recipe.scenario.rates_per_s"),
    ({"latency_bound_ms": -1}, "recipe.scenario.latency_bound_ms"),
    ({"batching": {"max_batch": 0}}, "recipe.scenario.batching.max_batch"),
    ({"batching": {"max_wait_ms": -2}}, "recipe.scenario.batching.max_wait_ms"),
    ({"duration_s": 0}, "recipe.scenario.duration_s"),
    ({"kind": "offline", "rates_per_s": [5]}, "recipe.scenario.rates_per_s"),
    ({"cache": {"size": 16}}, "recipe.scenario.cache.repeat_skew"),
    ({"batching": {"max_bach": 4}}, "recipe.scenario.batching.max_bach"),
])
def test_bad_scenarios_name_the_path(scenario, where):
    with pytest.raises(RecipeError) as err:
        parse_recipe(recipe(**scenario))
    assert where in str(err.value)


def test_batch_sizes_and_a_scenario_do_not_mix():
    with pytest.raises(RecipeError, match="max_batch"):
        parse_recipe({**recipe(), "sweep": {"batch_sizes": [4]}})


@pytest.mark.parametrize("flags, message", [
    (["--scenario", "streaming"], "unknown scenario 'streaming'"),
    (["--scenario", "server", "--rates", "0"], "must be positive"),
    (["--scenario", "server", "--rates", "20,-1"], "must be positive"),
    (["--scenario", "server", "--latency-bound-ms", "0"], "must be positive"),
    (["--scenario", "server", "--max-batch", "0"], "must be positive"),
    (["--rates", "20"], "--rates needs --scenario"),
    (["--max-batch", "8"], "--max-batch needs --scenario"),
    (["--scenario", "server", "--batch-sizes", "4"], "use --max-batch"),
])
def test_bad_flags_exit_2_in_one_line_and_write_nothing(tmp_path, flags, message):
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", "-m", "fake-mlp", "-b", "fake", *flags,
                                 "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_flags_build_the_same_recipe_as_the_yaml():
    result = runner.invoke(app, ["compare", "-m", "fake-mlp", "-b", "fake", "--scenario",
                                 "server", "--rates", "20,50", "--latency-bound-ms", "50",
                                 "--max-batch", "1,8", "--max-wait-ms", "2", "--scenario-s",
                                 "5", "--print-recipe"])
    assert result.exit_code == 0, result.output
    import yaml

    printed = yaml.safe_load(result.stdout)
    assert printed["scenario"]["rates_per_s"] == [20.0, 50.0]
    assert printed["scenario"]["batching"] == [{"max_batch": 1, "max_wait_ms": 2.0},
                                               {"max_batch": 8, "max_wait_ms": 2.0}]
    assert printed["scenario"]["duration_s"] == 5.0
