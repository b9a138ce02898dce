"""Where a sweep runs, as recipes and flags give it: checked before anything is written,
and without a cluster (tests/integration/test_ray_fleet.py runs one)."""

import socket

import pytest
import yaml
from typer.testing import CliRunner

from optbench.cli import app
from optbench.errors import RecipeError
from optbench.run.parse import parse_recipe

BASE = {"name": "f", "model": "fake-mlp", "backends": ["fake"]}


def test_a_recipe_places_every_configuration_on_every_machine_kind():
    r = parse_recipe({**BASE, "executor": {"kind": "ray", "address": "127.0.0.2:6380"},
                      "machines": ["h100", "cpu"]})
    assert r.executor.kind == "ray" and r.executor.address == "127.0.0.2:6380"
    assert r.machines == ("h100", "cpu")
    again = parse_recipe(yaml.safe_load(r.to_yaml()))
    assert (again.executor, again.machines) == (r.executor, r.machines)
    assert parse_recipe({**BASE, "executor": "ray"}).executor.address is None
    assert parse_recipe(BASE).executor.kind == "local" and parse_recipe(BASE).machines == ()


@pytest.mark.parametrize("entries, message", [
    ({"executor": {"kind": "slurm"}}, "unknown executor 'slurm'"),
    ({"executor": {"kind": "ray", "port": 1}}, "port"),
    ({"executor": {"kind": "local", "address": "h:1"}}, "takes no address"),
    ({"machines": ["a"]}, "give executor: {kind: ray"),
    ({"executor": "ray", "machines": ["a", "a"]}, "listed twice"),
    ({"executor": "ray", "machines": ["a b"]}, "invalid machine kind"),
    ({"executor": "ray", "machines": []}, "give a list"),
])
def test_bad_placement_in_a_recipe_is_a_recipe_error(entries, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe({**BASE, **entries})


def test_placement_keeps_machine_kinds_out_of_the_key_and_in_the_label():
    from dataclasses import replace

    spec = parse_recipe(BASE).expand("cpu")[0]
    placed = replace(spec, machine="h100")
    assert placed.key() == spec.key()  # the same configuration, once per machine kind
    assert placed.label().endswith("@h100") and "@" not in spec.label()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


@pytest.mark.parametrize("flags, message", [
    (["--executor", "rai"], "--executor: unknown executor 'rai'"),
    (["--executor", "local", "--machines", "a"], "--machines needs --executor ray"),
    (["--machines", "a,,b"], "--machines: empty item"),
    (["--machines", "a b"], "--machines: invalid machine kind"),
    (["--ray-address", ""], "--ray-address must not be empty"),
    (["--ray-address", "127.0.0.2:notaport"], "is not HOST:PORT"),
    (["--ray-address", "127.0.0.2:{port}"], "cannot reach the Ray cluster at 127.0.0.2:"),
])
def test_bad_placement_flags_are_one_line_exit_2_and_nothing_is_written(flags, message,
                                                                        tmp_path):
    out = tmp_path / "out"
    flags = [f.format(port=closed_port()) for f in flags]
    for command in (["compare", "--model", "fake-mlp", "--backends", "fake"],
                    ["run", "recipes/quickstart.yaml"]):
        result = CliRunner().invoke(app, [*command, *flags, "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
        assert not out.exists()


def test_flags_override_the_recipes_placement(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({**BASE, "executor": {"kind": "ray", "address": "h:1"},
                                      "machines": ["a"]}))
    shown = CliRunner().invoke(app, ["run", str(recipe), "--machines", "b,c",
                                     "--print-recipe"])
    data = yaml.safe_load(shown.output)
    assert data["executor"] == {"kind": "ray", "address": "h:1"}
    assert data["machines"] == ["b", "c"]
    local = yaml.safe_load(CliRunner().invoke(app, ["run", str(recipe), "--executor", "local",
                                                    "--print-recipe"]).output)
    assert "executor" not in local and "machines" not in local
