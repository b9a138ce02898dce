"""Shallow vs deep: a `models:` recipe, its models sharing a front per dataset, the line
the report says about a classic model there, the training-energy figure, the second
bundled dataset."""

import numpy as np
import pytest

from optbench.errors import RecipeError
from optbench.report.analysis import analyse
from optbench.report.families import classic_line
from optbench.run.parse import parse_recipe
from optbench.run.recipe import RunSpec

VARIANTS = {"fp32": [], "low": [{"refit": {"energy_budget_j": 4}}],
            "student": [{"distill": {"width": 0.5}}]}


def recipe(**changes):
    data = {"name": "svd", "variants": VARIANTS, "workload": {"eval_samples": 300},
            "models": [{"name": "mnist-cnn", "backends": ["torch"]},
                       {"name": "mnist-gbt", "backends": "sklearn,numba",
                        "variants": ["fp32", "low"]},
                       "digits-knn"],
            "backends": ["sklearn"]}
    return parse_recipe({**data, **changes})


def test_each_model_runs_on_its_backends_and_variants_and_shares_a_front():
    r = recipe()
    labels = [s.label() for s in r.expand("cpu")]
    assert labels == [
        "mnist-cnn torch fp32 bs1", "mnist-cnn torch low bs1", "mnist-cnn torch student bs1",
        "mnist-gbt sklearn fp32 bs1", "mnist-gbt sklearn low bs1",
        "mnist-gbt numba fp32 bs1", "mnist-gbt numba low bs1",
        "digits-knn sklearn fp32 bs1", "digits-knn sklearn low bs1",
        "digits-knn sklearn student bs1"]
    specs = r.expand("cpu")
    assert {s.front for s in specs} == {"svd"}
    again = parse_recipe(__import__("yaml").safe_load(r.to_yaml()))
    assert again == r  # --print-recipe writes what it read


def test_the_front_is_no_part_of_a_configuration_s_identity():
    (spec, *_) = recipe().expand("cpu")
    alone = RunSpec.from_dict({**spec.to_dict(), "front": None})
    assert alone.front is None and alone.key() == spec.key()
    assert RunSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("changes,path,words", [
    ({"model": "mnist-cnn"}, "recipe.models", "not both"),
    ({"models": [{"name": "mnist-gbt", "backends": ["numba"], "variants": ["lwo"]}]},
     "recipe.models[0].variants", "did you mean 'low'"),
    ({"models": ["mnist-gbt"], "backends": None}, "recipe.models[0].backends", "required"),
    ({"models": ["mnist-gbt", "mnist-gbt"]}, "recipe.models[1]", "listed twice"),
    ({"models": ["mnist-gbt", "tiny-llama"]}, "recipe.models", "share one workload kind"),
    ({"models": []}, "recipe.models", "expected a list"),
])
def test_a_bad_models_list_is_one_clear_error(changes, path, words):
    with pytest.raises(RecipeError) as err:
        recipe(**changes)
    assert err.value.path == path and words in str(err.value)


def row(run_id, model, kind, variant, quality, energy_mj, inputs="vision|mnist|x|300",
        front="svd", **extra):
    base = {"run_id": run_id, "status": "ok", "model": model, "quality_metric": "top1",
            "quality_higher_is_better": True, "sample_unit": "image",
            "backend": "torch" if kind == "deep" else "numba", "variant": variant,
            "batch_size": 1, "device": "cpu", "quality_value": quality,
            "energy_per_sample_j": energy_mj / 1e3, "energy_per_sample_ci95_j": energy_mj / 1e5,
            "energy_method": "measured-counter", "latency_p50_s": 1e-3, "latency_p99_s": 2e-3,
            "throughput_per_s": 900.0, "quality_inputs": inputs, "front": front,
            "model_kind": kind, "model_family": None if kind == "deep" else "gbt"}
    return {**base, **extra}


