"""Serving energy end to end on a powercap tree of known constant power: every offered load's
energy per request x achieved rate is that power (the idle gaps between requests are paid
for, not only the model's compute), and all of it is idle-equivalent."""

import json

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.results.store import Store
from optbench.testing.powercap import FakePowercap
from optbench.testing.traces import Constant

POWER_W = 40.0
SERVICE_S = 0.01  # the fake model's time per call: capacity 100 req/s at max_batch 1
RATES = (10, 30, 85)  # two light loads and one near capacity (utilisation 0.85)
# Each point's steady window is 1.65 s of a 2 s test; the fake counters, written every
# 2 ms by a real-time process, lag the truth by up to a period (more when the machine is
# busy) at each window edge: a few ms over 1.65 s.
REL = 0.01
RECIPE = f"""
name: serving-energy
model: fake-mlp
backends: [{{fake: {{latency_s: {SERVICE_S}, wait: sleep}}}}]
variants: [fp32]
measure: {{preset: smoke}}
scenario:
  kind: server
  rates_per_s: [{", ".join(str(r) for r in RATES)}]
  duration_s: 2
  batching: {{max_batch: 1}}
"""


@pytest.fixture
def powercap(tmp_path, monkeypatch):
    fake = FakePowercap(tmp_path / "powercap",
                        {"intel-rapl:0": ("package-0", Constant(POWER_W))}
                        ).run(period_s=0.002, process=True)
    monkeypatch.setenv("OPTBENCH_POWERCAP_ROOT", str(fake.root))
    yield fake
    fake.stop()


def test_energy_per_request_times_rate_is_the_power(tmp_path, powercap):
    recipe = tmp_path / "serving.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "out"
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(out)]).stdout)
    assert sorted(r["offered_rate_per_s"] for r in rows) == list(RATES)
    (run,) = Store.open(out).runs()
    # The idle window is the preset's 0.1 s: a counter period at each end is the meter's
    # own stated uncertainty there (4%), above REL.
    (idle,) = [t for t in run.result.trials if t.phase == "idle"]
    idle_rel = max(REL, sum(r.uncertainty_j for r in idle.readings) / idle.total_energy_j())
    for row in rows:
        where = (row["offered_rate_per_s"], row["energy_flags"], row["serving_notes"])
        assert row["status"] == "ok", row["reason"]
        assert row["energy_method"] == "measured-counter", where
        assert row["energy_windows"] == 3, where
        assert row["energy_per_request_j"] * row["achieved_rate_per_s"] == pytest.approx(
            POWER_W, rel=REL), where
        assert row["idle_power_w"] == pytest.approx(POWER_W, rel=idle_rel), where
        # constant power: serving costs nothing above idle
        assert row["idle_share"] == pytest.approx(1.0, abs=idle_rel), where
        assert abs(row["net_energy_per_request_j"]) <= idle_rel * row["energy_per_request_j"]
    # The light load pays for its idle gaps: about 1 / utilisation times the compute's
    # energy per request (10x at 10 req/s), not the compute alone.
    light = min(rows, key=lambda r: r["offered_rate_per_s"])
    assert light["energy_per_request_j"] > 5 * POWER_W * SERVICE_S
