import pytest
import yaml

from optbench.errors import PluginNotFound, RecipeError, UsageError
from optbench.run.parse import load_recipe, parse_recipe
from optbench.run.recipe import RunSpec

BASE = {
    "name": "t",
    "model": "fake-mlp",
    "backends": ["fake", {"fake": {"latency_s": 0.001}}],
    "variants": {"fp32": [], "int8": ["int8"]},
    "sweep": {"batch_sizes": [1, 4]},
    "measure": {"preset": "smoke"},
}


def test_expand_is_the_full_product_with_stable_distinct_keys():
    recipe = parse_recipe(BASE)
    specs = recipe.expand("cpu")
    assert len(specs) == 2 * 2 * 2
    keys = [s.key() for s in specs]
    assert len(set(keys)) == len(keys)
    assert keys == [s.key() for s in parse_recipe(BASE).expand("cpu")]


def test_spec_roundtrips_through_its_dict():
    spec = parse_recipe(BASE).expand("cpu")[-1]
    again = RunSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.key() == spec.key()


def test_key_ignores_the_recipe_name_but_not_options():
    a = parse_recipe(BASE).expand("cpu")
    b = parse_recipe({**BASE, "name": "other"}).expand("cpu")
    assert [s.key() for s in a] == [s.key() for s in b]
    assert a[0].key() != a[4].key()  # same variant/batch, different backend options


def test_print_recipe_yaml_parses_back_to_the_same_recipe():
    recipe = parse_recipe(BASE)
    assert parse_recipe(yaml.safe_load(recipe.to_yaml())) == recipe


@pytest.mark.parametrize("patch, path, suggestion", [
    ({"measur": {}}, "recipe.measur", "measure"),
    ({"measure": {"preset": "quik"}}, "recipe.measure.preset", "quick"),
    ({"sweep": {"batch_size": [1]}}, "recipe.sweep.batch_size", "batch_sizes"),
    ({"workload": {"datset": "mnist"}}, "recipe.workload.datset", "dataset"),
    ({"backends": [{"fake": {"latncy_s": 1}}]}, "recipe.backends.fake.latncy_s", "latency_s"),
])
def test_unknown_keys_name_their_path_and_suggest(patch, path, suggestion):
    with pytest.raises(RecipeError) as info:
        parse_recipe({**BASE, **patch})
    assert info.value.path == path
    assert info.value.suggestion == suggestion
    assert info.value.exit_code == 2


@pytest.mark.parametrize("patch, match", [
    ({"sweep": {"batch_sizes": [0]}}, "positive"),
    ({"sweep": {"batch_sizes": [1, 1]}}, "duplicate"),
    ({"measure": {"timeout_s": -1}}, "positive"),
    ({"device": "tpu"}, "invalid device"),
    ({"workload": {"dataset": "cifar"}}, "unknown dataset"),
    ({"workload": {"dataset": "imagefolder:/no/such/dir"}}, "not a directory"),
    ({"backends": []}, "required"),
    ({"model": ""}, "required"),
])
def test_bad_values_are_rejected(patch, match):
    with pytest.raises(UsageError, match=match):
        parse_recipe({**BASE, **patch})


def test_unknown_backend_transform_and_model_suggest_names():
    with pytest.raises(PluginNotFound, match="did you mean 'openvino'"):
        parse_recipe({**BASE, "backends": ["openvnio"]})
    with pytest.raises(PluginNotFound, match="did you mean 'int8'"):
        parse_recipe({**BASE, "variants": {"q": ["int9"]}})
    with pytest.raises(PluginNotFound, match="did you mean 'resnet50'"):
        parse_recipe({**BASE, "model": "resnet5"})


def test_variant_shorthands():
    recipe = parse_recipe({**BASE, "variants": ["fp32", "int8"]})
    assert [v.name for v in recipe.variants] == ["fp32", "int8"]
    assert recipe.variants[0].steps == ()
    assert parse_recipe({**BASE, "variants": {"x": "int8"}}).variants[0].steps[0].name == "int8"


def test_precision_steps_do_not_need_explicit_stage_order_but_stages_are_checked():
    recipe = parse_recipe({**BASE, "variants": {"both": ["int8", "fp16"]}})
    assert [s.name for s in recipe.variants[0].steps] == ["int8", "fp16"]


def test_model_weights_must_exist(tmp_path):
    with pytest.raises(RecipeError, match="weights file not found"):
        parse_recipe({**BASE, "model": {"name": "resnet50", "weights": str(tmp_path / "x.pth")}})
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    recipe = parse_recipe({**BASE, "model": {"name": "resnet50", "weights": str(weights)}})
    assert recipe.model.weights == str(weights.resolve())


def test_load_recipe_errors(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({k: v for k, v in BASE.items() if k != "name"}))
    assert load_recipe(good).name == "good"


def test_shipped_recipes_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "recipes"
    recipes = sorted(root.glob("*.yaml"))
    assert recipes
    for path in recipes:
        load_recipe(path)
