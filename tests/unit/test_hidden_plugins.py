"""The test doubles (the `fake` backend, the `fake-mlp` and `tiny-llama-test` cards) resolve by
name, as the tests and the recipes their children run need, but no list a user reads names
them: `optbench ls`, `optbench env`, "known: ..." and did-you-mean in errors, help texts."""

import json

import pytest
from typer.testing import CliRunner

from optbench.backends import BACKENDS
from optbench.cli import app
from optbench.cli.inspect import KINDS, describe_kind
from optbench.errors import PluginNotFound
from optbench.meters import METERS
from optbench.run.parse import parse_recipe
from optbench.transforms import TRANSFORMS
from optbench.workloads import WORKLOADS

runner = CliRunner()
HIDDEN = ("fake", "fake-mlp", "tiny-llama-test")


def mentions_hidden(text: str) -> list[str]:
    """The hidden names `text` carries as words (not as parts of other words)."""
    import re

    return [name for name in HIDDEN if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)]


def test_hidden_names_still_resolve():
    assert BACKENDS.get("fake").__name__ == "FakeBackend"
    assert BACKENDS.canonical("FAKE") == "fake"
    recipe = parse_recipe({"name": "t", "model": "fake-mlp", "backends": ["fake"]})
    assert [b.name for b in recipe.backends] == ["fake"]
    assert "fake" in BACKENDS.names(include_hidden=True)


def test_registries_list_no_hidden_entry():
    for registry in (BACKENDS, TRANSFORMS, WORKLOADS, METERS):
        assert not mentions_hidden(" ".join(registry.names(with_aliases=True)))
        assert all(not e.hidden for e in registry.entries())


@pytest.mark.parametrize("kind", KINDS)
def test_ls_lists_no_hidden_plugin(kind):
    headers, rows = describe_kind(kind)
    assert rows and not mentions_hidden(" ".join(row[0] for row in rows))
    listed = runner.invoke(app, ["ls", kind, "--json"])
    assert listed.exit_code == 0
    names = [row[headers[0]] for row in json.loads(listed.stdout)]
    assert names and not mentions_hidden(" ".join(names))
    table = runner.invoke(app, ["ls", kind])
    assert table.exit_code == 0 and not mentions_hidden(table.stdout)


def test_env_names_no_hidden_plugin():
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert set(data["meters"]) == set(METERS.names())
    assert not mentions_hidden(" ".join(data["meters"]))


@pytest.mark.parametrize("typo", ["fak", "fakee", "fake-mlpp"])
def test_unknown_names_neither_suggest_nor_list_hidden_ones(typo):
    for registry in (BACKENDS, TRANSFORMS, WORKLOADS, METERS):
        with pytest.raises(PluginNotFound) as info:
            registry.canonical(typo)
        assert info.value.suggestion is None
        assert not mentions_hidden(str(info.value))


@pytest.mark.parametrize("argv", [
    ["compare", "--model", "mnist-cnn", "--backends", "fak", "--print-recipe"],
    ["compare", "--model", "mnist-cnn", "--backends", "ort,fakee", "--print-recipe"],
    ["compare", "--model", "fake-mlpp", "--backends", "ort", "--print-recipe"],
    ["compare", "--model", "tiny-llama-tes", "--backends", "ort", "--print-recipe"],
    ["compare", "--model", "mnist-cnn", "--backends", "ort", "--meters", "fak",
     "--print-recipe"],
    ["ls", "backend"],
])
def test_cli_errors_do_not_name_hidden_plugins(argv):
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert "known" in result.stderr or "did you mean" in result.stderr
    assert not mentions_hidden(result.output)


def test_recipe_errors_do_not_name_hidden_plugins(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: mnist-cnn\nbackends: [fakes]\n")
    result = runner.invoke(app, ["run", str(recipe), "--print-recipe"])
    assert result.exit_code == 2 and "unknown backend 'fakes'" in result.stderr
    assert not mentions_hidden(result.output)


@pytest.mark.parametrize("command", ["compare", "run", "ls", "env", "report", "recommend"])
def test_help_texts_name_no_hidden_plugin(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert not mentions_hidden(result.output)
