import pytest

from optbench.results.schema import EnergyReading, Metric, RunResult, Trial
from optbench.results.store import StoredRun
from optbench.results.summary import energy_summary, summarize_run


def r(channel, j, method="measured-counter", window=1.0):
    return EnergyReading(channel, j, window, method, "api", reason=None if j is not None else "x")


def test_gross_idle_and_net_per_sample():
    trials = [Trial(0, "idle", 2.0, 0, (r("cpu", 20.0, window=2.0),)),        # 10 W idle
              Trial(1, "load", 1.0, 100, (r("cpu", 30.0), r("dram", 2.0))),
              Trial(2, "load", 1.0, 100, (r("cpu", 30.0), r("dram", 2.0)))]
    s = energy_summary(trials)
    assert s["energy_per_sample_j"] == pytest.approx(0.32)
    assert s["idle_power_w"] == pytest.approx(10.0)
    assert s["net_energy_per_sample_j"] == pytest.approx((32.0 - 10.0) / 100)
    assert s["energy_method"] == "measured-counter"
    assert s["energy_trials"] == 2


def test_weakest_method_labels_a_mixed_total():
    trials = [Trial(1, "load", 1.0, 10, (r("gpu", 5.0), r("cpu", 1.0, "estimated")))]
    s = energy_summary(trials)
    assert s["energy_method"] == "estimated"
    assert s["energy_method_total"] == "mixed"
    assert "cpu=estimated" in s["energy_channels"]
    assert "gpu=measured-counter" in s["energy_channels"]


def test_one_unmeasured_channel_makes_the_figure_empty_with_reason():
    trials = [Trial(1, "load", 1.0, 10, (r("gpu", 5.0), r("cpu", None, "unavailable")))]
    s = energy_summary(trials)
    assert s["energy_per_sample_j"] is None
    assert s["energy_method"] == "unavailable"
    assert s["energy_reason"] == "x"


def test_estimated_idle_is_not_reported_as_idle_power():
    trials = [Trial(0, "idle", 1.0, 0, (r("cpu", 0.001, "estimated"),)),
              Trial(1, "load", 1.0, 10, (r("cpu", 1.0, "estimated"),))]
    s = energy_summary(trials)
    assert s["energy_per_sample_j"] == pytest.approx(0.1)
    assert s["idle_power_w"] is None and s["net_energy_per_sample_j"] is None


def test_run_row_has_latency_percentiles_and_throughput():
    res = RunResult("ok", quality_metric="top1", metrics=[Metric("top1", 0.5, "fraction")],
                    latencies_s=[0.001 * i for i in range(1, 101)],
                    trials=[Trial(1, "load", 2.0, 50, (r("cpu", 1.0),))])
    run = StoredRun(1, "k", {"model": {"ref": "m"}, "backend": {"name": "b", "options": []},
                             "variant": {"name": "v"}, "batch_size": 1, "device": "cpu"},
                    "e", res, "0.1", None, None, "t", "t", 1.0, None)
    row = summarize_run(run)
    assert row["latency_p50_s"] == pytest.approx(0.0505)
    assert row["latency_p99_s"] == pytest.approx(0.09901)
    assert row["throughput_per_s"] == pytest.approx(25.0)
    assert row["quality_value"] == 0.5
