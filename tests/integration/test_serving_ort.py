"""A serving recipe end to end on a real runtime: mnist-cnn on ONNX Runtime under Poisson
traffic at two rates, one export row per rate with its latency, energy and quality."""

import json

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.results.schema import METHODS

pytestmark = pytest.mark.backend("ort")

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
