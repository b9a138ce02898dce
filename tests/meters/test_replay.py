"""Replay of a real H100 power trace (recorded by benchmarks/nvml_validation.py)."""

import gzip
import json
from pathlib import Path

import pytest

from optbench.meters.base import MeterContext
from optbench.meters.nvml import NvmlMeter
from optbench.testing.clock import FakeClock
from optbench.testing.nvml import FakeGpu, FakeNvml
from optbench.testing.traces import Recorded

FIXTURE = Path(__file__).parent / "fixtures" / "h100-power-buffer.json.gz"


@pytest.fixture(scope="module")
def trace():
    with gzip.open(FIXTURE, "rt") as handle:
        data = json.load(handle)
    return Recorded([(t_ms / 1000, w) for t_ms, w in data["samples"]])


def test_recorded_trace_integral_is_consistent(trace):
    assert trace.energy_j(10, 20) + trace.energy_j(20, 30) == pytest.approx(trace.energy_j(10, 30))
    # the 5 x 60 s section ran at the 700 W power cap
    assert 650 < trace.energy_j(100, 160) / 60 < 710


@pytest.mark.parametrize("supports, tolerance", [
    ({"counter", "samples"}, 0.003),   # counter: start aligned, end interpolated
    ({"samples"}, 0.01),               # driver buffer, 20 ms
    ({"usage"}, 0.05),                 # 1 s average lags changes
])
def test_meter_on_the_replayed_trace(trace, supports, tolerance):
    clock = FakeClock(min_step_ns=1000)
    nvml = FakeNvml([FakeGpu(trace, supports=supports)], clock)
    meter = NvmlMeter(MeterContext(device="cuda", clock=clock), nvml=nvml, env={},
                      background=False, self_test_s=0.5, wall_clock=nvml.wall_clock,
                      sleep=clock.sleep)
    meter.open()
    # the windows cover the constant, the square-wave and the capped sections
    for start_s in (22.0, 33.0, 120.0):
        clock.now = nvml.t0 + int(start_s * 1e9)
        meter.start()
        for _ in range(100):
            clock.sleep(0.05)
            meter.poll()
        (reading,) = meter.stop()
        t0 = (meter._t0 - nvml.t0) / 1e9
        exact = trace.energy_j(t0, t0 + reading.window_s)
        assert reading.energy_j == pytest.approx(exact, rel=tolerance), (start_s, supports)
