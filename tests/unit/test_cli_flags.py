"""The CLI's shared option groups and its one error boundary."""

import pytest
from typer.testing import CliRunner

from optbench.cli import app


@pytest.mark.parametrize("command", ["report", "recommend", "export"])
def test_shared_flags_are_validated_once_for_every_command(command, tmp_path):
    result = CliRunner().invoke(app, [command, "--out", str(tmp_path), "--pue", "0.5"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "--pue" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["compare", "run", "report", "recommend", "export"])
def test_every_command_takes_the_carbon_and_price_flags(command):
    text = CliRunner().invoke(app, [command, "--help"], terminal_width=200).output
    for flag in ("--region", "--carbon-intensity", "--pue", "--price-per-kwh"):
        assert flag in text, (command, flag)
    assert ("--mlflow" in text) == (command in ("compare", "run", "report"))
    # the quality gates and objective shape every command's report and recommendation
    assert ("--objective" in text) == (command != "export")
    assert ("--min-quality-ratio" in text) == (command != "export")


def test_an_error_below_the_cli_is_one_line_and_its_exit_code(tmp_path):
    missing = CliRunner().invoke(app, ["export", "--out", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1
    assert missing.output.count("\n") == 1 and missing.output.startswith("error: no results")
    bad_recipe = tmp_path / "r.yaml"
    bad_recipe.write_text("name: x\nmodel: mnist-cnn\nbackends: [torch]\nmeasure: {preset: quik}\n")
    result = CliRunner().invoke(app, ["run", str(bad_recipe), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "did you mean 'quick'" in result.output
    assert not (tmp_path / "o").exists()
