"""Text generation end to end on a small Llama trained here (tiny-llama-test, seconds to
train): torch, ONNX Runtime and OpenVINO, fp32, int8 and weight-only int4, vLLM skipped
with its reason; perplexity, agreement, TTFT/TPOT, energy per token and the report."""

import json

import pytest
from typer.testing import CliRunner

from optbench.cli import app

pytestmark = [pytest.mark.backend("torch"), pytest.mark.backend("ort"),
              pytest.mark.backend("openvino")]

RECIPE = """
name: llm-smoke
model: tiny-llama-test
workload: {eval_samples: 4, new_tokens: 8, prompt_tokens: 16}
backends: [torch, ort, openvino, vllm]
variants:
  fp32: []
  woq-int4: [{woq: {bits: 4}}]
measure: {preset: smoke}
"""


def test_llm_recipe_across_runtimes(tmp_path):
    recipe = tmp_path / "llm.yaml"
    recipe.write_text(RECIPE)
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(recipe), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["compare", "--model", "tiny-llama-test", "--backends",
                              "ort,openvino", "--int8", "--preset", "smoke", "--eval-samples",
                              "4", "--new-tokens", "8", "--prompt-tokens", "16", "--out",
                              str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(tmp_path)]).stdout)
    by = {(r["backend"], r["variant"]): r for r in rows}
    for variant in ("fp32", "woq-int4"):
        assert by[("vllm", variant)]["status"] == "skipped"
        assert "vLLM" in by[("vllm", variant)]["reason"]
    ok = {k: r for k, r in by.items() if k[0] != "vllm"}
    assert set(ok) >= {(b, v) for b in ("torch", "ort", "openvino") for v in ("fp32", "woq-int4")}
    assert {("ort", "int8"), ("openvino", "int8")} <= set(ok)
    for key, row in ok.items():
        assert row["status"] == "ok", (key, row["reason"])
        assert row["quality_metric"] == "perplexity" and row["sample_unit"] == "token"
        assert 1 < row["quality_value"] < 1000, key
        assert row["ttft_p50_s"] > 0 and row["tpot_p50_s"] > 0, key
        assert row["energy_per_sample_j"] > 0 and row["energy_per_request_j"] > 0, key
        # a request's energy is its tokens' energy: same windows, counted two ways
        assert row["energy_per_request_j"] == pytest.approx(
            row["energy_per_sample_j"] * row["new_tokens"], rel=0.35), key
        assert row["new_tokens"] == 8
        assert row["latency_p50_s"] >= row["ttft_p50_s"]
        assert row["metrics"]["token_agreement"] > 0.5, key
    # the untransformed model is the same model on every runtime
    ppl = [ok[(b, "fp32")]["quality_value"] for b in ("torch", "ort", "openvino")]
    assert max(ppl) / min(ppl) < 1.01
    assert ok[("torch", "fp32")]["metrics"]["token_agreement"] == 1.0
    assert "int4" in ok[("openvino", "woq-int4")]["precision_path"]
    report = (tmp_path / "llm-smoke" / "report.md").read_text()
    assert "TTFT p50 ms" in report and "energy/token" in report
    assert (tmp_path / "llm-smoke" / "figures" / "tiny-llama-test-perplexity-tpot.png").is_file()
