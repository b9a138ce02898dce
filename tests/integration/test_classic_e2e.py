"""A classic model through the whole sweep: fitted under the meters, run by scikit-learn's
own predict_proba, numba's kernels and ONNX Runtime (via skl2onnx), OpenVINO refusing its
ONNX-ML operators with the reason, agreement with the library reported, and training
energy in the export."""

import json

import pytest
from typer.testing import CliRunner

from optbench.cli import app

pytest.importorskip("sklearn")
pytest.importorskip("numba")


def compare(tmp_path, model, backends):
    cli = CliRunner()
    out = tmp_path / "out"
    result = cli.invoke(app, ["compare", "--model", model, "--backends", backends,
                              "--preset", "smoke", "--out", str(out)])
    return cli, out, result


def test_compare_mnist_gbt_on_every_classic_runtime(tmp_path):
    check(tmp_path, "mnist-gbt")


@pytest.mark.slow  # treelite compiles the 110,000-node forest: minutes on 2 cores
def test_compare_mnist_forest_on_every_classic_runtime(tmp_path):
    check(tmp_path, "mnist-forest")


def check(tmp_path, model):
    cli, out, result = compare(tmp_path, model, "sklearn,numba,treelite,ort,openvino")
    assert result.exit_code == 0, result.output
    assert "agrees with sklearn 1.0000" in result.output
    rows = {r["backend"]: r for r in json.loads(
        cli.invoke(app, ["export", "--format", "json", "--out", str(out)]).output)}
    assert rows["sklearn"]["status"] == rows["numba"]["status"] == "ok"
    assert rows["openvino"]["status"] == "skipped"
    assert f"OpenVINO cannot read {model}'s ONNX graph" in rows["openvino"]["reason"]
    assert "ai.onnx.ml" in rows["openvino"]["reason"]
    for name in ("sklearn", "numba", "treelite", "ort"):
        row = rows[name]
        assert row["metrics"]["top1_agreement"] == 1.0  # every eval digit, as sklearn says
        assert row["quality_metric"] == "top1" and row["quality_value"] > 0.8
        assert row["training_energy_j"] > 0 and row["training_energy_method"]
        assert row["parameters"] > 0
    report = (out / f"compare-{model}" / "report.md").read_text()
    assert "What each model is and what it cost to make" in report
    assert "the base model: trained to exist" in report


@pytest.mark.slow  # two models, a CNN among them, each fitted and measured: about a minute
def test_a_models_recipe_puts_deep_and_classic_models_on_one_front(tmp_path):
    pytest.importorskip("torch")
    recipe = tmp_path / "svd.yaml"
    recipe.write_text(
        "name: svd\ndevice: cpu\nmodels:\n"
        "  - {name: digits-cnn, backends: [torch]}\n"
        "  - {name: digits-gbt, backends: [numba]}\n"
        "workload: {eval_samples: 300}\n"
        "variants: {fp32: [], budget: [{refit: {energy_budget_j: 0.5}}]}\n"
        "measure: {preset: smoke}\n")
    cli, out = CliRunner(), tmp_path / "out"
    result = cli.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out", str(out)]).output)
    assert {(r["model"], r["variant"], r["status"]) for r in rows} == {
        (m, v, "ok") for m in ("digits-cnn", "digits-gbt") for v in ("fp32", "budget")}
    assert {r["model_kind"] for r in rows} == {"deep", "classic"}
    assert all(r["front"] == "svd" for r in rows)
    cut = [r for r in rows if r["variant"] == "budget"]
    assert all(r["training_energy_j"] > 0 and r["training_budget_exhausted"] for r in cut)
    report = (out / "svd" / "report.md").read_text()
    assert "## digits, 2 models: top1" in report
    assert "Models on these fronts, judged on the same samples: digits-cnn, digits-gbt" in report
    assert "classic" in report.split("## digits, 2 models")[1].split("|")[0]  # its one line
    assert (out / "svd" / "figures" / "digits__2_models-top1-training.png").is_file()
