"""optbench search: the space from a recipe, the quality bound, resume, failed trials, the
samplers, and hypervolume. Rows are replayed (search.rows.Replay): nothing is measured."""

import math
import random

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.errors import UsageError
from optbench.report.pareto import hypervolume
from optbench.run.parse import parse_recipe
from optbench.search.objectives import parse_objectives
from optbench.search.rows import Replay
from optbench.search.space import SearchSpace
from optbench.search.study import Search, SearchSettings, journal_path, open_study
from optbench.search.summary import summarize, to_markdown

RECIPE = {
    "name": "space", "model": "fake-mlp", "backends": ["fake", "ort"],
    "variants": {"fp32": [], "int8": ["int8"], "prune": [{"prune": {"structured": True}}]},
    "axes": {"prune.sparsity": [0.3, 0.6], "fake.latency_s": [0.0, 0.001]},
    "sweep": {"batch_sizes": [1, 8]},
    "measure": {"preset": "smoke"},
}


def recipe(**changes):
    return parse_recipe({**RECIPE, **changes})


def space_of(r):
    return SearchSpace.of(r, r.expand("cpu"))


def rows_for(space, seed=0, int8_drop=0.05):
    """A plausible grid: int8 cheapest but over a 0.01 quality bound, pruning cheaper and
    slower the sparser, batches cheaper per sample and slower at p99."""
    rng = random.Random(seed)
    rows = {}
    for spec in space.specs:
        steps = {s.name: dict(s.options) for s in spec.variant.steps}
        energy = 1.0 * (0.3 if "int8" in steps else 1.0) * (1.0 / spec.batch_size ** 0.5)
        latency = 0.001 * spec.batch_size ** 0.7 * (1.3 if spec.backend.name == "ort" else 1)
        quality = 0.97 - (int8_drop if "int8" in steps else 0.0)
        if "prune" in steps:
            energy *= 1 - steps["prune"]["sparsity"] / 2
            latency *= 1 + steps["prune"]["sparsity"]
            quality -= 0.02 * steps["prune"]["sparsity"]
        latency += dict(spec.backend.options).get("latency_s", 0.0)
        rows[spec.key()] = {"status": "ok", "energy_per_sample_j": energy * rng.uniform(0.95, 1.05),
                            "latency_p99_s": latency, "quality_value": quality,
                            "quality_metric": "top1", "quality_higher_is_better": True,
                            "quality_inputs": "mnist|1000", "bench_energy_j": 10.0,
                            "bench_wall_s": 5.0, "model": "fake-mlp",
                            "backend": spec.backend.label(), "variant": spec.variant.name,
                            "batch_size": spec.batch_size}
    return rows


def settings(**kw):
    base = {"trials": 8, "objectives": parse_objectives("energy,latency_p99")}
    return SearchSettings(**{**base, **kw})


def search(r, rows, out=None, resume=False, evaluate=None, **kw):
    space = space_of(r)
    s = settings(**kw)
    study = open_study(out, r, space, s, resume)
    return Search(r, space, s, evaluate or Replay(rows), study)


def test_the_space_is_the_grid_with_one_dimension_per_axis():
    r = recipe()
    space = space_of(r)
    # 3 fake/ort backends (fake at two latencies), 4 variants (prune at two sparsities), 2 batches
    assert len(space) == 3 * 4 * 2 == len(r.expand("cpu"))
    assert space.dimensions == {"backend": ["fake", "ort"], "fake.latency_s": [0.0, 0.001],
                                "variant": ["fp32", "int8", "prune"], "batch_size": [1, 8],
                                "prune.sparsity": [0.3, 0.6]}
    # an option's dimension only where its backend or step is
    ort_prune = next(p for p in space.params if p["backend"] == "ort" and p["variant"] == "prune")
    assert "fake.latency_s" not in ort_prune and "prune.sparsity" in ort_prune
    names = {s.variant.name for s in space.specs}
    assert names == {"fp32", "int8", "prune[sparsity=0.3]", "prune[sparsity=0.6]"}
    for spec, params in zip(space.specs, space.params):
        assert space.spec_of(params) == spec


