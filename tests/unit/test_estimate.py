import pytest

from optbench.env import cpu_model_name
from optbench.meters.base import MeterContext
from optbench.meters.estimate import CpuEstimateMeter, resolve_cpu_power
from optbench.meters.select import select_meters


def test_power_sources_in_order():
    user = resolve_cpu_power(100.0, "AMD EPYC 7763 64-Core", 4)
    assert user.watts_per_thread == 25.0 and "user-supplied" in user.source
    table = resolve_cpu_power(None, "AMD EPYC 7763 64-Core Processor", 4)
    assert table.watts_per_thread == pytest.approx(280 / 128) and "TDP table" in table.source
    default = resolve_cpu_power(None, "Mystery CPU", 4)
    assert "default" in default.source and default.band == (0.25, 2.0)


def test_estimate_reading_is_labelled_with_formula_and_inputs():
    now = [0]
    cpu = [10.0]
    meter = CpuEstimateMeter(MeterContext(clock=lambda: now[0], cpu_tdp_w=64.0),
                             cpu_seconds=lambda: cpu[0])
    meter.start()
    now[0] += 2_000_000_000
    cpu[0] += 3.0
    (reading,) = meter.stop()
    per_thread = 64.0 / meter.power.threads
    assert reading.method == "estimated"
    assert reading.energy_j == pytest.approx(per_thread * 3.0)
    assert reading.window_s == 2.0
    assert reading.details["formula"].startswith("E = TDP_W / threads")
    assert reading.details["process_cpu_s"] == 3.0
    assert reading.uncertainty_j == pytest.approx(0.5 * reading.energy_j)


def test_cpu_model_name_reads_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nmodel name\t: Test CPU 3000\n")
    assert cpu_model_name(f) == "Test CPU 3000"


def test_auto_selection_falls_back_to_estimate_and_can_refuse_it():
    ctx = MeterContext()
    (meter,) = select_meters(["auto"], ctx)
    assert meter.role == "cpu"
    (none,) = select_meters(["auto"], ctx, estimate=False)
    meter_reading = none.stop()[0] if none.start() is None else None
    assert meter_reading.energy_j is None and meter_reading.method == "unavailable"
    assert "estimates disabled" in meter_reading.reason
