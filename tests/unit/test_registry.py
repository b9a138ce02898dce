import sys
from types import SimpleNamespace

import pytest

from optbench.errors import PluginNotFound, RegistryError
from optbench.registry import Registry


def make_registry(eps=()):
    reg = Registry("backend", "optbench.backends.base:Backend", "test.group",
                   entry_points=lambda group: list(eps))
    reg.register("fake", "optbench.testing.backend:FakeBackend", aliases=("dummy",))
    return reg


def test_aliases_and_case_resolve_to_canonical_name():
    reg = make_registry()
    assert reg.canonical("FAKE") == "fake"
    assert reg.canonical("dummy") == "fake"
    assert reg.get("dummy").__name__ == "FakeBackend"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(PluginNotFound) as info:
        make_registry().canonical("fak")
    assert info.value.suggestion == "fake"
    assert "did you mean 'fake'" in str(info.value)
    assert info.value.exit_code == 2


def test_collision_with_builtin_is_an_error():
    reg = make_registry()
    with pytest.raises(RegistryError, match="collides"):
        reg.register("dummy", "x:Y", origin="entry point of other")


def test_entry_points_are_discovered_lazily():
    ep = SimpleNamespace(name="Extra", value="optbench.testing.backend:FakeBackend",
                         dist=SimpleNamespace(name="optbench-extra"))
    reg = make_registry([ep])
    assert "extra" in reg.names()
    assert reg.entry("extra").origin == "entry point of optbench-extra"


def test_entry_point_colliding_with_builtin_fails():
    ep = SimpleNamespace(name="fake", value="x:Y", dist=SimpleNamespace(name="evil"))
    with pytest.raises(RegistryError, match="collides"):
        make_registry([ep]).names()


def test_plugin_must_subclass_the_base():
    reg = make_registry()
    reg.register("notabackend", "optbench.run.recipe:Recipe")
    with pytest.raises(RegistryError, match="not a subclass"):
        reg.get("notabackend")


def test_nothing_is_imported_until_get():
    reg = make_registry()
    reg.register("lazy", "optbench_not_a_real_module:Thing")
    assert "optbench_not_a_real_module" not in sys.modules
    assert "lazy" in reg.names()
    with pytest.raises(ModuleNotFoundError):
        reg.get("lazy")


def test_builtin_registries_resolve_documented_aliases():
    from optbench.backends import BACKENDS

    for alias, name in {"eager": "torch", "pytorch": "torch", "onnxruntime": "ort",
                        "ov": "openvino", "tensorrt": "trt", "vllm": "vllm"}.items():
        assert BACKENDS.canonical(alias) == name


def test_hidden_entries_resolve_but_are_neither_listed_nor_suggested():
    reg = make_registry()
    reg.register("secret", "optbench.testing.backend:FakeBackend", aliases=("hush",),
                 hidden=True)
    assert reg.get("secret").__name__ == "FakeBackend"
    assert reg.canonical("hush") == "secret"
    assert "secret" not in reg.names(with_aliases=True)
    assert "hush" not in reg.names(with_aliases=True)
    assert "secret" in reg.names(include_hidden=True)
    assert [e.name for e in reg.entries()] == ["fake"]
    with pytest.raises(PluginNotFound) as info:
        reg.canonical("secre")
    assert info.value.suggestion is None and "secret" not in str(info.value)


def test_the_fake_backend_is_hidden_from_users():
    from typer.testing import CliRunner

    from optbench.backends import BACKENDS
    from optbench.cli import app

    assert BACKENDS.get("fake").__name__ == "FakeBackend"
    listed = CliRunner().invoke(app, ["ls", "backends", "--json"])
    assert listed.exit_code == 0
    assert "fake" not in {row["backend"] for row in __import__("json").loads(listed.stdout)}
    wrong = CliRunner().invoke(app, ["compare", "--model", "mnist-cnn", "--backends", "fak",
                                     "--print-recipe"])
    assert wrong.exit_code == 2 and "'fake'" not in wrong.output
