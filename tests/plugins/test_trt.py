"""TensorRT backend, with or without TensorRT: build plans, cache keys, and the builder calls
checked against a fake whose surface is limited to the documented TensorRT 10 API."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from optbench.backends.trt import (
    BuildPlan,
    TensorRtBackend,
    TensorRtConfig,
    build_engine,
    build_plan,
    engine_key,
)

# Names the backend may use, each in the TensorRT 10 Python API reference
# (docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/*.html) and
# the bindings python/src/infer/pyCore.cpp / python/src/parsers/pyOnnx.cpp of NVIDIA/TensorRT.
DOCUMENTED = {
    "module": {"Logger", "Builder", "OnnxParser", "Runtime", "NetworkDefinitionCreationFlag",
               "BuilderFlag", "MemoryPoolType", "TensorIOMode", "__version__"},
    "Builder": {"create_network", "create_builder_config", "create_optimization_profile",
                "build_serialized_network"},
    "OnnxParser": {"parse_from_file", "num_errors", "get_error"},
    "IBuilderConfig": {"set_memory_pool_limit", "set_flag", "clear_flag",
                       "add_optimization_profile", "create_timing_cache", "set_timing_cache",
                       "get_timing_cache", "builder_optimization_level"},
    "IOptimizationProfile": {"set_shape"},
    "BuilderFlag": {"FP16", "BF16", "INT8", "TF32"},
    "NetworkDefinitionCreationFlag": {"STRONGLY_TYPED"},
}


class Recorder:
    """Records attribute use; refuses names outside the documented surface of its kind."""

    def __init__(self, kind, log, **attrs):
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_attrs", attrs)

    def __getattr__(self, name):
        assert name in DOCUMENTED[self._kind], f"{self._kind}.{name} is not documented API"
        value = self._attrs[name]
        if callable(value) and not isinstance(value, type):
            def call(*args, **kwargs):
                self._log.append((f"{self._kind}.{name}", args))
                return value(*args, **kwargs)
            return call
        return value

    def __setattr__(self, name, value):
        assert name in DOCUMENTED[self._kind], f"{self._kind}.{name} is not documented API"
        self._log.append((f"{self._kind}.{name}=", (value,)))


def fake_trt(log, parse_ok=True, build_ok=True):
    flags = SimpleNamespace(FP16=0, BF16=17, INT8=1, TF32=7)
    timing = SimpleNamespace(serialize=lambda: b"timing-cache")
    profile = Recorder("IOptimizationProfile", log, set_shape=lambda *a: None)
    config = Recorder("IBuilderConfig", log, set_memory_pool_limit=lambda *a: None,
                      set_flag=lambda f: None, clear_flag=lambda f: None,
                      add_optimization_profile=lambda p: 0,
                      create_timing_cache=lambda data: timing,
                      set_timing_cache=lambda c, ignore: True,
                      get_timing_cache=lambda: timing, builder_optimization_level=3)
    builder = Recorder("Builder", log, create_network=lambda flags: "network",
                       create_builder_config=lambda: config,
                       create_optimization_profile=lambda: profile,
                       build_serialized_network=lambda n, c: b"engine" if build_ok else None)
    parser = Recorder("OnnxParser", log, parse_from_file=lambda path: parse_ok, num_errors=1,
                      get_error=lambda i: "Unsupported operator Foo")
    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    return Recorder("module", log, Logger=Logger, Builder=lambda lg: builder,
                    OnnxParser=lambda net, lg: parser, Runtime=None,
                    NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1),
                    BuilderFlag=flags, MemoryPoolType=SimpleNamespace(WORKSPACE=0),
                    TensorIOMode=None, __version__="10.9.0")


CFG = TensorRtConfig()


def test_plans_per_precision_on_tensorrt_10():
    fp32 = build_plan("fp32", 10, 8, (3, 224, 224), CFG)
    assert fp32.builder_flags == () and fp32.cleared_flags == ("TF32",)
    assert fp32.profile == ((8, 3, 224, 224),) * 3
    assert build_plan("fp16", 10, 1, (3, 8, 8), CFG).builder_flags == ("FP16",)
    assert build_plan("bf16", 10, 1, (3, 8, 8), CFG).builder_flags == ("BF16",)
    int8 = build_plan("int8", 10, 1, (3, 8, 8), CFG)
    assert int8.network_flags == ("STRONGLY_TYPED",) and int8.builder_flags == ()
    assert int8.onnx_precision == "int8-qdq"
    assert build_plan("fp32", 10, 1, (3, 8, 8), TensorRtConfig(allow_tf32=True)).cleared_flags == ()


def test_plans_on_tensorrt_11_have_no_precision_flags():
    for precision in ("fp32", "fp16", "bf16", "int8"):
        plan = build_plan(precision, 11, 1, (3, 8, 8), CFG)
        assert plan.network_flags == ("STRONGLY_TYPED",) and plan.builder_flags == ()
    assert build_plan("fp16", 11, 1, (3, 8, 8), CFG).onnx_precision == "fp16"


def test_engine_key_changes_with_everything_that_makes_an_engine_specific():
    plan = build_plan("fp16", 10, 1, (3, 8, 8), CFG)
    base = engine_key("abc", "fp16", plan, "NVIDIA H100", (9, 0), "10.9.0")
    assert base == engine_key("abc", "fp16", plan, "NVIDIA H100", (9, 0), "10.9.0")
    others = [
        engine_key("abd", "fp16", plan, "NVIDIA H100", (9, 0), "10.9.0"),
        engine_key("abc", "fp32", plan, "NVIDIA H100", (9, 0), "10.9.0"),
        engine_key("abc", "fp16", build_plan("fp16", 10, 8, (3, 8, 8), CFG), "NVIDIA H100",
                   (9, 0), "10.9.0"),
        engine_key("abc", "fp16", plan, "NVIDIA A100", (8, 0), "10.9.0"),
        engine_key("abc", "fp16", plan, "NVIDIA H100", (9, 0), "10.10.0"),
        engine_key("abc", "fp16", build_plan("fp16", 10, 1, (3, 8, 8),
                                             TensorRtConfig(workspace_bytes=1)),
                   "NVIDIA H100", (9, 0), "10.9.0"),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_build_engine_calls_the_documented_api_in_order(tmp_path):
    log = []
    trt = fake_trt(log)
    plan = build_plan("fp16", 10, 4, (3, 8, 8), CFG)
    blob = build_engine(trt, tmp_path / "m.onnx", plan, tmp_path / "timing.cache", "input")
    assert blob == b"engine"
    calls = [name for name, _ in log]
    assert calls.index("Builder.create_network") < calls.index("OnnxParser.parse_from_file")
    assert ("Builder.create_network", (0,)) in log  # explicit batch is implicit since 10.0
    assert ("IBuilderConfig.set_flag", (0,)) in log  # FP16
    assert ("IOptimizationProfile.set_shape", ("input", *plan.profile)) in log
    assert (tmp_path / "timing.cache").read_bytes() == b"timing-cache"


def test_strongly_typed_int8_network_and_errors(tmp_path):
    log = []
    trt = fake_trt(log)
    build_engine(trt, tmp_path / "q.onnx", build_plan("int8", 10, 1, (3, 8, 8), CFG), None,
                 "input")
    assert ("Builder.create_network", (1 << 1,)) in log
    assert not any(name == "IBuilderConfig.set_flag" for name, _ in log)
    bad = fake_trt([], parse_ok=False)
    with pytest.raises(RuntimeError, match="Unsupported operator Foo"):
        build_engine(bad, Path("m.onnx"), build_plan("fp32", 10, 1, (3, 8, 8), CFG), None, "input")
    failing = fake_trt([], build_ok=False)
    with pytest.raises(RuntimeError, match="failed to build"):
        build_engine(failing, Path("m.onnx"), build_plan("fp32", 10, 1, (3, 8, 8), CFG), None,
                     "input")


def test_available_here_or_says_what_it_needs():
    """Holds on a CPU-only host and in the project's GPU image alike."""
    available = TensorRtBackend.availability()
    if not available:
        # what is missing, and how to get it: the module (and its install route) or a GPU
        assert available.reason.strip()
        assert any(what in available.reason for what in ("TensorRT", "GPU", "CUDA")), \
            available.reason
    assert TensorRtBackend.supports("torch", "int8", "cpu").reason.startswith("trt does not run")
    assert isinstance(build_plan("fp32", 10, 1, (4,), CFG), BuildPlan)
