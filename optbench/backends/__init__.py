"""Inference runtimes. Each implements the Backend contract in base.py in its own module."""

from optbench.registry import Registry

BACKENDS: Registry = Registry("backend", "optbench.backends.base:Backend", "optbench.backends")
BACKENDS.register("torch", "optbench.backends.torch:TorchBackend", aliases=("eager", "pytorch"),
                  summary="PyTorch eager or torch.compile; int8 via torchao pt2e + inductor")
BACKENDS.register("ort", "optbench.backends.ort:OrtBackend", aliases=("onnxruntime",),
                  summary="ONNX Runtime; int8 via quantize_static (QDQ)")
BACKENDS.register("openvino", "optbench.backends.openvino:OpenVinoBackend", aliases=("ov",),
                  summary="OpenVINO; explicit f32 baseline, int8 via NNCF")
BACKENDS.register("trt", "optbench.backends.trt:TensorRtBackend", aliases=("tensorrt",),
                  summary="NVIDIA TensorRT (GPU)")
BACKENDS.register("vllm", "optbench.backends.vllm:VllmBackend",
                  summary="vLLM offline LLM engine (GPU, LLM workloads)")
BACKENDS.register("sklearn", "optbench.backends.sklearn:SklearnBackend",
                  aliases=("scikit-learn", "lightgbm"),
                  summary="classic models: the library's own predict_proba (the baseline)")
BACKENDS.register("numba", "optbench.backends.numba_backend:NumbaBackend",
                  summary="classic models as numba @njit kernels (linear, trees, kNN)")
BACKENDS.register("treelite", "optbench.backends.treelite_backend:TreeliteBackend",
                  aliases=("tl2cgen",),
                  summary="tree ensembles compiled to a shared library by treelite + TL2cgen")
BACKENDS.register("fake", "optbench.testing.backend:FakeBackend", hidden=True,
                  summary="numpy test backend with injectable latency and faults")
