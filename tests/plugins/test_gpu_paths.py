"""The GPU paths' defects an API check found (issue 19), each fixed under a test that runs
without a GPU: the Q/DQ graph TensorRT gets, the providers a session really has, TF32,
tensor types, a user ONNX's input name, timing caches."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from optbench.backends.ort import check_session_providers, provider_list
from optbench.backends.trt import (
    TensorRtConfig,
    build_engine,
    build_plan,
    timing_cache_key,
    torch_dtype,
)
from optbench.errors import Unavailable

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def conv_model(path: Path, input_name: str = "pixels") -> Path:
    """A conv with a bias and a Gemm with a bias, input named as a user's file might."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(size=(4 * 6 * 6, 3)).astype(np.float32), "fw"),
             numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "fb")]
    nodes = [helper.make_node("Conv", [input_name, "w", "b"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"])]
    graph = helper.make_graph(
        nodes, "user", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                                      ["n", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def dequantize_inputs(path: Path) -> list[int]:
    """The element type of every DequantizeLinear's quantized input."""
    model = onnx.load(str(path))
    types = {i.name: i.data_type for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":
            for out in node.output:
                zero = next((types[z] for z in node.input[2:3] if z in types), None)
                types[out] = zero if zero is not None else onnx.TensorProto.UINT8
    return [types.get(n.input[0], -1) for n in model.graph.node
            if n.op_type == "DequantizeLinear"]


def test_qdq_for_tensorrt_has_no_int32_dequantize_and_signed_activations(tmp_path):
    from optbench.backends.onnx_export import onnx_input_name, quantize_qdq_int8

    src = conv_model(tmp_path / "user.onnx")
    assert onnx_input_name(src) == "pixels"
    calibration = [np.random.default_rng(i).normal(size=(2, 1, 8, 8)).astype(np.float32)
                   for i in range(4)]
    cpu = quantize_qdq_int8(src, tmp_path / "cpu.onnx", "pixels", calibration, True, "minmax")
    trt = quantize_qdq_int8(src, tmp_path / "trt.onnx", "pixels", calibration, True, "minmax",
                            for_tensorrt=True)
    # ORT's default quantizes biases to int32: what TensorRT cannot take
    assert onnx.TensorProto.INT32 in dequantize_inputs(cpu)
    assert onnx.TensorProto.UINT8 in dequantize_inputs(cpu)
    kinds = set(dequantize_inputs(trt))
    assert kinds == {onnx.TensorProto.INT8}, kinds  # int8 only: activations and weights
    zeros = [onnx.numpy_helper.to_array(i) for i in onnx.load(str(trt)).graph.initializer
             if i.name.endswith("zero_point")]
    assert zeros and all(not z.any() for z in zeros)  # symmetric: zero points 0
    import onnxruntime as ort

    out = ort.InferenceSession(str(trt)).run(None, {"pixels": calibration[0]})[0]
    assert out.shape == (2, 3)


def test_a_session_that_fell_back_is_not_labelled_with_the_provider_asked_for():
    check_session_providers("cpu", ["CPUExecutionProvider"])
    check_session_providers("tensorrt", ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                         "CPUExecutionProvider"])
    with pytest.raises(Unavailable, match="could not create the TensorrtExecutionProvider .*"
                                          "fell back to CUDAExecutionProvider"):
        check_session_providers("tensorrt", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(Unavailable, match="CUDAExecutionProvider"):
        check_session_providers("cuda", ["CPUExecutionProvider"])


def test_the_cuda_provider_runs_fp32_without_tf32_unless_allowed(tmp_path):
    cuda = dict(provider_list("cuda", 0, tmp_path, "fp32", "EXHAUSTIVE")[0][1])
    assert cuda["use_tf32"] == 0
    allowed = dict(provider_list("cuda", 0, tmp_path, "fp32", "EXHAUSTIVE", True)[0][1])
    assert allowed["use_tf32"] == 1
    trt_list = provider_list("tensorrt", 0, tmp_path, "fp32", "EXHAUSTIVE")
    assert dict(trt_list[1][1])["use_tf32"] == 0  # its CUDA fallback nodes as well


def test_tensor_types_cover_bf16_and_refuse_the_unknown():
    import torch

    trt = SimpleNamespace(float32="f32", float16="f16", bfloat16="bf16", int8="i8",
                          int32="i32", int64="i64", bool="b", uint8="u8")
    assert torch_dtype(trt, "bf16") is torch.bfloat16
    assert torch_dtype(trt, "f16") is torch.float16
    with pytest.raises(Unavailable, match="fp8"):
        torch_dtype(trt, "fp8")


class Network:
    def __init__(self, name):
        self.name = name

    def get_input(self, index):
        return SimpleNamespace(name=self.name)


def fake_trt(calls, network, accept_cache=True):
    timing = SimpleNamespace(serialize=lambda: b"fresh-timings")
    config = SimpleNamespace(
        set_memory_pool_limit=lambda *a: None, set_flag=lambda f: None,
        clear_flag=lambda f: None, add_optimization_profile=lambda p: 0,
        create_timing_cache=lambda data: calls.append(("create_timing_cache", data)) or timing,
        set_timing_cache=lambda c, ignore: calls.append(("set_timing_cache",)) or accept_cache,
        get_timing_cache=lambda: timing if accept_cache else None)
    profile = SimpleNamespace(set_shape=lambda *a: calls.append(("set_shape", *a)))
    builder = SimpleNamespace(create_network=lambda flags: network,
                              create_builder_config=lambda: config,
                              create_optimization_profile=lambda: profile,
                              build_serialized_network=lambda n, c: b"engine")
    parser = SimpleNamespace(parse_from_file=lambda p: True, num_errors=0)
    return SimpleNamespace(Logger=SimpleNamespace(WARNING=2, __call__=None),
                           Builder=lambda lg: builder, OnnxParser=lambda n, lg: parser,
                           NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1),
                           BuilderFlag=SimpleNamespace(FP16=0, BF16=1, TF32=2),
                           MemoryPoolType=SimpleNamespace(WORKSPACE=0))


def logger_module(trt):
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, s: None})
    return trt


def test_a_user_onnx_gets_its_profile_on_its_own_input_name(tmp_path):
    calls = []
    trt = logger_module(fake_trt(calls, Network("pixel_values")))
    plan = build_plan("fp32", 10, 4, (3, 8, 8), TensorRtConfig())
    build_engine(trt, tmp_path / "user.onnx", plan, None)
    assert ("set_shape", "pixel_values", *plan.profile) in calls


def test_a_rejected_timing_cache_is_replaced_not_a_crash_after_the_build(tmp_path):
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"from-another-gpu")
    calls = []
    trt = logger_module(fake_trt(calls, Network("input"), accept_cache=False))
    blob = build_engine(trt, tmp_path / "m.onnx", build_plan("fp32", 10, 1, (3, 8, 8),
                                                            TensorRtConfig()), cache)
    assert blob == b"engine"
    assert ("create_timing_cache", b"from-another-gpu") in calls
    assert ("create_timing_cache", b"") in calls  # the fresh one it built with instead
    assert cache.read_bytes() == b"from-another-gpu"  # no cache came back: left as it was


def test_timing_caches_are_per_gpu_model_not_per_generation():
    sxm = timing_cache_key("NVIDIA H100 80GB HBM3", (9, 0), "10.9.0")
    pcie = timing_cache_key("NVIDIA H100 PCIe", (9, 0), "10.9.0")
    assert sxm != pcie and "10.9.0" in sxm and "sm90" in sxm


def test_tensorrt_11_fp32_clears_tf32_and_a_user_onnx_in_fp16_says_what_it_needs(tmp_path):
    from optbench.backends.trt import TensorRtBackend

    assert build_plan("fp32", 11, 1, (3, 8, 8), TensorRtConfig()).cleared_flags == ("TF32",)
    assert build_plan("fp32", 11, 1, (3, 8, 8),
                      TensorRtConfig(allow_tf32=True)).cleared_flags == ()
    assert build_plan("fp16", 11, 1, (3, 8, 8), TensorRtConfig()).cleared_flags == ()
    backend = TensorRtBackend(TensorRtConfig())
    backend.trt_major = 11
    user_onnx = SimpleNamespace(format="onnx", precision="fp16")
    with pytest.raises(Unavailable, match="give an fp16 ONNX"):
        backend._onnx_for(user_onnx, build_plan("fp16", 11, 1, (3, 8, 8), TensorRtConfig()),
                          SimpleNamespace(cache_dir=tmp_path))


def test_ort_tensorrt_engine_cache_is_per_tensorrt_version_and_gpu_model(tmp_path):
    def cache_of(gpu, version):
        options = dict(provider_list("tensorrt", 0, tmp_path, "fp16", "EXHAUSTIVE", False,
                                     gpu, version)[0][1])
        assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"]
        return options["trt_engine_cache_path"]

    base = cache_of("NVIDIA H100 PCIe", "11.4.0.106")
    assert base != cache_of("NVIDIA H100 80GB HBM3", "11.4.0.106")
    assert base != cache_of("NVIDIA H100 PCIe", "10.16.1.11")
    assert "11.4.0.106" in base and "h100-pcie" in base


def test_tensorrt_runs_on_its_own_stream_and_inputs_are_copied_on_it(monkeypatch):
    """Without a GPU: the engine is enqueued on the backend's stream (not the default, 0),
    and `prepare` copies inputs under that stream, so the copy is ordered before the run."""
    import torch

    from optbench.backends.trt import TensorRtBackend

    calls = []
    stream = SimpleNamespace(cuda_stream=0x5EED, synchronize=lambda: calls.append("sync"))

    class Context:
        def set_tensor_address(self, name, ptr):
            calls.append(("address", name, ptr))

        def execute_async_v3(self, handle):
            calls.append(("execute", handle))
            return True

    class Under:
        def __init__(self, s):
            self.s = s

        def __enter__(self):
            calls.append(("stream", self.s.cuda_stream))

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.cuda, "stream", Under)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: calls.append(("to", a))
                        or self)
    backend = TensorRtBackend(TensorRtConfig())
    backend.stream, backend.context, backend.input_name = stream, Context(), "x"
    backend.input_dtype, backend.output = torch.float16, "out"
    inputs = backend.prepare(np.ones((2, 8), np.float32))
    assert calls[:2] == [("stream", 0x5EED), ("to", ("cuda", torch.float16))]
    assert backend.infer(inputs) == "out"
    assert ("execute", 0x5EED) in calls
    backend.synchronize()
    assert calls[-1] == "sync"