def test_axes_give_the_same_configurations_as_variants_written_out():
    explicit = parse_recipe({**RECIPE, "axes": None, "backends": [
        {"fake": {"latency_s": 0.0}}, {"fake": {"latency_s": 0.001}}, "ort"], "variants": {
        "fp32": [], "int8": ["int8"],
        "prune[sparsity=0.3]": [{"prune": {"structured": True, "sparsity": 0.3}}],
        "prune[sparsity=0.6]": [{"prune": {"structured": True, "sparsity": 0.6}}]}})
    assert {s.key() for s in recipe().expand("cpu")} == {s.key() for s in explicit.expand("cpu")}


@pytest.mark.parametrize("axes, message", [
    ({"quantize.bits": [4]}, "'quantize' is no backend or transform step of this recipe"),
    ({"prune.spars": [0.3]}, "prune has no option 'spars'"),
    ({"prune.sparsity": []}, "expected a non-empty list"),
    ({"prune.sparsity": [0.3, 0.3]}, "listed twice"),
    ({"prune": [0.3]}, "expected NAME.OPTION"),
    ({"prune.sparsity": [1.5]}, "sparsity"),
])
def test_a_bad_axis_is_one_line_exit_2_and_writes_nothing(tmp_path, axes, message):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, "axes": axes}))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["search", str(path), "--trials", "2", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "recipe.axes" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--objectives", "energy,speed"], "unknown objective 'speed'"),
    (["--sampler", "cmaes"], "unknown sampler 'cmaes'"),
    (["--trials", "0"], "--trials must be at least 1"),
    (["--energy-budget-j", "-1"], "--energy-budget-j must be more than 0"),
])
def test_bad_search_flags_are_exit_2(tmp_path, flags, message):
    import yaml

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    args = ["search", str(path), "--trials", "2", "--out", str(tmp_path / "o"), *flags]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_over_the_quality_bound_is_never_on_the_front():
    r = recipe()
    rows = rows_for(space_of(r))
    engine = search(r, rows, trials=24, sampler="grid", max_quality_drop=0.01)
    state = engine.run()
    assert len(state.counted) == 24 and state.counted[0].baseline
    summary = summarize(r.name, state, engine.settings, engine.bound, 24, rows)
    assert summary.front and all("int8" not in f.label for f in summary.front)
    # int8 would dominate without the bound
    assert any(t.status == "infeasible" and "int8" in t.label for t in state.counted)
    free = search(r, rows, trials=24, sampler="grid").run()
    free_summary = summarize(r.name, free, settings(trials=24), engine.bound.__class__(None),
                             24, rows)
    assert any("int8" in f.label for f in free_summary.front)
    assert summary.grid is not None and summary.grid.share(summary.hypervolume) == 1.0
    assert "int8" not in " ".join(summary.grid.front)
    text = to_markdown(summary)
    assert "## Front found" in text and "outside the quality bound" in text


def test_a_failed_trial_is_a_failed_trial_not_a_crash():
    r = recipe()
    rows = rows_for(space_of(r))
    broken = {k: {**v, "status": "failed", "reason": "RuntimeError: boom"}
              for k, v in rows.items() if "ort" in v["backend"]}
    state = search(r, {**rows, **broken}, trials=24, sampler="grid").run()
    failed = [t for t in state.counted if t.status == "failed"]
    assert len(failed) == 8 and all(t.reason == "failed: RuntimeError: boom" for t in failed)
    assert len(state.counted) == 24  # the grid, every failure counted as a trial


def test_a_row_that_cannot_be_had_and_missing_energy_fail_the_trial():
    r = recipe()
    rows = rows_for(space_of(r))
    first = next(iter(rows))
    rows[first] = {**rows[first], "energy_per_sample_j": None, "energy_reason": "no meter"}
    state = search(r, {k: v for k, v in list(rows.items())[:-1]}, trials=24,
                   sampler="grid").run()
    reasons = {t.reason for t in state.counted if t.status == "failed"}
    assert "energy not measured (no meter)" in reasons
    assert "no result could be read back from the store" in reasons


