"""Training transforms end to end on real MNIST across the three CPU runtimes: every variant
gets held-out accuracy, latency, energy, training energy, lineage and a break-even figure."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from optbench.cli import app

pytestmark = [pytest.mark.backend("torch"), pytest.mark.backend("ort"),
              pytest.mark.backend("openvino")]

BACKENDS = ("torch", "ort", "openvino")
N_EVAL = 500  # workload.eval_samples below: every accuracy is a count out of 500
# device: cpu - the three CPU runtimes, and training metered the same way in the GPU image
RECIPE = f"""
name: transforms-smoke
model: mnist-cnn
device: cpu
workload: {{dataset: mnist, eval_samples: {N_EVAL}, calibration_samples: 32, train_samples: 3000}}
backends: [torch, ort, openvino]
variants:
  fp32: []
  qat: [{{qat: {{epochs: 0.5}}}}]
  pruned: [{{prune: {{sparsity: 0.5, structured: true, finetune_epochs: 0.5}}}}]
  student: [{{distill: {{width: 0.25, epochs: 1}}}}]
  student+int8: [{{distill: {{width: 0.25, epochs: 1}}}}, int8]
  budget: [{{prune: {{sparsity: 0.5, finetune_epochs: 20, energy_budget_j: 2}}}}]
measure: {{preset: smoke}}
"""

# Accuracies are judged with margins from the evaluation size, not at what one CPU's
# numerics happen to give: Z binomial standard errors of each of the two accuracies compared.
Z = 3


def se(p: float, n: int = N_EVAL) -> float:
    """Binomial standard error of an accuracy p measured on n samples."""
    return math.sqrt(p * (1 - p) / n)


def margin(p: float) -> float:
    """Z standard errors of a difference of two accuracies near p on n samples each."""
    return Z * math.sqrt(2) * se(p)


# What each feature promises, as a drop from the model it starts from (same inputs):
TEACHER_FLOOR = 0.9  # a trained teacher (the card: about 0.98; 0.96 here), Z se's clear of it
FINETUNED_DROP = 0.02  # pruning / QAT with fine-tuning keep the teacher's accuracy
BUDGET_DROP = 0.05  # half the weights by magnitude, however few steps the energy budget allows
STUDENT_DROP = 0.12  # a quarter-width student after one epoch on 3,000 digits (0.896 here)
INT8_DROP = 0.02  # post-training int8 of a CNN, calibrated on 32 digits


def test_transforms_recipe_on_mnist(tmp_path):
    recipe = tmp_path / "t.yaml"
    recipe.write_text(RECIPE)
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(recipe), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(tmp_path)]).stdout)
    by = {(r["backend"], r["variant"]): r for r in rows}
    assert len(by) == 18
    for key, row in by.items():
        assert row["status"] == "ok", (key, row["reason"])
        assert row["metrics"]["eval_samples"] == N_EVAL, key
        assert row["latency_p50_s"] > 0 and row["energy_per_sample_j"] > 0
        assert row["parameters"] > 0
        if key[1] == "fp32":
            assert not row["training"] and row["lineage"] == ""
            continue
        assert row["training_energy_j"] > 0 and row["training_energy_method"] == "estimated"
        assert row["break_even_samples"] is not None or row["break_even_note"], key
    top1 = {key: row["quality_value"] for key, row in by.items()}
    teacher = top1[("torch", "fp32")]
    assert teacher - Z * se(teacher) > TEACHER_FLOOR, teacher
    for backend in BACKENDS:
        # the same fp32 weights on another runtime: the same predictions, up to noise
        assert abs(top1[(backend, "fp32")] - teacher) <= margin(teacher), backend
        for variant, drop in (("qat", FINETUNED_DROP), ("pruned", FINETUNED_DROP),
                              ("budget", BUDGET_DROP)):
            assert top1[(backend, variant)] >= teacher - drop - margin(teacher), \
                (backend, variant, top1[(backend, variant)], teacher)
        student = top1[(backend, "student")]
        assert student >= teacher - STUDENT_DROP - margin(teacher), (backend, student, teacher)
        # the distilled int8 student stays within reach of its own fp32 student, same inputs
        int8 = top1[(backend, "student+int8")]
        assert abs(int8 - student) <= INT8_DROP + margin(student), (backend, int8, student)
        assert by[(backend, "pruned")]["parameters"] < 0.4 * by[(backend, "fp32")]["parameters"]
        assert by[(backend, "student+int8")]["lineage"].endswith("> int8")
        assert by[(backend, "budget")]["training_budget_exhausted"] is True
    # trained once, reused by the other backends: the same recorded cost everywhere
    assert len({by[(b, "qat")]["training_energy_j"] for b in BACKENDS}) == 1
    assert len({by[(b, v)]["training_energy_j"] for b in BACKENDS
                for v in ("student", "student+int8")}) == 1
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
