"""Serving recipes end to end on the real runtimes: mnist-cnn on ONNX Runtime under
Poisson traffic at two rates, one export row per rate with its latency, energy and
quality; and every scenario on torch, ONNX Runtime and OpenVINO (the worker thread runs
the model: thread-local runtime state must hold there too)."""

import json

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.results.schema import METHODS

RATES = (20.0, 100.0)  # far below mnist-cnn's capacity on ort (thousands per second)
RECIPE = f"""
name: serving-ort
model: mnist-cnn
backends: [ort]
variants: [fp32]
measure: {{preset: smoke}}
scenario:
  kind: server
  rates_per_s: [{", ".join(f"{r:g}" for r in RATES)}]
  duration_s: 3
  batching: {{max_batch: 1}}
"""


@pytest.mark.backend("ort")
def test_server_scenario_on_ort_gives_a_row_per_rate(tmp_path):
    recipe = tmp_path / "serving.yaml"
    recipe.write_text(RECIPE)
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(tmp_path / "out")]).stdout)
    assert sorted(r["offered_rate_per_s"] for r in rows) == list(RATES)
    for row in rows:
        where = {k: row.get(k) for k in ("offered_rate_per_s", "arrival_rate_per_s",
                                         "achieved_rate_per_s", "serving_notes")}
        assert row["status"] == "ok", row["reason"]
        assert row["scenario"] == "server" and not row["saturated"], where
        assert row["serving_errors"] == 0 and row["dropped"] == 0, where
        # LoadGen's schedule is seeded (scenario seed 0), so the arrivals in a window are
        # the same draw every run: about 50 and 250 of them, within 20% of the rate
        assert row["achieved_rate_per_s"] == pytest.approx(row["offered_rate_per_s"],
                                                           rel=0.2), where
        assert row["latency_p99_s"] >= row["latency_p50_s"] > 0, where
        assert row["energy_per_request_j"] > 0 and row["energy_method"] in METHODS, where
        assert row["quality_metric"] == "top1" and row["quality_value"] > 0.8, where
        # one request per batch on the same inputs: the served answers are the closed
        # loop's exactly
        assert row["served_agreement"] == 1.0, where


SCENARIOS_RECIPE = """
name: scenarios-{backend}
model: mnist-cnn
workload: {{eval_samples: 200}}
backends: [{backend}]
variants: [fp32]
measure: {{preset: smoke}}
scenario:
  kind: {kind}
  duration_s: 1.5
  samples_per_query: 4
  batching: {{max_batch: 4, max_wait_ms: 1}}
"""


@pytest.mark.parametrize("backend", [pytest.param(b, marks=pytest.mark.backend(b))
                                     for b in ("torch", "ort", "openvino")])
def test_every_scenario_runs_on_each_cpu_runtime(tmp_path, backend):
    cli = CliRunner()
    for kind in ("single-stream", "multi-stream", "offline"):
        recipe = tmp_path / f"{kind}.yaml"
        recipe.write_text(SCENARIOS_RECIPE.format(backend=backend, kind=kind))
        result = cli.invoke(app, ["run", str(recipe), "--out", str(tmp_path / kind)])
        assert result.exit_code == 0, result.output
        (row,) = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                             str(tmp_path / kind)]).stdout)
        where = {k: row.get(k) for k in ("scenario", "status", "reason", "achieved_rate_per_s",
                                         "mean_batch", "serving_notes")}
        assert row["status"] == "ok" and row["scenario"] == kind, where
        assert row["serving_errors"] == 0 and row["achieved_rate_per_s"] > 0, where
        assert row["energy_per_request_j"] > 0 and row["served_agreement"] > 0.95, where
        if kind == "single-stream":
            assert row["mean_batch"] == 1.0, where
        if kind == "multi-stream":  # queries of 4 samples, batched together
            assert row["mean_batch"] == pytest.approx(4.0), where
        if kind != "offline":  # offline: everything arrives before the window
            assert row["latency_p99_s"] >= row["latency_p50_s"] > 0, where
