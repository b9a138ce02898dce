import numpy as np
import pytest

from optbench.measure.loop import MeasuredLoop, converged, make_batches
from optbench.measure.presets import PRESETS, Preset
from optbench.meters.base import MeterContext
from optbench.results.schema import EnergyReading, Trial
from optbench.testing.clock import FakeClock
from optbench.testing.traces import Constant, TraceMeter


class ClockedBackend:
    """Each infer advances the fake clock by a fixed latency; outputs echo the inputs."""

    def __init__(self, clock: FakeClock, latency_s: float) -> None:
        self.clock, self.latency_ns = clock, int(latency_s * 1e9)
        self.calls = 0
        self.syncs = 0

    def prepare(self, batch):
        return batch

    def infer(self, x):
        self.calls += 1
        self.clock.now += self.latency_ns
        return x.reshape(len(x), -1)[:, :3]

    def infer_timed(self, x):
        return self.infer(x), self.latency_ns / 1e9 / 2  # "device" time: half of the host
    def to_numpy(self, out):
        return np.asarray(out)

    def synchronize(self):
        self.syncs += 1


PROTOCOL = Preset("t", warmup_min_s=0.1, warmup_max_s=1, latency_min_iters=10,
                    latency_min_s=0.05, latency_max_s=1, window_min_s=0.5, trials_min=3,
                    trials_max=5, idle_s=0.2, eval_cap=None)


def make_loop(latency_s=0.01, batch_size=4, watts=50.0, protocol=PROTOCOL):
    clock = FakeClock()
    backend = ClockedBackend(clock, latency_s)
    meter = TraceMeter(MeterContext(clock=clock), Constant(watts))
    loop = MeasuredLoop(backend, batch_size, [meter], protocol, clock=clock, sleep=clock.sleep)
    return loop, backend


def test_make_batches_pads_by_wrapping_and_reports_true_count():
    x = np.arange(10).reshape(10, 1)
    batches, n = make_batches(x, 4)
    assert n == 10 and len(batches) == 3
    assert batches[-1].ravel().tolist() == [8, 9, 0, 1]
    with pytest.raises(ValueError):
        make_batches(x[:0], 4)


def test_outputs_align_with_inputs_and_padding_is_dropped():
    loop, _ = make_loop()
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    out = loop.run(x)
    assert out.outputs.shape == (10, 3)
    np.testing.assert_array_equal(out.outputs, x)


def test_latency_pass_times_each_iteration_exactly():
    loop, _ = make_loop(latency_s=0.01)
    out = loop.run(np.zeros((8, 3), np.float32))
    assert len(out.latencies_s) >= PROTOCOL.latency_min_iters
    assert all(v == pytest.approx(0.01) for v in out.latencies_s)
    assert len(out.device_latencies_s) == len(out.latencies_s)
    assert all(v == pytest.approx(0.005) for v in out.device_latencies_s)


def test_energy_per_sample_is_exact_with_a_constant_trace():
    loop, _ = make_loop(latency_s=0.01, batch_size=4, watts=50.0)
    out = loop.run(np.zeros((8, 3), np.float32))
    idle, *loads = out.trials
    assert idle.phase == "idle" and idle.samples == 0
    assert idle.readings[0].energy_j == pytest.approx(50.0 * 0.2)
    # constant power: energy/sample = P * latency / batch exactly, and the CI is zero,
    # so the stop rule ends at the minimum number of trials.
    assert len(loads) == PROTOCOL.trials_min
    for t in loads:
        assert t.window_s >= PROTOCOL.window_min_s
        assert t.samples % 4 == 0
        assert t.readings[0].energy_j / t.samples == pytest.approx(50.0 * 0.01 / 4)


def test_window_counts_only_completed_samples():
    loop, backend = make_loop(latency_s=0.3, batch_size=2)
    trial = loop.load_trial(1, [np.zeros((2, 3), np.float32)], 0.5)
    # 0.3 s per batch: the second batch crosses 0.5 s, then the window closes after it.
    assert trial.samples == 4
    assert trial.window_s == pytest.approx(0.6)


def test_window_stretches_to_meter_resolution():
    clock = FakeClock()
    slow = TraceMeter(MeterContext(clock=clock), Constant(1.0), period_s=0.2)
    loop = MeasuredLoop(ClockedBackend(clock, 0.01), 1, [slow], PROTOCOL, clock=clock)
    assert loop.window_s() == pytest.approx(PROTOCOL.window_periods * 0.2)


def test_warm_up_stops_when_steady_and_records_it():
    loop, _ = make_loop(latency_s=0.01)
    info = loop.warm_up([np.zeros((1, 3), np.float32)])
    assert info["steady"] is True
    assert info["seconds"] >= PROTOCOL.warmup_min_s


def reading(j):
    return EnergyReading("c", j, 1.0, "measured-counter", "x")


def test_stop_rule_uses_energy_ci_then_throughput():
    tight = [Trial(i, "load", 1.0, 100, (reading(10.0 + 0.001 * i),)) for i in range(3)]
    loose = [Trial(i, "load", 1.0, 100, (reading(v),)) for i, v in enumerate((5, 10, 20))]
    assert converged(tight, 0.02)
    assert not converged(loose, 0.02)
    unmeasured = [Trial(i, "load", 1.0, 100 + i, (EnergyReading("c", None, 1.0, "unavailable",
                                                                "none", reason="x"),))
                  for i in range(3)]
    assert not converged(unmeasured, 0.001)


def test_presets_escalate():
    q, s, r = PRESETS["quick"], PRESETS["standard"], PRESETS["rigorous"]
    assert q.window_min_s < s.window_min_s < r.window_min_s == 60
    assert q.trials_max <= s.trials_max and r.trials_min >= 5
