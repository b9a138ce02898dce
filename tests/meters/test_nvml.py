"""NVML meter against a fake NVML with exact power traces and the real exception classes."""

import inspect

import pytest

from optbench.meters.base import MeterContext
from optbench.meters.nvml import NvmlMeter, decode_reasons, visible_device
from optbench.meters.nvml_sources import (
    EnergyCounter,
    InstantField,
    NvmlDevice,
    PowerUsage,
    SampleBuffer,
)
from optbench.meters.polled import integrate
from optbench.testing.clock import FakeClock
from optbench.testing.nvml import FakeGpu, FakeNvml
from optbench.testing.traces import Constant, Square, Step


def make(gpu=None, env=None, gpus=None, **kw):
    clock = FakeClock(5 * 10**9, min_step_ns=1000)
    nvml = FakeNvml(gpus or [gpu or FakeGpu(Constant(300.0))], clock, **kw)
    meter = NvmlMeter(MeterContext(device="cuda", clock=clock), nvml=nvml, env=env or {},
                      background=False, self_test_s=0.5, wall_clock=nvml.wall_clock,
                      sleep=clock.sleep)
    return meter, nvml, clock


def run_window(meter, clock, seconds, polls=20):
    """Start, let `seconds` pass with `polls` background polls, stop; (reading, t0, t1)."""
    meter.start()
    for _ in range(polls):
        clock.sleep(seconds / polls)
        meter.poll()
    (reading,) = meter.stop()
    return reading, meter._t0, meter._t0 + round(reading.window_s * 1e9)


def truth(nvml, t0, t1):
    return nvml.gpus[0].trace.energy_j((t0 - nvml.t0) / 1e9, (t1 - nvml.t0) / 1e9)


def test_counter_constant_power_is_exact():
    meter, nvml, clock = make()
    meter.open()
    assert meter.source == "counter" and meter.period_s == pytest.approx(0.1, rel=0.05)
    reading, t0, t1 = run_window(meter, clock, 2.0)
    assert reading.method == "measured-counter"
    assert reading.api == "pynvml:nvmlDeviceGetTotalEnergyConsumption"
    assert reading.energy_j == pytest.approx(truth(nvml, t0, t1), rel=1e-3)
    assert reading.details["counter_vs_polled"] == pytest.approx(1.0, abs=0.02)
    assert reading.channel == "gpu:GPU-00000000-fake-0000-0000-000000000000"
    assert "below_resolution" not in reading.flags


def test_counter_square_wave_within_bound():
    meter, nvml, clock = make(FakeGpu(Square(80.0, 400.0, 0.05)))
    meter.open()
    reading, t0, t1 = run_window(meter, clock, 3.0, polls=60)
    exact = truth(nvml, t0, t1)
    # aligned start, interpolated end: at most a fraction of one 100 ms period of 400 W
    assert abs(reading.energy_j - exact) <= 0.1 * 400.0 / 2
    assert reading.uncertainty_j > 0


def test_short_window_is_flagged_below_resolution():
    meter, _, clock = make()
    meter.open()
    reading, _, _ = run_window(meter, clock, 0.5)
    assert "below_resolution" in reading.flags


@pytest.mark.parametrize("supports, source, method", [
    ({"samples", "field", "usage"}, "samples", "measured-polled"),
    ({"field", "usage"}, "field", "measured-polled"),
    ({"usage"}, "usage", "measured-polled"),
])
def test_fallback_sources_are_labelled(supports, source, method):
    meter, nvml, clock = make(FakeGpu(Constant(250.0), supports=supports))
    meter.open()
    assert meter.source == source
    assert any("energy counter" in n for n in meter.notes)
    reading, t0, t1 = run_window(meter, clock, 3.0, polls=60)
    assert reading.method == method
    assert reading.energy_j == pytest.approx(truth(nvml, t0, t1), rel=0.02)
    if source == "usage":
        assert "averaged_1s" in reading.flags


def test_step_change_polled_integration_uses_edges():
    meter, nvml, clock = make(FakeGpu(Step(100.0, 300.0, 1.7), supports={"samples"}))
    meter.open()
    reading, t0, t1 = run_window(meter, clock, 2.0, polls=40)
    assert reading.energy_j == pytest.approx(truth(nvml, t0, t1), rel=0.02)


