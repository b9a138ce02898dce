"""RAPL meter against fake powercap trees with exact power traces."""

import os
import time

import pytest

from optbench.meters.base import MeterContext
from optbench.meters.rapl import PERMISSION_HINT, RaplMeter, discover, read_text
from optbench.testing.clock import FakeClock
from optbench.testing.powercap import FakePowercap
from optbench.testing.traces import Constant, Ramp, Step


def tree(tmp_path, clock, zones, **kw):
    return FakePowercap(tmp_path / "powercap", zones, clock=clock, **kw)


def meter_for(fake, clock, reader=read_text):
    meter = RaplMeter(MeterContext(clock=clock), root=fake.root, reader=reader,
                      background=False, self_test_s=0)
    meter.open()
    return meter


def window(meter, fake, clock, seconds, steps=10):
    """A window of `seconds` with `steps` background ticks, the fake updating as time passes."""
    meter.start()
    for _ in range(steps):
        clock.advance(seconds / steps)
        fake.write()
        meter.step()
    return {r.channel: r for r in meter.stop()}


def test_constant_power_is_exact_and_labelled(tmp_path):
    clock = FakeClock()
    fake = tree(tmp_path, clock, {"intel-rapl:0": ("package-0", Constant(65.0)),
                                  "intel-rapl:0:1": ("dram", Constant(4.0))})
    meter = meter_for(fake, clock)
    readings = window(meter, fake, clock, 2.0)
    pkg, dram = readings["cpu:package-0"], readings["dram:0"]
    assert pkg.energy_j == pytest.approx(130.0, abs=1e-5)
    assert dram.energy_j == pytest.approx(8.0, abs=1e-5)
    assert pkg.method == "measured-counter" and pkg.api == "powercap:intel-rapl:0/energy_uj"
    assert pkg.window_s == pytest.approx(2.0) and pkg.wraps == 0 and pkg.in_total