def test_resume_continues_an_interrupted_study(tmp_path):
    r = recipe()
    rows = rows_for(space_of(r))
    calls = []

    def interrupted(spec):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(spec.key())
        return rows[spec.key()]

    with pytest.raises(KeyboardInterrupt):
        search(r, rows, tmp_path, evaluate=interrupted, trials=6, seed=3).run()
    assert journal_path(tmp_path).is_file()
    with pytest.raises(UsageError, match="already holds a search"):
        search(r, rows, tmp_path, trials=6)
    with pytest.raises(UsageError, match="--objectives differ"):
        search(r, rows, tmp_path, resume=True, trials=6,
               objectives=parse_objectives("energy"))

    def measure(spec):
        calls.append(spec.key())
        return rows[spec.key()]

    state = search(r, rows, tmp_path, resume=True, evaluate=measure, trials=6, seed=3).run()
    assert len(state.counted) == 6 and len(calls) == 6  # the first three not measured again
    assert len(set(calls)) == 6
    assert [t.status for t in state.records].count("interrupted") == 1
    assert state.counted[0].baseline


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random", "grid"])
def test_each_sampler_measures_distinct_configurations(sampler):
    r = recipe()
    rows = rows_for(space_of(r))
    state = search(r, rows, trials=12, sampler=sampler, seed=1,
                   max_quality_drop=0.01).run()
    keys = [t.key for t in state.counted]
    assert len(keys) == 12 == len(set(keys))
    assert state.stop_reason == "12 trials measured"
    repeats = [t for t in state.records if not t.counted]
    assert all(t.repeat_of is not None or t.status == "failed" for t in repeats)


def test_stopping_by_energy_budget_and_by_patience():
    r = recipe()
    rows = rows_for(space_of(r))
    state = search(r, rows, trials=20, energy_budget_j=35).run()
    assert len(state.counted) == 4 and "budget reached: 40 J of 35 J" in state.stop_reason
    state = search(r, rows, trials=24, sampler="grid", patience=3, seed=2).run()
    assert state.stop_reason == "the front did not grow in the last 3 trials"
    assert state.since_improvement == 3 and len(state.counted) < 24


def test_hypervolume():
    assert hypervolume([], [1, 1]) == 0.0
    assert hypervolume([[0.5, 0.5]], [1, 1]) == pytest.approx(0.25)
    # two points: their union of boxes, the dominated third adds nothing
    assert hypervolume([[0, 0.5], [0.5, 0], [0.6, 0.6]], [1, 1]) == pytest.approx(0.75)
    assert hypervolume([[2, 2]], [1, 1]) == 0.0  # past the reference
    cube = hypervolume([[0, 0, 0.5], [0.5, 0.5, 0]], [1, 1, 1])
    assert cube == pytest.approx(0.5 + 0.25 - 0.125)
    pts = [[random.Random(i).random() for _ in range(3)] for i in range(30)]
    grid = 20  # a Monte-Carlo-free check: a grid of cell centres
    inside = sum(1 for a in range(grid) for b in range(grid) for c in range(grid)
                 if any(all(p[k] <= (x + 0.5) / grid for k, x in enumerate((a, b, c)))
                        for p in pts))
    assert math.isclose(hypervolume(pts, [1, 1, 1]), inside / grid ** 3, abs_tol=0.05)


def test_models_with_their_own_backends_get_their_own_dimension():
    r = parse_recipe({"name": "two", "models": [
        {"name": "fake-mlp", "backends": ["fake"]},
        {"name": "mnist-cnn", "backends": ["torch", "ort"], "variants": ["fp32"]}],
        "variants": {"fp32": [], "int8": ["int8"]}, "measure": {"preset": "smoke"}})
    space = space_of(r)
    assert space.dimensions["model"] == ["fake-mlp", "mnist-cnn"]
    assert space.dimensions["backend@mnist-cnn"] == ["torch", "ort"]
    assert space.dimensions["variant@fake-mlp"] == ["fp32", "int8"]
    assert len(space) == 2 + 2


def test_a_serving_recipe_is_refused_with_the_reason():
    r = parse_recipe({**RECIPE, "axes": None, "sweep": None,
                      "scenario": {"kind": "server", "rates_per_s": [10]}})
    with pytest.raises(UsageError, match="closed-loop recipes"):
        space_of(r)


def test_a_failed_baseline_stops_a_bounded_search_with_the_reason():
    from optbench.errors import OptbenchError

    r = recipe()
    space = space_of(r)
    rows = rows_for(space)
    base = space.specs[0].key()
    rows[base] = {**rows[base], "status": "failed", "reason": "RuntimeError: boom"}
    with pytest.raises(OptbenchError, match="baseline .* did not measure .*boom"):
        search(r, rows, max_quality_drop=0.01).run()
    assert len(search(r, rows).run().counted) == 8  # without a bound it goes on