def test_library_missing_is_no_device():
    _, nvml, _ = make(library_missing=True)
    available = NvmlMeter.availability(MeterContext(device="cuda"), nvml=nvml, env={})
    assert not available and available.reason.startswith("no-device")
    assert "libnvidia-ml" in available.reason


def test_gpu_lost_mid_trial_makes_the_window_invalid():
    meter, _, clock = make(FakeGpu(Constant(300.0), lost_after_s=2.0))
    meter.open()
    reading, _, _ = run_window(meter, clock, 2.0)
    assert reading.energy_j is None and reading.method == "unavailable"
    assert "invalid" in reading.flags
    assert "lost" in reading.reason.lower()


@pytest.mark.parametrize("reset_at_s", [1.5, 2.0])
def test_counter_reset_makes_the_window_invalid(reset_at_s):
    # 1.5 s: the end value still exceeds the start; only the polls see the drop
    meter, _, clock = make(FakeGpu(Constant(300.0), reset_at_s=reset_at_s))
    meter.open()
    reading, _, _ = run_window(meter, clock, 1.5)
    assert reading.energy_j is None and "invalid" in reading.flags
    assert "backwards" in reading.reason


def test_foreign_processes_flag_contention():
    meter, _, clock = make(FakeGpu(Constant(300.0), processes=[999_999, 999_998]))
    meter.open()
    reading, _, _ = run_window(meter, clock, 1.5)
    assert "contended" in reading.flags
    assert reading.details["foreign_pids"] == [999_998, 999_999]


def test_mig_is_labelled_not_attributable():
    meter, _, clock = make(FakeGpu(Constant(300.0), mig=True))
    meter.open()
    reading, _, _ = run_window(meter, clock, 1.5)
    assert "mig_not_attributable" in reading.flags


def test_cuda_visible_devices_mapping():
    gpus = [FakeGpu(Constant(1.0), uuid="GPU-aaaa-0"), FakeGpu(Constant(1.0), uuid="GPU-bbbb-1")]
    nvml = FakeNvml(gpus, FakeClock(5 * 10**9, min_step_ns=1000))
    assert visible_device(nvml, {})[1] == "GPU-aaaa-0"
    assert visible_device(nvml, {"CUDA_VISIBLE_DEVICES": "1,0"})[1] == "GPU-bbbb-1"
    assert visible_device(nvml, {"CUDA_VISIBLE_DEVICES": "GPU-bbbb"})[1] == "GPU-bbbb-1"
    for hidden in ("-1", "", "7"):
        with pytest.raises(LookupError, match="no-device"):
            visible_device(nvml, {"CUDA_VISIBLE_DEVICES": hidden})


def test_wall_clock_jumps_change_nothing():
    meter, nvml, clock = make(FakeGpu(Constant(200.0), supports={"samples"}))
    meter.open()
    meter.start()
    for i in range(40):
        clock.sleep(0.05)
        if i == 20:
            nvml.wall_offset_ns += 3600 * 10**9  # NTP step: driver stamps and wall jump together
        meter.poll()
    (reading,) = meter.stop()
    assert reading.energy_j == pytest.approx(200.0 * reading.window_s, rel=0.02)


def test_polled_integration_keeps_the_edges():
    # constant 100 W sampled only at 0 s and 3 s: 300 J, not the 100 J of change-point tools
    samples = [(0, 100.0), (3 * 10**9, 100.0)]
    assert integrate(samples, 0, 3 * 10**9).energy_j == pytest.approx(300.0)
    inner = integrate([(i * 10**8, 50.0) for i in range(5, 15)], 0, 2 * 10**9, 0.1)
    assert inner.energy_j == pytest.approx(100.0) and "edge_extrapolated" in inner.flags
    gappy = integrate([(0, 10.0), (10**9, 10.0), (2 * 10**9, 10.0)], 0, 2 * 10**9, 0.1)
    assert "gappy" in gappy.flags
    assert integrate([], 0, 1).energy_j is None


def test_telemetry_and_reasons():
    meter, _, _ = make()
    meter.open()
    info = meter.telemetry()
    assert info["sm_clock_mhz"] == 1980 and info["power_limit_w"] == 700.0
    assert info["clock_event_reasons"] == ["none"]
    assert decode_reasons(0x4 | 0x40) == ["sw_power_cap", "hw_thermal"]


