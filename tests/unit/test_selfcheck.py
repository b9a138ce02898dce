"""`optbench env --check`: each path's reason, with fakes for what this machine lacks."""

import sys
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.errors import Availability, Unavailable
from optbench.run import selfcheck
from optbench.run.selfcheck import (
    check_meter,
    check_ort,
    check_tensorrt,
    cuda_reason,
    run_here,
    run_isolated,
)


def fake_torch(cuda="13.0", available=False, init_error=None):
    def init():
        if init_error:
            raise RuntimeError(init_error)

    return SimpleNamespace(__version__="2.13.0", version=SimpleNamespace(cuda=cuda),
                           cuda=SimpleNamespace(is_available=lambda: available, init=init))


def test_why_torch_cannot_use_cuda():
    assert "is a CPU build" in cuda_reason(fake_torch(cuda=None))
    old = cuda_reason(fake_torch(init_error="The NVIDIA driver on your system is too old "
                                            "(found version 12020)"))
    assert "cannot use CUDA: The NVIDIA driver on your system is too old" in old
    assert "no CUDA device visible" in cuda_reason(fake_torch())
    assert cuda_reason(fake_torch(available=True)) is None


def fake_ort(available, session_providers):
    class Session:
        def __init__(self, path, providers):
            self.providers = providers

        def get_providers(self):
            return session_providers

    return SimpleNamespace(__version__="1.31.0", get_available_providers=lambda: available,
                           InferenceSession=Session, preload_dlls=lambda: None)


def test_ort_gpu_paths_say_which_part_is_missing():
    cpu = ["CPUExecutionProvider"]
    with pytest.raises(Unavailable, match="onnxruntime-gpu is not installed"):
        check_ort("cuda", fake_ort(cpu, cpu), gpu_installed=lambda: False)
    with pytest.raises(Unavailable, match="has no TensorrtExecutionProvider .*it has "
                                          "CUDAExecutionProvider"):
        check_ort("tensorrt", fake_ort(["CUDAExecutionProvider", *cpu], cpu),
                  gpu_installed=lambda: True)
    both = ["TensorrtExecutionProvider", "CUDAExecutionProvider", *cpu]
    with pytest.raises(Unavailable, match="fell back to CUDAExecutionProvider"):
        check_ort("tensorrt", fake_ort(both, ["CUDAExecutionProvider", *cpu]),
                  gpu_installed=lambda: True)


def test_the_cpu_paths_work_here():
    assert run_here("torch:cpu").ok
    ort = run_here("ort:cpu")
    assert ort.ok and "CPUExecutionProvider" in ort.detail


def test_tensorrt_missing_is_a_reason_not_an_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(Unavailable, match="tensorrt cannot be imported .*optbench\\[trt\\]"):
        check_tensorrt()


def test_a_meter_reason_is_its_own(monkeypatch):
    class Meter:
        @classmethod
        def availability(cls, ctx):
            return Availability.no("permission: /sys/class/powercap/intel-rapl:0/energy_uj is "
                                   "readable by root only")

    registry = SimpleNamespace(get=lambda name: Meter)
    with pytest.raises(Unavailable, match="readable by root only"):
        check_meter("rapl", "cpu", registry)


def test_a_check_that_breaks_or_whose_process_dies_is_reported(monkeypatch):
    def broken():
        raise OSError("libcudart.so.13: cannot open shared object file")

    monkeypatch.setitem(selfcheck.CHECKS, "broken", broken)
    result = run_here("broken")
    assert not result.ok and "OSError: libcudart.so.13" in result.detail
    died = run_isolated("not-a-path")  # the child refuses it: exit 2
    assert not died.ok and "exit code 2" in died.detail


def test_env_check_cli(tmp_path):
    bad = CliRunner().invoke(app, ["env", "--check", "--paths", "torch:cpu,tensorrt"])
    assert bad.exit_code == 2 and "did you mean 'trt:cuda'" not in bad.output
    assert "no check 'tensorrt'" in bad.output
    mixed = CliRunner().invoke(app, ["env", "--check", "--paths", "torch:cpu,trt:cuda"])
    assert "works        torch:cpu" in mixed.output
    if "works        trt:cuda" in mixed.output:  # a GPU host with TensorRT
        assert mixed.exit_code == 0 and "2 of 2 paths" in mixed.output
    else:
        assert mixed.exit_code == 1 and "unavailable  trt:cuda" in mixed.output
        assert "1 of 2 paths work here" in mixed.output
