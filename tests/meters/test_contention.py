import pytest

from optbench.measure.contention import CpuContention, machine_busy_s, resolution_cores


def test_foreign_load_is_machine_minus_own():
    machine, own, now = [100.0], [10.0], [0.0]
    c = CpuContention(lambda: machine[0], lambda: own[0], lambda: now[0])
    c.start()
    now[0] += 10.0
    machine[0] += 25.0   # 2.5 cores busy in total
    own[0] += 24.0       # 2.4 of them ours
    foreign = c.stop()
    assert foreign == pytest.approx(0.1)
    assert c.contended(foreign) == (0.1 > max(0.05, resolution_cores(10.0)))


def test_below_resolution_is_not_contention():
    machine, own, now = [0.0], [0.0], [0.0]
    c = CpuContention(lambda: machine[0], lambda: own[0], lambda: now[0])
    c.start()
    now[0] += 0.001
    machine[0] += 0.0001
    assert not c.contended(c.stop())


def test_unknown_without_proc_stat(tmp_path):
    assert machine_busy_s(tmp_path / "missing") is None
    c = CpuContention(lambda: None, lambda: 0.0)
    c.start()
    assert c.stop() is None and not c.contended(None)
