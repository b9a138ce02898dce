"""End to end on the real CPU runtimes: mnist-cnn (trained here), fp32 and int8."""

import json
import math

import pytest
from typer.testing import CliRunner

from optbench.cli import app

N_EVAL = 500
Z = 3


def se(p: float) -> float:
    """Binomial standard error of an accuracy measured on N_EVAL samples."""
    return math.sqrt(p * (1 - p) / N_EVAL)


pytestmark = [pytest.mark.backend("torch"), pytest.mark.backend("ort"),
              pytest.mark.backend("openvino")]


def test_compare_mnist_cnn_across_cpu_runtimes(tmp_path):
    cli = CliRunner()
    result = cli.invoke(app, ["compare", "--model", "mnist-cnn", "--backends",
                              "torch,ort,openvino", "--int8", "--preset", "smoke",
                              "--eval-samples", str(N_EVAL), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(tmp_path)]).stdout)
    by = {(r["backend"], r["variant"]): r for r in rows}
    assert set(by) == {(b, v) for b in ("torch", "ort", "openvino") for v in ("fp32", "int8")}
    for (backend, variant), row in by.items():
        assert row["status"] == "ok", (backend, variant, row["reason"])
        assert row["quality_metric"] == "top1"
        assert row["energy_method"] == "estimated" and row["energy_per_sample_j"] > 0
    fp32 = {b: by[(b, "fp32")]["quality_value"] for b in ("torch", "ort", "openvino")}
    # The same trained weights on the same 500 digits: the runtimes may disagree only on
    # borderline digits (at most 1% of them), and the model clears 0.9 with 3 standard
    # errors to spare (0.96 seen on AVX2 and AVX-512 VNNI CPUs).
    assert min(fp32.values()) - Z * se(min(fp32.values())) > 0.9, fp32
    assert max(fp32.values()) - min(fp32.values()) <= 0.01, fp32
    for backend in fp32:
        int8 = by[(backend, "int8")]["quality_value"]
        # PTQ int8 keeps accuracy within 2 points, plus the noise of a difference of two
        # accuracies on N_EVAL samples (Z standard errors, sqrt(2) for two estimates).
        limit = 0.02 + Z * math.sqrt(2) * se(fp32[backend])
        assert abs(int8 - fp32[backend]) <= limit, (backend, int8, fp32[backend], limit)
    paths = {r["precision_path"] for r in rows}
    assert any("torchao" in (p or "") for p in paths) and "NNCF PTQ int8" in paths
    report = (tmp_path / "compare-mnist-cnn" / "report.md").read_text()
    assert "top-1 accuracy on held-out labelled data" in report
    assert list((tmp_path / "compare-mnist-cnn" / "figures").glob("*.png"))
