"""The prediction cache end to end: a request stream with repeats (Zipf over the
evaluation inputs) served with and without an LRU cache in front of the model; the cached
configuration answers most requests without the model, keeps every answer, and costs less
energy per request (here the labelled CPU estimate, which follows the model's CPU time)."""

import json

from typer.testing import CliRunner

from optbench.cli import app

RECIPE = """
name: serving-cache
model: fake-mlp
workload: {eval_samples: 64}
backends: [{fake: {latency_s: 0.004}}]
variants: [fp32]
measure: {preset: smoke, meters: [estimate]}
scenario:
  kind: server
  rates_per_s: [100]
  duration_s: 2
  batching: {max_batch: 1}
  cache: {size: 16, repeat_skew: 1.2}
"""


def test_a_cache_on_a_repeating_stream_answers_most_requests_and_saves_energy(tmp_path):
    recipe = tmp_path / "cache.yaml"
    recipe.write_text(RECIPE)
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(tmp_path / "out")]).stdout)
    by_cache = {r["cache_size"]: r for r in rows}
    assert set(by_cache) == {0, 16}
    cold, cached = by_cache[0], by_cache[16]
    assert cold["cache_hit_rate"] == 0 and cold["repeat_skew"] == 1.2
    # Zipf(1.2) over 64 inputs: the 16 most popular draw ~80% of requests (LRU: a bit less)
    assert cached["cache_hit_rate"] > 0.5, cached
    assert cached["served_agreement"] == cold["served_agreement"] == 1.0
    assert cached["achieved_rate_per_s"] > 80 and cold["achieved_rate_per_s"] > 80
    assert cached["energy_per_request_j"] < 0.8 * cold["energy_per_request_j"], (
        cached["energy_per_request_j"], cold["energy_per_request_j"])
    assert cached["latency_p50_s"] < cold["latency_p50_s"]