def test_fake_surface_matches_real_nvidia_ml_py():
    pynvml = pytest.importorskip("pynvml")
    for name, fake in inspect.getmembers(FakeNvml, inspect.isfunction):
        if not name.startswith("nvml"):
            continue
        real = getattr(pynvml, name, None)
        assert real is not None, f"{name} is not in nvidia-ml-py"
        fake_params = list(inspect.signature(fake).parameters)[1:]  # drop self
        real_params = list(inspect.signature(real).parameters)
        assert len(fake_params) == len(real_params), (name, fake_params, real_params)
    for name in ("NVMLError_LibraryNotFound", "NVMLError_NotSupported", "NVMLError_GpuIsLost",
                 "NVML_TOTAL_POWER_SAMPLES", "NVML_FI_DEV_POWER_INSTANT", "NVML_CLOCK_SM"):
        assert getattr(FakeNvml, name) == getattr(pynvml, name), name


def device_for(gpu):
    clock = FakeClock(5 * 10**9, min_step_ns=1000)
    nvml = FakeNvml([gpu], clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    return NvmlDevice(nvml, handle, clock, nvml.wall_clock, clock.sleep), clock


def test_energy_counter_measures_its_period_and_starts_on_an_update():
    device, clock = device_for(FakeGpu(Constant(300.0)))
    counter = EnergyCounter(device, self_test_s=0.5)
    counter.self_test()
    assert counter.period_s == pytest.approx(0.1, rel=0.05)
    before = counter.read()
    t0 = counter.start()
    assert counter.read().mj != before.mj and t0 == clock()
    clock.sleep(1.0)
    details = {}
    assert counter.window(clock(), details) == pytest.approx(300.0, rel=1e-3)
    assert details["end"] == "interpolated"


def test_energy_counter_poll_sees_a_decrease():
    device, clock = device_for(FakeGpu(Constant(300.0), reset_at_s=0.5))
    counter = EnergyCounter(device, self_test_s=0.5)
    counter.start()  # on the update at 0.1 s
    assert counter.poll() is False
    clock.sleep(0.45)  # just past the reset, which restarts the count from zero
    assert counter.poll() is True


def test_energy_counter_self_test_fails_when_the_counter_is_missing():
    device, _ = device_for(FakeGpu(Constant(300.0), supports={"usage"}))
    with pytest.raises(FakeNvml.NVMLError):
        EnergyCounter(device, self_test_s=0.5).self_test()


@pytest.mark.parametrize("source_class, support", [
    (SampleBuffer, "samples"), (InstantField, "field"), (PowerUsage, "usage"),
])
def test_polled_sources_integrate_and_self_test(source_class, support):
    device, clock = device_for(FakeGpu(Constant(250.0), supports={support}))
    source = source_class(device)
    source.self_test()
    t0 = clock()
    for _ in range(40):
        source.poll()
        clock.sleep(0.05)
    source.poll()
    energy = source.window(t0 + 10**9, clock(), source.period_s)
    assert energy.energy_j == pytest.approx(250.0 * (clock() - t0 - 10**9) / 1e9, rel=0.02)
    unsupported, _ = device_for(FakeGpu(Constant(250.0), supports=set()))
    with pytest.raises(FakeNvml.NVMLError):
        source_class(unsupported).self_test()


def test_sample_buffer_keeps_each_driver_sample_once():
    device, clock = device_for(FakeGpu(Constant(100.0), supports={"samples"}))
    buffer = SampleBuffer(device)
    clock.sleep(0.5)
    buffer.poll()
    with pytest.raises(FakeNvml.NVMLError_NotFound):  # nothing new: the meter ignores it
        buffer.poll()
    clock.sleep(0.1)
    buffer.poll()  # only the five samples after the first poll's newest
    assert buffer.window(clock() - 6 * 10**8, clock(), 0.02).samples == 29


def test_counter_without_buffer_has_no_cross_check():
    meter, _, clock = make(FakeGpu(Constant(300.0), supports={"counter", "usage"}))
    meter.open()
    assert meter.source == "counter" and meter.polled is None
    reading, _, _ = run_window(meter, clock, 2.0)
    assert reading.method == "measured-counter" and "counter_vs_polled" not in reading.details
    assert meter.describe()["method"] == "measured-counter"
