"""Training transforms end to end on real MNIST across the three CPU runtimes: every variant
gets held-out accuracy, latency, energy, training energy, lineage and a break-even figure."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from optbench.cli import app

pytestmark = [pytest.mark.backend("torch"), pytest.mark.backend("ort"),
              pytest.mark.backend("openvino")]

RECIPE = """
name: transforms-smoke
model: mnist-cnn
workload: {dataset: mnist, eval_samples: 500, calibration_samples: 32, train_samples: 3000}
backends: [torch, ort, openvino]
variants:
  fp32: []
  qat: [{qat: {epochs: 0.5}}]
  pruned: [{prune: {sparsity: 0.5, structured: true, finetune_epochs: 0.5}}]
  student+int8: [{distill: {width: 0.25, epochs: 1}}, int8]
  budget: [{prune: {sparsity: 0.5, finetune_epochs: 20, energy_budget_j: 2}}]
measure: {preset: smoke}
"""


def test_transforms_recipe_on_mnist(tmp_path):
    recipe = tmp_path / "t.yaml"
    recipe.write_text(RECIPE)
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(recipe), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(tmp_path)]).stdout)
    by = {(r["backend"], r["variant"]): r for r in rows}
    assert len(by) == 15
    for key, row in by.items():
        assert row["status"] == "ok", (key, row["reason"])
        assert row["quality_value"] > 0.9, key
        assert row["latency_p50_s"] > 0 and row["energy_per_sample_j"] > 0
        assert row["parameters"] > 0
        if key[1] == "fp32":
            assert not row["training"] and row["lineage"] == ""
            continue
        assert row["training_energy_j"] > 0 and row["training_energy_method"] == "estimated"
        assert row["break_even_samples"] is not None or row["break_even_note"], key
    for backend in ("torch", "ort", "openvino"):
        assert by[(backend, "pruned")]["parameters"] < 0.4 * by[(backend, "fp32")]["parameters"]
        assert by[(backend, "student+int8")]["lineage"].endswith("> int8")
        assert by[(backend, "budget")]["training_budget_exhausted"] is True
    # trained once, reused by the other backends: the same recorded cost everywhere
    assert len({by[(b, "qat")]["training_energy_j"] for b in ("torch", "ort", "openvino")}) == 1
    assert "QAT int8 (Q/DQ)" in {by[(b, "qat")]["precision_path"] for b in ("ort", "openvino")}
    report = (tmp_path / "transforms-smoke" / "report.md").read_text()
    assert "break-even inferences" in report and "Unstructured pruning leaves" in report


RESNET_RECIPE = """
name: resnet-transforms
model: resnet50
workload: {{dataset: "imagefolder:{root}", eval_samples: 12, calibration_samples: 4,
           train_samples: 16}}
backends: [torch, ort]
variants:
  fp32: []
  pruned: [{{prune: {{sparsity: 0.5, structured: true, finetune_epochs: 1, batch_size: 8}}}}]
  qat: [{{qat: {{epochs: 1, batch_size: 8}}}}]
  student: [{{distill: {{width: 0.25, epochs: 1, batch_size: 8}}}}]
measure: {{preset: smoke, timeout_s: 1800}}
"""


@pytest.mark.slow
def test_transforms_on_resnet50_with_an_imagefolder(tmp_path):
    """Pruning, QAT and distillation train resnet50 on a labelled ImageFolder tree."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(("n01440764", "n01443537")):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(14):
            pixels = rng.integers(0, 80, (64, 64, 3)) + 120 * c
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RESNET_RECIPE.format(root=tmp_path / "images"))
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(recipe), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(tmp_path)]).stdout)
    by = {(r["backend"], r["variant"]): r for r in rows}
    for key, row in by.items():
        assert row["status"] == "ok", (key, row["reason"])
    fp32 = by[("torch", "fp32")]
    assert by[("torch", "pruned")]["parameters"] < 0.4 * fp32["parameters"]
    assert by[("torch", "pruned")]["macs"] < 0.4 * fp32["macs"]
    assert by[("torch", "student")]["parameters"] < 0.2 * fp32["parameters"]
    for variant in ("pruned", "qat", "student"):
        assert by[("torch", variant)]["training_energy_j"] > 0