def test_models_on_the_same_samples_share_a_group_and_the_report_names_the_classic_one():
    rows = [row(1, "mnist-cnn", "deep", "fp32", 0.98, 1.0),
            row(2, "mnist-cnn", "deep", "low", 0.90, 0.9),
            row(3, "mnist-gbt", "classic", "fp32", 0.95, 0.05),
            row(4, "digits-gbt", "classic", "fp32", 0.96, 0.01, inputs="vision|digits|y|300"),
            row(5, "mnist-other", "deep", "fp32", 0.97, 2.0, front=None)]
    groups = {g.model: g for g in analyse(rows)}
    assert set(groups) == {"mnist, 2 models", "digits-gbt", "mnist-other"}
    shared = groups["mnist, 2 models"]
    assert shared.models == ("mnist-cnn", "mnist-gbt") and shared.baseline["run_id"] == 1
    assert 3 in shared.fronts["energy_per_sample_j"]
    line = classic_line(shared)
    assert line.startswith("Not deep learning: mnist-gbt numba fp32 bs1 (a classic gbt "
                           "model) is on the energy per image")
    assert "0.05 mJ per image" in line and "the deep baseline mnist-cnn torch fp32 bs1" in line
    assert "(0.05x its energy)" in line
    assert classic_line(groups["mnist-other"]) is None  # no classic model: nothing to say


def test_a_dominated_classic_model_is_said_to_be_off_the_fronts():
    rows = [row(1, "mnist-cnn", "deep", "fp32", 0.98, 1.0),
            row(2, "mnist-gbt", "classic", "fp32", 0.95, 2.0, latency_p50_s=2e-3,
                latency_p99_s=3e-3, throughput_per_s=400.0)]
    (group,) = analyse(rows)
    assert classic_line(group).startswith("No classic (non-deep) model is on a front")


def test_agreement_groups_stay_per_model():
    rows = [row(1, "a", "deep", "fp32", 1.0, 1.0, quality_metric="top1_agreement"),
            row(2, "b", "classic", "fp32", 1.0, 0.1, quality_metric="top1_agreement")]
    assert sorted(g.model for g in analyse(rows)) == ["a", "b"]


def test_the_training_figure_draws_a_curve_per_model(tmp_path):
    pytest.importorskip("matplotlib")
    from optbench.report.figures import draw_group, training_curves

    rows = [row(i, m, k, v, q, e, training_energy_j=t, training_energy_method="estimated")
            for i, (m, k, v, q, e, t) in enumerate([
                ("mnist-cnn", "deep", "low", 0.45, 1.0, 4.2),
                ("mnist-cnn", "deep", "high", 0.97, 1.0, 64.5),
                ("mnist-gbt", "classic", "fp32", 0.93, 0.05, 80.0),
                ("mnist-gbt", "classic", "low", 0.80, 0.04, 4.1)], start=1)]
    (group,) = analyse(rows)
    curves = training_curves(group)
    assert [r["variant"] for r in curves["mnist-gbt"]] == ["low", "fp32"]  # by energy
    drawn = draw_group(group, tmp_path / "figures")
    assert "figures/mnist__2_models-top1-training.png" in drawn


def test_scikit_learn_digits_split_is_stratified_and_normalised():
    pytest.importorskip("sklearn")
    from optbench.workloads.datasets import load_digits

    split = load_digits()
    assert split.train_x.shape == (1497, 1, 8, 8) and split.test_x.shape == (300, 1, 8, 8)
    assert (np.bincount(split.test_y) == 30).all()
    assert abs(float(split.train_x.mean())) < 0.05 and abs(float(split.train_x.std()) - 1) < 0.05


def test_two_recipes_on_the_same_samples_keep_their_own_groups():
    rows = [row(1, "mnist-cnn", "deep", "fp32", 0.98, 1.0, front="a"),
            row(2, "mnist-gbt", "classic", "fp32", 0.95, 0.05, front="a"),
            row(3, "mnist-logreg", "classic", "fp32", 0.91, 0.04, front="b"),
            row(4, "mnist-knn", "classic", "fp32", 0.92, 14.0, front="b")]
    groups = {g.model: g.models for g in analyse(rows)}
    assert groups == {"mnist, 2 models": ("mnist-cnn", "mnist-gbt"),
                      "mnist, 2 models (b)": ("mnist-logreg", "mnist-knn")}
