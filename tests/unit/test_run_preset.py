"""`optbench run RECIPE --preset NAME` replaces the recipe's preset; a bad name is one line,
exit 2, and nothing is written."""

import yaml
from typer.testing import CliRunner

from optbench.cli import app
from optbench.run.parse import load_recipe

runner = CliRunner()


def recipe_file(tmp_path, measure="measure: {preset: standard, timeout_s: 900}\n"):
    path = tmp_path / "r.yaml"
    path.write_text("model: fake-mlp\nbackends: [fake]\n" + measure)
    return path


def printed(result):
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


def test_run_preset_overrides_the_recipes_and_keeps_the_rest(tmp_path):
    path = recipe_file(tmp_path)
    measure = printed(runner.invoke(app, ["run", str(path), "--preset", "rigorous",
                                          "--print-recipe"]))["measure"]
    assert measure["preset"] == "rigorous" and measure["timeout_s"] == 900
    kept = printed(runner.invoke(app, ["run", str(path), "--print-recipe"]))["measure"]
    assert kept["preset"] == "standard"


def test_run_preset_on_a_recipe_without_a_measure_section(tmp_path):
    path = recipe_file(tmp_path, measure="")
    measure = printed(runner.invoke(app, ["run", str(path), "--preset", "standard",
                                          "--print-recipe"]))["measure"]
    assert measure["preset"] == "standard"
    assert load_recipe(path).measure.preset == "quick"  # the default, without the flag
    assert load_recipe(path, preset="rigorous").measure.preset == "rigorous"


def test_the_flag_replaces_a_bad_preset_in_the_file(tmp_path):
    path = recipe_file(tmp_path, measure="measure: {preset: quik}\n")
    bad = runner.invoke(app, ["run", str(path), "--print-recipe"])
    assert bad.exit_code == 2 and "recipe.measure.preset" in bad.stderr
    assert load_recipe(path, preset="quick").measure.preset == "quick"


def test_run_executes_the_recipe_with_the_flags_preset(tmp_path, monkeypatch):
    import optbench.cli.run as cli_run

    seen = []
    monkeypatch.setattr(cli_run, "_execute", lambda recipe, *rest: seen.append(recipe))
    result = runner.invoke(app, ["run", str(recipe_file(tmp_path)), "--preset", "quick",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    (recipe,) = seen
    assert recipe.measure.preset == "quick"
    assert {spec.measure.preset for spec in recipe.expand("cpu")} == {"quick"}


def test_bad_preset_on_run_is_one_line_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "o"
    result = runner.invoke(app, ["run", str(recipe_file(tmp_path)), "--preset", "quik",
                                 "--out", str(out)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--preset: unknown preset 'quik'" in result.stderr
    assert "did you mean 'quick'" in result.stderr and "rigorous" in result.stderr
    assert not out.exists()


def test_bad_preset_is_refused_before_the_recipe_is_read(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "missing.yaml"), "--preset", "quik",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--preset" in result.stderr
    assert not (tmp_path / "o").exists()


def test_bad_preset_on_compare_names_the_flag(tmp_path):
    out = tmp_path / "o"
    result = runner.invoke(app, ["compare", "--model", "fake-mlp", "--backends", "fake",
                                 "--preset", "standart", "--out", str(out)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--preset: unknown preset 'standart'" in result.stderr
    assert "did you mean 'standard'" in result.stderr
    assert not out.exists()


def test_run_help_lists_the_preset_flag():
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0 and "--preset" in result.output
