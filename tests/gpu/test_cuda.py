"""GPU paths: torch on CUDA, the real NVML meter, and a sweep on the GPU.

Marked `gpu`: skipped with the reason where no CUDA GPU is usable, and failing instead
when OPTBENCH_REQUIRE_GPU=1 (make test-gpu), so a broken GPU runner is never silent.
"""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def tiny_artifact():
    import torch
    from torch import nn

    from optbench.artifact import ModelArtifact

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(256, 10)).eval()
    return ModelArtifact("tiny", "torch", (3, 32, 32), 10, module=module, digest="tiny-gpu")


@pytest.mark.parametrize("precision, tol", [("fp32", 1e-3), ("fp16", 2e-2), ("bf16", 6e-2)])
def test_torch_cuda_precisions_match_cpu_reference(precision, tol, tmp_path):
    import dataclasses

    import torch

    from optbench.backends.base import LoadContext
    from optbench.backends.torch import TorchBackend, TorchConfig

    base = tiny_artifact()
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = base.module(torch.from_numpy(x)).numpy()
    for config in (TorchConfig(), TorchConfig(channels_last=True)):
        backend = TorchBackend(config, "cuda")
        backend.load(dataclasses.replace(base, precision=precision),
                     LoadContext(tmp_path, 8, "cuda"))
        out = backend.to_numpy(backend.infer(backend.prepare(x)))
        backend.synchronize()
        info = backend.describe()
        backend.close()
        np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
        assert "gpu" in info


def test_real_nvml_counter_under_load():
    import torch

    from optbench.meters.base import MeterContext
    from optbench.meters.nvml import NvmlMeter

    ctx = MeterContext(device="cuda")
    available = NvmlMeter.availability(ctx)
    assert available, available.reason
    meter = NvmlMeter(ctx)
    meter.open()
    try:
        assert meter.source == "counter", meter.notes
        assert 0.005 < meter.period_s < 1.0
        a = torch.randn(4096, 4096, device="cuda")
        meter.start()
        for _ in range(400):
            a = torch.tanh(a @ a)
        torch.cuda.synchronize()
        (reading,) = meter.stop()
        telemetry = meter.telemetry()
    finally:
        meter.close()
    assert reading.method == "measured-counter" and reading.energy_j > 0
    power = reading.energy_j / reading.window_s
    assert 30 < power < 2000
    if reading.details.get("counter_vs_polled") is not None:
        assert abs(reading.details["counter_vs_polled"] - 1) < 0.15, reading.details
    assert isinstance(telemetry["sm_clock_mhz"], int)


def test_compare_on_the_gpu_meters_gpu_and_cpu(tmp_path):
    from typer.testing import CliRunner

    from optbench.cli import app

    cli = CliRunner()
    result = cli.invoke(app, ["compare", "--model", "resnet50", "--backends", "torch",
                              "--fp16", "--bf16", "--preset", "smoke", "--eval-samples", "32",
                              "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(tmp_path)]).stdout)
    assert {r["variant"] for r in rows} == {"fp32", "fp16", "bf16"}
    fp32 = next(r for r in rows if r["variant"] == "fp32")
    # fp32 means fp32: with TF32 off the GPU agrees with the CPU fp32 reference
    assert fp32["quality_value"] >= 0.99, fp32["quality_value"]
    for row in rows:
        assert row["status"] == "ok" and row["device"] == "cuda", row["reason"]
        # CUDA events time the device alone: never more than the host-side latency
        assert 0 < row["latency_device_p50_s"] <= row["latency_p50_s"] * 1.05
        channels = row["energy_channels"]
        assert "gpu:GPU-" in channels and "=measured-counter" in channels
        assert row["energy_per_sample_j"] > 0


def test_env_check_proves_the_gpu_paths_this_host_has():
    """The self-check first: torch on CUDA and NVML must work on any GPU runner; TensorRT,
    onnxruntime-gpu and vLLM where installed (else their reason is printed, not failed)."""
    import importlib.util

    from optbench.run.selfcheck import run_isolated

    results = {p: run_isolated(p) for p in ("torch:cuda", "nvml", "ort:cuda", "ort:tensorrt",
                                           "trt:cuda", "vllm:cuda")}
    print("\n".join(r.line() for r in results.values()))
    assert results["torch:cuda"].ok, results["torch:cuda"].detail
    assert results["nvml"].ok, results["nvml"].detail
    from optbench.backends.ort import gpu_runtime_installed

    installed = {"ort:cuda": gpu_runtime_installed(),
                 "trt:cuda": importlib.util.find_spec("tensorrt") is not None,
                 "vllm:cuda": importlib.util.find_spec("vllm") is not None}
    for path, present in installed.items():
        if present:  # installed on a GPU host: it must work
            assert results[path].ok, results[path].detail