@pytest.mark.parametrize("steps", [6, 100])
def test_wraparound_single_and_many_is_exact(tmp_path, steps):
    clock = FakeClock()
    # range 10 J at 40 W: a wrap every 0.25 s; ticks every 0.05 s
    fake = tree(tmp_path, clock, {"intel-rapl:0": ("package-0", Constant(40.0))},
                max_range_uj=10_000_000)
    meter = meter_for(fake, clock)
    start = clock()
    seconds = 0.05 * steps
    reading = window(meter, fake, clock, seconds, steps=steps)["cpu:package-0"]
    assert reading.energy_j == pytest.approx(40.0 * seconds, abs=1e-4)
    before = fake.truth_j("intel-rapl:0", fake.t0, start)
    after = before + 40.0 * seconds
    assert reading.wraps == int(after // 10) - int(before // 10) >= 1
    assert "ambiguous_wrap" not in reading.flags


def test_stalled_tick_longer_than_a_wrap_is_flagged_ambiguous(tmp_path):
    clock = FakeClock()
    fake = tree(tmp_path, clock, {"intel-rapl:0": ("package-0", Constant(40.0))},
                max_range_uj=10_000_000)
    meter = meter_for(fake, clock)
    window(meter, fake, clock, 1.0, steps=10)  # the meter learns the peak power
    reading = window(meter, fake, clock, 0.6, steps=1)["cpu:package-0"]
    assert "ambiguous_wrap" in reading.flags


def test_ramp_integrates_exactly_and_windows_add_up(tmp_path):
    clock = FakeClock()
    fake = tree(tmp_path, clock, {"intel-rapl:0": ("package-0", Ramp(10.0, 5.0))})
    meter = meter_for(fake, clock)
    t0 = clock()
    a = window(meter, fake, clock, 1.0)["cpu:package-0"].energy_j
    t1 = clock()
    b = window(meter, fake, clock, 1.0)["cpu:package-0"].energy_j
    t2 = clock()
    assert a == pytest.approx(fake.truth_j("intel-rapl:0", t0, t1), abs=1e-5)
    assert b == pytest.approx(fake.truth_j("intel-rapl:0", t1, t2), abs=1e-5)
    assert a + b == pytest.approx(fake.truth_j("intel-rapl:0", t0, t2), abs=1e-5)


def test_domain_algebra(tmp_path):
    clock = FakeClock()
    zones = {
        "intel-rapl:0": ("package-0", Constant(50.0)),
        "intel-rapl:0:0": ("core", Constant(30.0)),
        "intel-rapl:0:1": ("uncore", Constant(5.0)),
        "intel-rapl:0:2": ("dram", Constant(6.0)),
        "intel-rapl:1": ("package-1", Constant(40.0)),
        "intel-rapl:2": ("psys", Constant(150.0)),
        "intel-rapl-mmio:0": ("package-0", Constant(50.0)),
    }
    fake = tree(tmp_path, clock, zones)
    meter = meter_for(fake, clock)
    readings = window(meter, fake, clock, 1.0)
    assert set(readings) == {"cpu:package-0", "cpu:package-1", "dram:0", "psys"}
    assert readings["cpu:package-0"].api == "powercap:intel-rapl:0/energy_uj"  # MSR kept
    assert not readings["psys"].in_total
    total = sum(r.energy_j for r in readings.values() if r.in_total)
    assert total == pytest.approx(50 + 40 + 6, abs=1e-4)  # no core/uncore, no psys
    notes = " ".join(meter.describe()["notes"])
    assert "part of its package" in notes and "same domain" in notes


def test_mirrored_packages_are_counted_once(tmp_path):
    clock = FakeClock()
    zones = {"intel-rapl:0": ("package-0", Constant(80.0)),
             "intel-rapl:1": ("package-1", Constant(80.0))}
    fake = tree(tmp_path, clock, zones)

    def reader(path):  # 1 ms passes, and the hardware updates, before every counter read
        if path.name == "energy_uj":
            clock.advance(0.001)
            fake.write()
        return path.read_text()

    meter = RaplMeter(MeterContext(clock=clock), root=fake.root, reader=reader,
                      background=False, self_test_s=0.05)
    meter.open()
    assert [c.name for c in meter.channels] == ["cpu:package-0"]
    assert "mirrors" in " ".join(meter.notes)
    # each package is read every 2 ms (two reads of 1 ms each per round)
    assert meter.update_periods["cpu:package-0"] == pytest.approx(0.002)


def test_unreadable_range_means_counter_not_used(tmp_path):
    clock = FakeClock()
    fake = tree(tmp_path, clock, {"intel-rapl:0": ("package-0", Constant(1.0)),
                                  "intel-rapl:0:1": ("dram", Constant(1.0))},
                unreadable_range=("intel-rapl:0:1",))
    found = discover(fake.root)
    assert [z.id for z in found.zones] == ["intel-rapl:0"]
    assert "counter not used" in found.notes[0]


def test_permission_denied_is_unavailable_with_an_actionable_reason(tmp_path):
    clock = FakeClock()
    fake = tree(tmp_path, clock, {"intel-rapl:0": ("package-0", Constant(1.0))})

    def reader(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text()

    available = RaplMeter.availability(MeterContext(), root=fake.root, reader=reader)
    assert not available and available.reason == PERMISSION_HINT
    assert "CVE-2020-8694" in available.reason


def test_missing_root_and_empty_tree(tmp_path):
    missing = RaplMeter.availability(MeterContext(), root=tmp_path / "nope")
    assert not missing and missing.reason.startswith("vm-no-rapl")
    (tmp_path / "empty").mkdir()
    empty = RaplMeter.availability(MeterContext(), root=tmp_path / "empty")
    assert not empty and empty.reason.startswith("not-supported")


def test_power_step_within_a_window(tmp_path):
    clock = FakeClock()
    fake = tree(tmp_path, clock, {"intel-rapl:0": ("package-0", Step(20.0, 100.0, 1.5))})
    meter = meter_for(fake, clock)
    clock.advance(1.0)
    fake.write()
    reading = window(meter, fake, clock, 1.0)["cpu:package-0"]
    assert reading.energy_j == pytest.approx(20 * 0.5 + 100 * 0.5, abs=1e-5)


def test_background_thread_failure_reraises_at_the_next_edge(tmp_path):
    clock = FakeClock()
    fake = tree(tmp_path, clock, {"intel-rapl:0": ("package-0", Constant(1.0))})
    meter = meter_for(fake, clock)
    meter._ticker._error = OSError("device gone")
    with pytest.raises(RuntimeError, match="device gone"):
        meter.start()


def test_real_background_thread_catches_every_wrap(tmp_path):
    fake = FakePowercap(tmp_path / "pc", {"intel-rapl:0": ("package-0", Constant(30.0))},
                        max_range_uj=3_000_000).run(period_s=0.001)
    try:
        meter = RaplMeter(MeterContext(), root=fake.root, self_test_s=0.05)
        meter.open()
        t0 = os.times().elapsed
        meter.start()
        time.sleep(0.5)
        (reading,) = meter.stop()
        meter.close()
        elapsed = os.times().elapsed - t0
    finally:
        fake.stop()
    # 30 W with a 3 J range wraps every 0.1 s: the adaptive tick catches every wrap
    assert reading.wraps >= 4
    assert reading.energy_j == pytest.approx(30.0 * reading.window_s, rel=0.02)
    assert reading.window_s <= elapsed + 0.01
    # the fake's writer thread aims at 1 ms; a busy machine stretches it
    assert 0 < meter.update_periods["cpu:package-0"] < 0.05


def write_constraints(zone, *constraints, enabled="1"):
    """constraint_<i>_{name,power_limit_uw[,max_power_uw]} files, as the kernel exposes."""
    for i, (name, limit_w, max_w) in enumerate(constraints):
        (zone / f"constraint_{i}_name").write_text(f"{name}\n")
        (zone / f"constraint_{i}_power_limit_uw").write_text(f"{int(limit_w * 1e6)}\n")
        if max_w is not None:
            (zone / f"constraint_{i}_max_power_uw").write_text(f"{int(max_w * 1e6)}\n")
    if enabled is not None:
        (zone / "enabled").write_text(f"{enabled}\n")


def test_power_limits_are_recorded_per_channel(tmp_path):
    clock = FakeClock()
    fake = tree(tmp_path, clock, {"intel-rapl:0": ("package-0", Constant(50.0)),
                                  "intel-rapl:0:1": ("dram", Constant(4.0)),
                                  "intel-rapl:1": ("package-1", Constant(40.0))})
    write_constraints(fake.root / "intel-rapl:0", ("long_term", 125, None),
                      ("short_term", 253, None))
    # limits not enforced: only the constraint's documented maximum bounds the power
    write_constraints(fake.root / "intel-rapl:1", ("long_term", 100, 180), enabled="0")
    info = meter_for(fake, clock).describe()
    pkg0, pkg1, dram = (info["channels"][c] for c in ("cpu:package-0", "cpu:package-1",
                                                      "dram:0"))
    assert pkg0["power_limits_w"] == {"long_term": 125.0, "short_term": 253.0}
    assert pkg0["power_limit_w"] == 253.0 and pkg0["enabled"] is True
    assert pkg1["power_limit_w"] == 180.0 and pkg1["enabled"] is False
    assert "power_limit_w" not in dram  # the zone documents none
    assert info["min_window_periods"] == 10
