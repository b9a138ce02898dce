"""Text generation under the server scenario end to end: tiny-llama-test at two Poisson
rates behind the static batcher, one export row per measured load with time to first token
(arrival to first token, queueing included), time per output token, energy per request
and per output token, and goodput under a TTFT bound. torch by default; ONNX Runtime and
OpenVINO (about 25 s more each) with -m slow."""

import json

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.results.store import Store

RATES = (4.0, 8.0)  # far below tiny-llama-test's capacity (hundreds of requests/s)
NEW_TOKENS = 8


def recipe(backend: str) -> str:
    return f"""
name: serving-text
model: tiny-llama-test
workload: {{eval_samples: 8, new_tokens: {NEW_TOKENS}, prompt_tokens: 16}}
backends: [{backend}]
variants: [fp32]
measure: {{preset: smoke}}
scenario:
  kind: server
  rates_per_s: [{", ".join(f"{r:g}" for r in RATES)}]
  duration_s: 2
  latency_bound_ms: 2000
  ttft_bound_ms: 500
  search_steps: 0
  batching: {{max_batch: 4, max_wait_ms: 5}}
"""


@pytest.mark.parametrize("backend", [
    pytest.param("torch", marks=pytest.mark.backend("torch")),
    pytest.param("ort", marks=[pytest.mark.backend("ort"), pytest.mark.slow]),
    pytest.param("openvino", marks=[pytest.mark.backend("openvino"), pytest.mark.slow]),
])
def test_server_scenario_for_text_generation(tmp_path, backend):
    path = tmp_path / "serving-text.yaml"
    path.write_text(recipe(backend))
    out = tmp_path / "out"
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(out)]).stdout)
    # the two offered rates, then the rate search's probes upward
    offered = [r for r in rows if not r["search_probe"]]
    assert sorted(r["offered_rate_per_s"] for r in offered) == list(RATES)
    for row in rows:
        where = {k: row.get(k) for k in ("offered_rate_per_s", "achieved_rate_per_s",
                                         "goodput_per_s", "serving_notes", "reason")}
        assert row["status"] == "ok" and row["scenario"] == "server", where
        assert not row["serving_errors"], where
        assert row["quality_metric"] == "perplexity" and row["max_batch"] == 4, where
        assert 0 < row["ttft_p50_s"] <= row["ttft_p99_s"], where
        assert 0 < row["tpot_p50_s"] <= row["tpot_p99_s"], where
        assert row["latency_p50_s"] > row["ttft_p50_s"], where
        assert row["energy_per_request_j"] > 0, where
        # every request completed in a window produced its tokens in it
        assert row["energy_per_token_j"] == pytest.approx(
            row["energy_per_request_j"] / NEW_TOKENS, rel=1e-9), where
        assert row["goodput_per_s"] <= row["achieved_rate_per_s"], where
        assert row["served_agreement"] >= 0.9, where
    for row in offered:  # light loads: far inside every bound, nothing saturated
        assert row["ttft_p99_s"] < 0.5 and not row["saturated"], row
        assert row["goodput_per_s"] == pytest.approx(row["achieved_rate_per_s"]), row
    # TTFT is arrival to first token: at a light load a request waits alone for the
    # batcher's whole max_wait_ms (5 ms) before its prefill starts
    assert min(offered, key=lambda r: r["offered_rate_per_s"])["ttft_p50_s"] > 0.005
    (run,) = Store.open(out).runs()
    serving = run.result.details["serving"]
    assert serving["batching"] == "static" and serving["variable_batch"] is True
    # goodput and the achieved rate over the same span (the ledger's): never more, and
    # all of it at the lightest load, far inside every bound
    points = sorted(serving["points"], key=lambda p: p["offered_rate_per_s"])
    for point in points:
        f = point["figures"]
        assert f["goodput_per_s"] <= f["achieved_rate_per_s"], f
    assert points[0]["figures"]["goodput_per_s"] == points[0]["figures"]["achieved_rate_per_s"]
