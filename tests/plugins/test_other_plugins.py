"""Contract tests over every registered transform, meter and workload."""

import dataclasses

import pytest

from optbench.artifact import ModelArtifact
from optbench.backends.base import Availability
from optbench.meters import METERS
from optbench.meters.base import Meter, MeterContext
from optbench.results.schema import METHODS
from optbench.transforms import TRANSFORMS
from optbench.transforms.base import Stage, Transform
from optbench.workloads import WORKLOADS
from optbench.workloads.base import Workload


@pytest.mark.parametrize("name", TRANSFORMS.names())
def test_transform_contract(name):
    cls = TRANSFORMS.get(name)
    assert issubclass(cls, Transform) and isinstance(cls.stage, Stage)
    assert dataclasses.is_dataclass(cls.Config)
    transform = cls(cls.Config())
    from optbench.testing.backend import FakeBackend

    artifact = ModelArtifact("m", "numpy", (4,), 2, digest="d")
    assert isinstance(transform.supports(FakeBackend, "cpu", artifact), Availability)


@pytest.mark.parametrize("name", METERS.names())
def test_meter_contract(name):
    cls = METERS.get(name)
    assert issubclass(cls, Meter) and cls.role in ("cpu", "gpu")
    ctx = MeterContext()
    available = cls.availability(ctx)
    if not available:
        assert available.reason
        return
    meter = cls(ctx)
    meter.open()
    try:
        meter.start()
        readings = meter.stop()
    finally:
        meter.close()
    assert readings
    for r in readings:
        assert r.method in METHODS
        assert r.energy_j is None or r.energy_j >= 0
        assert r.energy_j is not None or r.reason


@pytest.mark.parametrize("name", WORKLOADS.names())
def test_workload_contract(name):
    cls = WORKLOADS.get(name)
    assert issubclass(cls, Workload) and cls.sample_unit
